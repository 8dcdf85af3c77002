#!/usr/bin/env bash
# `srl serve` and llama.cpp's `llama-server` under the same load: the same
# model, slots, threads and clients, on loopback, one after the other.
#
#   bench/serve_load.sh [DURATION_S=60] [CLIENTS=16] [PARALLEL=4]
#
# Environment: MODEL (default: the default model in the cache), THREADS
# (default: all cores), MAX_TOKENS (64), LLAMA_SERVER (default
# /opt/llama.cpp/bin/llama-server; skipped when missing), SRL (the srl
# binary, default target/release/srl, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
CLIENTS=${2:-16}
PARALLEL=${3:-4}
THREADS=${THREADS:-$(nproc)}
MAX_TOKENS=${MAX_TOKENS:-64}
CTX=1024
MODEL=${MODEL:-${SRL_CACHE:-$HOME/.cache/srl}/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LLAMA_SERVER=${LLAMA_SERVER:-/opt/llama.cpp/bin/llama-server}
if [ -z "${SRL:-}" ]; then
    cargo build --release --quiet
    SRL=${CARGO_TARGET_DIR:-target}/release/srl
fi
OUT=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"' EXIT

wait_up() { # URL
    for _ in $(seq 1 300); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "server at $1 did not come up" >&2
    return 1
}

load() { # NAME PORT
    echo "== $1: $CLIENTS clients, ${DURATION}s, $PARALLEL slots, $THREADS threads, max_tokens $MAX_TOKENS"
    python3 bench/serve_load.py --url "http://127.0.0.1:$2" --clients "$CLIENTS" \
        --duration "$DURATION" --max-tokens "$MAX_TOKENS" --json | tee "$OUT/$1.json"
}

"$SRL" serve --model "$MODEL" --port 18181 --parallel "$PARALLEL" --threads "$THREADS" \
    --ctx "$CTX" --queue 256 2>"$OUT/srl.log" &
PIDS+=($!)
wait_up http://127.0.0.1:18181/health
load srl 18181
kill "${PIDS[-1]}"

if [ -x "$LLAMA_SERVER" ]; then
    # llama-server's -c is the whole cache, shared by its slots.
    "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port 18182 -np "$PARALLEL" \
        -c $((CTX * PARALLEL)) -t "$THREADS" -tb "$THREADS" 2>"$OUT/llama.log" &
    PIDS+=($!)
    wait_up http://127.0.0.1:18182/health
    load llama-server 18182
    python3 - "$OUT/srl.json" "$OUT/llama-server.json" <<'EOF'
import json, sys
s, l = (json.load(open(p)) for p in sys.argv[1:3])
print(f"== srl / llama-server: tokens/s {s['tokens_per_s'] / l['tokens_per_s']:.2f}x, "
      f"TTFT p50 {s['ttft_p50_ms']:.0f} vs {l['ttft_p50_ms']:.0f} ms, "
      f"p99 {s['ttft_p99_ms']:.0f} vs {l['ttft_p99_ms']:.0f} ms, "
      f"failed {s['requests_failed']} vs {l['requests_failed']}")
EOF
else
    echo "($LLAMA_SERVER not found: no comparison)"
fi

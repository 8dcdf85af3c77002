#!/usr/bin/env bash
# LoRA training speed and memory: `srl bench train` vs PyTorch + PEFT on CPU
# (bench/train_pytorch.py), the same step on the same GGUF model.
#
#   bench/compare_pytorch.sh [MODEL.gguf]
#
# One step = forward + loss + backward + AdamW on SEQ random tokens, LoRA rank
# RANK (alpha 2 * RANK) on q,k,v,o,gate,up,down, float32, THREADS threads.
# The runs alternate (srl, PyTorch, PyTorch with gradient checkpointing, srl,
# ...) for ROUNDS rounds; the script prints a markdown table of tokens/s and
# peak RSS with the srl / PyTorch ratios.  Prerequisite: the PyTorch venv
# (bench/README.md, "srl vs PyTorch + PEFT").
#
# Environment:
#   THREADS=2 ROUNDS=2 REPS=3 SEQ=512 RANK=16
#   PT_MODES="plain gc"   PyTorch runs per round: plain and/or gc (gradient checkpointing)
#   PT_OMP_WAIT_POLICY=PASSIVE   OMP_WAIT_POLICY for PyTorch; empty = PyTorch's default (spinning
#                                OpenMP threads: faster on an idle machine, ~6x slower on a busy one; README)
#   TORCH_PYTHON=/opt/torchenv/bin/python   the interpreter with torch, transformers, peft, gguf
#   SRL_BIN=target/release/srl (built with cargo if missing), SRL_REV (its commit, for the table;
#   default: git HEAD)   SRL_TRAIN_ARGS / PT_ARGS  extra arguments
#   RESULTS_DIR=/tmp/srl-train-bench-<time>  raw JSON outputs, summary.md
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
THREADS="${THREADS:-2}" ROUNDS="${ROUNDS:-2}" REPS="${REPS:-3}" SEQ="${SEQ:-512}" RANK="${RANK:-16}"
PT_MODES="${PT_MODES:-plain gc}"
PT_OMP_WAIT_POLICY="${PT_OMP_WAIT_POLICY-PASSIVE}"
TORCH_PYTHON="${TORCH_PYTHON:-/opt/torchenv/bin/python}"
SRL_BIN="${SRL_BIN:-$REPO/target/release/srl}"
RESULTS_DIR="${RESULTS_DIR:-/tmp/srl-train-bench-$(date +%Y%m%d-%H%M%S)}"
MODEL="${1:-${SRL_MODELS_CACHE:-$HOME/.cache/srl/models}/SmolLM2-135M-Instruct.Q4_1.gguf}"

[[ -f "$MODEL" ]] || { echo "error: $MODEL missing (srl fetches it on first use: srl generate -p hi)" >&2; exit 1; }
if ! "$TORCH_PYTHON" -c 'import torch, transformers, peft, gguf' 2>/dev/null; then
    echo "error: $TORCH_PYTHON cannot import torch, transformers, peft and gguf; see bench/README.md" >&2
    exit 1
fi
if [[ ! -x "$SRL_BIN" ]]; then
    echo "[compare] $SRL_BIN missing: cargo build --release" >&2
    (cd "$REPO" && cargo build --release)
fi
if ! "$SRL_BIN" bench train --help 2>/dev/null | grep -q -- --json; then
    echo "error: $SRL_BIN has no 'bench train --json'" >&2
    exit 1
fi

mkdir -p "$RESULTS_DIR"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "[compare] raw results in $RESULTS_DIR; load average $(loadavg) on $(nproc) CPUs" >&2
loadavg > "$RESULTS_DIR/load_before"

# run NAME CMD...: stdout (one JSON object, last line) to NAME.json, stderr to NAME.log
run() {
    local name="$1"; shift
    echo "[compare] $name (load $(loadavg)): $*" >&2
    echo "$(loadavg)" > "$RESULTS_DIR/$name.load"
    if ! "$@" > "$RESULTS_DIR/$name.out" 2> "$RESULTS_DIR/$name.log"; then
        echo "error: $name failed: $*" >&2
        tail -20 "$RESULTS_DIR/$name.log" >&2
        exit 1
    fi
    tail -n 1 "$RESULTS_DIR/$name.out" > "$RESULTS_DIR/$name.json"
}

for ((r = 1; r <= ROUNDS; r++)); do
    # shellcheck disable=SC2086
    run "r$r.srl" "$SRL_BIN" bench train --model "$MODEL" --json --threads "$THREADS" --seq "$SEQ" \
        --rank "$RANK" -r "$REPS" ${SRL_TRAIN_ARGS:-}
    for mode in $PT_MODES; do
        flag=()
        [[ "$mode" == gc ]] && flag=(--gradient-checkpointing)
        # shellcheck disable=SC2086
        run "r$r.pytorch-$mode" env OMP_NUM_THREADS="$THREADS" ${PT_OMP_WAIT_POLICY:+OMP_WAIT_POLICY=$PT_OMP_WAIT_POLICY} "$TORCH_PYTHON" "$HERE/train_pytorch.py" \
            --model "$MODEL" --json --threads "$THREADS" --seq "$SEQ" --rank "$RANK" -r "$REPS" \
            "${flag[@]}" ${PT_ARGS:-}
    done
done
loadavg > "$RESULTS_DIR/load_after"

SRL_REV="${SRL_REV:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")}"
python3 - "$RESULTS_DIR" "$SRL_BIN" "$SRL_REV" "$MODEL" "$REPS" <<'EOF' | tee "$RESULTS_DIR/summary.md"
import json, statistics, sys
from datetime import datetime, timezone
from pathlib import Path

d, srl_bin, srl_rev, model, reps = Path(sys.argv[1]), *sys.argv[2:]
runs = {}
for f in sorted(d.glob("r*.json")):
    rnd, side = f.stem.split(".", 1)
    res = json.loads(f.read_text())
    res["load"] = (d / f"{rnd}.{side}.load").read_text().split()[0]
    runs.setdefault(side, []).append(res)
order = ["srl", "pytorch-plain", "pytorch-gc"]
sides = sorted(runs, key=lambda s: (order.index(s) if s in order else len(order), s))
names = {"srl": "srl", "pytorch-plain": "PyTorch+PEFT", "pytorch-gc": "PyTorch+PEFT, gradient checkpointing"}
med = lambda xs: statistics.median(xs)
spread = lambda xs: (max(xs) - min(xs)) / 2
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
s0 = runs["srl"][0]
pt = next((runs[s][0] for s in sides if s != "srl"), {})
v = pt.get("versions", {})

print(f"## srl vs PyTorch + PEFT: LoRA training ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})")
print()
print(f"- model: {model}; seq {s0['seq']}, rank {s0['rank']}, targets {','.join(s0['targets'])}, "
      f"threads {s0['threads']}; CPU: {cpu}")
print(f"- load average before / after: {(d / 'load_before').read_text().strip()} / {(d / 'load_after').read_text().strip()} "
      f"(per run: {', '.join(f'{s} ' + '/'.join(r['load'] for r in runs[s]) for s in sides)})")
print(f"- srl: {srl_bin} @ {srl_rev} (saved_activations_mib {s0.get('saved_activations_mib')}); "
      f"PyTorch {v.get('torch')}, transformers {v.get('transformers')}, PEFT {v.get('peft')}, float32, "
      f"attention {pt.get('attn_implementation')}, OMP_WAIT_POLICY {pt.get('omp_wait_policy')}")
print(f"- {len(runs['srl'])} alternating rounds, each run one warm-up step + the mean of "
      f"{reps} measured steps; tok/s = median over rounds (± half the "
      f"spread), best = fastest round; peak RSS = ru_maxrss, the largest over rounds")
print()
print("| engine | train tok/s | best tok/s | s/step | peak RSS MiB | PyTorch peak while training MiB | trainable |")
print("|---|---:|---:|---:|---:|---:|---:|")
stat = {}
for s in sides:
    tps = [r["train_tokens_per_s"] for r in runs[s]]
    rss = max(r["peak_rss_mib"] for r in runs[s])
    tp = [r.get("train_peak_rss_mib") for r in runs[s] if r.get("train_peak_rss_mib") is not None]
    stat[s] = (med(tps), max(tps), rss)
    print(f"| {names.get(s, s)} | {med(tps):.1f} ± {spread(tps):.1f} | {max(tps):.1f} | "
          f"{med([r['step_s'] for r in runs[s]]):.2f} | {rss:.0f} | {f'{max(tp):.0f}' if tp else '-'} | "
          f"{runs[s][0].get('trainable', '?')} |")
print()
print("| srl vs | tok/s ratio (median) | tok/s ratio (best) | peak RSS ratio | target: tok/s >= 1.5x, RSS <= 0.5x |")
print("|---|---:|---:|---:|---|")
for s in sides[1:]:
    tr, br, mr = stat["srl"][0] / stat[s][0], stat["srl"][1] / stat[s][1], stat["srl"][2] / stat[s][2]
    ok = lambda c: "yes" if c else "no"
    print(f"| {names.get(s, s)} | {tr:.2f} | {br:.2f} | {mr:.2f} | speed {ok(tr >= 1.5)}, memory {ok(mr <= 0.5)} |")
EOF

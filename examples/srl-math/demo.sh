#!/usr/bin/env bash
# The SRL demonstration (SRL.md; the paper's table in miniature), on the
# default model (SmolLM2-135M-Instruct Q4_1), about 30 minutes on 2 cores:
#   1. the base model on held-out step instances and problems,
#   2. SFT on the 300 expert trajectories,
#   3. SRL on the step instances of the same trajectories,
#   4. SRL -> RLVR: RLVR on the problems, starting from the SRL adapter,
# each evaluated the same way (`srl eval`: greedy step similarity,
# format-failure rate, step-wise solve accuracy), then one table.
#   examples/srl-math/demo.sh [OUT_DIR]
# Settings: THREADS (2), SRL_STEPS (30 updates), RLVR_STEPS (8), LIMIT (40
# step instances), PROBLEMS (10 problems solved step by step).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-adapters/srl-math}
# SRL: the srl binary to run (default: built here with cargo).
SRL=${SRL:-}
THREADS=${THREADS:-2}
SRL_STEPS=${SRL_STEPS:-30}
RLVR_STEPS=${RLVR_STEPS:-8}
LIMIT=${LIMIT:-40}
PROBLEMS=${PROBLEMS:-10}
DATA=examples/srl-math
if [ -z "$SRL" ]; then
    cargo build --release --quiet
    SRL=target/release/srl
fi
mkdir -p "$OUT"
# The 135M model never closes its <think> block by itself: every run and
# evaluation closes it after 16 tokens (budget forcing, the same for all).
FORMAT=(--think-budget 16)
ADAPTER=(--rank 8 --alpha 16 --num-layers 10 --seed 1 -t "$THREADS")
evaluate() { # NAME [LORA]
    local lora=()
    [ -n "${2:-}" ] && lora=(--lora "$2")
    echo "== eval: $1"
    "$SRL" eval --data "$DATA/valid.jsonl" --limit "$LIMIT" --problems "$PROBLEMS" --k 0 --max-tokens 48 --max-steps 4 \
        "${FORMAT[@]}" -t "$THREADS" "${lora[@]}" --json 2>/dev/null > "$OUT/eval-$1.json"
}
start=$(date +%s)
evaluate base

echo "== SFT"
"$SRL" train sft --data "$DATA/train.jsonl" --out "$OUT/sft" --overwrite --epochs 1 --batch-size 4 \
    --lr 5e-4 --save-every 0 --eval-every 0 "${ADAPTER[@]}"
evaluate sft "$OUT/sft"

echo "== SRL"
"$SRL" train srl --data "$DATA/train.jsonl" --out "$OUT/srl" --overwrite --max-steps "$SRL_STEPS" \
    --batch-size 2 --group-size 8 --max-new-tokens 40 --lr 1e-3 --save-every 10 \
    "${FORMAT[@]}" "${ADAPTER[@]}"
evaluate srl "$OUT/srl"

echo "== SRL -> RLVR"
"$SRL" train rlvr --data "$DATA/train.jsonl" --out "$OUT/srl-rlvr" --overwrite --init-adapter "$OUT/srl" \
    --max-steps "$RLVR_STEPS" --batch-size 2 --group-size 8 --max-new-tokens 64 --lr 2e-4 \
    --sampling-bound 6 --save-every 4 "${FORMAT[@]}" "${ADAPTER[@]}"
evaluate srl-rlvr "$OUT/srl-rlvr"

python3 - "$OUT" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
out, secs = sys.argv[1], int(sys.argv[2])
print()
print("| model | step similarity (failures 0) | similarity (well-formed) | format failures | mean step reward | answer accuracy |")
print("|---|---:|---:|---:|---:|---:|")
for name, label in [("base", "base"), ("sft", "SFT"), ("srl", "SRL"), ("srl-rlvr", "SRL -> RLVR")]:
    r = json.load(open(f"{out}/eval-{name}.json"))
    wf = "-" if r["mean_similarity"] is None else f"{r['mean_similarity']:.3f}"
    right = sum(p["greedy_correct"] for p in r["solved"])
    print(f"| {label} | {r['mean_similarity_all']:.3f} | {wf} | {r['format_failure_rate']:.3f} "
          f"| {r['mean_reward']:.3f} | {right}/{r['problems']} |")
print(f"\n{r['instances']} held-out step instances, {r['problems']} problems; {secs // 60} min {secs % 60} s in all")
PY

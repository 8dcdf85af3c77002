#!/usr/bin/env bash
# The SRL demonstration at real size (issue: "the SRL demonstration on
# GSM8K"): Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) on GSM8K, every variant
# trained with the same LoRA settings and scored on the same held-out slice
# of GSM8K's test split:
#   base, SFT, SRL, RLVR alone, SRL -> RLVR
# Each is scored by `srl eval`: greedy final-answer accuracy solving step by
# step and in one go (--whole), avg@k on a smaller slice, held-out step
# similarity and format failures; then one table with each stage's time.
#   examples/gsm8k/demo.sh [OUT_DIR]
#   QUICK=1 examples/gsm8k/demo.sh     # minutes: CI's smoke test of the whole pipeline
# QUICK=1 trains and scores a handful of problems with tiny settings (an
# RLVR run on them may stop with its "no signal" error, which the table
# marks as failed); its numbers mean nothing, it checks that every stage runs.
# Settings (environment): THREADS (2), MODEL (qwen2.5-coder:0.5b), N_TRAIN
# (training problems, 200), N_TEST (held-out problems, 200), LIMIT (held-out
# step instances, 100), K_PROBLEMS (40) and K (4) for avg@k, SFT_EPOCHS (1),
# SRL_STEPS (40), RLVR_STEPS (16), THINK (think budget, 32).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-adapters/gsm8k}
SRL=${SRL:-}
THREADS=${THREADS:-2}
MODEL=${MODEL:-qwen2.5-coder:0.5b}
if [ "${QUICK:-0}" = 1 ]; then
    N_TRAIN=${N_TRAIN:-8} N_TEST=${N_TEST:-2} LIMIT=${LIMIT:-2} K_PROBLEMS=${K_PROBLEMS:-1} K=${K:-2}
    SFT_STEPS=(--max-steps 2) SRL_STEPS=${SRL_STEPS:-1} RLVR_STEPS=${RLVR_STEPS:-1} THINK=${THINK:-8}
    GROUP=4 STEP_TOKENS=24 WHOLE_TOKENS=32 MAX_STEPS=2 BOUND=1 AVGK_ALL=0
    ADAPTER=(--rank 4 --alpha 8 --num-layers 1 --seed 1 -t "$THREADS")
else
    N_TRAIN=${N_TRAIN:-200} N_TEST=${N_TEST:-200} LIMIT=${LIMIT:-100} K_PROBLEMS=${K_PROBLEMS:-40} K=${K:-4}
    SFT_STEPS=(--epochs "${SFT_EPOCHS:-1}") SRL_STEPS=${SRL_STEPS:-40} RLVR_STEPS=${RLVR_STEPS:-16} THINK=${THINK:-32}
    GROUP=8 STEP_TOKENS=96 WHOLE_TOKENS=320 MAX_STEPS=8 BOUND=6 AVGK_ALL=1
    ADAPTER=(--rank 16 --alpha 32 --num-layers 8 --seed 1 -t "$THREADS")
fi
if [ -z "$SRL" ]; then
    cargo build --release --quiet
    SRL=target/release/srl
fi
mkdir -p "$OUT"
DATA="$OUT/data"
python3 examples/gsm8k/make_data.py "$DATA" --train "$N_TRAIN" --test "$N_TEST"
"$SRL" pull "$MODEL" >/dev/null
# Every run and evaluation closes the monologue after $THINK tokens
# (budget forcing, the same for all), as the 0.5B instruct model does not
# reliably close it by itself.
FORMAT=(--think-budget "$THINK")
TIMES="$OUT/times.txt"
: >"$TIMES"
timed() { # NAME COMMAND...: runs it, records its seconds (or that it failed)
    local name=$1 t0=$SECONDS
    shift
    if "$@"; then
        echo "$name $((SECONDS - t0))" >>"$TIMES"
    else
        echo "$name failed" >>"$TIMES"
        echo "== $name failed (see above); the table marks it"
    fi
}
eval_into() { # FILE ARGS...: one `srl eval --json` into FILE
    local file=$1
    shift
    "$SRL" eval -m "$MODEL" --data "$DATA/test.jsonl" --max-tokens "$STEP_TOKENS" \
        --max-steps "$MAX_STEPS" "${FORMAT[@]}" -t "$THREADS" --json "$@" >"$file"
}
evaluate() { # NAME [ADAPTER_DIR]
    local lora=()
    if [ -n "${2:-}" ]; then
        [ -f "$2/adapter_model.safetensors" ] || return 0
        lora=(--lora "$2")
    fi
    echo "== eval: $1"
    timed "eval-$1" eval_into "$OUT/eval-$1.json" --limit "$LIMIT" --problems "$N_TEST" --k 0 \
        --whole "$WHOLE_TOKENS" "${lora[@]}"
    [ "$AVGK_ALL" = 1 ] || [ "$1" = base ] || return 0
    timed "avgk-$1" eval_into "$OUT/avgk-$1.json" --limit 1 --problems "$K_PROBLEMS" --k "$K" "${lora[@]}"
}
RL=(--batch-size 2 --group-size "$GROUP" --save-every 0 "${FORMAT[@]}" "${ADAPTER[@]}")
start=$SECONDS
evaluate base

echo "== SFT"
timed train-sft "$SRL" train sft -m "$MODEL" --data "$DATA/train.jsonl" --out "$OUT/sft" --overwrite \
    "${SFT_STEPS[@]}" --batch-size 4 --lr 2e-4 --save-every 0 --eval-every 0 "${ADAPTER[@]}"
evaluate sft "$OUT/sft"

echo "== SRL"
timed train-srl "$SRL" train srl -m "$MODEL" --data "$DATA/train.jsonl" --out "$OUT/srl" --overwrite \
    --max-steps "$SRL_STEPS" --max-new-tokens "$STEP_TOKENS" --lr 1e-4 "${RL[@]}"
evaluate srl "$OUT/srl"

echo "== RLVR"
timed train-rlvr "$SRL" train rlvr -m "$MODEL" --data "$DATA/train.jsonl" --out "$OUT/rlvr" --overwrite \
    --max-steps "$RLVR_STEPS" --max-new-tokens "$WHOLE_TOKENS" --lr 1e-4 --sampling-bound "$BOUND" "${RL[@]}"
evaluate rlvr "$OUT/rlvr"

echo "== SRL -> RLVR"
if [ -f "$OUT/srl/adapter_model.safetensors" ]; then
    timed train-srl-rlvr "$SRL" train rlvr -m "$MODEL" --data "$DATA/train.jsonl" --out "$OUT/srl-rlvr" \
        --overwrite --init-adapter "$OUT/srl" --max-steps "$RLVR_STEPS" --max-new-tokens "$WHOLE_TOKENS" \
        --lr 1e-4 --sampling-bound "$BOUND" "${RL[@]}"
    evaluate srl-rlvr "$OUT/srl-rlvr"
fi

python3 - "$OUT" "$((SECONDS - start))" "$THREADS" <<'PY'
import json, os, sys
out, secs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = dict(l.split(maxsplit=1) for l in open(f"{out}/times.txt") if l.strip())
def load(name):
    try:
        return json.load(open(name))
    except (OSError, ValueError):
        return None
def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"
print()
print("| model | accuracy, step by step (greedy) | accuracy, in one go (greedy) | avg@k | step similarity (well-formed) | format failures | no answer (one go) | training time |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, label in [("base", "base"), ("sft", "SFT"), ("srl", "SRL"), ("rlvr", "RLVR"), ("srl-rlvr", "SRL -> RLVR")]:
    r, k = load(f"{out}/eval-{name}.json"), load(f"{out}/avgk-{name}.json")
    t = times.get(f"train-{name}", "-").strip()
    t = t if t in ("-", "failed") else f"{int(t) // 60} min {int(t) % 60} s"
    if r is None:
        print(f"| {label} | - | - | - | - | - | - | {t} |")
        continue
    right = sum(p["greedy_correct"] for p in r["solved"])
    whole = sum(bool(p.get("whole_correct")) for p in r["solved"])
    sim = "-" if r["mean_similarity"] is None else f"{r['mean_similarity']:.3f}"
    avgk = "-" if k is None or k.get("avg_at_k") is None else f"{100 * k['avg_at_k']:.1f}% ({k['problems']} x {k['k']})"
    print(f"| {label} | {right}/{r['problems']} | {whole}/{r['problems']} | {avgk} | {sim} "
          f"| {pct(r['format_failure_rate'])} | {pct(r.get('whole_no_answer_rate'))} | {t} |")
r = load(f"{out}/eval-base.json")
print(f"\n{r['problems']} held-out GSM8K test problems, {r['instances']} held-out step instances; "
      f"{secs // 60} min {secs % 60} s in all on {threads} threads. Reward curves: "
      + ", ".join(f"{out}/{n}/reward.svg" for n in ("srl", "rlvr", "srl-rlvr") if os.path.exists(f"{out}/{n}/reward.svg")))
PY

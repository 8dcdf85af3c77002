#!/usr/bin/env bash
# Train the small LoRA adapter that the llama.cpp LoRA reference uses
# (tests/data/llamacpp/lora/unit_conversion.gguf, greedy_lora.json), with srl
# itself: `srl train sft` on examples/unit-conversion/train.jsonl.
#
#   [MAX_LEN=128] scripts/reference/make_lora_adapter.sh [MODEL.gguf [DST.gguf]]
#
# (MAX_LEN 1536 for a model whose template adds a long system message,
# as SmolLM3's does.)
#
# rank 4 (alpha 8, so scale 2) on every linear layer (q,k,v,o,gate,up,down)
# of the last 4 blocks, F32, ~640 KiB; 30 steps of 1 example (~25 s on 2
# cores).  Enough to move greedy chat answers to unit-conversion questions
# from "To convert ..." prose to the trained "Step 1: ..." format.
#
# Deterministic: fixed seed, 2 threads (the thread count fixes the order of
# the gradient reductions); the same srl build on the same kind of CPU gives
# the same bytes (sha256 in tests/data/llamacpp/README.md).  The reference
# data does not depend on retraining: gen_reference.py reads the committed
# adapter.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODELS="${SRL_MODELS_CACHE:-/work/models-cache}"
MODEL="${1:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}"
DST="${2:-$REPO/tests/data/llamacpp/lora/unit_conversion.gguf}"

(cd "$REPO" && cargo build --release --quiet --bin srl)
SRL="${CARGO_TARGET_DIR:-$REPO/target}/release/srl"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$SRL" train sft \
    --model "$MODEL" \
    --data "$REPO/examples/unit-conversion/train.jsonl" \
    --out "$WORK/adapter" \
    --rank 4 --alpha 8 \
    --targets q,k,v,o,gate,up,down \
    --num-layers 4 \
    --max-len "${MAX_LEN:-128}" \
    --lr 2e-3 --schedule cosine --warmup-steps 0 \
    --max-steps 30 --batch-size 1 --grad-accum 1 \
    --seed 1 --threads 2 \
    --eval-every 0 --save-every 0 >&2

mkdir -p "$(dirname "$DST")"
cp "$WORK/adapter/adapter.gguf" "$DST.tmp"
mv "$DST.tmp" "$DST"
sha256sum "$DST"

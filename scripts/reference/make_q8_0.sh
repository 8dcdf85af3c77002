#!/usr/bin/env bash
# Make the Q8_0 reference model by requantizing the default Q4_1 GGUF with
# llama.cpp's llama-quantize (built by scripts/llamacpp/build.sh).
#   scripts/reference/make_q8_0.sh [SRC.gguf [DST.gguf [TYPE]]]
# TYPE (default Q8_0) is any llama-quantize type, e.g. Q4_K_M for the
# k-quant benchmark model.
# Q4_1 -> Q8_0 is a requantization (the weights carry Q4_1 rounding error
# already), hence --allow-requantize.  Deterministic: same input and llama.cpp
# build give the same bytes (sha256 is recorded in tests/data/llamacpp/greedy_q8_0.json).
set -euo pipefail
LLAMACPP_DIR="${LLAMACPP_DIR:-/opt/llama.cpp}"
MODELS="${SRL_MODELS_CACHE:-/work/models-cache}"
SRC="${1:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}"
DST="${2:-$MODELS/SmolLM2-135M-Instruct.Q8_0.gguf}"
if [[ -f "$DST" && "${FORCE:-0}" != "1" ]]; then
    echo "[make_q8_0] $DST exists" >&2
else
    "$LLAMACPP_DIR/bin/llama-quantize" --allow-requantize "$SRC" "$DST.tmp" "${3:-Q8_0}" "${THREADS:-2}" >&2
    mv "$DST.tmp" "$DST"
fi
sha256sum "$DST"

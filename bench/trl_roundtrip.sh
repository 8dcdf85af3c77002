#!/usr/bin/env bash
# srl's data and adapters on TRL, and back: too heavy for CI (it needs
# PyTorch), run by hand with the PyTorch venv of bench/README.md plus trl,
# datasets and accelerate.
#
#   bench/trl_roundtrip.sh [MODEL.gguf]
#
# 1. `srl data export --format trl` on the first trajectories of
#    examples/srl-math; the GGUF model loaded by transformers (dequantized,
#    float32) and saved as a Hugging Face folder.
# 2. TRL's GRPOTrainer runs the exported train_grpo.py for 2 steps on the
#    CPU with the exported data and srl_reward.py; srl then loads the PEFT
#    adapter GRPO wrote (`srl generate --lora`, `srl merge`).
# 3. `srl train sft` trains an adapter for 2 steps; GRPO continues it
#    (`--init-adapter`, PEFT's is_trainable=True) for 2 steps, and PEFT
#    trains it 2 plain next-token steps: every tensor of srl's must move.
#
# Environment: TORCH_PYTHON=/opt/torchenv/bin/python, SRL_BIN=target/release/srl,
# OUT=/tmp/srl-trl-<time>, THREADS=2
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TORCH_PYTHON="${TORCH_PYTHON:-/opt/torchenv/bin/python}"
SRL_BIN="${SRL_BIN:-$REPO/target/release/srl}"
OUT="${OUT:-/tmp/srl-trl-$(date +%Y%m%d-%H%M%S)}"
THREADS="${THREADS:-2}"
MODEL="${1:-${SRL_MODELS_CACHE:-$HOME/.cache/srl/models}/SmolLM2-135M-Instruct.Q4_1.gguf}"
export OMP_NUM_THREADS="$THREADS"

"$TORCH_PYTHON" -c 'import torch, transformers, peft, trl, datasets, gguf' \
    || { echo "error: $TORCH_PYTHON lacks torch, transformers, peft, trl, datasets or gguf" >&2; exit 1; }
mkdir -p "$OUT"
step() { echo "== $* ($(date +%T))"; }

step "export"
head -8 "$REPO/examples/srl-math/train.jsonl" > "$OUT/train.jsonl"
"$SRL_BIN" data export "$OUT/train.jsonl" --format trl --out "$OUT/trl" --overwrite

step "the GGUF as a Hugging Face folder"
"$TORCH_PYTHON" - "$MODEL" "$OUT/hf" 2>&1 <<'PY' | grep -v "GGUF tensors"
import pathlib, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf = pathlib.Path(sys.argv[1])
tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
# transformers will not save a model it read from GGUF: copy the
# dequantized weights into a plain one.
config = model.config
config.__dict__.pop("quantization_config", None)
plain = AutoModelForCausalLM.from_config(config)
plain.load_state_dict(model.state_dict())
plain.save_pretrained(sys.argv[2])
tok.save_pretrained(sys.argv[2])
print("saved", sys.argv[2], sum(p.numel() for p in plain.parameters()), "parameters")
PY

grpo() {
    (cd "$OUT/trl" && "$TORCH_PYTHON" train_grpo.py --model "$OUT/hf" --no-cuda --max-steps 2 \
        --group-size 2 --batch-size 2 --max-completion-length 24 "$@")
}

step "GRPO with srl's data and reward, 2 steps"
grpo --output-dir "$OUT/grpo-srl" 2>&1 | grep -E "'reward'|train_runtime|Error" || true
ls "$OUT/grpo-srl/adapter_model.safetensors"

step "srl loads TRL's adapter"
"$SRL_BIN" generate --model "$MODEL" --lora "$OUT/grpo-srl" --chat -p "What is 2 + 3?" -n 16 --temp 0 -t "$THREADS"
"$SRL_BIN" merge --model "$MODEL" --lora "$OUT/grpo-srl" --out "$OUT/merged.gguf" --overwrite

step "srl's adapter continues in PEFT"
"$SRL_BIN" train sft --model "$MODEL" --data "$OUT/train.jsonl" --out "$OUT/srl-sft" --max-steps 2 \
    --overwrite -t "$THREADS"
grpo --init-adapter "$OUT/srl-sft" --output-dir "$OUT/grpo-continued" 2>&1 | grep -E "'reward'|train_runtime|Error" || true
ls "$OUT/grpo-continued/adapter_model.safetensors"
# GRPO's update is zero when every reward in a group is the same (as for
# this base model, which never writes the think format in 24 tokens): the
# weights moving is shown with plain next-token steps instead.
"$TORCH_PYTHON" - "$OUT/hf" "$OUT/srl-sft" "$OUT/peft-continued" "$OUT/train.jsonl" <<'PY'
import json, sys, torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
hf, srl_dir, out, data = sys.argv[1:5]
tok = AutoTokenizer.from_pretrained(hf)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(hf), srl_dir, is_trainable=True)
trainable = [n for n, p in model.named_parameters() if p.requires_grad]
srl = load_file(f"{srl_dir}/adapter_model.safetensors")
print(f"PEFT loads srl's adapter: {len(trainable)} trainable tensors, srl wrote {len(srl)}")
assert len(trainable) == len(srl)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
for line in open(data).readlines()[:2]:
    t = json.loads(line)
    ids = tok(t["task"] + "\n" + "\n".join(t["steps"]), return_tensors="pt").input_ids
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward(); opt.step(); opt.zero_grad()
    print(f"step loss {loss.item():.4f}")
model.save_pretrained(out)
new = load_file(f"{out}/adapter_model.safetensors")
moved = sum(not torch.equal(srl[k], new[k]) for k in srl if k in new)
print(f"{moved} of {len(srl)} tensors moved")
assert moved == len(srl)
PY
step "done: $OUT"

#!/usr/bin/env python3
"""Tiny random Hugging Face models of the families srl reads as safetensors
folders, made and run by `transformers` itself: each folder
(tests/data/hf/<family>/: config.json, model.safetensors in f32) with
reference.json holding the token ids fed and transformers' logits at some
positions (f32, eager attention). models/tests/hf_reference.rs checks that
srl, opening the folder, computes the same logits.

    /path/to/python-with-torch-and-transformers scripts/reference/gen_hf_reference.py

Deterministic: torch.manual_seed before each model's initialisation.
Needs torch and transformers (5.x).
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config, SmolLM3Config

REPO = Path(__file__).resolve().parent.parent.parent
OUT = REPO / "tests/data/hf"
# 160 positions: long enough for the slow rotations RoPE scaling changes.
TOKENS = [(i * 37 + 11) % 256 for i in range(160)]
# The positions whose logits are kept (the first few, every 16th, the last).
POSITIONS = [0, 1, 2, 3] + list(range(15, len(TOKENS), 16)) + [len(TOKENS) - 1]

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=8192, rms_norm_eps=1e-6,
              tie_word_embeddings=False)


def configs():
    return {
        # Qwen3: per-head q/k norms, a head dim set apart from width / heads.
        "qwen3": Qwen3Config(num_hidden_layers=2, head_dim=32, rope_theta=1e6, **COMMON),
        # Llama 3.2: RoPE scaled per frequency (rope_scaling of type llama3).
        "llama3": LlamaConfig(num_hidden_layers=2, rope_theta=500000.0,
                              rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192}, **COMMON),
        # SmolLM3: the fourth layer without RoPE.
        "smollm3": SmolLM3Config(num_hidden_layers=4, rope_theta=5e6, pad_token_id=0, **COMMON),
    }


def main():
    names = sys.argv[1:] or list(configs())
    for name in names:
        cfg = configs()[name]
        cfg._attn_implementation = "eager"
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
        # Weights of a visible size: the default init (std 0.02) gives
        # near-uniform logits; norms near 1 so that a wrong norm shows.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        model.eval()
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        with torch.no_grad():
            logits = model(torch.tensor([TOKENS])).logits[0].float()
        ref = {
            "generated_by": "scripts/reference/gen_hf_reference.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokens": TOKENS,
            "vocab_size": cfg.vocab_size,
            "positions": POSITIONS,
            "logits": [[float(x) for x in logits[p]] for p in POSITIONS],
        }
        (out / "reference.json").write_text(json.dumps(ref) + "\n")
        for extra in ("generation_config.json",):
            (out / extra).unlink(missing_ok=True)
        print(f"{out}: {sum(f.stat().st_size for f in out.iterdir())} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()

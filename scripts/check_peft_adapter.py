#!/usr/bin/env python3
"""Checks a PEFT LoRA folder the way PEFT would read it, without torch:
adapter_config.json's keys and types, and adapter_model.safetensors' tensor
names, dtypes and shapes (lora_A [r, in], lora_B [out, r], every target of
every adapted layer present, one rank).

Usage: python3 scripts/check_peft_adapter.py DIR
Needs: pip install safetensors numpy
Exit status 0 when the folder is well formed; the problems otherwise.
"""

import json
import re
import sys
from pathlib import Path

from safetensors.numpy import load_file

# The keys PEFT 0.13's LoraConfig writes, with the JSON types they must have.
KEYS = {
    "alpha_pattern": dict,
    "auto_mapping": (dict, type(None)),
    "base_model_name_or_path": (str, type(None)),
    "bias": str,
    "fan_in_fan_out": bool,
    "inference_mode": bool,
    "init_lora_weights": (bool, str),
    "layer_replication": (list, type(None)),
    "layers_pattern": (str, list, type(None)),
    "layers_to_transform": (list, int, type(None)),
    "loftq_config": dict,
    "lora_alpha": (int, float),
    "lora_dropout": (int, float),
    "megatron_config": (dict, type(None)),
    "megatron_core": (str, type(None)),
    "modules_to_save": (list, type(None)),
    "peft_type": str,
    "r": int,
    "rank_pattern": dict,
    "revision": (str, type(None)),
    "target_modules": (list, str),
    "task_type": str,
    "use_dora": bool,
    "use_rslora": bool,
}

NAME = re.compile(
    r"^base_model\.model\.model\.layers\.(\d+)\."
    r"(self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$"
)


def check(folder: Path) -> list[str]:
    problems = []
    cfg = json.loads((folder / "adapter_config.json").read_text())
    for key, ty in KEYS.items():
        if key not in cfg:
            problems.append(f"adapter_config.json: missing key '{key}'")
        elif not isinstance(cfg[key], ty) or (ty is int and isinstance(cfg[key], bool)):
            problems.append(f"adapter_config.json: '{key}' is {cfg[key]!r}")
    if problems:
        return problems
    for key, want in [("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("bias", "none")]:
        if cfg[key] != want:
            problems.append(f"adapter_config.json: {key} is {cfg[key]!r}, not {want!r}")
    if cfg["use_dora"] or cfg["fan_in_fan_out"]:
        problems.append("adapter_config.json: use_dora / fan_in_fan_out set")
    if cfg["layers_pattern"] is not None and cfg["layers_to_transform"] is None:
        problems.append("adapter_config.json: layers_pattern needs layers_to_transform")
    r = cfg["r"]
    targets = sorted(cfg["target_modules"])

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    seen = {}
    for name, t in tensors.items():
        m = NAME.match(name)
        if not m:
            problems.append(f"unexpected tensor name '{name}'")
            continue
        layer, module, ab = int(m[1]), m[2], m[3]
        if t.dtype.name != "float32" or t.ndim != 2:
            problems.append(f"'{name}': {t.dtype} {t.shape}, expected a float32 matrix")
            continue
        rank = t.shape[0] if ab == "A" else t.shape[1]
        if rank != r:
            problems.append(f"'{name}': shape {t.shape} is not of rank r = {r}")
        seen.setdefault((layer, module), {})[ab] = t.shape
    layers = sorted({layer for layer, _ in seen})
    if cfg["layers_to_transform"] is not None and layers != sorted(cfg["layers_to_transform"]):
        problems.append(f"layers {layers} != layers_to_transform {cfg['layers_to_transform']}")
    for layer in layers:
        modules = sorted(mod.split(".")[1] for (l, mod) in seen if l == layer)
        if modules != targets:
            problems.append(f"layer {layer}: modules {modules} != target_modules {targets}")
    for (layer, module), ab in seen.items():
        if set(ab) != {"A", "B"}:
            problems.append(f"layer {layer} {module}: only lora_{''.join(ab)}")
    if not problems:
        print(
            f"ok: {len(tensors)} tensors, r={r}, lora_alpha={cfg['lora_alpha']}, "
            f"layers {layers[0]}..{layers[-1]}, targets {targets}"
        )
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    problems = check(Path(sys.argv[1]))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

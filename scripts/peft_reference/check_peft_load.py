#!/usr/bin/env python3
"""Loads an srl-written PEFT adapter folder with PEFT itself and compares
greedy decoding with srl's.

  python scripts/peft_reference/check_peft_load.py MODEL.gguf ADAPTER_DIR
      [--srl-json FILE [--srl-base-json FILE] | --prompt TEXT [--chat]] [-n 20] [--threads 2]

1. The base model is read from the GGUF file by transformers' GGUF loader
   (dequantized to float32, llama Q/K rows un-permuted to Hugging Face order).
2. `PeftModel.from_pretrained(base, ADAPTER_DIR)`; the check fails on any
   missing/unexpected-keys warning, on any tensor of adapter_model.safetensors
   that is not a LoRA parameter of the model or differs from it, on any LoRA
   module of the model left without a tensor from the file, and when the
   adapter leaves the logits unchanged (PEFT initialises lora_B to zeros).
3. The logits of the prompt's tokens with and without the adapter (top 5 per
   position), then N greedy tokens with the adapter (full forward per token,
   with the top-1/top-2 logit margin of each step).  With --srl-json (the
   output of `srl generate --json --temp 0 --ignore-eos --lora ADAPTER_DIR`)
   the prompt ids are srl's and its generated ids are compared; with
   --srl-base-json (the same command without --lora) the base's too.

Prints one JSON object; exit status 1 when the adapter did not load cleanly
(a greedy mismatch is reported, not an error: srl computes with the Q4_1
weights, PyTorch with their float32 dequantization).

Needs: the PyTorch venv of bench/README.md (torch, transformers, peft, gguf).
"""
import argparse
import json
import os
import sys
import warnings
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="GGUF base model")
    p.add_argument("adapter", type=Path, help="PEFT folder (adapter_config.json, adapter_model.safetensors)")
    p.add_argument("--srl-json", type=Path, help="srl generate --json output: prompt_ids and ids to compare")
    p.add_argument("--srl-base-json", type=Path, help="the same without --lora: compared with the base's greedy tokens")
    p.add_argument("--prompt", default="How many meters are in 5 kilometers?", help="prompt (without --srl-json)")
    p.add_argument("--chat", action="store_true", help="wrap --prompt in the tokenizer's chat template")
    p.add_argument("-n", "--n-predict", type=int, default=20, help="greedy tokens")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def top(logits, k=5):
    v, i = logits.topk(k)
    return {"ids": i.tolist(), "logits": [round(x, 4) for x in v.tolist()]}


def greedy(model, ids, n):
    """n greedy tokens after ids (a full forward per token), with each step's
    runner-up token and top-1 - top-2 logit margin."""
    import torch
    gen, margins, seq = [], [], ids
    for _ in range(n):
        v, i = model(input_ids=seq).logits[0, -1].topk(2)
        gen.append(int(i[0]))
        margins.append({"runner_up": int(i[1]), "margin": round(float(v[0] - v[1]), 4)})
        seq = torch.cat([seq, i[:1].view(1, 1)], dim=1)
    return gen, margins


def compare(ours, srl_ids):
    s = srl_ids[: len(ours)]
    first = next((i for i, (x, y) in enumerate(zip(ours, s)) if x != y), None)
    return {"srl_ids": s, "greedy_match": first is None and len(s) == len(ours), "first_mismatch": first}


def check_loaded(model, adapter_dir, caught):
    """Problems with how PEFT loaded the folder (empty when it loaded cleanly)."""
    import torch
    from safetensors.torch import load_file

    problems = [f"warning: {w.message}" for w in caught
                if any(s in str(w.message).lower() for s in ("missing", "unexpected", "not found"))]
    params = dict(model.named_parameters())
    saved = load_file(str(adapter_dir / "adapter_model.safetensors"))
    used = set()
    for name, t in saved.items():
        # file: ...q_proj.lora_A.weight; model: ...q_proj.lora_A.default.weight
        key = name.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if key not in params:
            problems.append(f"file tensor {name} is no parameter of the PEFT model")
        elif not torch.equal(params[key].detach().cpu(), t.to(params[key].dtype)):
            problems.append(f"{key} differs from the file's {name}")
        else:
            used.add(key)
    lora = [k for k in params if ".lora_A." in k or ".lora_B." in k]
    problems += [f"model LoRA parameter {k} has no tensor in the file" for k in lora if k not in used]
    return problems, len(saved), len(lora)


def main():
    a = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import peft
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    src = dict(pretrained_model_name_or_path=str(a.model.parent), gguf_file=a.model.name)
    base = AutoModelForCausalLM.from_pretrained(**src, dtype=torch.float32)
    base.eval()

    last_line = lambda p: json.loads(p.read_text().strip().splitlines()[-1]) if p else None
    srl, srl_base = last_line(a.srl_json), last_line(a.srl_base_json)
    if srl_base and srl and srl_base["prompt_ids"] != srl["prompt_ids"]:
        sys.exit("--srl-json and --srl-base-json have different prompts")
    if srl or srl_base:
        prompt_ids = (srl or srl_base)["prompt_ids"]
    else:
        tok = AutoTokenizer.from_pretrained(**src)
        if a.chat:
            prompt_ids = tok.apply_chat_template([{"role": "user", "content": a.prompt}], add_generation_prompt=True)
            if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
                prompt_ids = prompt_ids["input_ids"]
        else:
            prompt_ids = tok(a.prompt)["input_ids"]
    ids = torch.tensor([prompt_ids])

    with torch.no_grad():
        base_logits = base(input_ids=ids).logits[0].clone()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, str(a.adapter))
    model.eval()
    for w in caught:
        print(f"[check_peft_load] warning while loading: {w.message}", file=sys.stderr)
    problems, n_file, n_model = check_loaded(model, a.adapter, caught)

    with torch.no_grad():
        lora_logits = model(input_ids=ids).logits[0]
        delta = (lora_logits - base_logits).abs().max().item()
        if delta == 0.0:
            problems.append("the adapter leaves the logits unchanged (lora_B not loaded?)")
        gen, margins = greedy(model, ids, a.n_predict)
        with model.disable_adapter():
            base_again = model(input_ids=ids).logits[0]
            base_gen, base_margins = greedy(model, ids, a.n_predict) if srl_base else (None, None)
        if not torch.allclose(base_again, base_logits, atol=1e-5):
            problems.append("disable_adapter() does not give back the base logits")

    cfg = model.peft_config["default"].to_dict()
    out = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "model": str(a.model),
        "adapter": str(a.adapter),
        "adapter_config": {k: sorted(v) if isinstance(v, set) else v for k, v in cfg.items()
                           if k in ("r", "lora_alpha", "target_modules")},
        "file_tensors": n_file,
        "model_lora_parameters": n_model,
        "loaded_cleanly": not problems,
        "problems": problems,
        "prompt_ids": prompt_ids,
        "max_abs_logit_change_from_adapter": delta,
        "logits": [{"pos": p, "token": prompt_ids[p], "base_top5": top(base_logits[p]), "lora_top5": top(lora_logits[p])}
                   for p in range(len(prompt_ids))],
        "greedy_ids": gen,
        "greedy_steps": margins,
    }
    if srl:
        out.update(compare(gen, srl["ids"]))
    if srl_base:
        out["base"] = {"greedy_ids": base_gen, "greedy_steps": base_margins, **compare(base_gen, srl_base["ids"])}
    print(json.dumps(out))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

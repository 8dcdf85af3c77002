#!/usr/bin/env python3
"""One LoRA training step with PyTorch + PEFT on CPU, the step `srl bench train`
measures: forward, loss over every next token, backward, AdamW, on a sequence
of random tokens (labels = input ids).

The base model is read from the GGUF file by transformers' GGUF loader
(dequantized to float32; it un-permutes llama Q/K rows), so both sides train
the same weights.  PEFT LoraConfig(r, lora_alpha = 2r, lora_dropout = 0) on
the target modules; torch.optim.AdamW with PyTorch's defaults (betas 0.9,
0.999, eps 1e-8, weight decay 0.01), as srl's AdamWConfig::default.

Usage:
  /opt/torchenv/bin/python bench/train_pytorch.py [--model M.gguf] [--seq 512]
      [--rank 16] [--threads 2] [-r 3] [--gradient-checkpointing] [--json]

Prints one JSON object with --json (train_tokens_per_s, step_s, peak_rss_mib
and what produced them).  peak_rss_mib is the process's ru_maxrss, the same
measure as srl's; train_peak_rss_mib is the peak from after the model was
loaded (VmHWM reset through /proc/self/clear_refs), so loading's transient
float32 copies do not count.

Needs (see bench/README.md): pip install torch transformers peft gguf safetensors numpy
"""
import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_MODEL = Path(os.environ.get("SRL_MODELS_CACHE", Path.home() / ".cache/srl/models")) / "SmolLM2-135M-Instruct.Q4_1.gguf"
PEFT_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
              "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--model", type=Path, default=DEFAULT_MODEL, help="GGUF file")
    p.add_argument("--seq", type=int, default=512, help="tokens per training sequence")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (lora_alpha = 2 * rank, as srl bench train)")
    p.add_argument("--targets", default="q,k,v,o,gate,up,down", help="target modules, comma-separated")
    p.add_argument("-t", "--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("-r", "--reps", type=int, default=3, help="measured steps after one warm-up step (mean reported)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute each decoder layer in the backward (non-reentrant)")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="attention implementation")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args()


def random_tokens(n, vocab):
    """srl bench train's tokens: xorshift64 from 0x9e3779b97f4a7c15, mod vocab."""
    mask = (1 << 64) - 1
    s = 0x9E3779B97F4A7C15
    out = []
    for _ in range(n):
        s ^= (s << 13) & mask
        s ^= s >> 7
        s ^= (s << 17) & mask
        out.append(s % vocab)
    return out


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def release_free_memory():
    """Return glibc's free heap to the OS, so loading's garbage is not counted as training memory."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def main():
    a = parse_args()
    # Before torch starts its OpenMP pool.
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(a.threads))
    import resource

    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    targets = [PEFT_NAMES.get(t.strip(), t.strip()) for t in a.targets.split(",") if t.strip()]

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(a.model.parent), gguf_file=a.model.name, dtype=torch.float32, attn_implementation=a.attn)
    model.config.use_cache = False
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    load_s = time.perf_counter() - t0
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    seq = max(2, min(a.seq, model.config.max_position_embeddings))
    ids = torch.tensor([random_tokens(seq, model.config.vocab_size)], dtype=torch.long)

    release_free_memory()
    rss_after_load = status_kib("VmRSS") / 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM (the peak RSS) to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False

    times, losses = [], []
    for rep in range(a.reps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t
        losses.append(loss.item())
        if rep > 0:
            times.append(dt)
        if not a.json:
            print(f"step {rep}{' (warm-up)' if rep == 0 else ''}: {dt:.2f} s, loss {losses[-1]:.4f}", file=sys.stderr)

    step_s = sum(times) / len(times)
    tps = seq / step_s
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    train_peak = status_kib("VmHWM") / 1024 if hwm_reset else None
    res = {
        "engine": "pytorch+peft",
        "model": str(a.model),
        "threads": torch.get_num_threads(),
        "seq": seq,
        "rank": a.rank,
        "lora_alpha": 2 * a.rank,
        "targets": targets,
        "trainable": trainable,
        "gradient_checkpointing": a.gradient_checkpointing,
        "attn_implementation": model.config._attn_implementation,
        "dtype": "float32",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default: active)"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "load_s": load_s,
        "step_times_s": times,
        "losses": losses,
        "step_s": step_s,
        "train_tokens_per_s": tps,
        "peak_rss_mib": peak,
        "rss_after_load_mib": rss_after_load,
        "train_peak_rss_mib": train_peak,
    }
    if a.json:
        import json
        print(json.dumps(res))
    else:
        print(f"model: {a.model}, threads: {res['threads']}, seq {seq}, rank {a.rank}, {trainable} trainable "
              f"parameters, gradient checkpointing {'on' if a.gradient_checkpointing else 'off'}, {res['attn_implementation']}")
        print(f"training: {tps:.1f} tokens/s ({step_s:.2f} s per step), peak resident memory: {peak:.1f} MiB "
              f"(after loading {rss_after_load:.1f} MiB, peak while training {train_peak or float('nan'):.1f} MiB)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference numbers for srl's AdamW (finetune/src/optimizer.rs).

    python3 scripts/reference/adamw_reference.py   # writes finetune/tests/data/adamw_reference.json

PyTorch's torch.optim.AdamW on the CPU (single-tensor path, amsgrad off,
decoupled weight decay), re-done in NumPy float32 with the same operations in
the same order, one line per line of torch/optim/adam.py `_single_tensor_adam`:

    step_t += 1
    param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)

Python-float scalars are computed in float64 and rounded to float32 where ATen
casts them; ATen's vectorized lerp is one fused multiply-add, done here in
float64 (the product of two float32 values is exact there) and rounded once.
PyTorch could not be installed where this was written (only the PyPI index is
reachable, whose torch wheel needs the CUDA libraries); where it is installed,
`--check-torch` runs torch.optim.AdamW on the same inputs and compares.

Three cases: PyTorch's defaults with weight decay 0.1; betas (0.8, 0.95) with
eps 1e-6 and no weight decay; beta1 0.3, whose lerp weight 0.7 takes ATen's
other lerp branch. Each has two LoRA layers, A [2, 9] and B [5, 2] (odd lengths,
so vector loops have tails), five steps with a changing learning rate, and
gradients that mix zeros, tiny values (where eps matters) and large ones.
"""
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent.parent
OUT = REPO / "finetune/tests/data/adamw_reference.json"
F32 = np.float32
SHAPES = [18, 10, 18, 10]  # A, B of layer 0, then of layer 1 (flat)
LRS = [1e-3, 2e-3, 5e-4, 1e-2, 3e-4]  # rounded to float32, as srl's lr is
CASES = [
    {"name": "torch_defaults_wd0.1", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
    {"name": "betas_0.8_0.95", "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0},
    {"name": "beta1_0.3", "beta1": 0.3, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.01},
]


def lerp(start, end, weight):
    """ATen lerp_vec: fma(weight, end - start, start), or from the far end."""
    w = F32(weight)
    diff = (end - start).astype(F32)
    if abs(w) < 0.5:
        return (np.float64(w) * diff.astype(np.float64) + start.astype(np.float64)).astype(F32)
    return (np.float64(w - F32(1)) * diff.astype(np.float64) + end.astype(np.float64)).astype(F32)


def adamw_step(p, g, m, v, step, lr, c):
    beta1, beta2, eps, wd = c["beta1"], c["beta2"], c["eps"], c["weight_decay"]
    p = (p * F32(1 - lr * wd)).astype(F32)
    m = lerp(m, g, 1 - beta1)
    v = (v * F32(beta2)).astype(F32)
    v = (v + (F32(1 - beta2) * g).astype(F32) * g).astype(F32)
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    denom = (np.sqrt(v) / F32(bias_correction2_sqrt)).astype(F32) + F32(eps)
    p = (p + (F32(-step_size) * m).astype(F32) / denom).astype(F32)
    return p, m, v


def inputs(seed):
    rng = np.random.default_rng(seed)
    params = [rng.uniform(-0.5, 0.5, n).astype(F32) for n in SHAPES]
    grads = []
    for s in range(len(LRS)):
        gs = []
        for n in SHAPES:
            g = rng.normal(0, 1, n) * 10.0 ** rng.integers(-3, 2, n)
            g[rng.random(n) < 0.15] = 0.0
            g[rng.random(n) < 0.1] = 1e-9  # below eps after the square root
            gs.append(g.astype(F32))
        grads.append(gs)
    return params, grads


def run(case, seed):
    params, grads = inputs(seed)
    p = [x.copy() for x in params]
    m = [np.zeros_like(x) for x in params]
    v = [np.zeros_like(x) for x in params]
    steps = []
    for i, lr32 in enumerate(LRS):
        lr = float(F32(lr32))
        for j in range(len(p)):
            p[j], m[j], v[j] = adamw_step(p[j], grads[i][j], m[j], v[j], i + 1, lr, case)
        steps.append({
            "lr": lr,
            "grads": [x.tolist() for x in grads[i]],
            "params": [x.tolist() for x in p],
            "exp_avg": [x.tolist() for x in m],
            "exp_avg_sq": [x.tolist() for x in v],
        })
    return {**case, "params": [x.tolist() for x in params], "steps": steps}


def check_torch(doc):
    import torch

    worst = 0.0
    for case in doc["cases"]:
        ps = [torch.nn.Parameter(torch.tensor(x, dtype=torch.float32)) for x in case["params"]]
        opt = torch.optim.AdamW(ps, lr=1.0, betas=(case["beta1"], case["beta2"]),
                                eps=case["eps"], weight_decay=case["weight_decay"], foreach=False)
        for s in case["steps"]:
            for group in opt.param_groups:
                group["lr"] = s["lr"]
            for p, g in zip(ps, s["grads"]):
                p.grad = torch.tensor(g, dtype=torch.float32)
            opt.step()
            for p, want in zip(ps, s["params"]):
                got = p.detach().numpy().astype(np.float64)
                want = np.array(want)
                rel = np.abs(got - want) / np.maximum(np.maximum(np.abs(got), np.abs(want)), 1e-30)
                worst = max(worst, float(rel.max()))
    print(f"torch {torch.__version__}: max relative difference {worst:.3e}")


def main():
    doc = {
        "about": "AdamW reference (PyTorch's CPU algorithm in NumPy float32), "
                 "written by scripts/reference/adamw_reference.py",
        "numpy": np.__version__,
        "cases": [run(c, seed) for seed, c in enumerate(CASES)],
    }
    if "--check-torch" in sys.argv:
        check_torch(doc)
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()

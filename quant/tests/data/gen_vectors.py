#!/usr/bin/env python3
"""Reference vectors for srl-quant from gguf-py (pip install gguf==0.19.0 numpy).

For every type gguf-py can quantize (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
writes the input floats, gguf-py's quantized bytes and gguf-py's dequantization
of those bytes. For the k-quants, which gguf-py can only dequantize, writes
random (well-formed) blocks and gguf-py's dequantization.

Output: gguf_vectors.json next to this script. Deterministic (seeded).
Usage: python3 quant/tests/data/gen_vectors.py
"""

import base64
import json
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

GGUF_VERSION = "0.19.0"
SEED = 20240611


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def edge_inputs(block: int, rng: np.random.Generator) -> dict:
    """Named inputs of 4 blocks each, chosen to hit corner cases."""
    n = 4 * block
    cases = {}
    cases["zeros"] = np.zeros(n, np.float32)
    cases["normal"] = rng.standard_normal(n).astype(np.float32)
    cases["uniform_pos"] = rng.uniform(0.0, 3.0, n).astype(np.float32)
    cases["uniform_neg"] = rng.uniform(-3.0, -0.1, n).astype(np.float32)
    cases["tiny"] = (rng.standard_normal(n) * 1e-30).astype(np.float32)
    # Small enough that d is subnormal or zero in f16, large enough that
    # 1/d stays finite in f32 (below that, ggml and numpy cast inf to int).
    cases["near_min_normal"] = (rng.standard_normal(n) * 1e-36).astype(np.float32)
    cases["huge"] = (rng.standard_normal(n) * 3e4).astype(np.float32)
    cases["f16_overflow"] = (rng.standard_normal(n) * 1e6).astype(np.float32)
    # One dominant negative element per block: the scale comes from a
    # negative maximum.
    x = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    x[::block] = -7.0
    cases["negative_max"] = x
    # +v and -v with equal magnitude: the first one wins in ggml and numpy.
    x = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    x[3::block] = 5.0
    x[5::block] = -5.0
    cases["tied_abs_max"] = x
    x = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    x[3::block] = -5.0
    x[5::block] = 5.0
    cases["tied_abs_max_neg_first"] = x
    # Rounding ties: scales of exactly 1 so that x * id lands on k + 0.5.
    halves = (np.arange(n) % 16 - 8).astype(np.float32) + 0.5
    x = halves.copy()
    x[::block] = 127.0  # q8: amax 127 -> d = 1
    cases["ties_q8"] = x
    x = halves.copy() / 2.0
    x[::block] = -8.0  # q4_0: max -8 -> d = 1
    cases["ties_q4_0"] = x
    x = np.abs(halves) / 2.0
    x[::block] = 0.0
    x[1::block] = 15.0  # q4_1: min 0, max 15 -> d = 1
    cases["ties_q4_1"] = x
    x = halves.copy()
    x[::block] = -16.0  # q5_0
    cases["ties_q5_0"] = x
    x = np.abs(halves)
    x[::block] = 0.0
    x[1::block] = 31.0  # q5_1
    cases["ties_q5_1"] = x
    x = rng.standard_normal(n).astype(np.float32)
    x[7::block] = 40.0  # outlier
    cases["outlier"] = x
    x = np.full(n, 0.75, np.float32)
    cases["constant"] = x
    return cases


def kquant_blocks(qtype: T, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """Random blocks whose f16 fields are finite (random bytes elsewhere)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    # Offsets of the f16 fields in each layout.
    f16_fields = {
        T.Q2_K: [type_size - 4, type_size - 2],
        T.Q3_K: [type_size - 2],
        T.Q4_K: [0, 2],
        T.Q5_K: [0, 2],
        T.Q6_K: [type_size - 2],
    }[qtype]
    for off in f16_fields:
        vals = rng.uniform(-0.05, 0.05, n_blocks).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    return raw


def main() -> None:
    np.seterr(over="ignore", invalid="ignore")  # f16 overflow is a test case
    rng = np.random.default_rng(SEED)
    out = {
        "generator": "quant/tests/data/gen_vectors.py",
        "gguf_version": GGUF_VERSION,
        "numpy_version": np.__version__,
        "seed": SEED,
        "quantize": [],
        "dequantize": [],
    }
    for qtype in [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        block = max(block, 32)
        for name, x in edge_inputs(block, rng).items():
            q = quants.quantize(x.reshape(1, -1), qtype)
            y = quants.dequantize(q, qtype).reshape(-1).astype(np.float32)
            out["quantize"].append({
                "type": qtype.name.lower(),
                "name": name,
                "n": int(x.size),
                "input_f32": b64(x),
                "quantized": b64(q),
                "dequantized_f32": b64(y),
            })
    for qtype in [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        raw = kquant_blocks(qtype, 4, rng)
        y = quants.dequantize(raw.reshape(1, -1), qtype).reshape(-1).astype(np.float32)
        out["dequantize"].append({
            "type": qtype.name.lower(),
            "name": "random_blocks",
            "n": int(y.size),
            "quantized": b64(raw),
            "dequantized_f32": b64(y),
        })
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    print(f"wrote {path}: {len(out['quantize'])} quantize, {len(out['dequantize'])} dequantize cases",
          file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a synthetic 1.4B-parameter llama GGUF in Q4_0 with random weights
(Qwen2.5-1.5B's block shapes: 28 blocks, width 1536, 12 heads / 2 KV heads,
feed-forward 8960) and the default model's tokenizer (vocabulary 49152), to
measure LoRA training memory on a base of that size:

    python3 bench/make_synthetic_model.py BASE.gguf OUT.gguf
    srl bench train --model OUT.gguf --seq 512 --rank 16 -r 1

Needs the `gguf` and `numpy` packages. The weights are random, so only
speed and memory mean anything.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

L, C, H, HKV, F = 28, 1536, 12, 2, 8960
D = C // H


def q4_0(rows, cols, rng):
    """Random Q4_0 rows: an f16 scale of ~0.02 and random 4-bit values."""
    blocks = rows * cols // 32
    out = np.empty((blocks, 18), dtype=np.uint8)
    out[:, :2] = np.frombuffer(np.full(blocks, 0.02, dtype=np.float16).tobytes(), dtype=np.uint8).reshape(blocks, 2)
    out[:, 2:] = rng.integers(0, 256, size=(blocks, 16), dtype=np.uint8)
    return out.reshape(rows, cols // 32 * 18)


def main():
    base, out = sys.argv[1], sys.argv[2]
    src = GGUFReader(base)
    w = GGUFWriter(out, "llama")
    skip = {"general.architecture", "GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}
    for name, field in src.fields.items():
        if not name.startswith("tokenizer.") or name in skip:
            continue
        val = field.contents()
        vtype = field.types[0]
        if vtype.name == "ARRAY":
            w.add_key_value(name, val, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, val, vtype)
    vocab = len(src.fields["tokenizer.ggml.tokens"].contents())
    w.add_name("synthetic-1.4B")
    w.add_context_length(4096)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(D)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(2)
    rng = np.random.default_rng(0)
    norm = np.ones(C, dtype=np.float32)
    Q = GGMLQuantizationType.Q4_0

    def mat(name, rows, cols):
        w.add_tensor(name, q4_0(rows, cols, rng), raw_dtype=Q)

    mat("token_embd.weight", vocab, C)
    for i in range(L):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", norm)
        mat(f"{p}.attn_q.weight", C, C)
        mat(f"{p}.attn_k.weight", HKV * D, C)
        mat(f"{p}.attn_v.weight", HKV * D, C)
        mat(f"{p}.attn_output.weight", C, C)
        w.add_tensor(f"{p}.ffn_norm.weight", norm)
        mat(f"{p}.ffn_gate.weight", F, C)
        mat(f"{p}.ffn_up.weight", F, C)
        mat(f"{p}.ffn_down.weight", C, F)
    w.add_tensor("output_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes small random-weight models of each architecture family srl runs,
as llama.cpp's converter (convert_hf_to_gguf.py) writes real ones: the same
tensor names, metadata keys, tokenizer model and chat template, with a few
layers, a small width and a byte-level BPE vocabulary (256 byte tokens, a few
hundred merges learned from a fixed text, the family's special tokens).

    python3 scripts/reference/make_family_models.py [OUT_DIR] [FAMILY...]

OUT_DIR defaults to tests/data/families; each family gives OUT_DIR/<family>.gguf.
Deterministic: numpy's PCG64 with a fixed seed, so the files are the same bytes
on every run (scripts/reference/gen_family_reference.py records their sha256
beside llama.cpp's outputs). Needs the `gguf` (0.19) and `numpy` packages.
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Text the merges are learned from: English, code and digits, as the prompts
# of the reference are.
CORPUS = """
The capital of France is Paris. The quick brown fox jumps over the lazy dog.
Once upon a time, in a small village at the edge of a great forest, there lived
a girl who loved to count the stars. She counted one, two, three, and then more.
def fibonacci(n):
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)
What is 12 + 30? The answer is 42. If you multiply that by 2, you get 84.
Step 1: Convert the kilograms to grams. Step 2: Multiply by 1000.
Explain recursion in one sentence: a function that calls itself on a smaller problem.
"""

N_MERGES = 300


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(
        range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_merges():
    """Byte-level BPE on CORPUS's words (a space joins the word it precedes,
    as GPT-2's pre-tokenizer splits): the most frequent pair first, ties by
    the pair's text."""
    b2u = bytes_to_unicode()
    words = {}
    for w in CORPUS.replace("\n", " \n ").split(" "):
        if not w:
            continue
        key = tuple(b2u[b] for b in (" " + w).encode())
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(N_MERGES):
        pairs = {}
        for w, n in words.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        new = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + n
        words = new
    return merges


def bpe_vocab(specials):
    """(tokens, types, merges) of a byte-level BPE vocabulary; `specials`
    are (text, TokenType) pairs placed after the merged tokens."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = learn_merges()
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    types = [TokenType.NORMAL] * len(tokens)
    for text, ty in specials:
        tokens.append(text)
        types.append(ty)
    return tokens, types, [f"{a} {b}" for a, b in merges]


def read_template(name):
    return (HERE / "templates" / name).read_text()


class Random:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def matrix(self, rows, cols, scale=1.0):
        """[rows, cols] (ggml: cols innermost) with std scale / sqrt(cols)."""
        return (self.rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(self, n):
        """A norm weight near 1 (so that a wrong norm shows)."""
        return (1.0 + 0.2 * self.rng.standard_normal(n)).astype(np.float32)


def qwen3(out):
    """Qwen3 dense: Qwen2's block without q/k/v biases and with a per-head
    RMSNorm of q and k before RoPE (attn_q_norm, attn_k_norm [head_dim]);
    head_dim set apart from width / heads (key_length) as Qwen3's are; tied
    embeddings as in the 0.6B-4B models."""
    L, C, H, HKV, D, F = 2, 64, 4, 2, 32, 192
    specials = [
        ("<|endoftext|>", TokenType.CONTROL),
        ("<|im_start|>", TokenType.CONTROL),
        ("<|im_end|>", TokenType.CONTROL),
        ("<think>", TokenType.USER_DEFINED),
        ("</think>", TokenType.USER_DEFINED),
    ]
    tokens, types, merges = bpe_vocab(specials)
    V = len(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    w = GGUFWriter(str(out), "qwen3")
    w.add_name("qwen3-random-tiny")
    w.add_context_length(4096)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_key_length(D)
    w.add_value_length(D)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(1)  # mostly F16
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(read_template("qwen3.jinja"))

    blocks(w, Random(3), L, C, H, HKV, D, F, token_scale=0.4, qk_norm=True)
    write(w)


def smollm3(out):
    """SmolLM3: Llama's block with every fourth layer attending without RoPE
    (llama.cpp: n_no_rope_layer_step = 4), 4 layers so that the last is a
    NoPE one; Llama 3's tokenizer settings (pre llama-bpe) and SmolLM3's
    specials; tied embeddings as in SmolLM3-3B. The converter permutes Q/K
    rows for Llama-family files; random weights need no permuting."""
    L, C, H, HKV, F = 4, 64, 4, 2, 192
    specials = [
        ("<|begin_of_text|>", TokenType.CONTROL),
        ("<|end_of_text|>", TokenType.CONTROL),
        ("<|im_start|>", TokenType.CONTROL),
        ("<|im_end|>", TokenType.CONTROL),
        ("<think>", TokenType.USER_DEFINED),
        ("</think>", TokenType.USER_DEFINED),
    ]
    tokens, types, merges = bpe_vocab(specials)
    V = len(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    w = GGUFWriter(str(out), "smollm3")
    w.add_name("smollm3-random-tiny")
    w.add_context_length(4096)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(C // H)
    w.add_rope_freq_base(5e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<|begin_of_text|>"])
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|end_of_text|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(read_template("smollm3.jinja"))
    r = Random(5)
    blocks(w, r, L, C, H, HKV, C // H, F, token_scale=0.4)
    write(w)


def llama3_rope_factors(base, dim, factor, low, high, old_ctx):
    """rope_freqs.weight as llama.cpp's converter computes it from a Llama 3
    config's rope_scaling (conversion/llama.py, with torch's f32 math)."""
    import math

    import torch
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32).numpy()


def llama3(out):
    """Llama 3.2: the llama architecture with RoPE scaled per frequency
    (rope_scaling type llama3 -> a rope_freqs.weight tensor of head_dim/2
    factors that divide the angles), tied embeddings as the 1B/3B models,
    Llama 3's tokenizer settings (pre llama-bpe, BOS added) and specials and
    the Llama 3.2 template. rope_scaling as Llama 3.2's (factor 32, low 1,
    high 4, original context 8192), base 500000: with head dim 16 the factors
    take all three branches (1, smoothed, 32)."""
    L, C, H, HKV, F = 2, 64, 4, 2, 192
    D = C // H
    specials = [
        ("<|begin_of_text|>", TokenType.CONTROL),
        ("<|end_of_text|>", TokenType.CONTROL),
        ("<|start_header_id|>", TokenType.CONTROL),
        ("<|end_header_id|>", TokenType.CONTROL),
        ("<|eot_id|>", TokenType.CONTROL),
        ("<|eom_id|>", TokenType.CONTROL),
        ("<|python_tag|>", TokenType.CONTROL),
    ]
    tokens, types, merges = bpe_vocab(specials)
    ids = {t: i for i, t in enumerate(tokens)}
    w = GGUFWriter(str(out), "llama")
    w.add_name("llama3-random-tiny")
    w.add_context_length(131072)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(D)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<|begin_of_text|>"])
    w.add_eos_token_id(ids["<|eot_id|>"])
    w.add_add_bos_token(True)
    w.add_chat_template(read_template("llama3.jinja"))
    w.add_tensor("rope_freqs.weight", llama3_rope_factors(500000.0, D, 32.0, 1.0, 4.0, 8192))
    blocks(w, Random(7), L, C, H, HKV, D, F, token_scale=0.4)
    write(w)


def gemma3(out):
    """Gemma 3: embeddings scaled by sqrt(width), norms before and after
    attention and feed-forward, per-head q/k norms, GELU-gated feed-forward,
    five of every six layers attending within a sliding window (8 positions
    here, so that short prompts cross it) at RoPE base 10000, the sixth to
    everything at the file's base; the Gemma 3 instruct template. 6 layers
    so that the last is a global one; tied embeddings."""
    L, C, H, HKV, F = 6, 64, 4, 1, 192
    D = 32
    specials = [
        ("<pad>", TokenType.CONTROL),
        ("<eos>", TokenType.CONTROL),
        ("<bos>", TokenType.CONTROL),
        ("<start_of_turn>", TokenType.USER_DEFINED),
        ("<end_of_turn>", TokenType.USER_DEFINED),
    ]
    tokens, types, merges = bpe_vocab(specials)
    ids = {t: i for i, t in enumerate(tokens)}
    w = GGUFWriter(str(out), "gemma3")
    w.add_name("gemma3-random-tiny")
    w.add_context_length(32768)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_key_length(D)
    w.add_value_length(D)
    w.add_rope_freq_base(1e6)
    w.add_sliding_window(8)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<bos>"])
    w.add_eos_token_id(ids["<eos>"])
    w.add_eot_token_id(ids["<end_of_turn>"])
    w.add_pad_token_id(ids["<pad>"])
    w.add_add_bos_token(True)
    w.add_chat_template(read_template("gemma3.jinja"))
    blocks(w, Random(11), L, C, H, HKV, D, F, token_scale=0.05, qk_norm=True, post_norms=True)
    write(w)


def blocks(w, r, L, C, H, HKV, D, F, token_scale, qk_norm=False, post_norms=False):
    """Tensors of a Llama-style model: token embedding (tied head), per
    layer the norms, q/k/v/o (with q/k norms for Qwen3), gate/up/down;
    matrices in F16, norms in F32."""
    f16 = GGMLQuantizationType.F16

    def mat(name, rows, cols):
        w.add_tensor(name, r.matrix(rows, cols).astype(np.float16), raw_dtype=f16)

    V = len(w.kv_data[0]["tokenizer.ggml.tokens"].value)
    w.add_tensor("token_embd.weight", (r.rng.standard_normal((V, C)) * token_scale).astype(np.float16),
                 raw_dtype=f16)
    for l in range(L):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", r.norm(C))
        mat(p + "attn_q.weight", H * D, C)
        mat(p + "attn_k.weight", HKV * D, C)
        mat(p + "attn_v.weight", HKV * D, C)
        if qk_norm:
            w.add_tensor(p + "attn_q_norm.weight", r.norm(D))
            w.add_tensor(p + "attn_k_norm.weight", r.norm(D))
        mat(p + "attn_output.weight", C, H * D)
        if post_norms:
            w.add_tensor(p + "post_attention_norm.weight", r.norm(C))
        w.add_tensor(p + "ffn_norm.weight", r.norm(C))
        mat(p + "ffn_gate.weight", F, C)
        mat(p + "ffn_up.weight", F, C)
        mat(p + "ffn_down.weight", C, F)
        if post_norms:
            w.add_tensor(p + "post_ffw_norm.weight", r.norm(C))
    w.add_tensor("output_norm.weight", r.norm(C))


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


FAMILIES = {"gemma3": gemma3, "llama3": llama3, "qwen3": qwen3, "smollm3": smollm3}


def main():
    args = sys.argv[1:]
    out_dir = Path(args.pop(0)) if args and args[0] not in FAMILIES else REPO / "tests/data/families"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args or FAMILIES:
        path = out_dir / f"{name}.gguf"
        FAMILIES[name](path)
        print(f"{path}: {path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""llama.cpp reference data for the real GGUF files of the model catalogue
(`srl pull NAME`): 12 varied prompts (math, code, other languages, long
answers), 48 greedy tokens each, in the format of
tests/data/llamacpp/greedy.json, into tests/data/real/<name>.json.

    srl pull gemma3:270m
    python3 scripts/reference/gen_real_reference.py gemma3-270m gemma3-270m-q8_0

gemma3-270m-q8_0 is the pulled file converted to Q8_0 by `srl quantize`
(deterministic bytes, bit-exact with the gguf package's quantizer): the
architecture's numbers without the k-quant kernels, whose results on the
original file differ from llama.cpp's in the last bits.

Prerequisites as gen_reference.py's: scripts/llamacpp/build.sh, jinja2.
runtime/tests/real_models.rs checks srl against these files.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen_reference as ref  # noqa: E402

OUT = ref.REPO / "tests/data/real"
CACHE = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache/srl")) / "models"
N_NEW = 48

# (reference name, file in the cache, chat prompts too)
MODELS = {
    "gemma3-270m": ("gemma-3-270m.Q4_K_M.gguf", False),
    "qwen2.5-coder-0.5b": ("Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf", True),
}

# (reference name, model): llama.cpp with its weights in their file layout
# (no CPU_REPACK buffers) and without its tiled k-quant products (taken for 8
# or more tokens since 0.5.0; GGML_CPU_TILED_MM=0): every product through
# ggml's vec_dot, the kernels srl's match.
VEC_DOT = {
    "gemma3-270m-vecdot": "gemma3-270m",
    "qwen2.5-coder-0.5b-vecdot": "qwen2.5-coder-0.5b",
}

# (reference name, source reference, srl quantize type)
CONVERSIONS = {
    "gemma3-270m-q8_0": ("gemma3-270m", "q8_0"),
    "qwen2.5-coder-0.5b-q8_0": ("qwen2.5-coder-0.5b", "q8_0"),
}

RAW_PROMPTS = [
    "The capital of France is",
    "Question: What is 17 times 23?\nAnswer:",
    "def quicksort(arr):\n    \"\"\"Sort a list with quicksort.\"\"\"\n",
    "La capitale de l'Allemagne est",
    "日本の首都は",
    "Once upon a time, in a small village at the edge of a great forest, there lived",
    "Here is a list of the planets of the solar system:\n1. Mercury\n2.",
    "SELECT name, COUNT(*) FROM orders",
    "The derivative of x^3 + 2x is",
    "Translate to Spanish: Good morning, my friend.\nSpanish:",
    "A long answer about why the sky is blue: The sky appears blue because",
    "fn main() {\n    let v = vec![1, 2, 3];\n",
]

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is 17 times 23?"}],
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "user", "content": "Explique la photosynthèse en une phrase."}],
    [{"role": "user", "content": "Tell me a long story about a robot who learns to paint."}],
]


def main():
    bi = ref.build_info()
    exe = ref.compile_refgen()
    for name in sys.argv[1:] or list(MODELS) + list(CONVERSIONS) + list(VEC_DOT):
        env = {}
        if name in VEC_DOT:
            env = {"REF_NO_REPACK": "1", "GGML_CPU_TILED_MM": "0"}
            file, chat = MODELS[VEC_DOT[name]]
            model = CACHE / file
        elif name in CONVERSIONS:
            source, ty = CONVERSIONS[name]
            file, chat = MODELS[source]
            model = Path("/tmp") / f"{name}.gguf"
            srl = [ref.REPO / "target/release/srl"]
            if not os.environ.get("SRL_NO_BUILD"):
                subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "srl"], cwd=ref.REPO, check=True)
            subprocess.run(srl + ["quantize", "--overwrite", "--type", ty, str(CACHE / file), str(model)], check=True)
        else:
            file, chat = MODELS[name]
            model = CACHE / file
        raw = RAW_PROMPTS if not chat else RAW_PROMPTS[:8]
        os.environ.update(env)
        ref.gen_greedy(exe, bi, model, name, raw_prompts=raw,
                       chat_prompts=CHAT_PROMPTS if chat else [], out=OUT, n_new=N_NEW)
        for k in env:
            del os.environ[k]
        if env:
            doc = json.loads((OUT / f"{name}.json").read_text())
            doc["llama_cpp_environment"] = env
            ref.write_json(OUT / f"{name}.json", doc)
        # The first-token rows (262k logits each) stay out of the repository:
        # the tests read every step's top 5.
        (OUT / f"{name}_logits.bin").unlink()


if __name__ == "__main__":
    main()

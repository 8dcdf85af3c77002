#!/usr/bin/env python3
"""llama.cpp reference data for the random-weight family models
(tests/data/families/<family>.gguf, written by make_family_models.py):
for each, <family>.json + <family>_logits.bin in the format of
tests/data/llamacpp/greedy.json (prompt ids, 48 greedy tokens, the first
token's logits, every step's top-5 logits), with chat prompts rendered by
the model's own template, `enable_thinking` on and off where it reads it.

    python3 scripts/reference/make_family_models.py      # the models (gguf, numpy)
    python3 scripts/reference/gen_family_reference.py [FAMILY...]

Prerequisites as gen_reference.py's: scripts/llamacpp/build.sh, jinja2.
With tests/data/families/lora/<family>.gguf (an adapter srl trained on the
model: scripts/reference/make_lora_adapter.sh MODEL DST), also
<family>_lora.json: the same with llama.cpp applying that adapter.
runtime/tests/greedy_llamacpp.rs checks srl against these files.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen_reference as ref  # noqa: E402

OUT = ref.REPO / "tests/data/families"
N_NEW = 48

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:",
    "What is 12 + 30? The answer is",
    "Once upon a time, in a small village at the edge of a great forest, there lived a girl who loved "
    "to count the stars. She counted one, two, three, and then more, until the night was over and",
    # Long enough (~330 tokens) for llama.cpp's split cache in decode steps.
    "Step 1: Convert the kilograms to grams. Step 2: Multiply by 1000. " * 5
    + "The quick brown fox jumps over the lazy dog. " * 12
    + "def fibonacci(n):\n    if n < 2:\n        return n\n" * 3,
]

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    {"messages": [{"role": "user", "content": "What is 12 + 30?"}],
     "template_kwargs": {"enable_thinking": False}},
    {"messages": [{"role": "system", "content": "Answer in one sentence."},
                  {"role": "user", "content": "Explain recursion."}],
     "template_kwargs": {"enable_thinking": True}},
    [{"role": "user", "content": "What is 12 + 30?"},
     {"role": "assistant", "content": "<think>\n12 + 30 = 42\n</think>\n\nThe answer is 42."},
     {"role": "user", "content": "And if you multiply that by 2?"}],
]

FAMILIES = ["gemma3", "llama3", "qwen3", "smollm3"]


def main():
    bi = ref.build_info()
    exe = ref.compile_refgen()
    for name in sys.argv[1:] or FAMILIES:
        model = OUT / f"{name}.gguf"
        ref.gen_greedy(exe, bi, model, name, raw_prompts=RAW_PROMPTS, chat_prompts=CHAT_PROMPTS,
                       out=OUT, n_new=N_NEW)
        # An adapter srl trained on the model, loaded by llama.cpp.
        lora = OUT / "lora" / f"{name}.gguf"
        if lora.exists():
            ref.gen_greedy(exe, bi, model, f"{name}_lora", raw_prompts=RAW_PROMPTS[:2],
                           chat_prompts=CHAT_PROMPTS[:2], out=OUT, n_new=N_NEW, lora=lora)


if __name__ == "__main__":
    main()

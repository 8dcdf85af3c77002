#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (fuzz/seeds/<target>/):
small valid inputs the fuzzers start from. Standard library only.

    python3 fuzz/make_seeds.py
"""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent


def put(target, name, data):
    d = ROOT / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors):
    """tensors: {name: (dtype, shape, raw bytes)} -> a .safetensors file."""
    header, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + blob


f32 = lambda xs: struct.pack(f"<{len(xs)}f", *xs)
# safetensors_folder: first byte even = model.safetensors, odd = the index.
put("safetensors_folder", "single", b"\x00" + safetensors({
    "model.embed_tokens.weight": ("F32", [2, 2], f32([1, 2, 3, 4])),
    "model.norm.weight": ("F32", [2], f32([1, 1])),
}))
put("safetensors_folder", "index", b"\x01" + json.dumps(
    {"metadata": {}, "weight_map": {"model.norm.weight": "model-00001-of-00001.safetensors"}}).encode())

# tokenizer_json: a byte-level BPE over the 256 byte characters.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
vocab = {chr(c): i for i, c in enumerate(cs)}
vocab["he"], vocab["ll"] = 256, 257
put("tokenizer_json", "bpe", json.dumps({
    "model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l"]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
    "added_tokens": [{"id": 258, "content": "<|im_start|>", "special": True},
                     {"id": 259, "content": "<|im_end|>", "special": True}],
}))

# chat_template: ChatML as SmolLM2 writes it, then a message after 0xFF.
chatml = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful AI assistant<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
put("chat_template", "chatml", chatml.encode() + b"\xffWhat is 2 + 2?")
put("chat_template", "think", b"{% for m in messages %}{{ m.content | trim }}{% if m.role == 'assistant' %}<think>\n{% endif %}{% endfor %}\xffhi")

# trajectories: the example sets' first lines and the data-build fixture.
for name, path in [("srl-math", "examples/srl-math/train.jsonl"),
                   ("unit-conversion", "examples/unit-conversion/train.jsonl"),
                   ("fixture", "finetune/tests/data/trajectories.jsonl")]:
    lines = (REPO / path).read_text().splitlines()[:6]
    put("trajectories", name, "\n".join(lines) + "\n")

# traces: two chat turns as `srl chat --trace` records them, an approval,
# and a last line cut short.
def turn(t, user, parts):
    return json.dumps({"session": "s1", "turn": t, "messages": [{"role": "user", "content": user}],
                       "reply": "", "thought": "", "steps": [
                           {"step": n, "text": text, "tokens": 2, "ms": 1.0} for n, text in parts]})


put("traces", "chat", "\n".join([
    turn(1, "Convert 3 hours to minutes.", [(1, "Step 1: 1 hour is 60 minutes."), (2, "Step 2: 3 × 60 = 180."),
                                            (None, "Answer: 180 minutes")]),
    json.dumps({"session": "s1", "approve": 1}),
    turn(2, "Hi", [(None, "Hello!")]),
    '{"session": "s1", "turn": 3, "mess',
]))
put("traces", "reviewed", (REPO / "examples/srl-math/train.jsonl").read_text().splitlines()[0] + "\n"
    + json.dumps({"id": "r", "task": "t", "steps": ["a", {"action": "b", "observation": "c"}], "review": "kept"}) + "\n")

# gguf_reader: a GGUF v3 header with one string key and one f32 tensor.
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


gguf = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
gguf += gguf_str("general.architecture") + struct.pack("<I", 8) + gguf_str("llama")
gguf += gguf_str("w") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, 0)
gguf += b"\0" * (-len(gguf) % 32) + f32([1, 2, 3, 4])
put("gguf_reader", "tiny", gguf)

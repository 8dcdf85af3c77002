#!/usr/bin/env python3
"""Regenerate llama.cpp reference data for srl (tests/data/llamacpp/).

Prerequisites:  scripts/llamacpp/build.sh  (installs llama.cpp into $LLAMACPP_DIR,
default /opt/llama.cpp), python3 with jinja2, a C++17 compiler.

    python3 scripts/reference/gen_reference.py                 # everything
    python3 scripts/reference/gen_reference.py tokenize greedy # a subset (tokenize|greedy|q8_0|f16|bf16|lora)

It compiles scripts/reference/refgen.cpp against $LLAMACPP_DIR's llama.h /
libllama and drives it.  Outputs (all record llama.cpp version, model sha256
and context params):
  tokenize.json                          llama_tokenize / llama_token_to_piece on corpus.py
  greedy.json + greedy_logits.bin        greedy decoding, Q4_1 model
  greedy_q8_0.json + greedy_q8_0_logits.bin   same on the Q8_0 requantized model
  greedy_f16.json, greedy_bf16.json (+ _logits.bin)  same on F16 / BF16 conversions of the
                                         Q4_1 model (llama-quantize): llama.cpp's float paths
  greedy_lora.json + greedy_lora_logits.bin   Q4_1 model + the srl-trained LoRA adapter
                                         lora/unit_conversion.gguf (scripts/reference/make_lora_adapter.sh)
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402

LLAMACPP_DIR = Path(os.environ.get("LLAMACPP_DIR", "/opt/llama.cpp"))
MODELS = Path(os.environ.get("SRL_MODELS_CACHE", "/work/models-cache"))
MODEL_Q4_1 = Path(os.environ.get("MODEL", MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"))
MODEL_Q8_0 = Path(os.environ.get("MODEL_Q8_0", MODELS / "SmolLM2-135M-Instruct.Q8_0.gguf"))
MODEL_FLOAT = {t: MODELS / f"SmolLM2-135M-Instruct.{t.upper()}.gguf" for t in ("f16", "bf16")}
OUT = Path(os.environ.get("OUT_DIR", REPO / "tests/data/llamacpp"))
LORA = Path(os.environ.get("LORA", REPO / "tests/data/llamacpp/lora/unit_conversion.gguf"))
N_NEW = 64
N_CTX = 2048
THREADS = 2

MODEL_Q4_1_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_info():
    info = json.loads((LLAMACPP_DIR / "BUILD_INFO.json").read_text())
    return info


def compile_refgen():
    exe = LLAMACPP_DIR / "_work" / "refgen"
    src = HERE / "refgen.cpp"
    if exe.exists() and exe.stat().st_mtime > src.stat().st_mtime and exe.stat().st_mtime > (LLAMACPP_DIR / "lib/libllama.so").stat().st_mtime:
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        os.environ.get("CXX", "c++"), "-std=c++17", "-O2", str(src), "-o", str(exe),
        f"-I{LLAMACPP_DIR}/include", f"-L{LLAMACPP_DIR}/lib", "-lllama", "-lggml", "-lggml-base",
        f"-Wl,-rpath,{LLAMACPP_DIR}/lib",
    ]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return exe


def run_refgen(exe, args, stdin_lines, env_extra=None):
    env = dict(os.environ)
    env.update({"REF_N_CTX": str(N_CTX), "REF_THREADS": str(THREADS)})
    if env_extra:
        env.update(env_extra)
    inp = "".join(line + "\n" for line in stdin_lines)
    p = subprocess.run([str(exe)] + args, input=inp.encode(), stdout=subprocess.PIPE, env=env, check=True)
    return p.stdout.decode("ascii").splitlines()


def encode_case(text, add_special, parse_special):
    return f"{int(add_special)} {int(parse_special)} {text.encode('utf-8').hex()}"


def model_info(exe, model):
    lines = run_refgen(exe, ["info", str(model)], [])
    info = {"eog": [], "pieces": {}, "model_load_log": []}
    for line in lines:
        key, _, rest = line.partition(" ")
        if key in ("n_vocab", "add_bos", "add_eos", "bos", "eos", "eot"):
            info[key] = int(rest)
        elif key == "eog":
            info["eog"] = [int(x) for x in rest.split()]
        elif key == "chat_template":
            info["chat_template"] = bytes.fromhex(rest).decode("utf-8")
        elif key == "piece":
            tid, _, h = rest.partition(" ")
            info["pieces"][int(tid)] = bytes.fromhex(h).decode("utf-8", "replace")
        elif key in ("system_info", "desc"):
            info[key] = rest
        elif key == "model_params":
            info[key] = json.loads(rest)
        elif key == "modellog":
            info["model_load_log"].append(rest)
    return info


def header(model, bi, extra=None):
    h = {
        "llama_cpp": bi["llama_cpp"],
        "llama_cpp_version": bi["llama_cpp_version"],
        "llama_cpp_commit": bi["llama_cpp_commit"],
        "llama_cpp_python_sdist": f"llama-cpp-python=={bi['llama_cpp_python']} sha256:{bi['sdist_sha256']}",
        "llama_cpp_cmake_flags": bi["cmake_flags"],
        "model": model.name,
        "model_sha256": sha256(model),
        "generated_by": "scripts/reference/gen_reference.py (scripts/reference/refgen.cpp)",
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if extra:
        h.update(extra)
    return h


# ---------------------------------------------------------------------------
# tokenize

def gen_tokenize(exe, bi):
    cases = corpus.cases()
    lines = run_refgen(exe, ["tokenize", str(MODEL_Q4_1)], [encode_case(*c) for c in cases])
    assert len(lines) == len(cases), (len(lines), len(cases))
    out_cases = []
    for (text, a, p), line in zip(cases, lines):
        ids, pieces, pbytes = [], [], []
        for item in line.split():
            tid, _, h = item.partition(":")
            ids.append(int(tid))
            b = bytes.fromhex(h)
            pbytes.append(h)
            pieces.append(b.decode("utf-8", "replace"))
        out_cases.append({"text": text, "add_special": a, "parse_special": p, "ids": ids,
                          "pieces": pieces, "piece_bytes": pbytes})
    doc = header(MODEL_Q4_1, bi, {
        "api": "ids = llama_tokenize(vocab, text, len, add_special, parse_special); "
               "piece_bytes = llama_token_to_piece(vocab, id, lstrip=0, special=true) as hex; "
               "pieces = the same bytes decoded as UTF-8 with U+FFFD replacement",
        "n_cases": len(out_cases),
        "cases": out_cases,
    })
    write_json(OUT / "tokenize.json", doc)
    print(f"tokenize.json: {len(out_cases)} cases", file=sys.stderr)


# ---------------------------------------------------------------------------
# greedy

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Here is a list of fruits:\n1. Apple\n2. Banana\n3.",
    "1, 2, 3, 5, 8, 13, 21,",
    "Once upon a time, in a small village at the edge of a great forest, there lived",
    "The three primary colors are",
    "# A simple HTTP server in Rust\nuse std::net::TcpListener;\n\nfn main() {",
]

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the ocean."}],
    [{"role": "system", "content": "You are a pirate. Always answer like a pirate."},
     {"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "user", "content": "What is 12 + 30?"},
     {"role": "assistant", "content": "12 + 30 = 42."},
     {"role": "user", "content": "And if you multiply that by 2?"}],
    [{"role": "user", "content": "Explain recursion in one sentence."}],
    [{"role": "user", "content": "Translate to French: Good morning, how are you?"}],
]

Q8_RAW = [0, 1, 4]
Q8_CHAT = [0, 2, 3]

# the LoRA reference: some of the prompts above, and unit-conversion questions
# like the adapter's training data (none of them is in train.jsonl; the last
# two are from valid.jsonl)
LORA_RAW = [RAW_PROMPTS[0], RAW_PROMPTS[1], RAW_PROMPTS[3]]
LORA_CHAT = [CHAT_PROMPTS[0], CHAT_PROMPTS[2], CHAT_PROMPTS[3],
             [{"role": "user", "content": "How many grams are in 2.4 kilograms?"}],
             [{"role": "user", "content": "Convert 34 minutes to seconds."}],
             [{"role": "user", "content": "Express 13 meters in centimeters."}]]


def render_chat(template, messages, info, **kwargs):
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)

    # the environment transformers' apply_chat_template uses
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    t = env.from_string(template)
    bos = info["pieces"].get(info.get("bos", -1), "")
    text = t.render(messages=messages, add_generation_prompt=True, bos_token=bos,
                    eos_token=info["pieces"].get(info.get("eos", -1), ""), **kwargs)
    # as llama.cpp's chat (common_chat_template_direct_apply): a BOS the
    # template printed is dropped when the vocab adds one
    if info.get("add_bos") and bos and text.startswith(bos):
        text = text[len(bos):]
    return text


def parse_greedy(lines):
    results, ctx_params, logs = [], None, []
    cur = None
    for line in lines:
        key, _, rest = line.partition(" ")
        if key == "ctx_params":
            ctx_params = json.loads(rest)
            cur = {"log": [], "step_top5": []}
        elif key == "top5":
            _, *items = rest.split()
            cur["step_top5"].append([(int(t), f32(float(v))) for t, v in (it.split(":") for it in items)])
        elif key == "log":
            cur["log"].append(rest)
            logs.append(rest)
        elif key == "prompt":
            cur["prompt_ids"] = [int(x) for x in rest.split()]
        elif key == "gen":
            cur["generated_ids"] = [int(x) for x in rest.split()]
        elif key == "first_eog":
            v = int(rest)
            cur["first_eog_index"] = None if v < 0 else v
        elif key == "logits_offset":
            cur["logits_offset"] = int(rest)
            results.append(cur)
    return results, ctx_params, logs


def f32(x):
    """x rounded to the nearest f32 (exact as a Python float)"""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def read_f32(path):
    data = Path(path).read_bytes()
    return struct.unpack(f"<{len(data) // 4}f", data)


def fa_resolution(logs):
    hits = [l.strip() for l in logs if ("flash_attn" in l.lower() or "flash attention" in l.lower())]
    resolved = None
    for l in hits:
        ll = l.lower()
        if "not supported" in ll or "set to disabled" in ll:
            resolved = "disabled"
        elif ll.endswith("enabled") or "flash_attn enabled" in ll or "flash attention enabled" in ll:
            resolved = "enabled"
    return resolved, sorted(set(hits))


def parse_lora(lines):
    """the adapter as llama.cpp loaded it: scale, GGUF metadata, load log"""
    lora = {"meta": {}, "log": []}
    for line in lines:
        key, _, rest = line.partition(" ")
        if key == "lora_scale":
            lora["scale"] = float(rest)
        elif key == "lora_meta":
            k, _, v = rest.partition(" ")
            lora["meta"][bytes.fromhex(k).decode("utf-8")] = bytes.fromhex(v).decode("utf-8", "replace")
        elif key == "lora_log":
            lora["log"].append(rest)
    return lora


def gen_greedy(exe, bi, model, name, prompt_sel=None, lora=None, raw_prompts=RAW_PROMPTS,
               chat_prompts=CHAT_PROMPTS, out=None, n_new=None):
    """greedy.json-style reference for `model` (with the LoRA adapter `lora` if given), into
    `out` (default OUT). A chat prompt is a list of messages, or a dict {"messages": [...],
    "template_kwargs": {...}} for a template's extra variables (enable_thinking)."""
    OUT = out or globals()["OUT"]
    N_NEW = n_new or globals()["N_NEW"]
    info = model_info(exe, model)
    template = info.get("chat_template")
    prompts = []
    for i, t in enumerate(raw_prompts):
        if prompt_sel is None or ("raw", i) in prompt_sel:
            prompts.append({"text": t, "chat": False})
    for i, msgs in enumerate(chat_prompts):
        if prompt_sel is None or ("chat", i) in prompt_sel:
            kw = msgs.get("template_kwargs", {}) if isinstance(msgs, dict) else {}
            msgs = msgs["messages"] if isinstance(msgs, dict) else msgs
            prompts.append({"text": render_chat(template, msgs, info, **kw), "chat": True, "messages": msgs,
                            **({"template_kwargs": kw} if kw else {})})
    add_special = bool(info["add_bos"])
    stdin = [encode_case(p["text"], add_special, True) for p in prompts]
    n_vocab = info["n_vocab"]

    logits_path = OUT / f"{name}_logits.bin"
    tmp_off = LLAMACPP_DIR / "_work" / f"{name}_logits_fa_off.bin"
    lora_args = [str(lora)] if lora else []
    lines = run_refgen(exe, ["greedy", str(model), str(N_NEW), "auto", str(logits_path)] + lora_args, stdin)
    res, ctx_params, logs = parse_greedy(lines)
    # cross-check: the same with flash attention forced off (not stored, only compared)
    lines_off = run_refgen(exe, ["greedy", str(model), str(N_NEW), "off", str(tmp_off)] + lora_args, stdin)
    res_off, ctx_params_off, logs_off = parse_greedy(lines_off)
    assert len(res) == len(prompts) == len(res_off)
    lg = read_f32(logits_path)
    lg_off = read_f32(tmp_off)
    tmp_off.unlink()
    res_base = None
    if lora:
        # the base model alone on the same prompts: shows what the adapter changes
        tmp_base = LLAMACPP_DIR / "_work" / f"{name}_logits_base.bin"
        res_base, _, _ = parse_greedy(run_refgen(exe, ["greedy", str(model), str(N_NEW), "auto", str(tmp_base)], stdin))
        lg_base = read_f32(tmp_base)
        tmp_base.unlink()
    fa_resolved, fa_lines = fa_resolution(logs)

    out_prompts = []
    # token -> piece bytes, for the generated text
    all_ids = sorted({t for r in res + res_off + (res_base or []) for t in r["generated_ids"]})
    pieces = token_pieces(exe, model, all_ids)
    for k, (p, r, ro) in enumerate(zip(prompts, res, res_off)):
        off = r["logits_offset"]
        v = lg[off:off + n_vocab]
        vo = lg_off[off:off + n_vocab]
        top = sorted(range(n_vocab), key=lambda i: (-v[i], i))[:5]
        top_off = sorted(range(n_vocab), key=lambda i: (-vo[i], i))[:5]
        assert r["step_top5"][0] == [(i, v[i]) for i in top], "step 0 top-5 disagrees with the logits file"
        gen_bytes = b"".join(pieces[t] for t in r["generated_ids"])
        div = next((i for i, (x, y) in enumerate(zip(r["generated_ids"], ro["generated_ids"])) if x != y), None)
        entry = {
            "text": p["text"],
            "chat": p["chat"],
        }
        if p["chat"]:
            entry["messages"] = p["messages"]
            if "template_kwargs" in p:
                entry["template_kwargs"] = p["template_kwargs"]
        entry.update({
            "prompt_ids": r["prompt_ids"],
            "n_prompt": len(r["prompt_ids"]),
            "generated_ids": r["generated_ids"],
            "generated_text": gen_bytes.decode("utf-8", "replace"),
            "first_eog_index": r["first_eog_index"],
            "logits_offset": off,
            "logits_len": n_vocab,
            "top5": [{"id": i, "logit": v[i]} for i in top],
            "step_top5_ids": [[t for t, _ in step] for step in r["step_top5"]],
            "step_top5_logits": [[x for _, x in step] for step in r["step_top5"]],
            "flash_attn_off_check": {
                "generated_ids_equal": ro["generated_ids"] == r["generated_ids"],
                "first_divergence_index": div,
                "first_logits_max_abs_diff": max(abs(a - b) for a, b in zip(v, vo)),
                "top5": [{"id": i, "logit": vo[i]} for i in top_off],
                **({} if div is None else {"generated_ids": ro["generated_ids"]}),
            },
        })
        if res_base:
            rb = res_base[k]
            vb = lg_base[off:off + n_vocab]
            bdiv = next((i for i, (x, y) in enumerate(zip(r["generated_ids"], rb["generated_ids"])) if x != y), None)
            entry["base_model_check"] = {
                "generated_ids_equal": rb["generated_ids"] == r["generated_ids"],
                "first_divergence_index": bdiv,
                "first_logits_max_abs_diff": max(abs(a - b) for a, b in zip(v, vb)),
                "generated_ids": rb["generated_ids"],
                "generated_text": b"".join(pieces[t] for t in rb["generated_ids"]).decode("utf-8", "replace"),
            }
        out_prompts.append(entry)

    extra = {
        "n_vocab": n_vocab,
        "add_bos": bool(info["add_bos"]),
        "eog_ids": info["eog"],
        "n_new_tokens": N_NEW,
        "procedure": "prompt tokenized with llama_tokenize(add_special=model add_bos, parse_special=true); "
                     "whole prompt decoded in ONE llama_decode batch (llama_batch_get_one, logits for the last "
                     "position only); then greedy argmax (lowest id on ties) one token per llama_decode for exactly "
                     "n_new_tokens, not stopping at end-of-generation tokens. A fresh llama_context per prompt. "
                     "logits = llama_get_logits_ith(ctx,-1) for the first generated position, f32 little-endian, "
                     "prompts concatenated in order; logits_offset/logits_len are in floats.",
        "step_top5_note": "step_top5_ids[i] / step_top5_logits[i]: the 5 largest logits (ties: lowest id first) "
                          "of generated position i (i = 0 is the first-token row of the logits file), every step "
                          "of the greedy run",
        "context_params": ctx_params,
        "context_params_note": "all other llama_context_default_params() values unchanged; n_threads and "
                               "n_threads_batch set, flash_attn_type left at its default (auto)",
        "flash_attn": {
            "requested": ctx_params["flash_attn_type_requested"],
            "resolved": fa_resolved,
            "llama_cpp_log": fa_lines,
        },
        "kv_cache_type": {"k": ctx_params["type_k"], "v": ctx_params["type_v"]},
        "flash_attn_off_check_note": "each prompt was also run with flash_attn_type=disabled (otherwise identical); "
                                     "flash_attn_off_check compares it with the stored run (its generated_ids are "
                                     "included when they diverge). Flash attention changes the numerics a lot on CPU (first-token logits differ "
                                     "by up to ~1.0 from the non-FA path and most greedy continuations diverge). ggml-cpu "
                                     "(ops.cpp, flash_attn_ext_f16) with the F16 KV cache: for fewer than 64 query rows "
                                     "(every decode step, prompts < 64 tokens) Q is rounded to F16, K.Q is an F16 dot "
                                     "product, online softmax in F32, and the V accumulator is F16 (rounded after every "
                                     "kv step, ggml_vec_mad_f16); for >= 64 query rows (longer prompts) a tiled F32 path "
                                     "is used (K, V converted to F32, F32 accumulation); a decode step with n_kv >= 512 "
                                     "splits the KV range across threads (thread-count dependent). n_kv is padded to a "
                                     "multiple of 256, so all prompts here stay on the single-chunk path. "
                                     "Results were bit-identical across repeated runs and between 1 and 2 threads.",
        "chat_template_renderer": "python jinja2 ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) "
                                  "like transformers.apply_chat_template, add_generation_prompt=True, template from "
                                  "GGUF tokenizer.chat_template",
        "logits_file": logits_path.name,
        "logits_file_sha256": sha256(logits_path),
        "model_params": info.get("model_params"),
        "model_params_note": "llama_model_default_params() with n_gpu_layers=0 (use_extra_bufts=true allows CPU "
                             "weight repacking; see model_load_log for which buffer types were used)",
        "model_load_log": info["model_load_log"],
        "system_info": info.get("system_info"),
        "llama_cpp_log": sorted(set(logs)),
        "prompts": out_prompts,
    }
    if lora:
        la = parse_lora(lines)
        extra["lora"] = {
            "file": str(lora.relative_to(OUT)) if lora.is_relative_to(OUT) else lora.name,
            "sha256": sha256(lora),
            "scale": la["scale"],
            "api": "llama_adapter_lora_init(model, path) once; llama_set_adapters_lora(ctx, &adapter, 1, &scale) "
                   "on every prompt's context; effective scale = scale * adapter.lora.alpha / rank",
            "gguf_metadata": la["meta"],
            "llama_cpp_load_log": la["log"],
            "made_by": "scripts/reference/make_lora_adapter.sh (srl train sft on examples/unit-conversion/train.jsonl)",
        }
        extra["base_model_check_note"] = ("each prompt was also run on the base model without the adapter "
                                          "(otherwise identical); base_model_check compares it with the stored run")
    if model == MODEL_Q8_0:
        extra["model_source"] = {
            "made_from": f"{MODEL_Q4_1.name} (sha256 {MODEL_Q4_1_SHA256})",
            "command": f"llama-quantize --allow-requantize {MODEL_Q4_1.name} {MODEL_Q8_0.name} Q8_0",
            "script": "scripts/reference/make_q8_0.sh",
        }
    doc = header(model, bi, extra)
    write_json(OUT / f"{name}.json", doc)
    print(f"{name}.json: {len(out_prompts)} prompts, FA resolved={fa_resolved}", file=sys.stderr)


def token_pieces(exe, model, ids):
    """piece bytes for each id, via llama_token_to_piece(special=true)"""
    lines = run_refgen(exe, ["pieces", str(model)], [" ".join(str(i) for i in ids)])
    out = {}
    for item in lines[0].split():
        tid, _, h = item.partition(":")
        out[int(tid)] = bytes.fromhex(h)
    return out


def write_json(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    what = sys.argv[1:] or ["tokenize", "greedy", "q8_0", "f16", "bf16", "lora"]
    bi = build_info()
    exe = compile_refgen()
    got = sha256(MODEL_Q4_1)
    if got != MODEL_Q4_1_SHA256:
        print(f"warning: {MODEL_Q4_1} sha256 {got} != expected {MODEL_Q4_1_SHA256}", file=sys.stderr)
    if "tokenize" in what:
        gen_tokenize(exe, bi)
    if "greedy" in what:
        gen_greedy(exe, bi, MODEL_Q4_1, "greedy")
    if "q8_0" in what:
        if not MODEL_Q8_0.exists():
            subprocess.run([str(HERE / "make_q8_0.sh")], check=True)
        sel = {("raw", i) for i in Q8_RAW} | {("chat", i) for i in Q8_CHAT}
        gen_greedy(exe, bi, MODEL_Q8_0, "greedy_q8_0", sel)
    for t, model in MODEL_FLOAT.items():
        if t in what:
            if not model.exists():
                subprocess.run([str(HERE / "make_q8_0.sh"), str(MODEL_Q4_1), str(model), t.upper()], check=True)
            sel = {("raw", i) for i in Q8_RAW} | {("chat", i) for i in Q8_CHAT}
            gen_greedy(exe, bi, model, f"greedy_{t}", sel)
    if "lora" in what:
        if not LORA.exists():
            subprocess.run([str(HERE / "make_lora_adapter.sh"), str(MODEL_Q4_1), str(LORA)], check=True)
        gen_greedy(exe, bi, MODEL_Q4_1, "greedy_lora", lora=LORA, raw_prompts=LORA_RAW, chat_prompts=LORA_CHAT)


if __name__ == "__main__":
    main()

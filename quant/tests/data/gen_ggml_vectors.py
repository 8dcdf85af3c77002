#!/usr/bin/env python3
"""Reference vectors from ggml's own C code.

gguf-py cannot quantize the k-quants (nor Q8_1, Q8_K), so this script
compiles ggml's `ggml-quants.c` (from the llama-cpp-python source tarball,
which vendors llama.cpp) into a shared library with gcc and calls
`quantize_row_*_ref` / `dequantize_row_*` through ctypes. That library is
built without -march and with -ffp-contract=off, so float operations happen
one by one in source order, as srl's Rust does.

A second library holds ggml-cpu's x86 kernels (`arch/x86/quants.c`, built
with -mavx2 -mfma -mf16c as llama.cpp builds them for this kind of CPU): the
activation quantizers (`quantize_row_q8_0/q8_1/q8_K`) and the AVX2 dot
products (`ggml_vec_dot_*`), whose results srl's AVX2 kernels reproduce.

Usage:
    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36
    # (pip builds metadata after downloading, which is slow; the tarball is
    # complete as soon as it appears, e.g. under /tmp/pip-unpack-*/)
    python3 quant/tests/data/gen_ggml_vectors.py --sdist llama_cpp_python-0.3.36.tar.gz

Output: ggml_vectors.json next to this script. Deterministic (seeded).
Needs numpy and gcc; the inputs come from gen_vectors.edge_inputs.
"""

import argparse
import base64
import ctypes
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_vectors import edge_inputs  # noqa: E402

SEED = 20240612
QK_K = 256

# name -> (block size, bytes per block, has dequantize_row_*)
TYPES = {
    "q4_0": (32, 18, True),
    "q4_1": (32, 20, True),
    "q5_0": (32, 22, True),
    "q5_1": (32, 24, True),
    "q8_0": (32, 34, True),
    "q8_1": (32, 36, False),
    "q2_K": (QK_K, 84, True),
    "q3_K": (QK_K, 110, True),
    "q4_K": (QK_K, 144, True),
    "q5_K": (QK_K, 176, True),
    "q6_K": (QK_K, 210, True),
    "q8_K": (QK_K, 292, True),
}

STUBS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort();
}
size_t ggml_row_size(int type, long long ne) { (void)type; (void)ne; abort(); }
const char * ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
"""


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


CPU_STUBS = r"""
#include <immintrin.h>
float ggml_table_f32_f16[1 << 16];
float ggml_table_f32_e8m0_half[1 << 8];
float ggml_table_f32_ue4m3[1 << 8];
__attribute__((constructor)) static void init_tables(void) {
    for (int i = 0; i < (1 << 16); ++i) ggml_table_f32_f16[i] = _cvtsh_ss((unsigned short)i);
}
"""


def build(sdist: str, work: str) -> tuple:
    prefix = None
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/ggml/" in m.name]
        if not members:
            sys.exit(f"{sdist}: no vendor/llama.cpp/ggml inside")
        prefix = members[0].name.split("/vendor/llama.cpp/ggml/")[0]
        tar.extractall(work, members=members, filter="data")
    ggml = os.path.join(work, prefix, "vendor", "llama.cpp", "ggml")
    stubs = os.path.join(work, "stubs.c")
    with open(stubs, "w") as f:
        f.write(STUBS)
    inc = ["-I", os.path.join(ggml, "include"), "-I", os.path.join(ggml, "src")]
    lib = os.path.join(work, "libggml_quants_ref.so")
    cmd = [
        "gcc", "-O2", "-fPIC", "-shared", "-std=gnu11", "-ffp-contract=off", "-DNDEBUG", *inc,
        os.path.join(ggml, "src", "ggml-quants.c"), stubs, "-o", lib, "-lm",
    ]
    subprocess.run(cmd, check=True)
    cpu_stubs = os.path.join(work, "cpu_stubs.c")
    with open(cpu_stubs, "w") as f:
        f.write(CPU_STUBS)
    cpu_lib = os.path.join(work, "libggml_cpu_x86.so")
    cpu = os.path.join(ggml, "src", "ggml-cpu")
    cmd = [
        "gcc", "-O2", "-fPIC", "-shared", "-std=gnu11", "-mavx2", "-mfma", "-mf16c", "-DNDEBUG",
        *inc, "-I", cpu, os.path.join(cpu, "arch", "x86", "quants.c"), os.path.join(cpu, "quants.c"),
        os.path.join(ggml, "src", "ggml-quants.c"), stubs, cpu_stubs, "-o", cpu_lib, "-lm",
    ]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(lib), ctypes.CDLL(cpu_lib)


# weight type -> activation type, as ggml-cpu pairs them
VEC_DOT = {
    "q4_0": "q8_0", "q4_1": "q8_1", "q5_0": "q8_0", "q5_1": "q8_1", "q8_0": "q8_0",
    "q2_K": "q8_K", "q3_K": "q8_K", "q4_K": "q8_K", "q5_K": "q8_K", "q6_K": "q8_K",
}


def cpu_vectors(lib, cpu, rng: np.random.Generator, out: dict) -> None:
    """Activation quantizers and AVX2 dot products of ggml-cpu (x86)."""
    f32p = ctypes.POINTER(ctypes.c_float)
    for name in ["q8_0", "q8_1", "q8_K"]:
        block, nbytes, _ = TYPES[name]
        fn = getattr(cpu, f"quantize_row_{name}")
        fn.argtypes = [f32p, ctypes.c_void_p, ctypes.c_int64]
        cases = {k: v[: 4 * QK_K] for k, v in edge_inputs(QK_K, rng).items()}
        for label, x in cases.items():
            x = np.ascontiguousarray(x, dtype=np.float32)
            q = np.zeros(x.size // block * nbytes, dtype=np.uint8)
            fn(x.ctypes.data_as(f32p), q.ctypes.data, x.size)
            out["from_float"].append({
                "type": name.lower(), "name": label, "n": int(x.size),
                "input_f32": b64(x), "quantized": b64(q),
            })
    for wname, xname in VEC_DOT.items():
        wb, wbytes, _ = TYPES[wname]
        xb, xbytes, _ = TYPES[xname]
        quant_w = getattr(lib, f"quantize_row_{wname}_ref")
        quant_w.argtypes = [f32p, ctypes.c_void_p, ctypes.c_int64]
        quant_x = getattr(cpu, f"quantize_row_{xname}")
        quant_x.argtypes = [f32p, ctypes.c_void_p, ctypes.c_int64]
        dot = getattr(cpu, f"ggml_vec_dot_{wname}_{xname}")
        dot.argtypes = [ctypes.c_int, f32p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for i, n in enumerate([256, 512, 1536, 2816]):
            w = (rng.standard_normal(n) * 0.05).astype(np.float32)
            x = rng.standard_normal(n).astype(np.float32)
            if i == 3:
                x[::97] *= 20.0  # activation outliers
            qw = np.zeros(n // wb * wbytes, dtype=np.uint8)
            qx = np.zeros(n // xb * xbytes, dtype=np.uint8)
            quant_w(w.ctypes.data_as(f32p), qw.ctypes.data, n)
            quant_x(x.ctypes.data_as(f32p), qx.ctypes.data, n)
            res = ctypes.c_float(0.0)
            dot(n, ctypes.byref(res), 0, qw.ctypes.data, 0, qx.ctypes.data, 0, 1)
            out["vec_dot"].append({
                "type": wname.lower(), "vec_dot_type": xname.lower(), "n": n,
                "weights": b64(qw), "activations": b64(qx),
                "result_f32": b64(np.array([res.value], dtype=np.float32)),
            })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", required=True, help="llama_cpp_python-*.tar.gz")
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    out = {
        "generator": "quant/tests/data/gen_ggml_vectors.py",
        "source": os.path.basename(args.sdist),
        "seed": SEED,
        "quantize": [],
        "dequantize": [],
        "from_float": [],
        "vec_dot": [],
    }
    with tempfile.TemporaryDirectory() as work:
        lib, cpu = build(args.sdist, work)
        f32p = ctypes.POINTER(ctypes.c_float)
        for name, (block, nbytes, has_deq) in TYPES.items():
            quantize = getattr(lib, f"quantize_row_{name}_ref")
            quantize.argtypes = [f32p, ctypes.c_void_p, ctypes.c_int64]
            quantize.restype = None
            dequantize = None
            if has_deq:
                dequantize = getattr(lib, f"dequantize_row_{name}")
                dequantize.argtypes = [ctypes.c_void_p, f32p, ctypes.c_int64]
                dequantize.restype = None
            cases = edge_inputs(max(block, 32), rng)
            if block == QK_K:
                # Two super-blocks of each kind keep the file small.
                cases = {k: v[: 2 * QK_K] for k, v in cases.items()}
                cases["normal_x4"] = rng.standard_normal(4 * QK_K).astype(np.float32) * 0.02
            for label, x in cases.items():
                x = np.ascontiguousarray(x, dtype=np.float32)
                n = x.size
                q = np.zeros(n // block * nbytes, dtype=np.uint8)
                quantize(x.ctypes.data_as(f32p), q.ctypes.data, n)
                case = {
                    "type": name.lower(),
                    "name": label,
                    "n": int(n),
                    "input_f32": b64(x),
                    "quantized": b64(q),
                }
                if dequantize is not None:
                    y = np.zeros(n, dtype=np.float32)
                    dequantize(q.ctypes.data, y.ctypes.data_as(f32p), n)
                    case["dequantized_f32"] = b64(y)
                out["quantize"].append(case)
        cpu_vectors(lib, cpu, rng, out)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ggml_vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    counts = ", ".join(f"{len(v)} {k}" for k, v in out.items() if isinstance(v, list))
    print(f"wrote {path}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()

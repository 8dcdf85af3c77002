#!/usr/bin/env python3
"""Side-by-side CPU benchmark: llama.cpp's llama-bench vs `srl bench`.

Driven by bench/compare_llamacpp.sh (see bench/README.md).  For every model it
alternates llama.cpp and srl runs for ROUNDS rounds on the same GGUF file and
thread count, measures each process's peak RSS with wait4(2), and prints
markdown tables.  Raw outputs are kept in RESULTS_DIR.
"""
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LLAMACPP_DIR = Path(os.environ.get("LLAMACPP_DIR", "/opt/llama.cpp"))
THREADS = int(os.environ.get("THREADS", "2"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPS = int(os.environ.get("REPS", "3"))          # llama-bench -r (repetitions inside one run)
PP = int(os.environ.get("PP", "512"))
TG = int(os.environ.get("TG", "128"))
SKIP_SRL = os.environ.get("SKIP_SRL", "0") == "1"
SRL_BIN = Path(os.environ.get("SRL_BIN", REPO / "target/release/srl"))
SRL_EXTRA = shlex.split(os.environ.get("SRL_BENCH_ARGS", ""))
LLAMA_EXTRA = shlex.split(os.environ.get("LLAMA_BENCH_ARGS", ""))
RESULTS_DIR = Path(os.environ.get("RESULTS_DIR") or f"/tmp/srl-bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


LOAD_BEFORE = "?"
FA_NAMES = {-1: "auto", 0: "off", 1: "on"}


def log(msg):
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def run_measured(cmd, out_path):
    """Run cmd, return (rc, stdout, stderr, wall_s, peak_rss_mib) using wait4 for the child's max RSS."""
    t0 = time.perf_counter()
    with open(out_path, "wb") as fo, open(str(out_path) + ".stderr", "wb") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    out = Path(out_path).read_text(errors="replace")
    err = Path(str(out_path) + ".stderr").read_text(errors="replace")
    return p.returncode, out, err, wall, ru.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def last_json(text):
    """The last JSON value in text: llama-bench prints one array; srl prints one object (maybe after logs)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON found in output")


def llama_bench(model, tag):
    exe = LLAMACPP_DIR / "bin/llama-bench"
    cmd = [str(exe), "-m", str(model), "-p", str(PP), "-n", str(TG), "-t", str(THREADS),
           "-r", str(REPS), "-o", "json"] + LLAMA_EXTRA
    rc, out, err, wall, rss = run_measured(cmd, RESULTS_DIR / f"{tag}.llamacpp.json")
    if rc != 0:
        sys.exit(f"llama-bench failed (rc={rc}): {' '.join(cmd)}\n{err[-2000:]}")
    res = last_json(out)
    pp = next(r for r in res if r["n_prompt"] == PP and r["n_gen"] == 0)
    tg = next(r for r in res if r["n_gen"] == TG and r["n_prompt"] == 0)
    return {"pp": pp["avg_ts"], "tg": tg["avg_ts"], "pp_sd": pp["stddev_ts"], "tg_sd": tg["stddev_ts"],
            "rss_mib": rss, "wall_s": wall, "cmd": cmd,
            "pp_samples": pp.get("samples_ts"), "tg_samples": tg.get("samples_ts"),
            "info": {k: pp.get(k) for k in ("build_commit", "build_number", "cpu_info", "backends", "n_threads",
                                            "type_k", "type_v", "flash_attn", "n_batch", "n_ubatch", "use_mmap")}}


def srl_bench(model, tag):
    cmd = [str(SRL_BIN), "bench", "--model", str(model), "-p", str(PP), "-n", str(TG),
           "--threads", str(THREADS), "-r", str(REPS), "--json"] + SRL_EXTRA
    rc, out, err, wall, rss = run_measured(cmd, RESULTS_DIR / f"{tag}.srl.json")
    if rc != 0:
        sys.exit(f"srl bench failed (rc={rc}): {' '.join(cmd)}\n{err[-2000:]}")
    try:
        res = last_json(out)
        return {"pp": float(res["pp_tokens_per_s"]), "tg": float(res["tg_tokens_per_s"]),
                "self_rss_mib": res.get("peak_rss_mib"), "rss_mib": rss, "wall_s": wall, "cmd": cmd, "raw": res}
    except (ValueError, KeyError, TypeError) as e:
        sys.exit(f"could not parse `srl bench --json` output ({e}); expected one JSON object with "
                 f"pp_tokens_per_s, tg_tokens_per_s, peak_rss_mib. stdout was:\n{out[-2000:]}")


def check_srl():
    if SKIP_SRL:
        return
    if not SRL_BIN.exists():
        log(f"{SRL_BIN} missing: cargo build --release")
        r = subprocess.run(["cargo", "build", "--release"], cwd=REPO)
        if r.returncode != 0 or not SRL_BIN.exists():
            sys.exit("error: could not build the srl binary (cargo build --release failed); "
                     "set SKIP_SRL=1 to benchmark llama.cpp alone")
    h = subprocess.run([str(SRL_BIN), "bench", "--help"], capture_output=True, text=True)
    text = h.stdout + h.stderr
    if h.returncode != 0 or "--json" not in text:
        sys.exit("error: `srl bench` is not available yet (or has no --json flag) in "
                 f"{SRL_BIN}:\n{text.strip()[:1500]}\nset SKIP_SRL=1 to benchmark llama.cpp alone")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return (max(xs) - min(xs)) / 2 if len(xs) > 1 else 0.0


def fmt(x, nd=1):
    return "n/a" if x is None or x != x else f"{x:.{nd}f}"


def main():
    models = [Path(m) for m in sys.argv[1:]]
    if not models:
        sys.exit("usage: compare_llamacpp.py MODEL.gguf [MODEL.gguf ...]")
    if not (LLAMACPP_DIR / "bin/llama-bench").exists():
        sys.exit(f"error: {LLAMACPP_DIR}/bin/llama-bench missing: run scripts/llamacpp/build.sh first")
    check_srl()
    global LOAD_BEFORE
    LOAD_BEFORE = " ".join(open("/proc/loadavg").read().split()[:3])
    if float(LOAD_BEFORE.split()[0]) > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {LOAD_BEFORE} on {os.cpu_count()} CPUs: other work is running, numbers will be noisy "
            "(llama.cpp's spinning worker threads suffer most from oversubscription)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log(f"raw results in {RESULTS_DIR}")

    results = {}
    for m in models:
        results[m] = {"llama": [], "srl": []}
        for r in range(ROUNDS):
            tag = f"{m.stem}.r{r}"
            log(f"{m.name} round {r + 1}/{ROUNDS}: llama-bench")
            results[m]["llama"].append(llama_bench(m, tag))
            if not SKIP_SRL:
                log(f"{m.name} round {r + 1}/{ROUNDS}: srl bench")
                results[m]["srl"].append(srl_bench(m, tag))

    bi = {}
    if (LLAMACPP_DIR / "BUILD_INFO.json").exists():
        bi = json.loads((LLAMACPP_DIR / "BUILD_INFO.json").read_text())
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    srl_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    first = next(iter(results.values()))["llama"][0]["info"]

    lines = []
    lines.append(f"## srl vs llama.cpp ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})")
    lines.append("")
    lines.append(f"- CPU: {cpu}; threads: {THREADS}; nproc: {os.cpu_count()}; load average before/after: "
                 f"{LOAD_BEFORE} / {' '.join(open('/proc/loadavg').read().split()[:3])}")
    lines.append(f"- llama.cpp: {bi.get('llama_cpp', first.get('build_commit'))}; llama-bench -p {PP} -n {TG} "
                 f"-t {THREADS} -r {REPS} (flash_attn={FA_NAMES.get(first.get('flash_attn'), first.get('flash_attn'))}, KV {first.get('type_k')}/{first.get('type_v')}, "
                 f"n_batch={first.get('n_batch')}, n_ubatch={first.get('n_ubatch')})")
    lines.append(f"- srl: {SRL_BIN} @ {srl_rev}" + (" (skipped: SKIP_SRL=1)" if SKIP_SRL else ""))
    lines.append(f"- {ROUNDS} alternating rounds (llama.cpp, srl, llama.cpp, srl, ...); tok/s = median over rounds "
                 f"(± half the min-max spread); best = fastest round (on a shared machine the "
                 f"best round is the closer estimate of uncontended speed)")
    lines.append("")
    lines.append("| model | test | llama.cpp tok/s | srl tok/s | srl / llama.cpp | llama.cpp best | srl best | best ratio |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for m, r in results.items():
        for test, key in ((f"pp{PP}", "pp"), (f"tg{TG}", "tg")):
            lv = [x[key] for x in r["llama"]]
            sv = [x[key] for x in r["srl"]]
            lm, sm = med(lv), med(sv)
            lb, sb = max(lv), (max(sv) if sv else None)
            ratio = sm / lm if sv else None
            bratio = sb / lb if sv else None
            lines.append(f"| {m.name} | {test} | {fmt(lm)} ± {fmt(spread(lv))} | "
                         f"{fmt(sm) + ' ± ' + fmt(spread(sv)) if sv else 'n/a'} | {fmt(ratio, 2)} | "
                         f"{fmt(lb)} | {fmt(sb)} | {fmt(bratio, 2)} |")
    lines.append("")
    lines.append("| model | file MiB | llama.cpp peak RSS MiB | srl peak RSS MiB (measured) | srl peak RSS MiB (self-reported) | srl RSS / file |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for m, r in results.items():
        fmib = m.stat().st_size / 2**20
        lr = max(x["rss_mib"] for x in r["llama"])
        sr = max((x["rss_mib"] for x in r["srl"]), default=None)
        ss = [x["self_rss_mib"] for x in r["srl"] if x.get("self_rss_mib") is not None]
        lines.append(f"| {m.name} | {fmt(fmib)} | {fmt(lr)} | {fmt(sr)} | {fmt(max(ss)) if ss else 'n/a'} | "
                     f"{fmt(sr / fmib, 2) if sr else 'n/a'} |")
    lines.append("")
    lines.append("Peak RSS is the process's ru_maxrss (wait4). llama-bench's includes its KV cache/compute buffers "
                 f"for {PP}+{TG} tokens and all its repetitions; the model file is mmapped, so touched weight pages count.")
    table = "\n".join(lines)
    print(table)
    (RESULTS_DIR / "summary.md").write_text(table + "\n")
    with open(RESULTS_DIR / "results.json", "w") as f:
        json.dump({str(k): v for k, v in results.items()}, f, indent=1, default=str)


if __name__ == "__main__":
    main()

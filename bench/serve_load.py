#!/usr/bin/env python3
"""Load test of an OpenAI-compatible server (`srl serve`, llama.cpp's
`llama-server`): N clients stream chat completions back to back for a
bounded time, on loopback. Reports failed requests, generated tokens per
second and the p50/p99 time to first token. Standard library only.

    python3 bench/serve_load.py --url http://127.0.0.1:8080 --clients 16 --duration 60

Tokens are counted from the usage of the last chunk (stream_options.
include_usage) or, where a server sends none, as content chunks.
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPTS = [
    "Write a short poem about the sea.",
    "Explain what a CPU cache is in two sentences.",
    "List three uses of a paperclip.",
    "What is the capital of Italy? Answer briefly.",
    "Give me a recipe idea with tomatoes.",
    "Convert 5 kilometres to metres.",
    "Why is the sky blue?",
    "Name four planets of the solar system.",
]


def one_request(url, model, prompt, max_tokens, api_key, timeout):
    """Streams one chat completion; returns (ttft_s, total_s, tokens) or raises."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if model:
        body["model"] = model
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    ttft, chunks, usage, done = None, 0, None, False
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            done = True
            break
        v = json.loads(data)
        if "error" in v:
            raise RuntimeError(f"stream error: {v['error']}")
        if v.get("usage"):
            usage = v["usage"]
        for ch in v.get("choices", []):
            d = ch.get("delta", {})
            if d.get("content") or d.get("reasoning_content"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    conn.close()
    if not done:
        raise RuntimeError("the stream ended without [DONE]")
    total = time.perf_counter() - t0
    tokens = usage["completion_tokens"] if usage else chunks
    return (ttft if ttft is not None else total), total, tokens


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="", help="model id to send (default: none)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("this load test only targets loopback servers")

    lock = threading.Lock()
    ttfts, totals, failures = [], [], []
    tokens = [0]
    deadline = time.perf_counter() + a.duration

    def client(i):
        k = i
        while time.perf_counter() < deadline:
            prompt = PROMPTS[k % len(PROMPTS)]
            k += a.clients
            try:
                ttft, total, n = one_request(a.url, a.model, prompt, a.max_tokens, a.api_key, a.timeout)
                with lock:
                    ttfts.append(ttft)
                    totals.append(total)
                    tokens[0] += n
            except Exception as e:  # every failure is counted and shown
                with lock:
                    failures.append(repr(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {
        "url": a.url,
        "clients": a.clients,
        "duration_s": round(wall, 1),
        "max_tokens": a.max_tokens,
        "requests_ok": len(totals),
        "requests_failed": len(failures),
        "tokens_generated": tokens[0],
        "tokens_per_s": round(tokens[0] / wall, 1),
        "requests_per_s": round(len(totals) / wall, 2),
        "ttft_p50_ms": round(pct(ttfts, 50) * 1e3, 1),
        "ttft_p99_ms": round(pct(ttfts, 99) * 1e3, 1),
        "latency_p50_ms": round(pct(totals, 50) * 1e3, 1),
        "latency_p99_ms": round(pct(totals, 99) * 1e3, 1),
        "first_failures": failures[:3],
    }
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:18} {v}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Talks to a running `srl serve` with the official `openai` package and
prints one JSON object of what it got back; tests/serve_cli.rs checks it.

usage: openai_client.py BASE_URL CHAT_PROMPT COMPLETION_PROMPT MAX_TOKENS ADAPTER [quick]

quick (for slow devices): chat whole and streamed, two streams at once, the
adapter and a completion; nothing else.
"""

import json
import sys
import threading

from openai import OpenAI


def main():
    base_url, chat_prompt, completion_prompt, max_tokens, adapter = sys.argv[1:6]
    quick = sys.argv[6:7] == ["quick"]
    max_tokens = int(max_tokens)
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    out = {}

    models = client.models.list()
    out["models"] = [m.id for m in models.data]
    base = out["models"][0]
    messages = [{"role": "user", "content": chat_prompt}]

    r = client.chat.completions.create(
        model=base, messages=messages, temperature=0, max_tokens=max_tokens,
        logprobs=True, top_logprobs=2,
    )
    c = r.choices[0]
    out["chat"] = c.message.content
    out["chat_finish"] = c.finish_reason
    out["chat_usage"] = r.usage.model_dump()
    out["chat_logprobs"] = [
        {"token": t.token, "logprob": t.logprob, "top": [x.token for x in t.top_logprobs]}
        for t in c.logprobs.content
    ]

    text, usage, finish = "", None, None
    stream = client.chat.completions.create(
        model=base, messages=messages, temperature=0, max_tokens=max_tokens,
        stream=True, stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    out["chat_stream"] = text
    out["stream_usage"] = usage
    out["stream_finish"] = finish

    # Four streams at once (continuous batching) give the same greedy text.
    at_once = 2 if quick else 4
    got = [None] * at_once

    def one(i):
        s = client.chat.completions.create(
            model=base, messages=messages, temperature=0, max_tokens=max_tokens, stream=True,
        )
        got[i] = "".join(ch.delta.content or "" for chunk in s for ch in chunk.choices)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(at_once)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["concurrent"] = got

    r = client.chat.completions.create(
        model=adapter, messages=messages, temperature=0, max_tokens=max_tokens,
    )
    out["adapter_chat"] = r.choices[0].message.content
    out["adapter_model"] = r.model

    if not quick:
        r = client.chat.completions.create(
            model=base, messages=messages, temperature=0.9, max_tokens=max_tokens, n=2, seed=5,
            stop=["\n"],
        )
        out["n2"] = [ch.message.content for ch in r.choices]

    r = client.completions.create(
        model=base, prompt=completion_prompt, temperature=0, max_tokens=max_tokens,
    )
    out["completion"] = r.choices[0].text
    out["completion_usage"] = r.usage.model_dump()
    if quick:
        print(json.dumps(out))
        return
    text = ""
    for chunk in client.completions.create(
        model=base, prompt=completion_prompt, temperature=0, max_tokens=max_tokens, stream=True,
    ):
        for ch in chunk.choices:
            text += ch.text or ""
    out["completion_stream"] = text

    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
        out["unknown_model"] = "accepted"
    except Exception as e:  # openai.NotFoundError
        out["unknown_model"] = f"{type(e).__name__}: {getattr(e, 'status_code', '')}"

    print(json.dumps(out))


if __name__ == "__main__":
    main()

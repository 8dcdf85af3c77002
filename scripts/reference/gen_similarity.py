#!/usr/bin/env python3
"""Reference values for srl's step similarity (finetune/src/similarity.rs).

    python3 scripts/reference/gen_similarity.py   # writes finetune/tests/data/similarity_pairs.jsonl

The SRL reward is `difflib.SequenceMatcher(None, a, b).ratio()` with a = the
model's action (the rollout) and b = the expert's step. This script records,
for every pair, what CPython's difflib says with autojunk on (its default) and
off: the ratio as a Python float (json writes repr, so the value is exact) and
as its IEEE-754 bit pattern in hex (what the Rust test compares, so no float
parser stands between the two), and the matching blocks
(`get_matching_blocks()`, with its (len(a), len(b), 0) sentinel).

One JSON object a line:

    {"kind": "cjk", "a": "...", "b": "...",
     "ratio": 0.5, "ratio_bits": "3fe0000000000000", "blocks": [[0, 0, 2], ...],
     "ratio_nojunk": 0.5, "ratio_nojunk_bits": "...", "blocks_nojunk": [...]}

The pairs are deterministic (seeded) and cover: empty strings, tiny and
classic difflib cases, ties (random strings over two or three letters, where
the first longest match must be the one difflib picks), Unicode (accents,
combining marks, emoji and ZWJ sequences, astral-plane letters; no lone
surrogates, which a Rust string cannot hold), CJK, b of 199/200/201 code
points and a character counted exactly at the popularity threshold (where
autojunk starts to matter), long strings (up to a few thousand code points,
with repeated characters), real solution steps (the unit-conversion example
set and competition-math steps with LaTeX) and random edits of one string.
Written with CPython 3.11.
"""
import json
import random
import struct
import sys
from difflib import SequenceMatcher
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
OUT = REPO / "finetune/tests/data/similarity_pairs.jsonl"
EXAMPLES = REPO / "examples/unit-conversion/train.jsonl"

MATH_STEPS = [
    r"Let $x$ be the number of apples. Then $3x + 5 = 20$, so $3x = 15$ and $x = 5$.",
    r"Substituting $x = 5$ into $y = 2x - 1$ gives $y = 2 \cdot 5 - 1 = 9$.",
    r"By the Pythagorean theorem, $c^2 = a^2 + b^2 = 3^2 + 4^2 = 25$, so $c = 5$.",
    r"The sum of the first $n$ positive integers is $\frac{n(n+1)}{2}$; with $n = 100$ this is $5050$.",
    r"Factor the quadratic: $x^2 - 5x + 6 = (x - 2)(x - 3)$, so the roots are $x = 2$ and $x = 3$.",
    r"Since $\gcd(12, 18) = 6$, we have $\operatorname{lcm}(12, 18) = \frac{12 \cdot 18}{6} = 36$.",
    r"The probability of rolling two sixes is $\frac{1}{6} \cdot \frac{1}{6} = \frac{1}{36}$.",
    r"We compute $\binom{5}{2} = \frac{5!}{2!\,3!} = 10$ ways to choose the pair.",
    r"Taking logarithms, $\log_2 (2^{10}) = 10$, hence $n = 10$.",
    r"The area of the triangle is $\frac{1}{2} \cdot 6 \cdot 8 = 24$.",
    r"Modulo $7$, $3^6 \equiv 1$ by Fermat's little theorem, so $3^{100} \equiv 3^4 = 81 \equiv 4 \pmod 7$.",
    r"Differentiate: $f'(x) = 3x^2 - 12x + 9 = 3(x-1)(x-3)$, which vanishes at $x = 1$ and $x = 3$.",
    r"Therefore the final answer is $\boxed{42}$.",
    r"Adding the two equations gives $2a = 14$, so $a = 7$ and then $b = 10 - 7 = 3$.",
    r"The roots satisfy $r_1 + r_2 = -\frac{b}{a} = 4$ and $r_1 r_2 = \frac{c}{a} = -5$ by Vieta's formulas.",
    r"$\sum_{k=1}^{n} k^2 = \frac{n(n+1)(2n+1)}{6}$, which for $n = 10$ equals $385$.",
    r"The circle $x^2 + y^2 - 6x + 4y = 12$ has center $(3, -2)$ and radius $\sqrt{25} = 5$.",
    r"Since $|z|^2 = z \bar{z} = (1 + 2i)(1 - 2i) = 5$, we get $|z| = \sqrt{5}$.",
    "2. Multiply both sides by 4: 4 × 2.5 = 10.",
    "3. So the train travels 180 km in 2 hours, i.e. 90 km/h.",
]

UNICODE = [
    "café", "cafe\u0301", "naïve façade", "Crème brûlée à la carte", "Ångström",
    "Zürich, München, Köln", "ß vs ss", "ﬁnancial (ligature ﬁ)", "Ελληνικά: αβγδε", "Русский текст",
    "emoji 😀😃😄 smile", "family 👨‍👩‍👧‍👦 ZWJ", "flags 🇫🇷🇩🇪", "skin 👍🏽 tone",
    "astral 𝔸𝔹ℂ 𝟙𝟚𝟛", "math ∑∫∂ ≤ ≥ ≠ × ÷ √", "arrows → ← ↔ ⇒", "n\u0303o\u0308 combining",
    "a\u0300\u0301\u0302\u0303 stacked", "עברית ושפה", "العربية لغة", "हिन्दी भाषा", "ไทย ภาษา",
    "\t tabs\tand\nnewlines\r\n", "zero\u200bwidth\u200bspace", "\u00a0non-breaking\u00a0space",
]

CJK = [
    "我们先计算三角形的面积。", "我们首先计算这个三角形的面积。", "因此最终答案是四十二。",
    "所以答案是 $42$。", "日本語の文章です。", "これは日本語の文です。", "数学の問題を解きます。",
    "한국어 문장입니다.", "한국어로 된 문장입니다.", "设 $x$ 为苹果的数量，则 $3x+5=20$。",
    "令 $x$ 表示苹果数，于是 $3x+5=20$，故 $x=5$。", "漢字かな交じり文", "中文、日本語、한국어 mixed",
    "第一步：将两边同时乘以 4。", "第二步：两边同时除以 2，得到 x = 5。",
]

CLASSIC = [
    ("", ""), ("", "a"), ("a", ""), ("a", "a"), ("a", "b"), ("ab", "ba"), ("abc", "abc"),
    ("abcd", "bcda"), ("abxcd", "abcd"), ("qabxcd", "abycdf"), (" abcd", "abcd abcd"),
    ("private Thread currentThread;", "private volatile Thread currentThread;"),
    ("abcde", "edcba"), ("aaaa", "aa"), ("aa", "aaaa"), (" ", "  "), ("\n", "\n\n"),
    ("The quick brown fox", "The quick brown fox"), ("The quick brown fox", "the quick brown fox."),
    ("x", "x" * 300), ("x" * 300, "x"), ("ab" * 150, "ba" * 150), ("a" * 250, "a" * 250),
]


def bits(x):
    return struct.pack(">d", x).hex()


def record(kind, a, b):
    out = {"kind": kind, "a": a, "b": b}
    for suffix, autojunk in (("", True), ("_nojunk", False)):
        m = SequenceMatcher(None, a, b, autojunk=autojunk)
        r = m.ratio()
        out["ratio" + suffix] = r
        out["ratio" + suffix + "_bits"] = bits(r)
        out["blocks" + suffix] = [list(t) for t in m.get_matching_blocks()]
    return out


def edit(rng, s, n_ops, alphabet):
    """`s` after `n_ops` random insertions, deletions and substitutions."""
    s = list(s)
    for _ in range(n_ops):
        op = rng.random()
        pos = rng.randrange(len(s) + 1)
        if op < 0.35 or not s:
            s.insert(pos, rng.choice(alphabet))
        elif op < 0.7 and pos < len(s):
            del s[pos]
        elif pos < len(s):
            s[pos] = rng.choice(alphabet)
    return "".join(s)


def long_text(rng, n, words):
    """About `n` code points of words from `words`, so letters and spaces repeat."""
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    return " ".join(out)[:n]


def pairs():
    rng = random.Random(20251030)
    steps = []
    for line in EXAMPLES.read_text().splitlines():
        for s in json.loads(line)["steps"]:
            if s not in steps:
                steps.append(s)
    words = " ".join(MATH_STEPS).split() + ["the", "and", "of", "so", "is", "=", "+", "x"]

    for a, b in CLASSIC:
        yield "classic", a, b

    # Ties: tiny alphabets, where many longest matches compete.
    for n in (1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 199, 200, 250):
        for alphabet in ("ab", "abc"):
            a = "".join(rng.choice(alphabet) for _ in range(n))
            b = "".join(rng.choice(alphabet) for _ in range(n + rng.randrange(-1, 3) if n > 1 else n))
            yield "ties", a, b

    # Unicode and CJK: against each other and against edits of themselves.
    for i, s in enumerate(UNICODE):
        yield "unicode", s, UNICODE[(i + 1) % len(UNICODE)]
        yield "unicode", s, edit(rng, s, 3, "éü😀𝔸\u0301 aé")
    yield "unicode", "café", "cafe\u0301"
    yield "unicode", "😀" * 5, "😀😃" * 3
    for i, s in enumerate(CJK):
        yield "cjk", s, CJK[(i + 1) % len(CJK)]
        yield "cjk", edit(rng, s, 2, "的了是我不在有这。，"), s

    # Real steps: the example set's steps, a rollout-like edit of a step
    # against its expert step, and different steps against each other.
    picked = rng.sample(steps, 40)
    for i, s in enumerate(picked):
        yield "steps", edit(rng, s, rng.randrange(1, 6), "0123456789 .×=abcdefghijklmnopqrstuvwxyz"), s
        yield "steps", picked[(i + 1) % len(picked)], s
    for i, s in enumerate(MATH_STEPS):
        yield "math", edit(rng, s, rng.randrange(1, 8), "0123456789 $\\{}^_+-=()xyzabc"), s
        yield "math", MATH_STEPS[(i + 3) % len(MATH_STEPS)], s
        yield "math", s, s
    yield "math", "", MATH_STEPS[0]
    yield "math", MATH_STEPS[1], ""

    # The autojunk threshold: b of 199, 200, 201 code points; a character
    # counted exactly n // 100 + 1 times (kept) and once more (popular).
    for n in (199, 200, 201):
        b = long_text(rng, n, words)
        yield "threshold", edit(rng, b, 10, "abc $=+"), b
    for n in (200, 450, 999, 1000):
        ntest = n // 100 + 1
        for count in (ntest, ntest + 1):
            filler = "".join(rng.choice("bcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n - count))
            chars = list(filler) + ["a"] * count
            rng.shuffle(chars)
            b = "".join(chars)
            yield "threshold", edit(rng, b, n // 20, "abcxyz"), b

    # Long strings (over 200 code points): text with repeated letters and
    # spaces, its edits, whole solutions, repeated patterns, long CJK.
    for n in (210, 300, 500, 800, 1000, 1000, 1500, 2000, 3000):
        b = long_text(rng, n, words)
        yield "long", edit(rng, b, n // 25, "abcdefghij $=+0123456789"), b
        yield "long", long_text(rng, n, words), b
    for k in range(6):
        sol = " ".join(rng.sample(MATH_STEPS, 6))
        yield "long", edit(rng, sol, 20 + 5 * k, "0123456789 $+=x"), sol
    for n in (250, 600, 1200):
        b = "".join(rng.choice(CJK) for _ in range(n // 10))[:n]
        yield "long", edit(rng, b, n // 30, "的了是我不在有这。，"), b
        b = ("=" * 10 + " step " + "-" * 5) * (n // 21)
        yield "long", edit(rng, b, n // 40, "=- step"), b
        b = long_text(rng, n, UNICODE)
        yield "long", edit(rng, b, n // 30, "éü😀𝔸 "), b

    # Random edits of one string, from a few edits to a rewrite.
    for k in range(60):
        base = rng.choice(MATH_STEPS + steps[:50] + CJK + UNICODE)
        n_ops = rng.choice((1, 2, 4, 8, 16, 32))
        yield "edits", edit(rng, base, n_ops, base + " 0123"), edit(rng, base, n_ops // 2, base)


def main():
    lines = [json.dumps(record(kind, a, b), ensure_ascii=False) for kind, a, b in pairs()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} pairs to {OUT.relative_to(REPO)} (Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the SRL demonstration set: train.jsonl and valid.jsonl.

Short word problems (unit conversions, shopping totals, change, equal
shares), each with the expert's solution as numbered one-line steps whose
last step states the answer ("The answer is 12 dollars."), in srl's
trajectory format ({"id", "task", "steps", "answer"}). Deterministic
(seeded), so the files in the repository are exactly what this writes:

    python3 examples/srl-math/make_data.py
"""
import json
import random
from pathlib import Path

UNITS = [
    ("kilometers", "meters", 1000, "1 kilometer is 1000 meters."),
    ("meters", "centimeters", 100, "1 meter is 100 centimeters."),
    ("kilograms", "grams", 1000, "1 kilogram is 1000 grams."),
    ("hours", "minutes", 60, "1 hour is 60 minutes."),
    ("minutes", "seconds", 60, "1 minute is 60 seconds."),
    ("days", "hours", 24, "1 day is 24 hours."),
    ("weeks", "days", 7, "1 week is 7 days."),
    ("feet", "inches", 12, "1 foot is 12 inches."),
]
ITEMS = [("pencil", "pencils"), ("apple", "apples"), ("book", "books"), ("ticket", "tickets"),
         ("cookie", "cookies"), ("notebook", "notebooks")]
NAMES = ["Tom", "Ana", "Lee", "Maya", "Sam", "Ivo", "Zoe", "Ben"]


def conversion(rng):
    a, b, factor, fact = rng.choice(UNITS)
    q = rng.randint(2, 30)
    r = q * factor
    task = rng.choice([
        "How many {b} are in {q} {a}?",
        "Convert {q} {a} to {b}.",
        "{q} {a} is how many {b}?",
    ]).format(q=q, a=a, b=b)
    steps = [fact, f"Multiply by {factor}: {q} × {factor} = {r}.", f"The answer is {r} {b}."]
    return task, steps, f"{r} {b}"


def total(rng):
    name = rng.choice(NAMES)
    one, many = rng.choice(ITEMS)
    n, p = rng.randint(2, 9), rng.randint(2, 12)
    t = n * p
    task = f"{name} buys {n} {many} at {p} dollars each. How much does {name} pay?"
    steps = [f"Each {one} costs {p} dollars.", f"Multiply: {n} × {p} = {t}.",
             f"The answer is {t} dollars."]
    return task, steps, f"{t} dollars"


def change(rng):
    name = rng.choice(NAMES)
    one, many = rng.choice(ITEMS)
    n, p = rng.randint(2, 6), rng.randint(2, 9)
    t = n * p
    bill = 50 if t < 50 else 100
    c = bill - t
    task = (f"{name} buys {n} {many} at {p} dollars each and pays with a {bill} dollar bill. "
            f"How much change does {name} get?")
    steps = [f"The {many} cost {n} × {p} = {t} dollars.", f"The change is {bill} − {t} = {c} dollars.",
             f"The answer is {c} dollars."]
    return task, steps, f"{c} dollars"


def share(rng):
    one, many = rng.choice(ITEMS)
    k = rng.randint(2, 9)
    each = rng.randint(2, 12)
    n = k * each
    task = f"{n} {many} are shared equally among {k} friends. How many {many} does each friend get?"
    steps = [f"Divide the {many} equally among {k} friends.", f"Divide: {n} ÷ {k} = {each}.",
             f"The answer is {each} {many}."]
    return task, steps, f"{each} {many}"


def norm(task):
    """A task as `srl data check` compares them: lower case, spaces collapsed."""
    return " ".join(task.split()).lower()


def held_out(valid, train, draw):
    """The valid rows whose tasks are not in train (nor earlier in valid),
    topped up with new draws: a held-out task is never trained on."""
    seen = {norm(r["task"]) for r in train}
    want, kept = len(valid), []
    rows = iter(valid)
    while len(kept) < want:
        r = next(rows, None) or draw()
        if norm(r["task"]) not in seen:
            seen.add(norm(r["task"]))
            kept.append(r)
    return kept


def main():
    rng = random.Random(20261125)
    kinds = [conversion, total, change, share]
    rows = []
    for i in range(340):
        task, steps, answer = kinds[i % len(kinds)](rng)
        rows.append({"id": f"sm-{i:04d}", "task": task, "steps": steps, "answer": answer})
    rng.shuffle(rows)
    extra = iter(range(340, 10**6))

    def draw():
        i = next(extra)
        task, steps, answer = kinds[i % len(kinds)](rng)
        return {"id": f"sm-{i:04d}", "task": task, "steps": steps, "answer": answer}

    valid = held_out(rows[300:], rows[:300], draw)
    here = Path(__file__).parent
    for name, part in [("train.jsonl", rows[:300]), ("valid.jsonl", valid)]:
        with open(here / name, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows[:300])} train and {len(valid)} valid trajectories")


if __name__ == "__main__":
    main()

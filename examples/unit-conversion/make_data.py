#!/usr/bin/env python3
"""Writes the unit-conversion example set: train.jsonl and valid.jsonl.

Each line is a trajectory in srl's format ({"id", "task", "steps", "answer"}):
a conversion problem and the expert's step-by-step solution (the factor, the
multiplication, the conclusion). Deterministic (seeded), so the files in the
repository are exactly what this script writes:

    python3 examples/unit-conversion/make_data.py
"""
import json
import random
from pathlib import Path

# (from unit, to unit, factor, fact sentence)
UNITS = [
    ("kilometers", "meters", 1000, "1 kilometer is 1000 meters."),
    ("meters", "centimeters", 100, "1 meter is 100 centimeters."),
    ("centimeters", "millimeters", 10, "1 centimeter is 10 millimeters."),
    ("kilograms", "grams", 1000, "1 kilogram is 1000 grams."),
    ("liters", "milliliters", 1000, "1 liter is 1000 milliliters."),
    ("hours", "minutes", 60, "1 hour is 60 minutes."),
    ("minutes", "seconds", 60, "1 minute is 60 seconds."),
    ("days", "hours", 24, "1 day is 24 hours."),
    ("weeks", "days", 7, "1 week is 7 days."),
    ("feet", "inches", 12, "1 foot is 12 inches."),
    ("yards", "feet", 3, "1 yard is 3 feet."),
    ("dozens", "items", 12, "1 dozen is 12 items."),
]
PHRASES = [
    "Convert {q} {a} to {b}.",
    "How many {b} are in {q} {a}?",
    "Express {q} {a} in {b}.",
    "{q} {a} is how many {b}?",
]


def number(rng):
    kind = rng.random()
    if kind < 0.6:
        return rng.randint(2, 48)
    if kind < 0.85:
        return rng.randint(2, 19) + 0.5
    return round(rng.randint(11, 99) / 10, 1)


def fmt(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def example(i, rng):
    a, b, factor, fact = rng.choice(UNITS)
    q = number(rng)
    result = q * factor
    task = rng.choice(PHRASES).format(q=fmt(q), a=a, b=b)
    steps = [
        fact,
        f"Multiply by {factor}: {fmt(q)} × {factor} = {fmt(result)}.",
        f"So {fmt(q)} {a} is {fmt(result)} {b}.",
    ]
    return {"id": f"uc-{i:04d}", "task": task, "steps": steps, "answer": f"{fmt(result)} {b}"}


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
    rows = [example(i, rng) for i in range(360)]
    extra = iter(range(360, 10**6))
    valid = held_out(rows[300:], rows[:300], lambda: example(next(extra), rng))
    here = Path(__file__).parent
    for name, part in [("train.jsonl", rows[:300]), ("valid.jsonl", valid)]:
        with open(here / name, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows[:300])} train and {len(valid)} valid trajectories")


if __name__ == "__main__":
    main()

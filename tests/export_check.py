"""Loads an `srl data export` with the `datasets` package, as TRL and verl
do, and prints its tables as JSON: {"trl_steps", "trl_rlvr", "verl_steps",
"verl_rlvr"}, each a list of rows.

    python3 tests/export_check.py TRL_DIR VERL_DIR
"""
import json
import sys

import datasets

datasets.disable_progress_bars()
trl, verl = sys.argv[1], sys.argv[2]


def rows(kind, path):
    d = datasets.load_dataset(kind, data_files={"train": path})["train"]
    return [dict(r) for r in d]


print(json.dumps({
    "trl_steps": rows("json", f"{trl}/srl_steps.jsonl"),
    "trl_rlvr": rows("json", f"{trl}/rlvr.jsonl"),
    "verl_steps": rows("parquet", f"{verl}/srl_steps.parquet"),
    "verl_rlvr": rows("parquet", f"{verl}/rlvr.parquet"),
}))

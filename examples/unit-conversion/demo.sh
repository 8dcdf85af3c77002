#!/usr/bin/env bash
# Before/after demonstration: greedy answers of the default model to five
# held-out tasks, one epoch of SFT on the 300 training trajectories
# (train.toml), then the same five answers with the adapter, and the
# validation loss before and after.
#   examples/unit-conversion/demo.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-adapters/unit-conversion}
SRL=${SRL:-target/release/srl}
THREADS=${THREADS:-2}
cargo build --release --quiet
tasks() { head -5 examples/unit-conversion/valid.jsonl | python3 -c 'import sys, json; [print(json.loads(l)["task"]) for l in sys.stdin]'; }
answer() { # TASK [LORA]
    local lora=()
    [ -n "${2:-}" ] && lora=(--lora "$2")
    "$SRL" generate --chat -p "$1" --temp 0 -n 96 -t "$THREADS" "${lora[@]}" 2>/dev/null
}
echo "== before"
while read -r t; do echo "### $t"; answer "$t"; echo; done < <(tasks)
echo "== training"
"$SRL" train sft --config examples/unit-conversion/train.toml --out "$OUT" --overwrite -t "$THREADS"
echo "== after"
while read -r t; do echo "### $t"; answer "$t" "$OUT"; echo; done < <(tasks)

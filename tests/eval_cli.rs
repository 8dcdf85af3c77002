//! End-to-end tests of `srl eval` and `srl solve` on the default model:
//! the report's fields exist and lie in range, solve prints its steps, and
//! bad input is named. The base model mostly fails the think format; the
//! tests check ranges, not quality.

mod common;

use common::{fails_with, model, ok, srl, temp};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The first trajectories of the unit-conversion validation set.
fn trajectories(dir: &Path, n: usize) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unit-conversion/valid.jsonl");
    let text = std::fs::read_to_string(src).unwrap();
    let lines: Vec<&str> = text.lines().take(n).collect();
    let p = dir.join("valid.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn in_unit(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
}

#[test]
fn eval_reports_similarity_failures_and_accuracy() {
    let dir = temp("report");
    let data = trajectories(&dir, 1);
    let (m, d) = (model(), data.to_str().unwrap().to_string());
    let args = [
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--data",
        &d,
        "--limit",
        "2",
        "--max-tokens",
        "48",
        "--k",
        "2",
        "--max-steps",
        "2",
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: Value = serde_json::from_str(ok(&srl(&json_args)).trim()).unwrap();
    assert_eq!(v["instances"], 2);
    assert_eq!(v["problems"], 1);
    assert_eq!(v["k"], 2);
    let n = v["instances"].as_u64().unwrap();
    assert_eq!(
        v["well_formed"].as_u64().unwrap() + v["format_failures"].as_u64().unwrap(),
        n
    );
    assert!(in_unit(&v["format_failure_rate"]));
    assert!(v["mean_similarity"].is_null() || in_unit(&v["mean_similarity"]));
    assert!(in_unit(&v["mean_similarity_all"]));
    let reward = v["mean_reward"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&reward));
    assert!(in_unit(&v["greedy_accuracy"]) && in_unit(&v["avg_at_k"]));
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);

    assert!(v["whole_accuracy"].is_null(), "not asked for");

    // Solved in one go too: the whole response, whether it is right, and
    // the rate of responses without a final answer.
    let mut whole = json_args.clone();
    whole.extend(["--whole", "24"]);
    let w: Value = serde_json::from_str(ok(&srl(&whole)).trim()).unwrap();
    assert!(in_unit(&w["whole_accuracy"]) && in_unit(&w["whole_no_answer_rate"]));
    let p = &w["solved"][0];
    assert!(
        p["whole_response"].as_str().is_some_and(|r| !r.is_empty()),
        "{p}"
    );
    assert!(p["whole_correct"].is_boolean());
    // Batched solving gives what the first run gave for the same problem.
    assert_eq!(p["greedy_steps"], v["solved"][0]["greedy_steps"]);

    let table = ok(&srl(&args));
    for row in [
        "| format-failure rate |",
        "| mean step similarity (greedy, failures count 0) |",
        "| mean step similarity (greedy, well-formed only) |",
        "| mean step reward (failure = -1) |",
        "| final-answer accuracy (greedy) |",
        "| final-answer accuracy (avg@2) |",
    ] {
        assert!(table.contains(row), "{row} missing from:\n{table}");
    }
}

#[test]
fn solve_prints_steps() {
    let m = model();
    let out = ok(&srl(&[
        "solve",
        "--model",
        m.to_str().unwrap(),
        "--max-tokens",
        "48",
        "--max-steps",
        "2",
        "Convert 3 minutes to seconds.",
    ]));
    assert!(out.contains("Step 1"), "{out}");
}

#[test]
fn eval_names_a_missing_file_and_a_bad_line() {
    let dir = temp("bad");
    let missing = dir.join("missing.jsonl");
    fails_with(
        &srl(&["eval", "--data", missing.to_str().unwrap()]),
        "missing.jsonl",
    );
    let bad = dir.join("bad.jsonl");
    let good = std::fs::read_to_string(trajectories(&dir, 1)).unwrap();
    std::fs::write(&bad, format!("{good}{{not json\n")).unwrap();
    let out = srl(&["eval", "--data", bad.to_str().unwrap()]);
    fails_with(&out, "bad.jsonl");
    fails_with(&out, "line 2");
}

//! End-to-end tests of `srl data build`: trajectories in, step instances
//! and a summary out; skipped lines reported; bad input named.

mod common;

use common::{fails_with, jsonl as instances, ok, srl, temp};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("finetune/tests/data/trajectories.jsonl")
}

#[test]
fn data_build_writes_instances_and_a_summary() {
    let dir = temp("build");
    let out = dir.join("steps.jsonl");
    let (data, out_s) = (fixture(), out.to_str().unwrap().to_string());
    let run = srl(&[
        "data",
        "build",
        "--data",
        data.to_str().unwrap(),
        "--out",
        &out_s,
        "--skip-bad",
        "--title-hint",
    ]);
    let stdout = ok(&run);
    assert!(
        stdout.starts_with(
            "7 trajectories read: 4 used (3 math, 1 agentic), 3 skipped (1 with no steps found, \
             1 with an empty task, 1 malformed)\n11 steps found; 11 step instances written; \
             2 with a title hint\n"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("line 5: no steps found"), "{stderr}");
    assert!(
        stderr.contains("line 8: 'steps' must be an array"),
        "{stderr}"
    );
    let lines = instances(&out);
    assert_eq!(lines.len(), 11);
    // A second build into the same file is refused unless --overwrite.
    let again = [
        "data",
        "build",
        "--data",
        data.to_str().unwrap(),
        "--out",
        &out_s,
    ];
    fails_with(&srl(&again), "steps.jsonl exists: give --overwrite");
    assert_eq!(instances(&out).len(), 11);
    ok(&srl(&[&again[..], &["--skip-bad", "--overwrite"]].concat()));
    assert_eq!(lines[0]["id"], "sum:1");
    assert_eq!(lines[6]["hint"], "Double");
    assert_eq!(lines[10]["format"], "agentic");
    assert_eq!(lines[10]["previous"].as_array().unwrap().len(), 2);

    // --drop-last, --format math (all rounds kept), --window ignored.
    let stdout = ok(&srl(&[
        "data",
        "build",
        "--data",
        data.to_str().unwrap(),
        "--out",
        &out_s,
        "--skip-bad",
        "--overwrite",
        "--drop-last",
        "--format",
        "math",
        "--window",
        "1",
    ]));
    assert!(
        stdout.contains("7 step instances written (4 last steps dropped)"),
        "{stdout}"
    );
    let lines = instances(&out);
    assert_eq!(lines.len(), 7);
    assert!(lines
        .iter()
        .all(|l| l["format"] == "math" && l["hint"].is_null()));
    let ls3 = lines.iter().find(|l| l["id"] == "ls:3").unwrap();
    assert_eq!(ls3["previous"].as_array().unwrap().len(), 2);

    // An agentic window of one round.
    ok(&srl(&[
        "data",
        "build",
        "--data",
        data.to_str().unwrap(),
        "--out",
        &out_s,
        "--skip-bad",
        "--overwrite",
        "--window",
        "1",
    ]));
    let lines = instances(&out);
    let ls4 = lines.iter().find(|l| l["id"] == "ls:4").unwrap();
    assert_eq!(
        ls4["previous"],
        serde_json::json!([{"action": "echo done", "observation": "done"}])
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn data_build_names_the_file_and_line_of_bad_input() {
    let dir = temp("bad");
    let out = dir.join("steps.jsonl");
    let data = fixture();
    fails_with(
        &srl(&[
            "data",
            "build",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        &format!("{}: line 8: 'steps' must be an array", data.display()),
    );
    assert!(!out.exists(), "no output after an error");
    let prose = dir.join("prose.jsonl");
    std::fs::write(
        &prose,
        "{\"task\": \"t\", \"solution\": \"no steps here\"}\n",
    )
    .unwrap();
    fails_with(
        &srl(&[
            "data",
            "build",
            "--data",
            prose.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "no step instances: 1 trajectory read: 0 used, 1 skipped (1 with no steps found)",
    );
    fails_with(
        &srl(&[
            "data",
            "build",
            "--data",
            dir.join("missing.jsonl").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "missing.jsonl",
    );
    fails_with(
        &srl(&[
            "data", "build", "--data", "x", "--out", "y", "--format", "poetry",
        ]),
        "invalid value 'poetry'",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_file_is_named_once() {
    // The I/O error used to be printed twice (message and error chain).
    let out = srl(&[
        "data",
        "build",
        "--data",
        "/nonexistent/t.jsonl",
        "--out",
        "/tmp/srl-x.jsonl",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// The examples' trajectories pass the check on the default model's
/// tokenizer (no leakage between their train and valid files), and a file
/// with a leaked task and a blank step fails it, naming both lines.
#[test]
fn data_check_reports_figures_and_fails_on_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = common::model();
    for example in ["unit-conversion", "srl-math"] {
        let train = root.join(format!("examples/{example}/train.jsonl"));
        let valid = root.join(format!("examples/{example}/valid.jsonl"));
        let out = ok(&srl(&[
            "data",
            "check",
            train.to_str().unwrap(),
            "--valid",
            valid.to_str().unwrap(),
            "--model",
            m.to_str().unwrap(),
        ]));
        assert!(
            out.contains("300 lines read, 300 trajectories usable"),
            "{out}"
        );
        assert!(out.contains("leakage: 0 tasks shared"), "{out}");
        assert!(out.contains("tokens per trajectory (SFT): min "), "{out}");
        assert!(out.contains("0 errors"), "{out}");
    }
    let dir = temp("check");
    let (train, valid) = (dir.join("t.jsonl"), dir.join("v.jsonl"));
    std::fs::write(
        &train,
        "{\"task\":\"Add 1 and 2.\",\"steps\":[\"1+2=3\"],\"answer\":\"3\"}\n\
         {\"task\":\"B\",\"steps\":[\"ok\",\" \"]}\n",
    )
    .unwrap();
    std::fs::write(&valid, "{\"task\":\"add 1  and 2.\",\"steps\":[\"s\"]}\n").unwrap();
    let run = srl(&[
        "data",
        "check",
        train.to_str().unwrap(),
        "--valid",
        valid.to_str().unwrap(),
        "--no-tokens",
    ]);
    fails_with(&run, "does not pass the check (2 errors, 0 warnings)");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(out.contains("t.jsonl: line 2: step 2 is blank"), "{out}");
    assert!(out.contains("v.jsonl: line 1: the same task as"), "{out}");
    // Warnings alone pass, unless --strict.
    std::fs::write(&valid, "{\"task\":\"C\",\"steps\":[\"s\", \"s\"]}\n").unwrap();
    std::fs::write(&train, "{\"task\":\"D\",\"steps\":[\"s\"]}\n").unwrap();
    let args = [
        "data",
        "check",
        train.to_str().unwrap(),
        "--valid",
        valid.to_str().unwrap(),
        "--no-tokens",
    ];
    ok(&srl(&args));
    let mut strict = args.to_vec();
    strict.push("--strict");
    fails_with(&srl(&strict), "(0 errors, 1 warnings)");
}

#[test]
fn data_split_is_seeded_and_refuses_to_overwrite() {
    let dir = temp("split");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("examples/srl-math/train.jsonl");
    let (tr, va) = (dir.join("train.jsonl"), dir.join("valid.jsonl"));
    let args = |seed: &str| -> Vec<String> {
        [
            "data",
            "split",
            data.to_str().unwrap(),
            "--train-out",
            tr.to_str().unwrap(),
            "--valid-out",
            va.to_str().unwrap(),
            "--valid-count",
            "30",
            "--seed",
            seed,
            "--overwrite",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| srl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = ok(&run(args("1")));
    assert!(out.starts_with("300 trajectories: 270 to "), "{out}");
    assert!(
        out.contains("tasks appear on several lines; each kept on one side"),
        "{out}"
    );
    let first = std::fs::read_to_string(&va).unwrap();
    ok(&run(args("1")));
    assert_eq!(std::fs::read_to_string(&va).unwrap(), first);
    // The split passes the check: no task on both sides.
    ok(&srl(&[
        "data",
        "check",
        tr.to_str().unwrap(),
        "--valid",
        va.to_str().unwrap(),
        "--no-tokens",
    ]));
    let mut again = args("2");
    again.pop();
    fails_with(&run(again), "--overwrite");
}

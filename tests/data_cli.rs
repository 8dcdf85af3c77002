//! End-to-end tests of `srl data build`: trajectories in, step instances
//! and a summary out; skipped lines reported; bad input named.

mod common;

use common::{fails_with, ok, srl, temp};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("finetune/tests/data/trajectories.jsonl")
}

fn instances(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

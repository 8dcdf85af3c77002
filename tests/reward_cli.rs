//! End-to-end tests of `srl reward`: JSONL pairs in, the same objects with
//! difflib's ratio out (values from CPython 3.11's difflib), and bad input.

mod common;

use common::{fails_with, ok, srl};
use serde_json::Value;
use std::path::PathBuf;

fn write(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srl-reward-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.jsonl"));
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The ratios, read from the text with Rust's exact float parser
/// (serde_json's default one can be one ulp off).
fn ratios(out: &str) -> Vec<f64> {
    out.lines()
        .map(|l| {
            let (_, r) = l.rsplit_once("\"ratio\": ").unwrap();
            r.trim_end_matches('}').parse().unwrap()
        })
        .collect()
}

#[test]
fn reward_prints_each_pair_with_its_ratio() {
    // b has 300 code points, so autojunk drops 'a' and 'b' (150 each > 4).
    let long = "ab".repeat(150);
    let text = format!(
        "{{\"id\": \"s1\", \"a\": \"Multiply by 12: 48 × 12 = 576.\", \"b\": \"Multiply by 12: 48 × 12 = 576.\"}}\n\
         \n\
         {{\"a\": \"qabxcd\", \"b\": \"abycdf\", \"note\": [1, 2]}}\n\
         {{\"a\": \"\", \"b\": \"\"}}\n\
         {{\"a\": \"ba\", \"b\": \"{long}\"}}\n"
    );
    let path = write("pairs", &text);
    let p = path.to_str().unwrap();
    let text = ok(&srl(&["reward", "--pairs", p]));
    let out = lines(&text);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["id"], "s1");
    assert_eq!(out[1]["note"], serde_json::json!([1, 2]));
    assert_eq!(out[3]["a"], "ba");
    // The input line's text, then the ratio.
    assert!(text.starts_with(
        "{\"id\": \"s1\", \"a\": \"Multiply by 12: 48 × 12 = 576.\", \"b\": \"Multiply by 12: 48 × 12 = 576.\", \"ratio\": 1.0}\n"
    ));
    // difflib: 1.0, 0.6666666666666666, 1.0, then 0.0 with autojunk (b's
    // letters are popular) and 0.013245033112582781 without.
    assert_eq!(ratios(&text), [1.0, 2.0 * 4.0 / 12.0, 1.0, 0.0]);
    let text = ok(&srl(&["reward", "--pairs", p, "--no-autojunk"]));
    assert_eq!(ratios(&text), [1.0, 2.0 * 4.0 / 12.0, 1.0, 4.0 / 302.0]);
}

#[test]
fn reward_names_the_file_line_and_field_of_bad_input() {
    let path = write("missing", "{\"a\": \"x\", \"b\": \"y\"}\n{\"a\": \"x\"}\n");
    fails_with(
        &srl(&["reward", "--pairs", path.to_str().unwrap()]),
        &format!("{}: line 2: missing field \"b\"", path.display()),
    );
    let path = write(
        "malformed",
        "{\"a\": \"x\", \"b\": \"y\"}\n{\"a\": \"x\", \"b\": \n",
    );
    fails_with(
        &srl(&["reward", "--pairs", path.to_str().unwrap()]),
        &format!("{}: line 2: not valid JSON", path.display()),
    );
    let path = write("type", "{\"a\": 3, \"b\": \"y\"}\n");
    fails_with(
        &srl(&["reward", "--pairs", path.to_str().unwrap()]),
        "line 1: field \"a\" must be a string",
    );
    let path = write("array", "[\"x\", \"y\"]\n");
    fails_with(
        &srl(&["reward", "--pairs", path.to_str().unwrap()]),
        "line 1: expected a JSON object",
    );
    fails_with(
        &srl(&["reward", "--pairs", "/nonexistent/pairs.jsonl"]),
        "/nonexistent/pairs.jsonl",
    );
}

//! `srl chat` shows replies as step traces and records them with --trace:
//! with the committed unit-conversion adapter the default model answers in
//! numbered steps, which the chat numbers with their token counts.

mod common;

use common::model;
use std::process::{Command, Stdio};

fn chat(extra: &[&str], input: &[u8]) -> (String, String) {
    let m = model();
    let adapter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llamacpp/lora/unit_conversion.gguf");
    let mut args = vec![
        "chat".to_string(),
        "--model".into(),
        m.to_str().unwrap().into(),
        "--lora".into(),
        adapter.to_str().unwrap().into(),
        "--temp".into(),
        "0".into(),
        "-n".into(),
        "64".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

#[test]
fn steps_are_numbered_with_their_cost_and_recorded() {
    let dir = std::env::temp_dir().join(format!("srl-chat-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.jsonl");
    let _ = std::fs::remove_file(&trace);
    let (stdout, _) = chat(
        &["--trace", trace.to_str().unwrap()],
        b"Convert 3 hours to minutes.\nConvert 2 days to hours.\n",
    );
    assert!(stdout.contains("Step 1:"), "{stdout}");
    for label in ["[step 1: ", "[step 2: "] {
        assert!(stdout.contains(label), "{label} missing:\n{stdout}");
    }
    assert!(
        !stdout.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per turn");
    let first = &lines[0];
    assert_eq!(first["turn"], 1);
    assert_eq!(first["messages"][0]["role"], "user");
    assert_eq!(
        first["messages"][0]["content"],
        "Convert 3 hours to minutes."
    );
    assert_eq!(first["sampler"]["temperature"], 0.0);
    let steps = first["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{first}");
    assert_eq!(steps[0]["step"], 1);
    assert!(steps[0]["text"].as_str().unwrap().starts_with("Step 1:"));
    // The parts' tokens add up to the reply's.
    let tokens: u64 = steps.iter().map(|s| s["tokens"].as_u64().unwrap()).sum();
    assert_eq!(
        tokens,
        first["timings"]["generated_tokens"].as_u64().unwrap(),
        "{first}"
    );
    // The second turn carries the conversation.
    assert_eq!(lines[1]["messages"].as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

//! `srl chat` shows replies as step traces and records them with --trace:
//! with the committed unit-conversion adapter the default model answers in
//! numbered steps, which the chat numbers with their token counts.

mod common;

use common::{model, run_with_input};
use std::process::Command;

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
    let out = run_with_input(Command::new(env!("CARGO_BIN_EXE_srl")).args(&args), input);
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

/// The on-device loop: chat with --trace, /approve a reply, turn the
/// approved turns into trajectories, review them (an edit in $EDITOR and a
/// keep, written back), and build SRL step instances from the result.
#[test]
fn approved_chat_turns_become_reviewed_trajectories() {
    let dir = common::temp("approve");
    let trace = dir.join("turns.jsonl");
    let (_, stderr) = chat(
        &["--trace", trace.to_str().unwrap()],
        b"/approve\nConvert 3 hours to minutes.\n/approve\nConvert 2 days to hours.\n",
    );
    assert!(stderr.contains("no reply to approve yet"), "{stderr}");
    assert!(stderr.contains("(turn 1 approved in "), "{stderr}");
    let traj = dir.join("traj.jsonl");
    let from = |extra: &[&str]| {
        let mut args = vec![
            "data",
            "from-traces",
            trace.to_str().unwrap(),
            "--out",
            traj.to_str().unwrap(),
            "--overwrite",
        ];
        args.extend(extra);
        common::ok(&common::srl(&args))
    };
    let out = from(&[]);
    assert!(
        out.starts_with("2 turns read (1 approved in the chat): 2 trajectories"),
        "{out}"
    );
    let out = from(&["--approved-only"]);
    assert!(
        out.contains(": 1 trajectory; left out: 1 not approved"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&traj).unwrap().trim()).unwrap();
    assert_eq!(v["task"], "Convert 3 hours to minutes.");
    assert!(v["steps"].as_array().unwrap().len() >= 2, "{v}");
    assert!(
        !v["steps"][0].as_str().unwrap().starts_with("Step 1"),
        "{v}"
    );

    // Review: edit the one trajectory (the editor appends a step).
    from(&[]);
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Step 9: Check: 180 / 60 = 3.\\n' >> \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let review = |input: &[u8]| {
        let out = run_with_input(
            Command::new(env!("CARGO_BIN_EXE_srl"))
                .args(["data", "review", traj.to_str().unwrap()])
                .env("EDITOR", &editor)
                .env_remove("VISUAL"),
            input,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shown = review(b"e\nq\n");
    assert!(shown.contains("0 of 2 reviewed"), "{shown}");
    assert!(
        shown.contains("1 edited, 0 dropped, 0 skipped; 1 of 2 reviewed"),
        "{shown}"
    );
    // The next run goes on with the second.
    let shown = review(b"d\n");
    assert!(
        shown.starts_with(&format!("{}: 1 of 2 reviewed", traj.display())),
        "{shown}"
    );
    assert!(shown.contains("Convert 2 days to hours."), "{shown}");
    let kept: Vec<serde_json::Value> = std::fs::read_to_string(&traj)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["review"], "edited");
    let steps = kept[0]["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap(), "Check: 180 / 60 = 3.");
    assert!(dir.join("traj.dropped.jsonl").exists());
    let steps_out = dir.join("steps.jsonl");
    common::ok(&common::srl(&[
        "data",
        "build",
        "--data",
        traj.to_str().unwrap(),
        "--out",
        steps_out.to_str().unwrap(),
    ]));
}

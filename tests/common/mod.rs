//! Helpers of the end-to-end tests: run `srl`, check its outcome.
#![allow(dead_code)]

pub mod python;
pub mod server;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The default model: `$SRL_TEST_MODEL`, else the cache `srl pull` fills.
pub fn model() -> PathBuf {
    srl_runtime::model_cache::test_model_path()
}

/// A fresh temporary folder for test `tag` of this test binary.
pub fn temp(tag: &str) -> PathBuf {
    let name = format!(
        "srl-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    );
    let d = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The JSON values of a JSONL file, one a non-blank line (none when the
/// file is missing); panics on a line that is not JSON.
pub fn jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

pub fn srl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(args)
        .output()
        .expect("run srl")
}

/// `cmd` run with `input` written to its stdin (chat, review), its output
/// collected once it ends.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start srl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().expect("wait for srl")
}

/// `srl args` with `input` on its stdin.
pub fn srl_with_input(args: &[&str], input: &[u8]) -> Output {
    run_with_input(Command::new(env!("CARGO_BIN_EXE_srl")).args(args), input)
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "srl failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(!err.contains("panicked"), "srl panicked: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}

/// Runs `srl args`, sends it SIGINT (Ctrl-C) once `file` has a line, and
/// returns its output.
pub fn interrupt_after_first_line(args: &[String], file: &std::path::Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run srl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(file).map_or(true, |t| t.lines().count() < 1) {
        if t0.elapsed().as_secs() > 300 {
            let _ = child.kill();
            panic!("{} got no line within 5 minutes", file.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -INT failed");
    child.wait_with_output().expect("wait for srl")
}

/// Checks that the run in `out` stopped cleanly after an interrupt with a
/// complete checkpoint of step `done` published as its state.
pub fn assert_interrupted_at(run: &Output, out: &std::path::Path, done: u64) {
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("interrupted: "), "{err}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"].as_u64(), Some(done));
    let ck = out.join(format!(
        "checkpoints/step-{done:06}/adapter_model.safetensors"
    ));
    assert!(ck.is_file(), "{} missing", ck.display());
}

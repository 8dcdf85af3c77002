//! Helpers of the end-to-end tests: run `srl`, check its outcome.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The default model: `$SRL_TEST_MODEL`, else the cache `srl pull` fills.
pub fn model() -> PathBuf {
    srl_runtime::model_cache::test_model_path()
}

pub fn srl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(args)
        .output()
        .expect("run srl")
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

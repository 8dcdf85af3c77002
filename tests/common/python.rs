//! Python for the tests that drive srl with Python's own clients: the
//! `openai` package must be importable, and the test command must pass on a
//! fresh machine without a manual `pip install`. So the first test that needs
//! it installs it (from PyPI) into a folder under `target/`, once per
//! checkout, and every later run reuses that folder.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter: `$SRL_TEST_PYTHON`, else `python3`.
fn interpreter() -> String {
    std::env::var("SRL_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn imports_openai(python_path: Option<&Path>) -> bool {
    let mut c = Command::new(interpreter());
    c.args(["-c", "import openai"]);
    if let Some(p) = python_path {
        c.env("PYTHONPATH", p);
    }
    c.output().is_ok_and(|o| o.status.success())
}

/// Where `openai` is installed for the tests when the interpreter lacks it:
/// `None` if the interpreter imports it already. Installed into a temporary
/// folder and renamed, so a test binary killed midway or another binary
/// installing at the same time never leaves a half-installed folder.
fn openai_path() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        if imports_openai(None) {
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-openai");
        if imports_openai(Some(&dir)) {
            return Some(dir);
        }
        let tmp = dir.with_extension(format!("part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let pip = |extra: &[&str]| {
            Command::new(interpreter())
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(extra)
                .arg("--target")
                .arg(&tmp)
                .arg("openai")
                .output()
        };
        let out = pip(&[]).expect("run python3 -m pip (the openai client test needs pip)");
        let out = if out.status.success() {
            out
        } else {
            // Debian's Python refuses pip installs by default (PEP 668).
            pip(&["--break-system-packages"]).expect("run python3 -m pip")
        };
        assert!(
            out.status.success(),
            "could not install the openai package into {} (set SRL_TEST_PYTHON to a Python that has it):\n{}",
            tmp.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Another process may have finished first: its folder is as good.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(imports_openai(Some(&dir)), "openai still not importable from {}", dir.display());
        Some(dir)
    })
    .clone()
}

/// Runs tests/openai_client.py against the server at `addr` and returns its
/// JSON report (see the script for what it asks).
pub fn openai_client_report(
    addr: &str,
    chat_prompt: &str,
    completion_prompt: &str,
    n: &str,
    adapter: &str,
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let mut c = Command::new(interpreter());
    c.arg(&script);
    c.args([
        &format!("http://{addr}/v1"),
        chat_prompt,
        completion_prompt,
        n,
        adapter,
    ]);
    if let Some(p) = openai_path() {
        c.env("PYTHONPATH", p);
    }
    let out = c.output().expect("run python3 tests/openai_client.py");
    assert!(
        out.status.success(),
        "tests/openai_client.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

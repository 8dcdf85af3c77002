//! Python for the tests that check srl against Python's own packages (the
//! `openai` client, `datasets`): the test command must pass on a fresh
//! machine without a manual `pip install`, so the first test that needs a
//! package installs it (from PyPI) into a folder under `target/`, once per
//! checkout, and every later run reuses that folder.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The interpreter: `$SRL_TEST_PYTHON`, else `python3`.
fn interpreter() -> String {
    std::env::var("SRL_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn imports(module: &str, python_path: Option<&Path>) -> bool {
    let mut c = Command::new(interpreter());
    c.args(["-c", &format!("import {module}")]);
    if let Some(p) = python_path {
        c.env("PYTHONPATH", p);
    }
    c.output().is_ok_and(|o| o.status.success())
}

/// Where the PyPI package `package` (imported as `module`) is installed
/// for the tests when the interpreter lacks it: `None` if the interpreter
/// imports it already. Installed into a temporary folder under `target/`
/// and renamed, so a test binary killed midway or another binary
/// installing at the same time never leaves a half-installed folder.
pub fn package_path(package: &'static str, module: &'static str) -> Option<PathBuf> {
    static PATHS: Mutex<Vec<(&str, Option<PathBuf>)>> = Mutex::new(Vec::new());
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = paths.iter().find(|(k, _)| *k == package) {
        return p.clone();
    }
    let found = install(package, module);
    paths.push((package, found.clone()));
    found
}

fn install(package: &str, module: &str) -> Option<PathBuf> {
    if imports(module, None) {
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("py-{package}"));
    if imports(module, Some(&dir)) {
        return Some(dir);
    }
    let tmp = dir.with_extension(format!("part-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let pip = |extra: &[&str]| {
        Command::new(interpreter())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .arg("--target")
            .arg(&tmp)
            .arg(package)
            .output()
    };
    let out =
        pip(&[]).unwrap_or_else(|e| panic!("run python3 -m pip (a test needs {package}): {e}"));
    let out = if out.status.success() {
        out
    } else {
        // Debian's Python refuses pip installs by default (PEP 668).
        pip(&["--break-system-packages"]).expect("run python3 -m pip")
    };
    assert!(
        out.status.success(),
        "could not install the {package} package into {} (set SRL_TEST_PYTHON to a Python that has it):\n{}",
        tmp.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // Another process may have finished first: its folder is as good.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        imports(module, Some(&dir)),
        "{module} still not importable from {}",
        dir.display()
    );
    Some(dir)
}

/// Runs `script` (under tests/) with `args`, `package` importable; returns
/// its standard output.
pub fn run_with(
    package: &'static str,
    module: &'static str,
    script: &str,
    args: &[&str],
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let mut c = Command::new(interpreter());
    c.arg(&script).args(args);
    if let Some(p) = package_path(package, module) {
        c.env("PYTHONPATH", p);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("run python3 {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    openai_client(addr, &[chat_prompt, completion_prompt, n, adapter])
}

/// [`openai_client_report`] with the script's `quick` set of requests, for
/// slow devices.
pub fn openai_client_quick_report(
    addr: &str,
    chat_prompt: &str,
    completion_prompt: &str,
    n: &str,
    adapter: &str,
) -> Value {
    openai_client(addr, &[chat_prompt, completion_prompt, n, adapter, "quick"])
}

fn openai_client(addr: &str, args: &[&str]) -> Value {
    let url = format!("http://{addr}/v1");
    let out = run_with(
        "openai",
        "openai",
        "openai_client.py",
        &[&[url.as_str()], args].concat(),
    );
    serde_json::from_str(&out).unwrap()
}

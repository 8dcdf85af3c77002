//! `srl pull URL` and `srl pull hf:OWNER/REPO/FILE`: a model file over
//! HTTP(S) into the cache, for machines that reach Hugging Face or a file
//! server. The bytes go to `<file>.part`; a dropped connection is resumed
//! with an HTTP range request where the server allows it (else started
//! again), a later `srl pull` of the same URL resumes the same way, the
//! SHA-256 is checked when known, and only a whole, checked file is renamed
//! to its name.

use crate::error::{Result, RuntimeError};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tries of one download (each resumes the last).
const TRIES: u32 = 5;

fn err(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Fetch(msg.into())
}

/// The URL of `spec`: itself when http(s), `hf:OWNER/REPO/PATH` as the file
/// on Hugging Face's main branch; None for anything else.
pub fn url_of(spec: &str) -> Option<String> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return Some(spec.to_string());
    }
    let rest = spec.strip_prefix("hf:")?;
    let mut parts = rest.splitn(3, '/');
    let (owner, repo, file) = (parts.next()?, parts.next()?, parts.next()?);
    if owner.is_empty() || repo.is_empty() || file.is_empty() {
        return None;
    }
    Some(format!(
        "https://huggingface.co/{owner}/{repo}/resolve/main/{file}"
    ))
}

/// The file name a URL's path ends in.
pub fn file_name_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// Downloads `url` to `dest` (see the module docs). `progress` gets (bytes
/// so far, total when known); `log` gets a line per resume.
pub fn download(
    url: &str,
    dest: &Path,
    sha256: Option<&str>,
    progress: &mut dyn FnMut(u64, Option<u64>),
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let mut part_name = dest.file_name().unwrap_or_default().to_os_string();
    part_name.push(".part");
    let part = dest.with_file_name(part_name);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut total = None;
    let mut tries = 0;
    loop {
        tries += 1;
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        match fetch_once(&agent, url, &part, have, &mut total, progress) {
            Ok(()) => break,
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(why)) if tries < TRIES => {
                let now = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                log(&format!(
                    "{why}; resuming at {now} bytes (try {}/{TRIES})",
                    tries + 1
                ));
                std::thread::sleep(Duration::from_millis(500 * tries as u64));
            }
            Err(Failure::Retry(why)) => {
                return Err(err(format!(
                    "{url}: {why}, {TRIES} times; run the command again to resume from {}",
                    part.display()
                )))
            }
        }
    }
    let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if let Some(t) = total {
        if len != t {
            let _ = std::fs::remove_file(&part);
            return Err(err(format!(
                "{url}: got {len} bytes of {t}; removed the partial file"
            )));
        }
    }
    if let Some(want) = sha256 {
        let got = sha256_of(&part)?;
        if !got.eq_ignore_ascii_case(want) {
            let _ = std::fs::remove_file(&part);
            return Err(err(format!(
                "{url}: SHA-256 {got} is not the expected {want}; the file was removed"
            )));
        }
    }
    std::fs::rename(&part, dest)
        .map_err(|e| err(format!("cannot move {} into place: {e}", dest.display())))?;
    Ok(dest.to_path_buf())
}

enum Failure {
    /// Worth another try (the connection dropped, a 5xx).
    Retry(String),
    Fatal(RuntimeError),
}

/// One request from byte `have` on, appended to `part`.
fn fetch_once(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    have: u64,
    total: &mut Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> std::result::Result<(), Failure> {
    let mut req = agent.get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, _)) if have > 0 => return Ok(()), // already whole
        Err(ureq::Error::Status(code, _)) if code >= 500 || code == 429 => {
            return Err(Failure::Retry(format!("the server answered HTTP {code}")))
        }
        Err(ureq::Error::Status(code, _)) => {
            return Err(Failure::Fatal(err(format!(
                "{url}: the server answered HTTP {code}"
            ))))
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(Failure::Retry(format!("cannot reach the server: {t}")))
        }
    };
    let length: Option<u64> = resp.header("content-length").and_then(|v| v.parse().ok());
    let append = resp.status() == 206;
    let start = if append { have } else { 0 };
    *total = match resp
        .header("content-range")
        .and_then(|r| r.rsplit('/').next()?.parse().ok())
    {
        Some(t) => Some(t),
        None => length.map(|l| l + start),
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| Failure::Fatal(err(format!("cannot write {}: {e}", part.display()))))?;
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    progress(done, *total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(Failure::Retry(format!(
                    "the connection dropped at {done} bytes ({e})"
                )))
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| Failure::Fatal(err(format!("cannot write {}: {e}", part.display()))))?;
        done += n as u64;
        progress(done, *total);
    }
    file.sync_all()
        .map_err(|e| Failure::Fatal(err(format!("cannot write {}: {e}", part.display()))))?;
    if total.is_some_and(|t| done < t) {
        return Err(Failure::Retry(format!(
            "the connection closed at {done} bytes"
        )));
    }
    Ok(())
}

/// The hex SHA-256 of a file.
pub fn sha256_of(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_urls_and_file_names() {
        assert_eq!(
            url_of("hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf").as_deref(),
            Some("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf")
        );
        assert_eq!(
            url_of("http://h/x.gguf").as_deref(),
            Some("http://h/x.gguf")
        );
        assert_eq!(url_of("hf:a/b"), None);
        assert_eq!(url_of("smollm2:135m"), None);
        assert_eq!(
            file_name_of("https://h/a/b.gguf?download=1").as_deref(),
            Some("b.gguf")
        );
        assert_eq!(file_name_of("https://h/a/"), None);
    }
}

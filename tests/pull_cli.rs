//! `srl pull URL`, `srl list`, `srl rm` and model names as `--model`,
//! against a file server on the loopback address that the test starts: it
//! serves the default model, drops the first connection midway, and honours
//! range requests, so the download must resume and check its SHA-256.

mod common;

use common::{fails_with, model, ok, temp};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Serves `bytes` at any path but `/missing`; the first response stops
/// after `drop_at` bytes. Returns the address and the Range headers seen.
fn file_server(bytes: Arc<Vec<u8>>, drop_at: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (mut path, mut range) = (String::new(), None);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(p) = line.strip_prefix("GET ") {
                    path = p.split(' ').next().unwrap_or_default().to_string();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            seen.lock().unwrap().push(format!("{range:?}"));
            if path == "/missing" {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let start = range.unwrap_or(0);
            let head = match range {
                Some(a) => format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{}/{}\r\nConnection: close\r\n\r\n",
                    bytes.len() - a,
                    bytes.len() - 1,
                    bytes.len()
                ),
                None => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len()),
            };
            let _ = s.write_all(head.as_bytes());
            let end = if first { drop_at } else { bytes.len() };
            first = false;
            let _ = s.write_all(&bytes[start..end.max(start)]);
        }
    });
    (addr, ranges)
}

fn srl_in(cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(args)
        .env("SRL_CACHE", cache)
        .output()
        .unwrap()
}

#[test]
fn a_url_pull_resumes_checks_and_lands_in_the_cache() {
    let bytes = Arc::new(std::fs::read(model()).unwrap());
    let sha = srl_runtime::model_download::sha256_of(&model()).unwrap();
    let (addr, ranges) = file_server(bytes.clone(), 10 << 20);
    let cache = temp("cache");
    let url = format!("http://{addr}/m/tiny.gguf");
    // A wrong checksum: an error, and nothing left under either name.
    let bad = "0".repeat(64);
    fails_with(
        &srl_in(&cache, &["pull", &url, "--sha256", &bad]),
        "is not the expected",
    );
    let models = cache.join("models");
    assert!(!models.join("tiny.gguf").exists() && !models.join("tiny.gguf.part").exists());
    ranges.lock().unwrap().clear();
    // The first answer of this server was the cut one: now a whole run.
    let (addr, ranges) = file_server(bytes.clone(), 10 << 20);
    let url = format!("http://{addr}/m/tiny.gguf");
    let run = srl_in(&cache, &["pull", &url, "--sha256", &sha]);
    let stdout = ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("resuming at 10485760 bytes"), "{stderr}");
    assert_eq!(
        ranges.lock().unwrap().as_slice(),
        ["None", "Some(10485760)"]
    );
    let path = models.join("tiny.gguf");
    assert_eq!(stdout.trim(), path.to_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), *bytes);
    // The cache lists it, and its name works as --model.
    let list = ok(&srl_in(&cache, &["list"]));
    assert!(
        list.contains("tiny.gguf") && list.contains("llama") && list.contains("Q4_1"),
        "{list}"
    );
    let info = ok(&srl_in(&cache, &["info", "tiny.gguf"]));
    assert!(info.contains(path.to_str().unwrap()), "{info}");
    // Again: already there.
    let again = srl_in(&cache, &["pull", &url]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already cached"));
    // Errors name what is wrong.
    fails_with(
        &srl_in(&cache, &["pull", &format!("http://{addr}/missing")]),
        "HTTP 404",
    );
    fails_with(
        &srl_in(&cache, &["pull", "nope:1b"]),
        "is not a model srl knows",
    );
    ok(&srl_in(&cache, &["rm", "tiny.gguf"]));
    assert!(!path.exists());
    fails_with(&srl_in(&cache, &["rm", "tiny.gguf"]), "is not in the cache");
    fails_with(
        &srl_in(&cache, &["rm", "../x"]),
        "is not a name in the cache",
    );
    let empty = ok(&srl_in(&cache, &["list"]));
    assert!(empty.starts_with("no models in"), "{empty}");
    let cat = ok(&srl_in(&cache, &["list", "--catalogue"]));
    for name in [
        "smollm2:135m",
        "qwen2.5-coder:0.5b",
        "qwen2.5-coder:1.5b",
        "gemma3:270m",
    ] {
        assert!(cat.contains(name), "{cat}");
    }
}

//! A running `srl serve` and raw HTTP to it, for the server's end-to-end
//! tests.

use super::model;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `srl serve` on a free loopback port, stopped when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// `srl serve` on the default model with `--threads 2` and `extra`.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_threads(2, extra)
    }

    /// `srl serve` on the default model with `--threads threads` and `extra`.
    pub fn start_threads(threads: usize, extra: &[&str]) -> Server {
        Server::start_model(&model(), threads, extra)
    }

    /// `srl serve` on model `m` with `--threads threads` and `extra`.
    pub fn start_model(m: &std::path::Path, threads: usize, extra: &[&str]) -> Server {
        let threads = threads.to_string();
        let mut args = vec!["serve", "--model", m.to_str().unwrap(), "--port", "0"];
        args.extend(["--threads", &threads]);
        args.extend(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_srl"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start srl serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => panic!("srl serve ended before listening"),
            };
            if let Some(a) = line.split("listening on http://").nth(1) {
                break a.trim().to_string();
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }
}

impl Server {
    /// The server's resident memory, in KiB (Linux's /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|s| s.is_none())
    }
}

/// Sends `raw` bytes on a new connection (closing its write side when
/// `finish`), and returns the answer's status (None: no answer, the
/// connection closed or timed out).
pub fn raw_request(addr: &str, raw: &[u8], finish: bool, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let _ = s.write_all(raw);
    if finish {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of one request (`Connection: close`, read to the end).
pub fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    // The server may answer (413) before reading a large body.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

pub fn post(addr: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let headers: Vec<&str> = auth.iter().map(|s| s.as_str()).collect();
    http(addr, "POST", path, &headers, body)
}

/// Checks an error answer: its status and OpenAI's shape; returns the error.
pub fn api_error(got: (u16, String), status: u16) -> Value {
    assert_eq!(got.0, status, "expected {status}, got: {}", got.1);
    let v: Value = serde_json::from_str(&got.1).unwrap_or_else(|e| panic!("{e}: {}", got.1));
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e.clone()
}

pub fn chat_body(content: &str, extra: Value) -> String {
    let mut v = json!({"messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

/// On a server with one slot and no queue (`--parallel 1 --queue 0`, API key
/// `key`): a chat request while a completion streams gets 429; the streaming
/// client then leaves mid-stream, its slot is freed at once (the next request
/// is served within 10 s) and `/metrics` counts the cancelled sequence.
/// Returns the served chat response's body.
pub fn busy_slot_refuses_then_frees(a: &str, key: &str) -> String {
    let (chat, k) = ("/v1/chat/completions", Some(key));
    let auth = format!("Authorization: Bearer {key}");
    let body =
        json!({"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 200, "temperature": 0, "stream": true})
            .to_string();
    let mut s = TcpStream::connect(a).unwrap();
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {a}\r\n{auth}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let e = api_error(post(a, chat, k, &chat_body("hi", json!({}))), 429);
    assert_eq!(e["type"], "rate_limit_error");
    drop(s);
    let t0 = Instant::now();
    let served = loop {
        let r = post(a, chat, k, &chat_body("hi", json!({})));
        if r.0 != 429 || t0.elapsed() > Duration::from_secs(10) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(served.0, 200, "{}", served.1);
    let metrics = http(a, "GET", "/metrics", &[&auth], "").1;
    assert!(
        metrics.contains("srl_sequences_cancelled_total 1"),
        "{metrics}"
    );
    served.1
}

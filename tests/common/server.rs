//! A running `srl serve` and raw HTTP to it, for the server's end-to-end
//! tests.

use super::model;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let m = model();
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

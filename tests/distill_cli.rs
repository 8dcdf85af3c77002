//! `srl data distill` end to end: against a real `srl serve` (the default
//! model with the unit-conversion adapter as the teacher) on the loopback
//! address, and against a scripted loopback server that answers 429, 500,
//! 401, malformed JSON and replies without steps, drops connections, and
//! is slow enough to kill the client mid-run.

mod common;

use common::server::Server;
use common::{fails_with, jsonl as lines, ok, srl, temp};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `srl data distill` of `tasks` from the teacher at `url` (model `model`)
/// into `out`, then `extra`.
fn distill_args(tasks: &Path, url: &str, model: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "data",
        "distill",
        "--tasks",
        tasks.to_str().unwrap(),
        "--teacher",
        url,
        "--teacher-model",
        model,
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn adapter() -> String {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp/lora/unit_conversion.gguf");
    format!("uc={}", p.display())
}

#[test]
fn distils_from_a_real_srl_server_and_resumes() {
    let server = Server::start(&["--lora", &adapter()]);
    let dir = temp("real");
    let tasks = dir.join("tasks.jsonl");
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unit-conversion/valid.jsonl");
    let text: Vec<String> = std::fs::read_to_string(valid)
        .unwrap()
        .lines()
        .take(3)
        .map(String::from)
        .collect();
    std::fs::write(&tasks, text.join("\n") + "\n").unwrap();
    let out = dir.join("traj.jsonl");
    let url = format!("http://{}", server.addr);
    let args = |extra: &[&str]| {
        let base = ["--samples", "2", "--concurrency", "2", "--max-tokens", "64"];
        distill_args(&tasks, &url, "uc", &out, &[&base[..], extra].concat())
    };
    let run = |a: Vec<String>| srl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = ok(&run(args(&[])));
    assert!(stdout.starts_with("3 tasks: "), "{stdout}");
    let written = lines(&out);
    assert!(!written.is_empty(), "{stdout}");
    for t in &written {
        assert_eq!(t["distilled"]["model"], "uc");
        assert!(
            t["id"].as_str().unwrap().contains('#'),
            "two samples are told apart: {t}"
        );
        assert!(!t["steps"].as_array().unwrap().is_empty());
    }
    // The output is trajectories that `data build` reads.
    let steps = dir.join("steps.jsonl");
    ok(&srl(&[
        "data",
        "build",
        "--data",
        out.to_str().unwrap(),
        "--out",
        steps.to_str().unwrap(),
    ]));
    // Again: refused without --resume or --overwrite; with --resume nothing is asked.
    fails_with(
        &run(args(&[])),
        "--resume goes on with it, --overwrite starts again",
    );
    let again = run(args(&["--resume"]));
    let stderr = String::from_utf8_lossy(&again.stderr);
    let done = written
        .iter()
        .map(|t| t["distilled"]["task"].clone())
        .collect::<std::collections::HashSet<_>>()
        .len()
        + lines(&dir.join("traj.rejected.jsonl")).len();
    assert_eq!(done, 3, "every task is written or rejected for its content");
    assert!(
        stderr.contains("3 tasks done by an earlier run are skipped"),
        "{stderr}"
    );
    assert_eq!(lines(&out).len(), written.len());
    // --verify keeps only right answers (the 135M teacher gets few right:
    // a run that keeps none says so and fails).
    let verified = run(args(&["--overwrite", "--verify"]));
    let report = String::from_utf8_lossy(&verified.stdout).to_string()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(report.contains("samples rejected"), "{report}");
    assert!(
        verified.status.success() || report.contains("no trajectory was kept"),
        "{report}"
    );
    for t in lines(&out) {
        let id = t["distilled"]["task"].as_str().unwrap();
        let reference = text
            .iter()
            .find(|l| l.contains(&format!("\"{id}\"")))
            .unwrap();
        let reference: Value = serde_json::from_str(reference).unwrap();
        assert_eq!(t["answer"], reference["answer"], "{report}");
    }
}

/// A loopback server that answers each request with the next scripted
/// action, after `delay`.
#[derive(Clone, Copy, Debug)]
enum Act {
    Status(u16),
    Drop,
    Malformed,
    Reply(&'static str),
}

struct Scripted {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn scripted(script: Vec<Act>, fallback: Act, delay: Duration) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let Some(body) = read_request(&mut s) else {
                continue;
            };
            seen.lock().unwrap().push(body);
            std::thread::sleep(delay);
            let act = script.next().unwrap_or(fallback);
            let (code, text) = match act {
                Act::Drop => continue,
                Act::Status(c) => (c, format!("{{\"error\":{{\"message\":\"scripted {c}\"}}}}")),
                Act::Malformed => (200, "{\"choices\": oops".to_string()),
                Act::Reply(content) => (
                    200,
                    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content,
                        "reasoning_content": "Step 1: not a step, a thought"}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 20}})
                    .to_string(),
                ),
            };
            let extra = if code == 429 {
                "Retry-After: 0\r\n"
            } else {
                ""
            };
            let _ = write!(
                s,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Scripted { addr, requests }
}

/// The body of one HTTP request.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

fn task_file(dir: &Path, n: usize) -> std::path::PathBuf {
    let p = dir.join("tasks.jsonl");
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"t{i}\",\"question\":\"What is {i} + {i}?\",\"answer\":{}}}\n",
                2 * i
            )
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn teacher_failures_are_counted_retried_and_resumed() {
    use Act::*;
    let script = vec![
        Status(429),
        Status(500),
        Reply("Step 1: 0 + 0 = 0.\nAnswer: 0"), // t0: kept after 2 retries
        Drop,
        Drop,
        Drop,                                     // t1: connection, asked again on resume
        Malformed,                                // t2
        Reply("I am not sure."),                  // t3: no steps
        Status(401),                              // t4: not retried
        Reply("Step 1: 5 + 5 = 11.\nAnswer: 11"), // t5: wrong answer
    ];
    let server = scripted(script, Reply("Step 1: add.\nAnswer: 2"), Duration::ZERO);
    let dir = temp("scripted");
    let tasks = task_file(&dir, 6);
    let out = dir.join("traj.jsonl");
    let url = format!("http://{}/v1", server.addr);
    let args = |extra: &[&str]| {
        let base = [
            "--concurrency",
            "1",
            "--retries",
            "2",
            "--backoff",
            "0.01",
            "--verify",
            "--api-key-env",
            "SRL_TEST_TEACHER_KEY",
        ];
        distill_args(&tasks, &url, "m", &out, &[&base[..], extra].concat())
    };
    let run = |a: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_srl"))
            .args(&a)
            .env("SRL_TEST_TEACHER_KEY", "sekret")
            .output()
            .unwrap()
    };
    let stdout = ok(&run(args(&[])));
    assert!(
        stdout.starts_with(
            "6 tasks: 1 with trajectories (1 trajectory written), 5 samples rejected \
             (1 connection failed, 1 http 401, 1 malformed answer, 1 no steps, 1 wrong answer)\n\
             teacher tokens: 30 prompt, 60 completion; 4 retries"
        ),
        "{stdout}"
    );
    let kept = lines(&out);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0]["steps"],
        serde_json::json!(["0 + 0 = 0."]),
        "reasoning_content is not a step"
    );
    assert_eq!(kept[0]["answer"], "0");
    assert_eq!(
        kept[0]["distilled"]["reasoning"],
        "Step 1: not a step, a thought"
    );
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 10);
    let first: Value = serde_json::from_str(&requests[0]).unwrap();
    assert_eq!(first["model"], "m");
    assert_eq!(first["messages"][1]["content"], "What is 0 + 0?");
    // Resume: t1 (connection) and t4 (401) are asked again; the others not.
    let stdout = ok(&run(args(&["--resume"])));
    assert!(stdout.contains("; 4 done by an earlier run"), "{stdout}");
    assert_eq!(server.requests.lock().unwrap().len(), 12);
    let tasks_kept: Vec<Value> = lines(&out)
        .iter()
        .map(|t| t["distilled"]["task"].clone())
        .collect();
    assert_eq!(
        tasks_kept,
        vec!["t0", "t1"],
        "t1's reference 2 matches; t4's 8 does not"
    );
}

#[test]
fn a_killed_distill_leaves_whole_lines_and_resumes() {
    let server = scripted(
        vec![],
        Act::Reply("Step 1: add.\nAnswer: x"),
        Duration::from_millis(150),
    );
    let dir = temp("kill");
    let tasks = task_file(&dir, 40);
    let out = dir.join("traj.jsonl");
    let url = format!("http://{}", server.addr);
    let args = distill_args(&tasks, &url, "m", &out, &["--concurrency", "4"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for _ in 0..3 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_srl"))
            .args(&args)
            .arg(if out.exists() {
                "--resume"
            } else {
                "--overwrite"
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let n = lines(&out).len();
        let t0 = std::time::Instant::now();
        while lines(&out).len() < n + 3 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whole lines only (lines() panics on a broken one).
        assert!(std::fs::read_to_string(&out).unwrap().ends_with('\n'));
    }
    ok(&srl(&[&args[..], &["--resume"]].concat()));
    let ids: Vec<String> = lines(&out)
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (40, 40), "every task once");
}

#[test]
fn a_teacher_that_times_out_is_counted_and_asked_again_on_resume() {
    let server = scripted(
        vec![],
        Act::Reply("Step 1: 0 + 0 = 0.\nAnswer: 0"),
        Duration::from_millis(1500),
    );
    let dir = temp("timeout");
    let tasks = task_file(&dir, 1);
    let out = dir.join("traj.jsonl");
    let url = format!("http://{}", server.addr);
    let args = |timeout: &str| {
        let extra = [
            "--timeout",
            timeout,
            "--retries",
            "1",
            "--backoff",
            "0",
            "--resume",
        ];
        let a = distill_args(&tasks, &url, "m", &out, &extra);
        srl(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let run = args("0.3");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(report.contains("1 sample rejected (1 timeout)"), "{report}");
    assert!(report.contains("; 1 retry"), "{report}");
    fails_with(&run, "no trajectory was kept");
    let stdout = ok(&args("10"));
    assert!(
        stdout.starts_with("1 task: 1 with trajectories"),
        "a timeout is asked again: {stdout}"
    );
}

/// --overwrite removes the old output only once the new run can start: a
/// malformed tasks file leaves it as it was.
#[test]
fn overwrite_keeps_the_old_output_when_the_tasks_are_bad() {
    let dir = temp("overwrite");
    let tasks = dir.join("tasks.jsonl");
    std::fs::write(&tasks, "{\"task\":\"fine\"}\nnot json\n").unwrap();
    let out = dir.join("traj.jsonl");
    std::fs::write(&out, "{\"id\":\"old\"}\n").unwrap();
    let run = srl(&[
        "data",
        "distill",
        "--tasks",
        tasks.to_str().unwrap(),
        "--teacher",
        "http://127.0.0.1:9",
        "--teacher-model",
        "m",
        "--out",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    fails_with(&run, "tasks.jsonl: line 2: not valid JSON");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"old\"}\n");
}

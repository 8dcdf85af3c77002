//! End-to-end tests of `srl serve` on the default model: the official
//! `openai` Python client (chat and completions, whole and streamed, models,
//! adapters; greedy text equal to `srl generate`'s), and raw HTTP for every
//! kind of bad input, which must each get an OpenAI-shaped JSON error while
//! the server keeps serving.

mod common;

use common::python::openai_client_report;
use common::server::{
    api_error, busy_slot_refuses_then_frees, chat_body, http, post, raw_request, Server,
};
use common::{model, ok, srl};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn generate(args: &[&str]) -> String {
    let m = model();
    let mut all = vec!["generate", "--model", m.to_str().unwrap(), "--temp", "0"];
    all.extend(["--threads", "2", "--json"]);
    all.extend(args);
    let v: Value = serde_json::from_str(&ok(&srl(&all))).unwrap();
    v["text"].as_str().unwrap().to_string()
}

const ADAPTER: &str = "tests/data/llamacpp/lora/unit_conversion.gguf";

/// The folder of [`ADAPTER`], for `--adapter-dir`.
fn adapter_dir() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADAPTER);
    p.parent().unwrap().to_str().unwrap().to_string()
}

#[test]
fn openai_client_matches_generate() {
    let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADAPTER);
    let lora = format!("uc={}", adapter.display());
    // Two slots: of the four concurrent streams below, two wait in the queue.
    let server = Server::start(&["--parallel", "2", "--ctx", "512", "--lora", &lora]);
    let (chat_prompt, completion_prompt, n) = (
        "Convert 3 hours to minutes.",
        "The capital of France is",
        "24",
    );
    let v = openai_client_report(&server.addr, chat_prompt, completion_prompt, n, "uc");
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {v}"))
            .to_string()
    };

    let ids: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["SmolLM2-135M-Instruct.Q4_1", "uc"]);

    // Greedy chat: whole == streamed == four at once (two batched, two
    // queued) == srl generate --chat.
    let want = generate(&["--chat", "--prompt", chat_prompt, "-n", n]);
    assert!(!want.is_empty());
    assert_eq!(s("chat"), want);
    assert_eq!(s("chat_stream"), want);
    for c in v["concurrent"].as_array().unwrap() {
        assert_eq!(c.as_str().unwrap(), want);
    }
    assert_eq!(v["chat_finish"], v["stream_finish"]);
    let (u, su) = (&v["chat_usage"], &v["stream_usage"]);
    assert_eq!(u["prompt_tokens"], su["prompt_tokens"], "{u} {su}");
    assert_eq!(u["completion_tokens"], su["completion_tokens"], "{u} {su}");
    assert!(u["completion_tokens"].as_u64().unwrap() >= 1);
    let lps = v["chat_logprobs"].as_array().unwrap();
    assert_eq!(lps.len() as u64, u["completion_tokens"].as_u64().unwrap());
    for lp in lps {
        assert!(lp["logprob"].as_f64().unwrap() <= 0.0);
        // Greedy picks the most likely token.
        assert_eq!(lp["top"][0], lp["token"], "{lp}");
    }

    // The adapter, chosen by model id, gives what srl generate --lora gives.
    let with = generate(&[
        "--chat",
        "--prompt",
        chat_prompt,
        "-n",
        n,
        "--lora",
        adapter.to_str().unwrap(),
    ]);
    assert_ne!(with, want, "the adapter must change the output");
    assert_eq!(s("adapter_chat"), with);
    assert_eq!(s("adapter_model"), "uc");

    let n2 = v["n2"].as_array().unwrap();
    assert_eq!(n2.len(), 2);
    assert!(
        n2.iter().all(|t| !t.as_str().unwrap().contains('\n')),
        "{v}"
    );

    // Completions: raw prompt, no template.
    let want = generate(&["--prompt", completion_prompt, "-n", n]);
    assert_eq!(s("completion"), want);
    assert_eq!(s("completion_stream"), want);
    assert!(s("unknown_model").contains("404"), "{v}");
}

#[test]
fn bad_input_gets_openai_errors_and_the_server_keeps_serving() {
    let key = "s3cret-key";
    let server = Server::start(&[
        "--parallel",
        "1",
        "--queue",
        "0",
        "--ctx",
        "256",
        "--api-key",
        key,
        "--max-body",
        "4096",
        "--adapter-dir",
        &adapter_dir(),
    ]);
    let a = server.addr.as_str();
    let k = Some(key);
    let chat = "/v1/chat/completions";

    // Keys: /health is open, everything else needs the key.
    assert_eq!(http(a, "GET", "/health", &[], "").0, 200);
    let e = api_error(post(a, chat, None, &chat_body("hi", json!({}))), 401);
    assert_eq!(e["code"], "invalid_api_key");
    api_error(
        post(a, chat, Some("s3cret-kez"), &chat_body("hi", json!({}))),
        401,
    );
    api_error(http(a, "GET", "/v1/models", &[], ""), 401);
    let auth = format!("Authorization: Bearer {key}");
    assert_eq!(http(a, "GET", "/v1/models", &[&auth], "").0, 200);

    // Malformed JSON, wrong types, missing fields.
    let e = api_error(post(a, chat, k, "{\"messages\": [}"), 400);
    assert!(
        e["message"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );
    let e = api_error(
        post(a, chat, k, &chat_body("hi", json!({"temperature": "hot"}))),
        400,
    );
    assert_eq!(e["param"], "temperature");
    let e = api_error(
        post(
            a,
            chat,
            k,
            r#"{"messages": [{"role": "user", "content": 5}]}"#,
        ),
        400,
    );
    assert_eq!(e["param"], "messages[0].content", "{e}");
    let e = api_error(post(a, chat, k, r#"{"model": "x"}"#), 400);
    assert!(e["message"].as_str().unwrap().contains("messages"), "{e}");
    let e = api_error(post(a, chat, k, r#"{"messages": []}"#), 400);
    assert_eq!(e["param"], "messages");
    let e = api_error(
        post(a, chat, k, &chat_body("hi", json!({"temperature": 9}))),
        400,
    );
    assert_eq!(e["param"], "temperature");
    api_error(post(a, chat, k, &chat_body("hi", json!({"n": 2}))), 400);
    let e = api_error(
        post(
            a,
            chat,
            k,
            &chat_body("hi", json!({"tools": [{"type": "function"}]})),
        ),
        400,
    );
    assert_eq!(e["param"], "tools");
    let e = api_error(
        post(
            a,
            chat,
            k,
            &chat_body("hi", json!({"response_format": {"type": "json_object"}})),
        ),
        400,
    );
    assert_eq!(e["param"], "response_format");
    api_error(
        post(a, chat, k, &chat_body("hi", json!({"max_tokens": 0}))),
        400,
    );

    // Too long for the context: an error with the counts, never truncation.
    let long = "word ".repeat(400);
    let e = api_error(post(a, chat, k, &chat_body(&long, json!({}))), 400);
    assert_eq!(e["code"], "context_length_exceeded");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("tokens") && m.contains("256"), "{m}");
    let e = api_error(
        post(a, chat, k, &chat_body("hi", json!({"max_tokens": 1000}))),
        400,
    );
    assert_eq!(e["param"], "max_tokens");
    assert!(e["message"].as_str().unwrap().contains("1000"), "{e}");

    // Unknown model or adapter.
    let e = api_error(
        post(a, chat, k, &chat_body("hi", json!({"model": "gpt-9"}))),
        404,
    );
    assert_eq!(e["code"], "model_not_found");
    let e = api_error(
        post(a, chat, k, &chat_body("hi", json!({"lora": "nope"}))),
        404,
    );
    assert_eq!(e["param"], "lora");

    // Oversized body, unknown endpoint, wrong method.
    let big = chat_body(&"x".repeat(5000), json!({}));
    api_error(post(a, chat, k, &big), 413);
    api_error(http(a, "GET", "/v2/nothing", &[&auth], ""), 404);
    api_error(http(a, "GET", chat, &[&auth], ""), 405);

    // One slot, no queue: 429 while a stream runs; a client that leaves
    // mid-stream frees its slot at once.
    let served = busy_slot_refuses_then_frees(a, key);
    let v: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(v["object"], "chat.completion");
    let metrics = http(a, "GET", "/metrics", &[&auth], "").1;
    assert!(metrics.contains("srl_requests_rejected_total"), "{metrics}");

    // Adapters at run time.
    let adapters = "/v1/adapters";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADAPTER);
    let load = |name: &str, path: &str| json!({"name": name, "path": path}).to_string();
    let e = api_error(
        post(a, adapters, k, &load("uc", "/no/such/adapter.gguf")),
        403,
    );
    assert_eq!(e["param"], "path");
    api_error(
        post(a, adapters, k, &load("a/b", path.to_str().unwrap())),
        400,
    );
    let (status, body) = post(a, adapters, k, &load("uc", path.to_str().unwrap()));
    assert_eq!(status, 201, "{body}");
    api_error(
        post(a, adapters, k, &load("uc", path.to_str().unwrap())),
        409,
    );
    let ids = http(a, "GET", "/v1/models", &[&auth], "").1;
    assert!(ids.contains("\"uc\""), "{ids}");
    let (status, body) = post(
        a,
        chat,
        k,
        &chat_body("Convert 2 km to m.", json!({"lora": "uc"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(a, "DELETE", "/v1/adapters/uc", &[&auth], "").0, 200);
    api_error(http(a, "DELETE", "/v1/adapters/uc", &[&auth], ""), 404);
    api_error(
        post(a, chat, k, &chat_body("hi", json!({"model": "uc"}))),
        404,
    );

    // A model by id; stop strings as srl generate applies them.
    let (status, body) = http(
        a,
        "GET",
        "/v1/models/SmolLM2-135M-Instruct.Q4_1",
        &[&auth],
        "",
    );
    assert_eq!(status, 200, "{body}");
    api_error(http(a, "GET", "/v1/models/nope", &[&auth], ""), 404);
    let body =
        json!({"prompt": "1, 2, 3, 4,", "max_tokens": 24, "temperature": 0, "stop": [" 8", "zzz"]});
    let (status, got) = post(a, "/v1/completions", k, &body.to_string());
    assert_eq!(status, 200, "{got}");
    let got: Value = serde_json::from_str(&got).unwrap();
    let want = generate(&[
        "--prompt",
        "1, 2, 3, 4,",
        "-n",
        "24",
        "--stop",
        " 8",
        "--stop",
        "zzz",
    ]);
    assert_eq!(got["choices"][0]["text"].as_str().unwrap(), want);
    assert_eq!(got["choices"][0]["finish_reason"], "stop", "{got}");

    // A prompt past 64 tokens (attention's tiled numerics) twice: the second
    // reuses the cached beginning, and both equal srl generate's text.
    let story = "Here is a long story about a small robot who lived in a lighthouse by the sea. \
        Every night the robot climbed the stairs, cleaned the great lamp, and watched the ships \
        pass. One winter a storm broke the lamp, and the robot had to find a way to guide the \
        ships home without it. Tell me, in a few sentences, what the robot did next.";
    let want = generate(&["--chat", "--prompt", story, "-n", "24"]);
    for round in 0..2 {
        let (status, got) = post(a, chat, k, &chat_body(story, json!({"max_tokens": 24})));
        assert_eq!(status, 200, "{got}");
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(
            got["choices"][0]["message"]["content"].as_str().unwrap(),
            want
        );
        let cached = got["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64();
        assert!(round == 0 || cached > Some(0), "{got}");
    }

    // Still serving.
    assert_eq!(post(a, chat, k, &chat_body("hi", json!({}))).0, 200);
    assert_eq!(http(a, "GET", "/health", &[], "").0, 200);
}

/// The load test of issue 5, bounded and on loopback: 16 clients stream
/// chat completions back to back for a minute against 16 slots; none may
/// fail. Throughput and time-to-first-token figures are printed (timings are
/// for benchmarks, not asserted; see bench/serve_load.sh for the side-by-side
/// run against llama-server).
#[test]
fn sixteen_streaming_clients_for_a_minute_without_a_failure() {
    let server = Server::start(&["--parallel", "16"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/serve_load.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--clients", "16", "--duration", "60", "--max-tokens", "32"])
        .args(["--timeout", "120", "--json"])
        .output()
        .expect("run python3 bench/serve_load.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("load test: {report}");
    assert_eq!(report["requests_failed"], 0, "{report}");
    assert!(report["requests_ok"].as_u64().unwrap() >= 16, "{report}");
    assert!(out.status.success(), "{report}");
    // The server still answers afterwards.
    let (status, _) = post(
        &server.addr,
        "/v1/chat/completions",
        None,
        &chat_body("Hi", json!({"max_tokens": 4})),
    );
    assert_eq!(status, 200);
}

/// `POST /v1/adapters` opens files only inside the `--adapter-dir`
/// directories, and its errors show no byte of any file. It used to load
/// from any path and answer `/etc/passwd` with "magic is [72, 6f, 6f, 74]"
/// ("root").
#[test]
fn adapters_load_only_from_the_adapter_directories() {
    let adapters = "/v1/adapters";
    let load = |name: &str, path: &str| json!({"name": name, "path": path}).to_string();
    let no_content = |(status, body): (u16, String)| {
        assert!(
            !body.contains("root") && !body.contains("6f") && !body.contains("secret"),
            "{body}"
        );
        (status, body)
    };
    // No directory named: run-time loading is off, and says how to turn it on.
    let off = Server::start(&[]);
    let e = api_error(
        no_content(post(&off.addr, adapters, None, &load("x", "/etc/passwd"))),
        403,
    );
    assert!(
        e["message"].as_str().unwrap().contains("--adapter-dir"),
        "{e}"
    );
    drop(off);

    let dir = std::env::temp_dir().join(format!("srl-adapter-dir-{}", std::process::id()));
    let (allowed, other) = (dir.join("allowed"), dir.join("other"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join(ADAPTER);
    std::fs::copy(&adapter, allowed.join("uc.gguf")).unwrap();
    std::fs::copy(&adapter, other.join("uc.gguf")).unwrap();
    std::fs::write(allowed.join("junk.gguf"), "root:x:0:0:secret").unwrap();
    std::fs::write(other.join("junk.gguf"), "root:x:0:0:secret").unwrap();
    std::os::unix::fs::symlink(other.join("uc.gguf"), allowed.join("link-out.gguf")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", allowed.join("passwd")).unwrap();
    let server = Server::start(&["--adapter-dir", allowed.to_str().unwrap()]);
    let a = server.addr.as_str();
    let outside = other.join("uc.gguf");
    let missing = other.join("missing.gguf");
    // Outside (existing or not), through '..' or a link: the same refusal.
    let mut refusals = Vec::new();
    for path in [
        "/etc/passwd",
        "passwd",
        "link-out.gguf",
        "../other/uc.gguf",
        outside.to_str().unwrap(),
        missing.to_str().unwrap(),
    ] {
        let e = api_error(no_content(post(a, adapters, None, &load("x", path))), 403);
        assert_eq!(e["param"], "path", "{path}");
        refusals.push(e["message"].clone());
    }
    refusals.dedup();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    // Inside but not an adapter: what is wrong, without its bytes.
    let e = api_error(
        no_content(post(a, adapters, None, &load("x", "junk.gguf"))),
        400,
    );
    assert!(
        e["message"].as_str().unwrap().contains("not a GGUF file"),
        "{e}"
    );
    // Inside: loads, by a relative or an absolute path.
    let (status, body) = post(a, adapters, None, &load("uc", "uc.gguf"));
    assert_eq!(status, 201, "{body}");
    let abs = allowed.join("uc.gguf");
    let (status, body) = post(a, adapters, None, &load("uc2", abs.to_str().unwrap()));
    assert_eq!(status, 201, "{body}");
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

/// A server reachable beyond this machine needs a key, or the operator's
/// explicit --no-api-key, which its first log line then states.
#[test]
fn serving_beyond_loopback_needs_a_key_or_no_api_key() {
    let m = model();
    let m = m.to_str().unwrap();
    let base = [
        "serve", "--model", m, "--host", "0.0.0.0", "--port", "0", "-t", "1",
    ];
    let out = srl(&base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--api-key") && err.contains("--no-api-key") && err.contains("0.0.0.0"),
        "{err}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(base)
        .arg("--no-api-key")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("warning: --no-api-key"), "{first}");
}

/// Several hundred hostile requests, loopback only and bounded in time:
/// malformed JSON, wrong types, huge and negative values, wrong methods,
/// paths and content types, half-sent bodies and raw garbage on the socket.
/// None may get a 5xx or stop the server; it answers a normal request
/// afterwards, and its memory is back near where it started.
#[test]
fn hostile_http_gets_4xx_and_the_server_keeps_its_memory() {
    let mut server = Server::start(&["--parallel", "2", "--ctx", "256", "--max-body", "65536"]);
    let a = server.addr.clone();
    let chat = "/v1/chat/completions";
    // Warm up: the first real request sizes the buffers the rest reuse.
    assert_eq!(post(&a, chat, None, &chat_body("hi", json!({}))).0, 200);
    let rss0 = server.rss_kib();
    let json_bodies = [
        "{".to_string(),
        "[]".into(),
        "null".into(),
        "\"text\"".into(),
        "{\"messages\": 5}".into(),
        "{\"messages\": []}".into(),
        "{\"messages\": [{}]}".into(),
        "{\"messages\": [{\"role\": \"user\"}]}".into(),
        "{\"messages\": [{\"role\": 7, \"content\": \"x\"}]}".into(),
        "{\"prompt\": {\"a\": 1}}".into(),
        chat_body("hi", json!({"max_tokens": -1})),
        chat_body("hi", json!({"max_tokens": 1e300})),
        chat_body("hi", json!({"max_tokens": 18446744073709551615u64})),
        chat_body("hi", json!({"temperature": -5})),
        chat_body("hi", json!({"temperature": "hot"})),
        chat_body("hi", json!({"top_p": 7})),
        chat_body("hi", json!({"n": 1000000})),
        chat_body("hi", json!({"n": -3})),
        chat_body("hi", json!({"stop": [1, 2]})),
        chat_body("hi", json!({"stop": vec!["a"; 200]})),
        chat_body("hi", json!({"logprobs": true, "top_logprobs": 100000})),
        chat_body("hi", json!({"seed": -1})),
        chat_body("hi", json!({"stream": "yes"})),
        chat_body("hi", json!({"model": "../../etc/passwd"})),
        chat_body("hi", json!({"lora": {"x": 1}})),
        chat_body(&"word ".repeat(2000), json!({})),
        "{\"prompt\": \"a\", \"max_tokens\": 4, \"logprobs\": -2}".into(),
        "\u{0}\u{1}\u{2}".into(),
        "{\"messages\": [{\"role\": \"user\", \"content\": \"\\ud800\"}]}".into(),
    ];
    let paths = [
        chat,
        "/v1/completions",
        "/v1/adapters",
        "/v1/models/x",
        "/nope",
    ];
    let mut answered = 0;
    let mut check = |status: Option<u16>, what: &str| {
        if let Some(s) = status {
            assert!(s < 500, "{what}: {s}");
            answered += 1;
        }
    };
    for round in 0..3 {
        for body in &json_bodies {
            for path in paths {
                check(
                    Some(post(&a, path, None, body).0),
                    &format!("POST {path} {body}"),
                );
            }
        }
        for (method, path) in [
            ("GET", chat),
            ("PUT", chat),
            ("DELETE", "/v1/models"),
            ("PATCH", "/v1/adapters"),
            ("GET", "/v1/models/%00"),
            ("GET", "/%ff%fe"),
            ("DELETE", "/v1/adapters/..%2f..%2fetc"),
        ] {
            check(
                Some(http(&a, method, path, &[], "").0),
                &format!("{method} {path}"),
            );
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let h = format!("Content-Type: {ct}");
            let got = http(&a, "POST", chat, &[&h], &chat_body("hi", json!({})));
            check(Some(got.0), ct);
        }
        // Raw bytes on the socket: garbage, a lying Content-Length, a
        // half-sent body, a header line without end, a huge header.
        let t = Duration::from_secs(5);
        let long_header = format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(100_000)
        );
        let raws: Vec<(Vec<u8>, bool)> = vec![
            (vec![0xff, 0x00, 0x13, 0x37, b'\n', b'\n'], true),
            (b"HELLO\r\n\r\n".to_vec(), true),
            (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mess".to_vec(), true),
            (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(), true),
            (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(), true),
            (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), true),
            (b"GET /health HTTP/1.1\r\nHost: x".to_vec(), true),
            (long_header.into_bytes(), true),
            (format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "x".repeat(20_000)).into_bytes(), true),
        ];
        for (raw, finish) in raws {
            check(
                raw_request(&a, &raw, finish, t),
                &format!("raw request (round {round})"),
            );
        }
        assert!(server.alive(), "the server died in round {round}");
    }
    assert!(answered >= 400, "only {answered} answers");
    // Still serving, and memory near where it started.
    let (status, body) = post(&a, chat, None, &chat_body("hi", json!({})));
    assert_eq!(status, 200, "{body}");
    let rss1 = server.rss_kib();
    assert!(
        rss1 < rss0 + 32 * 1024,
        "resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    eprintln!("hostile requests: {answered} answered; RSS {rss0} -> {rss1} KiB");
}

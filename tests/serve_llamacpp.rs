//! `srl serve --backend llama-cpp` (cargo feature `llama-cpp`): the same
//! OpenAI surface as the native server, with llama.cpp decoding the batched
//! slots. Each test sends the same requests to a server of each backend and
//! asserts the answers agree: greedy text (whole, streamed, concurrent, with
//! adapters chosen per request and loaded at run time), and the errors.
//! Run with `cargo test --release --features llama-cpp --test serve_llamacpp`.
#![cfg(feature = "llama-cpp")]

mod common;
use common::python::openai_client_report;
use common::server::{api_error, busy_slot_refuses_then_frees, chat_body, http, post, Server};
use common::{fails_with, model, ok, srl};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The adapter of tests/llamacpp_backend.rs (srl train sft, rank 4).
fn adapter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp/lora/unit_conversion.gguf")
}

/// A server on llama.cpp. One thread: ggml's spinning thread pool collapses
/// on a busy 2-core CI machine (and threads do not change its numerics).
fn llama(extra: &[&str]) -> Server {
    Server::start_threads(1, &[&["--backend", "llama-cpp"], extra].concat())
}

fn native(extra: &[&str]) -> Server {
    Server::start(extra)
}

/// tests/openai_client.py's report of a server.
fn openai_client(server: &Server) -> Value {
    openai_client_report(
        &server.addr,
        "Convert 3 hours to minutes.",
        "The capital of France is",
        "24",
        "uc",
    )
}

/// The official client gets the same answers from both backends: models,
/// greedy chat whole, streamed and four at once on two slots, usage,
/// log-probabilities, an adapter by model id, completions, errors.
#[test]
fn openai_client_gets_the_native_servers_answers() {
    let lora = format!("uc={}", adapter().display());
    let args = ["--parallel", "2", "--ctx", "512", "--lora", &lora];
    let want = openai_client(&native(&args));
    let got = openai_client(&llama(&args));
    for k in [
        "models",
        "chat",
        "chat_finish",
        "chat_stream",
        "stream_finish",
        "concurrent",
        "adapter_chat",
        "adapter_model",
        "completion",
        "completion_stream",
        "unknown_model",
    ] {
        assert_eq!(got[k], want[k], "{k}: llama.cpp {got}\nnative {want}");
    }
    assert!(!got["chat"].as_str().unwrap().is_empty());
    assert_eq!(got["chat"], got["chat_stream"]);
    assert_ne!(
        got["adapter_chat"], got["chat"],
        "the adapter must change the output"
    );
    for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(got["chat_usage"][k], want["chat_usage"][k], "{k}");
        assert_eq!(got["stream_usage"][k], want["chat_usage"][k], "{k}");
        assert_eq!(
            got["completion_usage"][k], want["completion_usage"][k],
            "{k}"
        );
    }
    let (lg, ln) = (
        got["chat_logprobs"].as_array().unwrap(),
        want["chat_logprobs"].as_array().unwrap(),
    );
    assert_eq!(lg.len(), ln.len());
    for (g, n) in lg.iter().zip(ln) {
        assert_eq!(g["token"], n["token"]);
        assert_eq!(g["top"][0], g["token"], "greedy picks the most likely: {g}");
        let (a, b) = (
            g["logprob"].as_f64().unwrap(),
            n["logprob"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 0.05, "log-probabilities {a} and {b} of {g}");
    }
    let n2 = got["n2"].as_array().unwrap();
    assert_eq!(n2.len(), 2);
    assert!(
        n2.iter().all(|t| !t.as_str().unwrap().contains('\n')),
        "{got}"
    );
}

/// One greedy chat answer per (adapter, prompt), all sent at once.
fn round(addr: &str, jobs: &[(Option<&str>, &str)]) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(model, prompt)| {
                s.spawn(move || {
                    let extra = match model {
                        Some(m) => json!({"model": m, "max_tokens": 24}),
                        None => json!({"max_tokens": 24}),
                    };
                    let (status, body) = post(
                        addr,
                        "/v1/chat/completions",
                        None,
                        &chat_body(prompt, extra),
                    );
                    assert_eq!(status, 200, "{body}");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn metric(addr: &str, name: &str) -> f64 {
    let text = http(addr, "GET", "/metrics", &[], "").1;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Seven requests at once on four slots (three wait), with and without an
/// adapter, short prompts and one past 64 tokens, twice (the slots' caches
/// are reused only as far as they give a fresh read's numbers, never one
/// computed with another adapter): the answers equal the native server's,
/// and llama.cpp decoded several sequences per step. A prompt past 512
/// tokens, twice: the second reuses its first chunk, both equal `srl
/// generate --backend llama-cpp`.
#[test]
fn concurrent_requests_with_and_without_an_adapter_agree_with_native() {
    let story = "Here is a long story about a small robot who lived in a lighthouse by the sea. \
        Every night the robot climbed the stairs, cleaned the great lamp, and watched the ships \
        pass. One winter a storm broke the lamp, and the robot had to find a way to guide the \
        ships home without it. Tell me, in a few sentences, what the robot did next.";
    let jobs = [
        (Some("uc"), "Convert 3 hours to minutes."),
        (None, "Convert 3 hours to minutes."),
        (Some("uc"), "Express 13 meters in centimeters."),
        (None, "What is 2+2?"),
        (None, story),
        (None, "Write a haiku about rust."),
        (Some("uc"), "How many grams are in 2.4 kilograms?"),
    ];
    let lora = format!("uc={}", adapter().display());
    let args = ["--parallel", "4", "--ctx", "1024", "--lora", &lora];
    let answers = |server: &Server| {
        let first = round(&server.addr, &jobs);
        let second = round(&server.addr, &jobs);
        assert_eq!(first, second, "the second round (cached prompts) differs");
        first
    };
    let want = answers(&native(&args));
    let server = llama(&args);
    let got = answers(&server);
    assert_eq!(got, want);
    assert!(got[0].starts_with("Step"), "{got:?}");
    assert_ne!(got[0], got[1]);
    let steps = metric(&server.addr, "srl_decode_steps_total");
    let rows = metric(&server.addr, "srl_decode_step_rows_total");
    assert!(
        rows > 1.5 * steps,
        "{rows} rows in {steps} steps: not batched"
    );

    let count: Vec<String> = (1..=140).map(|i| i.to_string()).collect();
    let long = count.join(", ") + ",";
    let m = model();
    let want: Value = serde_json::from_str(&ok(&srl(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--backend",
        "llama-cpp",
        "-t",
        "1",
        "--prompt",
        &long,
        "-n",
        "12",
        "--temp",
        "0",
        "--json",
    ])))
    .unwrap();
    for round in 0..2 {
        let body = json!({"prompt": long, "max_tokens": 12, "temperature": 0}).to_string();
        let (status, got) = post(&server.addr, "/v1/completions", None, &body);
        assert_eq!(status, 200, "{got}");
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["choices"][0]["text"], want["text"], "round {round}");
        let cached = &got["usage"]["prompt_tokens_details"]["cached_tokens"];
        assert_eq!(
            cached.as_u64(),
            Some(if round == 0 { 0 } else { 512 }),
            "{got}"
        );
    }
}

/// Bad input gets the very answers the native server gives (status and
/// OpenAI-shaped body); the limits hold (a prompt over the context is a 400
/// with the counts, a full server a 429, a client leaving mid-stream frees
/// its slot); adapters load and unload at run time; the server keeps serving.
#[test]
fn errors_and_limits_match_the_native_server() {
    let key = "s3cret-key";
    let dir = adapter();
    let adapter_dir = dir.parent().unwrap().to_str().unwrap();
    let args = [
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
        adapter_dir,
    ];
    let chat = "/v1/chat/completions";
    let k = Some(key);
    let long = "word ".repeat(400);
    let bad = [
        (None, chat_body("hi", json!({}))),
        (k, "{\"messages\": [}".to_string()),
        (k, chat_body("hi", json!({"temperature": "hot"}))),
        (k, chat_body(&long, json!({}))),
        (k, chat_body("hi", json!({"max_tokens": 1000}))),
        (k, chat_body("hi", json!({"model": "gpt-9"}))),
        (k, chat_body("hi", json!({"n": 2}))),
        (k, chat_body(&"x".repeat(5000), json!({}))),
    ];
    let answers = |server: &Server| -> Vec<(u16, String)> {
        bad.iter()
            .map(|(key, body)| post(&server.addr, chat, *key, body))
            .collect()
    };
    let want = answers(&native(&args));
    let server = llama(&args);
    let a = server.addr.as_str();
    let got = answers(&server);
    assert_eq!(got, want);
    let e = api_error(got[3].clone(), 400);
    assert_eq!(e["code"], "context_length_exceeded");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("tokens") && m.contains("256"), "{m}");
    api_error(got[7].clone(), 413);

    // One slot, no queue: 429 while a stream runs; a client that leaves
    // mid-stream frees its slot at once.
    busy_slot_refuses_then_frees(a, key);
    let auth = format!("Authorization: Bearer {key}");

    // An adapter loaded at run time answers as srl generate --lora does.
    let adapters = "/v1/adapters";
    let path = adapter();
    let load = |name: &str, path: &str| json!({"name": name, "path": path}).to_string();
    let e = api_error(
        post(a, adapters, k, &load("uc", "/no/such/adapter.gguf")),
        403,
    );
    assert_eq!(e["param"], "path");
    let (status, body) = post(a, adapters, k, &load("uc", path.to_str().unwrap()));
    assert_eq!(status, 201, "{body}");
    api_error(
        post(a, adapters, k, &load("uc", path.to_str().unwrap())),
        409,
    );
    let prompt = "Convert 2 km to m.";
    let (status, body) = post(
        a,
        chat,
        k,
        &chat_body(prompt, json!({"lora": "uc", "max_tokens": 16})),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let m = model();
    let want: Value = serde_json::from_str(&ok(&srl(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--chat",
        "--prompt",
        prompt,
        "-n",
        "16",
        "--temp",
        "0",
        "--lora",
        path.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], want["text"]);
    assert_eq!(http(a, "DELETE", "/v1/adapters/uc", &[&auth], "").0, 200);
    api_error(
        post(a, chat, k, &chat_body("hi", json!({"model": "uc"}))),
        404,
    );

    // Still serving.
    assert_eq!(post(a, chat, k, &chat_body("hi", json!({}))).0, 200);
    assert_eq!(http(a, "GET", "/health", &[], "").0, 200);
}

/// What `srl serve` refuses at start, with the reason.
#[test]
fn serve_start_errors_are_clear() {
    let m = model();
    let ms = m.to_str().unwrap();
    let serve = |extra: &[&str]| srl(&[&["serve", "--model", ms, "--port", "0"], extra].concat());
    fails_with(
        &serve(&["--gpu-layers", "4"]),
        "--gpu-layers 4 needs the llama.cpp backend",
    );
    #[cfg(not(any(feature = "cuda", feature = "vulkan", feature = "metal")))]
    fails_with(
        &serve(&["--backend", "llama-cpp", "--gpu-layers", "99"]),
        "--features cuda",
    );
    fails_with(
        &serve(&[
            "--backend",
            "llama-cpp",
            "--lora",
            "uc=/no/such/adapter.gguf",
        ]),
        "does not exist",
    );
    fails_with(
        &serve(&["--backend", "llama-cpp", "--lora", &format!("uc={ms}")]),
        "llama.cpp cannot load the LoRA adapter",
    );
}

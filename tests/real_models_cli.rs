//! The real files of the model catalogue end to end through the `srl`
//! command: pulled by name, chatted with, trained on (a short SFT and SRL
//! run), served with the adapter. Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) is
//! the instruct model; Gemma 3 270M is a base model without a chat
//! template, so it generates and serves completions. runtime/tests/
//! real_models.rs holds their numbers to llama.cpp's.

mod common;

use common::server::{chat_body, post, Server};
use common::{ok, srl, srl_with_input, temp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `srl pull NAME` (a no-op when cached) and the file's path.
fn pulled(name: &str) -> PathBuf {
    let out = ok(&srl(&["pull", name]));
    let path = out
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.ends_with(".gguf")))
        .map(PathBuf::from);
    path.filter(|p| p.is_file())
        .unwrap_or_else(|| panic!("srl pull {name} printed no cached file: {out}"))
}

#[test]
fn qwen2_5_coder_0_5b_chats_trains_and_serves() {
    let m = pulled("qwen2.5-coder:0.5b");
    let ms = m.to_str().unwrap();

    // Chat, by catalogue name.
    let chat = [
        "chat",
        "--model",
        "qwen2.5-coder:0.5b",
        "-n",
        "24",
        "--temp",
        "0",
        "-t",
        "2",
    ];
    let out = srl_with_input(&chat, b"What is 2+2?\n");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reply.contains('4'), "{reply}");

    // A short SFT run and a short SRL run on the last two blocks.
    let dir = temp("real-qwen");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/srl-math/train.jsonl"),
    )
    .unwrap();
    let data = dir.join("train.jsonl");
    std::fs::write(
        &data,
        text.lines().take(4).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let d = data.to_str().unwrap();
    let common = [
        "--model",
        ms,
        "--data",
        d,
        "--rank",
        "4",
        "--num-layers",
        "2",
        "-t",
        "2",
    ];
    let sft = dir.join("sft");
    let mut args = vec![
        "train",
        "sft",
        "--out",
        sft.to_str().unwrap(),
        "--max-steps",
        "2",
    ];
    args.extend(["--max-len", "160"]);
    args.extend(common);
    let err = String::from_utf8_lossy(&srl(&args).stderr).into_owned();
    assert!(sft.join("adapter.gguf").is_file(), "{err}");
    let rl = dir.join("srl");
    let mut args = vec![
        "train",
        "srl",
        "--out",
        rl.to_str().unwrap(),
        "--max-steps",
        "1",
    ];
    args.extend([
        "--batch-size",
        "1",
        "--group-size",
        "4",
        "--max-new-tokens",
        "32",
    ]);
    args.extend(["--think-budget", "8"]);
    args.extend(common);
    let run = srl(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(rl.join("adapter.gguf").is_file(), "{err}");

    // Served, with the SFT adapter by name beside the base model.
    let lora = format!("sft={}", sft.display());
    let s = Server::start_model(&m, 2, &["--lora", &lora]);
    for extra in [json!({}), json!({"model": "sft"})] {
        let (status, body) = post(
            &s.addr,
            "/v1/chat/completions",
            None,
            &chat_body("2+2?", extra),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!content.is_empty(), "{v}");
    }
}

#[test]
fn gemma3_270m_generates_and_serves() {
    let m = pulled("gemma3:270m");
    let g: Value = serde_json::from_str(&ok(&srl(&[
        "generate",
        "--model",
        "gemma3:270m",
        "-p",
        "The capital of France is",
        "-n",
        "12",
        "--temp",
        "0",
        "-t",
        "2",
        "--json",
    ])))
    .unwrap();
    // llama.cpp's greedy continuation of this prompt on this file (see
    // tests/data/real/gemma3-270m.json): " the capital of the country of
    // France. ..."
    assert!(
        g["text"]
            .as_str()
            .unwrap()
            .starts_with(" the capital of the country of France"),
        "{g}"
    );

    let s = Server::start_model(&m, 2, &[]);
    let body = json!({"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0});
    let (status, got) = post(&s.addr, "/v1/completions", None, &body.to_string());
    assert_eq!(status, 200, "{got}");
    let v: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(v["choices"][0]["text"], g["text"], "{v}");
    // A base model has no chat template: chat requests are refused, named.
    let (status, got) = post(
        &s.addr,
        "/v1/chat/completions",
        None,
        &chat_body("hi", json!({})),
    );
    assert_eq!(status, 400, "{got}");
}

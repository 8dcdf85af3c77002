//! Every `srl` command on the random-weight model of each architecture
//! family beyond the default model's (tests/data/families/<family>.gguf,
//! written as llama.cpp's converter writes real ones by
//! scripts/reference/make_family_models.py; runtime/tests/greedy_llamacpp.rs
//! holds their numbers to llama.cpp's): generate and chat with the
//! template's thinking switch, serve with `chat_template_kwargs`, train sft,
//! srl and rlvr, merge and quantize.

mod common;

use common::server::{api_error, chat_body, post, Server};
use common::{fails_with, ok, srl, srl_with_input, temp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const FAMILIES: &[&str] = &["gemma3", "llama3", "qwen3", "smollm3"];

/// The families whose templates read `enable_thinking`.
const THINKING: &[&str] = &["qwen3", "smollm3"];

fn family_model(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/families/{family}.gguf"))
}

/// `srl generate --chat --json` on `m` with `extra`, parsed.
fn generate(m: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["generate", "--model", m.to_str().unwrap(), "--chat"];
    args.extend(["-p", "What is 2+2?", "-n", "4", "--temp", "0", "--json"]);
    args.extend(extra);
    serde_json::from_str(&ok(&srl(&args))).unwrap()
}

/// `--no-think` closes an empty think block in the prompt (the template's
/// `enable_thinking = false`); `--think` and no switch (both templates
/// think by default) leave the thinking to the model; both at once are
/// refused. `srl chat` takes it too. A template without the variable
/// (Llama 3's) ignores the switch.
#[test]
fn thinking_switch_reaches_the_template() {
    for family in ["llama3", "gemma3"] {
        let m = family_model(family);
        let prompt = |extra: &[&str]| generate(&m, extra)["prompt"].as_str().unwrap().to_string();
        assert_eq!(prompt(&["--no-think"]), prompt(&[]), "{family}");
    }
    for family in THINKING {
        let m = family_model(family);
        let prompt = |extra: &[&str]| generate(&m, extra)["prompt"].as_str().unwrap().to_string();
        let (default, think, no_think) =
            (prompt(&[]), prompt(&["--think"]), prompt(&["--no-think"]));
        assert!(default.ends_with("<|im_start|>assistant\n"), "{default:?}");
        assert!(!default.trim_end().ends_with("</think>"), "{default:?}");
        assert_eq!(think, default);
        let closed = no_think.trim_end().strip_suffix("<think>\n\n</think>");
        assert!(
            closed.is_some_and(|p| p.ends_with("<|im_start|>assistant\n")),
            "{no_think:?}"
        );
        let both = [
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--chat",
            "-p",
            "hi",
            "--think",
            "--no-think",
        ];
        fails_with(&srl(&both), "cannot be used with");

        let ms = m.to_str().unwrap();
        let chat = [
            "chat",
            "--model",
            ms,
            "--no-think",
            "-n",
            "6",
            "--temp",
            "0",
            "-t",
            "2",
        ];
        let out = srl_with_input(&chat, b"What is 2+2?\n");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
    }
}

/// A request's `chat_template_kwargs` reach the template, over the
/// server's own `--no-think`; one that is not an object is a 400 naming it.
#[test]
fn serve_takes_chat_template_kwargs() {
    for family in THINKING {
        let m = family_model(family);
        let prompt_tokens = |s: &Server, extra: Value| -> u64 {
            let (status, body) = post(
                &s.addr,
                "/v1/chat/completions",
                None,
                &chat_body("2+2?", extra),
            );
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            v["usage"]["prompt_tokens"].as_u64().unwrap()
        };
        let off = json!({"chat_template_kwargs": {"enable_thinking": false}});
        let on = json!({"chat_template_kwargs": {"enable_thinking": true}});
        let s = Server::start_model(&m, 2, &[]);
        let (plain, closed) = (prompt_tokens(&s, json!({})), prompt_tokens(&s, off.clone()));
        assert_ne!(closed, plain);
        assert_eq!(prompt_tokens(&s, on.clone()), plain);
        let bad = chat_body("2+2?", json!({"chat_template_kwargs": 3}));
        let e = api_error(post(&s.addr, "/v1/chat/completions", None, &bad), 400);
        assert_eq!(e["param"], "chat_template_kwargs", "{e}");
        drop(s);

        let s = Server::start_model(&m, 2, &["--no-think"]);
        assert_eq!(prompt_tokens(&s, json!({})), closed);
        assert_eq!(prompt_tokens(&s, on), plain);
    }
}

/// SFT, SRL and RLVR train an adapter on the family's model; the SFT
/// adapter merges into a model of the same family, and `srl quantize`
/// converts it; both run.
#[test]
fn trains_merges_and_quantizes() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/srl-math/train.jsonl"),
    )
    .unwrap();
    for family in FAMILIES {
        let dir = temp(&format!("family-{family}"));
        let data = dir.join("train.jsonl");
        std::fs::write(
            &data,
            text.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
        )
        .unwrap();
        let m = family_model(family);
        let (m, d) = (m.to_str().unwrap(), data.to_str().unwrap());
        // SmolLM3's template adds a long system message (~950 tokens of
        // this byte-level vocabulary).
        let common = [
            "--model",
            m,
            "--data",
            d,
            "--rank",
            "4",
            "-t",
            "2",
            "--seed",
            "1",
            "--max-len",
            "2048",
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
        args.extend(&common);
        let err = String::from_utf8_lossy(&ok_output(&srl(&args)).stderr).into_owned();
        assert!(err.contains("done"), "{err}");
        let rl = |kind: &str| {
            let out = dir.join(kind);
            let mut args = vec![
                "train",
                kind,
                "--out",
                out.to_str().unwrap(),
                "--max-steps",
                "1",
            ];
            args.extend(&common);
            args.extend([
                "--batch-size",
                "1",
                "--group-size",
                "4",
                "--max-new-tokens",
                "64",
            ]);
            args.extend(["--think-budget", "4"]);
            (srl(&args), out)
        };
        let (run, out) = rl("srl");
        ok(&run);
        assert!(out.join("adapter.gguf").is_file());
        // RLVR samples and scores its rollouts on the family too. A random
        // model rarely ends on the right number: where no group has a
        // reward spread, training stops with the error that says so;
        // where one has, it trains.
        let (run, out) = rl("rlvr");
        let err = String::from_utf8_lossy(&run.stderr);
        if run.status.success() {
            assert!(out.join("adapter.gguf").is_file(), "{err}");
        } else {
            assert!(
                err.contains("the model gets no signal from this data"),
                "{err}"
            );
            assert!(err.contains("16 rollouts' rewards did not differ"), "{err}");
        }

        let merged = dir.join("merged.gguf");
        let merge = ["merge", "--model", m, "--lora", sft.to_str().unwrap()];
        ok(&srl(
            &[&merge[..], &["--out", merged.to_str().unwrap()]].concat()
        ));
        let q8 = dir.join("q8.gguf");
        ok(&srl(&[
            "quantize",
            "--type",
            "q8_0",
            merged.to_str().unwrap(),
            q8.to_str().unwrap(),
        ]));
        for file in [&merged, &q8] {
            let info = ok(&srl(&["info", file.to_str().unwrap()]));
            let arch = if *family == "llama3" { "llama" } else { family };
            // (gemma3's GELU and post-norms, SmolLM3's NoPE, ... merged)
            assert!(info.contains(&format!("architecture:   {arch}")), "{info}");
            // Llama 3's scaling survives merge and quantize.
            let scaled = info.contains("rope scaling:   per-frequency factors 1..32");
            assert_eq!(scaled, *family == "llama3", "{info}");
            let g = generate(file, &["--no-think"]);
            assert_eq!(g["ids"].as_array().unwrap().len(), 4, "{g}");
        }
        // The adapter, unmerged, gives the merged model's tokens.
        let with_lora = generate(
            Path::new(m),
            &["--no-think", "--lora", sft.to_str().unwrap()],
        );
        assert_eq!(with_lora["ids"], generate(&merged, &["--no-think"])["ids"]);
    }
}

fn ok_output(out: &std::process::Output) -> &std::process::Output {
    ok(out);
    out
}

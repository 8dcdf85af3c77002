//! `--backend llama-cpp` (cargo feature `llama-cpp`): `srl generate` and
//! `srl chat` run through llama.cpp and agree with srl's native engine token
//! for token on greedy output, with and without a LoRA adapter.
//! Run with `cargo test --release --features llama-cpp --test llamacpp_backend`.
#![cfg(feature = "llama-cpp")]

mod common;
use common::{fails_with, model, ok, run_with_input, srl};
use std::path::PathBuf;
use std::process::Command;

/// The adapter of runtime/tests/greedy_llamacpp.rs (srl train sft, rank 4).
fn adapter() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp/lora/unit_conversion.gguf")
}

/// `srl generate ... --json` on `backend`, parsed.
fn generate(backend: &str, extra: &[&str]) -> serde_json::Value {
    generate_on(&model(), backend, extra)
}

/// [`generate`] on model `m`.
fn generate_on(m: &std::path::Path, backend: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--backend",
        backend,
        "--json",
        // One thread: ggml's spinning thread pool collapses on a busy 2-core
        // CI machine (and threads do not change llama.cpp's numerics).
        "-t",
        "1",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&srl(&args))).unwrap()
}

/// Greedy ids on both backends; asserts they agree and returns llama.cpp's
/// output.
fn agree(extra: &[&str]) -> serde_json::Value {
    agree_on(&model(), extra)
}

/// [`agree`] on model `m`.
fn agree_on(m: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--temp", "0"];
    args.extend_from_slice(extra);
    let native = generate_on(m, "native", &args);
    let llama = generate_on(m, "llama-cpp", &args);
    assert_eq!(native["prompt_ids"], llama["prompt_ids"], "{extra:?}");
    assert_eq!(
        native["ids"], llama["ids"],
        "{extra:?}\nnative:    {}\nllama.cpp: {}",
        native["text"], llama["text"]
    );
    assert_eq!(native["text"], llama["text"]);
    assert_eq!(native["stop_reason"], llama["stop_reason"]);
    llama
}

#[test]
fn generate_runs_on_llamacpp() {
    let g = generate(
        "llama-cpp",
        &[
            "--prompt",
            "The capital of France is",
            "-n",
            "8",
            "--temp",
            "0",
        ],
    );
    assert_eq!(g["backend"], "llama-cpp");
    assert!(g["text"].as_str().unwrap().contains("Paris"), "{g}");
    assert_eq!(g["ids"].as_array().unwrap().len(), 8);
    let t = &g["timings"];
    assert_eq!(t["generated_tokens"], 8);
    assert_eq!(
        t["prompt_tokens"],
        g["prompt_ids"].as_array().unwrap().len()
    );
    assert!(t["generate_tokens_per_s"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["load_ms"].as_f64().unwrap() > 0.0, "{t}");
    // Streamed (not --json): the same text on stdout.
    let m = model();
    let text = ok(&srl(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--backend",
        "llama-cpp",
        "--prompt",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
        "-t",
        "1",
    ]));
    assert_eq!(text.trim_end_matches('\n'), g["text"].as_str().unwrap());
}

/// Greedy decoding gives the same token ids on both backends: raw prompts and
/// chat-templated ones (64 tokens, past end-of-generation), a stop at EOG, a
/// stop string and the repetition penalty.
#[test]
fn greedy_output_agrees_with_native() {
    for prompt in [
        "The capital of France is",
        "def fibonacci(n):",
        "1, 2, 3, 5, 8, 13, 21,",
    ] {
        agree(&["--prompt", prompt, "-n", "64", "--ignore-eos"]);
    }
    for prompt in [
        "What is the capital of France?",
        "How do I boil an egg?",
        "Write a haiku about rust.",
    ] {
        agree(&["--chat", "--prompt", prompt, "-n", "64", "--ignore-eos"]);
    }
    let g = agree(&[
        "--chat",
        "--system",
        "You are a pirate. Always answer like a pirate.",
        "--prompt",
        "What is 2+2?",
        "-n",
        "200",
    ]);
    assert_eq!(g["stop_reason"], "eog", "{g}");
    let g = agree(&[
        "--prompt",
        "The capital of France is",
        "-n",
        "32",
        "--stop",
        ".",
    ]);
    assert_eq!(g["stop_reason"], "stop_string", "{g}");
    agree(&[
        "--prompt",
        "1, 2, 3, 5, 8, 13, 21,",
        "-n",
        "48",
        "--repeat-penalty",
        "1.3",
        "--repeat-last-n",
        "16",
    ]);
}

/// With the committed adapter (given as the file, or as an adapter folder
/// holding adapter.gguf) both backends give the same greedy ids, and the
/// adapter's format ("Step 1: ...") shows.
#[test]
fn lora_adapter_agrees_with_native() {
    let ad = adapter();
    let a = ad.to_str().unwrap();
    for prompt in [
        "Convert 34 minutes to seconds.",
        "Express 13 meters in centimeters.",
        "How many grams are in 2.4 kilograms?",
    ] {
        let g = agree(&["--chat", "--prompt", prompt, "-n", "48", "--lora", a]);
        assert!(g["text"].as_str().unwrap().starts_with("Step"), "{g}");
    }
    // --lora-scale 0 is the base model; 0.5 agrees too.
    let base = agree(&[
        "--chat",
        "--prompt",
        "Convert 34 minutes to seconds.",
        "-n",
        "16",
    ]);
    let zero = agree(&[
        "--chat",
        "--prompt",
        "Convert 34 minutes to seconds.",
        "-n",
        "16",
        "--lora",
        a,
        "--lora-scale",
        "0",
    ]);
    assert_eq!(base["ids"], zero["ids"]);
    agree(&[
        "--chat",
        "--prompt",
        "Convert 34 minutes to seconds.",
        "-n",
        "32",
        "--lora",
        a,
        "--lora-scale",
        "0.5",
    ]);
    // An adapter folder as srl train writes it: adapter.gguf inside.
    let dir = std::env::temp_dir().join(format!("srl-llamacpp-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&ad, dir.join("adapter.gguf")).unwrap();
    let args = [
        "--chat",
        "--prompt",
        "Convert 34 minutes to seconds.",
        "-n",
        "24",
        "--temp",
        "0",
    ];
    let file = generate("llama-cpp", &[&args[..], &["--lora", a]].concat());
    let folder = generate(
        "llama-cpp",
        &[&args[..], &["--lora", dir.to_str().unwrap()]].concat(),
    );
    assert_eq!(file["ids"], folder["ids"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Sampling maps onto llama.cpp's samplers: a seed repeats, another differs.
#[test]
fn sampling_is_seeded() {
    let run = |seed: &str| {
        generate(
            "llama-cpp",
            &[
                "--prompt",
                "Once upon a time",
                "-n",
                "24",
                "--temp",
                "0.9",
                "--top-k",
                "40",
                "--top-p",
                "0.95",
                "--min-p",
                "0.05",
                "--seed",
                seed,
                "--ignore-eos",
            ],
        )
    };
    let (a, b, c) = (run("3"), run("3"), run("4"));
    assert_eq!(a["ids"], b["ids"]);
    assert_ne!(a["ids"], c["ids"]);
}

/// `srl chat` on llama.cpp prints what it prints on the native engine, over
/// several turns (the KV cache of earlier turns reused), a /system change
/// and a /reset.
#[test]
fn chat_agrees_with_native() {
    let m = model();
    let run = |backend: &str| {
        let out = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_srl"))
            .args([
                "chat",
                "--model",
                m.to_str().unwrap(),
                "--backend",
                backend,
                "--temp",
                "0",
                "-n",
                "24",
                "-t",
                "1",
            ]),
        b"What is 2+2?\nAnd times 3?\n/system You are a pirate.\nHello\n/reset\nWhat is the capital of France?\n/quit\n",
    );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{backend}: {stderr}");
        (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
    };
    let (native, _) = run("native");
    let (llama, stderr) = run("llama-cpp");
    assert!(stderr.contains("conversation reset"), "{stderr}");
    assert!(llama.contains("4"), "{llama}");
    assert!(llama.contains("Paris"), "{llama}");
    assert_eq!(native, llama);
}

#[test]
fn bad_requests_give_clear_errors() {
    let m = model();
    let ms = m.to_str().unwrap();
    let base = ["generate", "--model", ms, "--prompt", "hi", "-n", "2"];
    let with = |extra: &[&str]| srl(&[&base[..], extra].concat());
    fails_with(
        &with(&["--gpu-layers", "4"]),
        "--gpu-layers 4 needs the llama.cpp backend",
    );
    #[cfg(not(any(feature = "cuda", feature = "vulkan", feature = "metal")))]
    fails_with(
        &with(&["--backend", "llama-cpp", "--gpu-layers", "99"]),
        "--features cuda",
    );
    fails_with(
        &with(&[
            "--backend",
            "llama-cpp",
            "--lora",
            "/nonexistent/adapter.gguf",
        ]),
        "does not exist",
    );
    let dir = std::env::temp_dir().join(format!("srl-llamacpp-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    fails_with(
        &with(&["--backend", "llama-cpp", "--lora", dir.to_str().unwrap()]),
        "has no adapter.gguf",
    );
    // A file llama.cpp cannot load as an adapter: the base model itself.
    fails_with(
        &with(&["--backend", "llama-cpp", "--lora", ms]),
        "llama.cpp cannot load the LoRA adapter",
    );
    fails_with(&with(&["--backend", "cuda"]), "unknown backend");
    std::fs::remove_dir_all(&dir).ok();
}

/// The random-weight models of the other families (tests/data/families/,
/// see runtime/tests/greedy_llamacpp.rs) give the same greedy tokens on
/// both backends, with the family's thinking switch and a LoRA adapter.
#[test]
fn family_models_agree_on_both_backends() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/families");
    for family in ["gemma3", "llama3", "qwen3", "smollm3"] {
        let m = dir.join(format!("{family}.gguf"));
        let lora = dir.join(format!("lora/{family}.gguf"));
        let lora = lora.to_str().unwrap();
        agree_on(&m, &["--prompt", "The capital of France is", "-n", "32"]);
        let chat = [
            "--chat",
            "--prompt",
            "What is 2+2?",
            "-n",
            "32",
            "--ignore-eos",
        ];
        agree_on(&m, &chat);
        agree_on(&m, &[&chat[..], &["--no-think"]].concat());
        agree_on(&m, &[&chat[..], &["--lora", lora]].concat());
    }
}

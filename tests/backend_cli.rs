//! `--backend` in a build without the llama.cpp backend: a clear error that
//! says how to rebuild (tests/llamacpp_backend.rs covers the feature build).
#![cfg(not(feature = "llama-cpp"))]

mod common;
use common::{fails_with, model, srl};

#[test]
fn llamacpp_backend_needs_the_feature() {
    let m = model();
    let ms = m.to_str().unwrap();
    let base = ["generate", "--model", ms, "--prompt", "hi", "-n", "2"];
    let with = |extra: &[&str]| srl(&[&base[..], extra].concat());
    fails_with(
        &with(&["--backend", "llama-cpp"]),
        "rebuild it with `cargo build --release --features llama-cpp`",
    );
    fails_with(
        &srl(&["chat", "--model", ms, "--backend", "llama-cpp"]),
        "--features llama-cpp",
    );
    fails_with(
        &srl(&[
            "serve",
            "--model",
            ms,
            "--port",
            "0",
            "--backend",
            "llama-cpp",
        ]),
        "--features llama-cpp",
    );
    fails_with(
        &with(&["--gpu-layers", "4"]),
        "--gpu-layers 4 needs the llama.cpp backend",
    );
    fails_with(&with(&["--backend", "cuda"]), "unknown backend");
}

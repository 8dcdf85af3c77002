//! `srl info`: what a model file holds.

use super::common::resolve_model;
use anyhow::Context;
use srl_models::{ModelConfig, ModelFiles};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or safetensors folder [default: the default model]
    model: Option<PathBuf>,
    /// Also print every metadata entry
    #[arg(long)]
    metadata: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let path = resolve_model(a.model.as_ref())?;
    let files =
        ModelFiles::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let config = match &files {
        ModelFiles::Gguf(g) => ModelConfig::from_gguf(g),
        ModelFiles::Safetensors(s) => ModelConfig::from_hf_config(
            &s.dir.join("config.json"),
            s.tensors.contains_key("output.weight"),
        ),
    };
    println!("file:           {}", path.display());
    match &files {
        ModelFiles::Gguf(g) => {
            println!(
                "format:         GGUF v{} ({} tensors, {} metadata entries)",
                g.version,
                g.tensors.len(),
                g.metadata.len()
            );
            if let Some(n) = g.get_str("general.name") {
                println!("name:           {n}");
            }
        }
        ModelFiles::Safetensors(s) => {
            println!(
                "format:         safetensors ({} shards, {} tensors)",
                s.shard_paths().count(),
                s.tensors.len()
            );
        }
    }
    println!(
        "size:           {:.1} MiB",
        files.size_bytes() as f64 / (1 << 20) as f64
    );
    match &config {
        Ok(c) => {
            let params: usize = files
                .tensor_list()
                .iter()
                .map(|(_, _, d)| d.iter().product::<usize>())
                .sum();
            println!("architecture:   {}", c.arch.name());
            println!("parameters:     {:.1} M", params as f64 / 1e6);
            println!(
                "layers:         {}   embedding: {}   feed-forward: {}   heads: {} (kv {}, dim {})",
                c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim
            );
            println!(
                "vocab:          {}   context: {}   rope theta: {}   rms eps: {:e}",
                c.vocab_size, c.context_length, c.rope_theta, c.rms_eps
            );
            if let (Some(w), Some(n)) = (c.sliding_window, c.arch.family().global_every) {
                println!(
                    "sliding window: {w} positions on {} of every {n} layers (rope theta {})",
                    n - 1,
                    c.rope_theta_swa
                );
            }
            if let Some(f) = &c.rope_factors {
                let (lo, hi) = f
                    .iter()
                    .fold((f32::MAX, 0.0f32), |(a, b), &x| (a.min(x), b.max(x)));
                println!("rope scaling:   per-frequency factors {lo}..{hi} (Llama 3's rope_freqs)");
            }
            println!(
                "output head:    {}",
                if c.tied_embeddings {
                    "tied to the token embedding"
                } else {
                    "separate"
                }
            );
        }
        Err(e) => println!("architecture:   not runnable by srl: {e}"),
    }
    let tok = match &files {
        ModelFiles::Gguf(g) => srl_runtime::tokenizer::Tokenizer::from_gguf(g),
        ModelFiles::Safetensors(s) => srl_runtime::tokenizer::Tokenizer::from_hf_dir(&s.dir),
    };
    match &tok {
        Ok(t) => println!("tokenizer:      {}", t.describe()),
        Err(e) => println!("tokenizer:      unavailable: {e}"),
    }
    let template = match &files {
        ModelFiles::Gguf(g) => g.get_str("tokenizer.chat_template").map(str::to_string),
        ModelFiles::Safetensors(s) => std::fs::read_to_string(s.dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("chat_template")?.as_str().map(str::to_string)),
    };
    match template {
        Some(t) => println!("chat template:\n{}\n", indent(&t)),
        None => println!("chat template:  none"),
    }
    if a.metadata {
        if let ModelFiles::Gguf(g) = &files {
            println!("metadata:");
            for (k, v) in &g.metadata {
                println!("  {k} = {}", v.display(8));
            }
        }
    }
    println!("tensors:");
    for (name, ty, dims) in files.tensor_list() {
        println!("  {name:<32} {:<5} {dims:?}", ty.name());
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

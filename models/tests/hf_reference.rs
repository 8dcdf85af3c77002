//! Tiny random Hugging Face models made and run by `transformers` itself
//! (tests/data/hf/<family>/, by scripts/reference/gen_hf_reference.py):
//! srl opens each folder, and the GGUF file `srl quantize` converts it
//! to, and computes transformers' logits at every kept position, within the rounding of its inference numerics (f16 KV cache
//! and attention accumulator). The folders are as transformers 5 writes
//! them (RoPE's base and scaling under `rope_parameters`).

use srl_models::{Logits, Model, State};
use std::path::PathBuf;

/// Largest |srl - transformers| over the largest |logit|: srl's f16 cache
/// and attention accumulator against transformers' f32 (measured at most
/// 6.4e-4 here over 160 positions; leaving out the llama3 scaling gives
/// 4.5e-2, a default RoPE base 1.7e-1).
const MAX_REL: f32 = 2e-3;

#[test]
fn hf_folders_give_transformers_logits() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/hf");
    let mut report = Vec::new();
    for family in ["llama3", "qwen3", "smollm3"] {
        let dir = root.join(family);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let tokens: Vec<u32> = serde_json::from_value(doc["tokens"].clone()).unwrap();
        let positions: Vec<usize> = serde_json::from_value(doc["positions"].clone()).unwrap();
        let want: Vec<Vec<f32>> = serde_json::from_value(doc["logits"].clone()).unwrap();
        // The folder itself, and the GGUF file `srl quantize` makes of it.
        let gguf =
            std::env::temp_dir().join(format!("srl-hf-{family}-{}.gguf", std::process::id()));
        let ty = srl_quant::GgmlType::F32;
        srl_models::formats::convert::convert_hf_dir(&dir, &gguf, ty, &mut |_| {}).unwrap();
        for (what, path) in [("folder", &dir), ("converted", &gguf)] {
            let model = Model::open(path).unwrap();
            let mut kv = model.new_cache(tokens.len());
            let mut st = State::new();
            model
                .forward(&tokens, &mut kv, &mut st, Logits::All, &pool)
                .unwrap();
            let v = model.config.vocab_size;
            let scale = want.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()));
            let diff = positions
                .iter()
                .zip(&want)
                .flat_map(|(&t, row)| row.iter().enumerate().map(move |(i, x)| (t * v + i, *x)))
                .fold(0.0f32, |m, (i, x)| m.max((st.logits[i] - x).abs()));
            report.push(format!(
                "{family} ({what}): max |diff| {diff} of max |logit| {scale}"
            ));
            assert!(diff <= MAX_REL * scale, "{}", report.join("\n"));
        }
        std::fs::remove_file(&gguf).ok();
    }
    eprintln!("{}", report.join("\n"));
}

//! The real files of the model catalogue (`srl pull NAME`; fetched on first
//! use) against llama.cpp on the same file: 12 varied prompts (math, code,
//! other languages, long answers), 48 greedy tokens each. The references
//! (tests/data/real/<name>.json) were made by
//! scripts/reference/gen_real_reference.py with llama.cpp itself; they keep
//! every step's top-5 logits, not the 262k-wide first-token rows.
//!
//! Each test says what it holds srl to.

use srl_runtime::generate::GenerateParams;
use srl_runtime::{Engine, SamplerConfig};
use std::path::PathBuf;

fn model(name: &str) -> PathBuf {
    let m = srl_runtime::model_catalogue::find(name).expect("a catalogue model");
    srl_runtime::model_cache::ensure_model(m, &mut |l| eprintln!("{l}")).expect("fetch the model")
}

struct Case {
    text: String,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    /// Per step, llama.cpp's 5 largest logits (id, logit), best first.
    top5: Vec<Vec<(u32, f32)>>,
}

fn cases(reference: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/real")
        .join(reference);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ids: Vec<Vec<u32>> = serde_json::from_value(p["step_top5_ids"].clone()).unwrap();
            let lg: Vec<Vec<f32>> = serde_json::from_value(p["step_top5_logits"].clone()).unwrap();
            Case {
                text: p["text"].as_str().unwrap().to_string(),
                prompt_ids: serde_json::from_value(p["prompt_ids"].clone()).unwrap(),
                generated_ids: serde_json::from_value(p["generated_ids"].clone()).unwrap(),
                top5: ids
                    .iter()
                    .zip(&lg)
                    .map(|(i, l)| i.iter().copied().zip(l.iter().copied()).collect())
                    .collect(),
            }
        })
        .collect()
}

/// How srl's greedy run compares with llama.cpp's on one reference.
#[derive(Default)]
struct Comparison {
    report: Vec<String>,
    /// Prompts whose ids differ from llama.cpp's.
    token_ids_differ: Vec<usize>,
    /// Continuations equal for all their tokens.
    equal: usize,
    /// Per parting continuation: (prompt, token, llama.cpp's top-2
    /// margin, whether srl picked llama.cpp's second).
    partings: Vec<(usize, usize, f32, bool)>,
    /// Largest |srl - llama.cpp| of a top-5 logit before any parting.
    max_diff: f32,
}

/// Runs every case of `reference` on `engine`, teacher-forced on
/// llama.cpp's tokens one decode step at a time (as llama.cpp generated
/// them): srl's choice and logits per step.
fn compare(engine: &Engine, reference: &str) -> Comparison {
    let mut out = Comparison::default();
    let read = GenerateParams {
        max_tokens: 0,
        sampler: SamplerConfig::greedy(),
        stop: vec![],
        ignore_eog: true,
    };
    for (i, c) in cases(reference).iter().enumerate() {
        if engine.tokenize_prompt(&c.text) != c.prompt_ids {
            out.token_ids_differ.push(i);
            continue;
        }
        let mut session = engine.session(2048);
        let mut tokens = c.prompt_ids.clone();
        let (mut max_diff, mut parted) = (0.0f32, None);
        for (step, top) in c.top5.iter().enumerate() {
            session.generate(&tokens, &read, |_| true).unwrap();
            let logits = session.logits();
            let best = (0..logits.len()).fold(0, |b, j| if logits[j] > logits[b] { j } else { b });
            if best as u32 != c.generated_ids[step] {
                parted = Some((step, best as u32));
                break;
            }
            for &(id, l) in top {
                max_diff = max_diff.max((logits[id as usize] - l).abs());
            }
            tokens.push(c.generated_ids[step]);
        }
        out.max_diff = out.max_diff.max(max_diff);
        out.report.push(match parted {
            None => {
                out.equal += 1;
                format!(
                    "prompt {i:>2}: {n}/{n} tokens equal, top-5 logits max |diff| {max_diff}",
                    n = c.top5.len()
                )
            }
            Some((step, ours)) => {
                let top = &c.top5[step];
                let (margin, second) = (top[0].1 - top[1].1, top[1].0 == ours);
                out.partings.push((i, step, margin, second));
                format!(
                    "prompt {i:>2}: parts at token {step} (llama.cpp's top-2 margin {margin:.4}, srl picks {}), top-5 logits before max |diff| {max_diff}",
                    if second { "its second" } else { "another" }
                )
            }
        });
    }
    out
}

/// `name`'s file converted to `ty` by `srl quantize` (the bytes
/// `reference` was made on, checked), compared with llama.cpp.
fn compare_converted(name: &str, ty: srl_quant::GgmlType, reference: &str) -> Comparison {
    let src = srl_models::formats::gguf::GgufFile::open(model(name)).unwrap();
    let dir = std::env::temp_dir().join(format!("srl-real-{}-{}", ty.name(), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("converted.gguf");
    srl_models::formats::quantize::quantize_gguf(&src, &path, ty, &mut |_| {}).unwrap();
    let sha = srl_runtime::model_download::sha256_of(&path).unwrap();
    let engine = Engine::load(&path, 2).unwrap();
    let c = compare(&engine, reference);
    std::fs::remove_dir_all(&dir).ok();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/real")
                .join(reference),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        sha,
        doc["model_sha256"].as_str().unwrap(),
        "not the file {reference} was made on"
    );
    c
}

/// Gemma 3 270M converted to Q8_0 by `srl quantize` (the bytes the
/// reference was made on): the architecture's numbers, bit for bit with
/// llama.cpp on all 12 prompts x 48 tokens. Before srl scaled the queries
/// before attention as Gemma's graph does (their f16 rounding differs where
/// elements are tiny), 3 of 6 prompts had logits up to 0.40 off.
#[test]
fn gemma3_270m_q8_0_matches_llamacpp_exactly() {
    let c = compare_converted(
        "gemma3:270m",
        srl_quant::GgmlType::Q8_0,
        "gemma3-270m-q8_0.json",
    );
    eprintln!(
        "gemma3:270m as Q8_0 against llama.cpp\n{}",
        c.report.join("\n")
    );
    assert!(c.token_ids_differ.is_empty(), "{:?}", c.token_ids_differ);
    assert_eq!(c.equal, 12, "{}", c.report.join("\n"));
    assert_eq!(c.max_diff, 0.0, "{}", c.report.join("\n"));
}

/// Gemma 3 270M as published (Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K tensors;
/// llama.cpp repacks the Q4_K ones for its AVX2 kernels): the 262k-piece
/// SentencePiece tokenizer gives llama.cpp's ids on every prompt. The
/// continuations are not all llama.cpp's yet: llama.cpp takes tiled
/// k-quant products for 8 or more tokens and repacks the Q4_K weights,
/// whose sums are ordered otherwise than its vec_dot (which srl matches bit
/// for bit, see below), and this model amplifies the difference (top-5
/// logits up to ~1 apart). The floor
/// below is today's measure (5 of 12 equal for 48 tokens), not the target
/// (all 12, or partings at near-ties only); the report says where each
/// parts and at what margin.
#[test]
fn gemma3_270m_q4_k_m_against_llamacpp() {
    let engine = Engine::load(&model("gemma3:270m"), 2).unwrap();
    let c = compare(&engine, "gemma3-270m.json");
    eprintln!(
        "gemma3:270m (Q4_K_M) against llama.cpp\n{}",
        c.report.join("\n")
    );
    assert!(c.token_ids_differ.is_empty(), "{:?}", c.token_ids_differ);
    assert!(c.equal >= 5, "{}", c.report.join("\n"));
}

/// Qwen2.5-Coder-0.5B-Instruct converted to Q8_0 by `srl quantize`: 8 raw
/// and 4 chat prompts x 48 tokens against llama.cpp on the same bytes.
#[test]
fn qwen2_5_coder_0_5b_q8_0_against_llamacpp() {
    let c = compare_converted(
        "qwen2.5-coder:0.5b",
        srl_quant::GgmlType::Q8_0,
        "qwen2.5-coder-0.5b-q8_0.json",
    );
    eprintln!(
        "qwen2.5-coder:0.5b as Q8_0 against llama.cpp\n{}",
        c.report.join("\n")
    );
    assert!(c.token_ids_differ.is_empty(), "{:?}", c.token_ids_differ);
    assert_eq!(c.equal, 12, "{}", c.report.join("\n"));
    assert_eq!(c.max_diff, 0.0, "{}", c.report.join("\n"));
}

/// A parting counts as a near-tie where llama.cpp's top-2 logits were
/// closer than this and srl picked llama.cpp's second.
const NEAR_TIE: f32 = 0.1;

/// Qwen2.5-Coder-0.5B-Instruct as published (Q4_K_M, made from the AWQ
/// checkpoint): token ids equal on every prompt, chat templates included;
/// every continuation equals llama.cpp's or parts from it at a near-tie
/// (measured: 8 of 12 equal, the 4 others at margins 0.004-0.067, srl
/// picking llama.cpp's second each time; top-5 logits up to 0.35 apart
/// before, from the k-quant products).
#[test]
fn qwen2_5_coder_0_5b_q4_k_m_against_llamacpp() {
    let engine = Engine::load(&model("qwen2.5-coder:0.5b"), 2).unwrap();
    let c = compare(&engine, "qwen2.5-coder-0.5b.json");
    eprintln!(
        "qwen2.5-coder:0.5b (Q4_K_M) against llama.cpp\n{}",
        c.report.join("\n")
    );
    assert!(c.token_ids_differ.is_empty(), "{:?}", c.token_ids_differ);
    for &(prompt, token, margin, second) in &c.partings {
        assert!(
            margin < NEAR_TIE && second,
            "prompt {prompt} parts at token {token} where llama.cpp's margin is {margin}\n{}",
            c.report.join("\n")
        );
    }
    assert!(c.equal >= 8, "{}", c.report.join("\n"));
}

/// The published Q4_K_M files against llama.cpp with every product through
/// ggml's vec_dot (no CPU_REPACK buffers, GGML_CPU_TILED_MM=0; see
/// scripts/reference/gen_real_reference.py): bit for bit, 12 prompts x 48
/// tokens each. What parts the default llama.cpp from srl on these files
/// is therefore its two other k-quant paths: the tiled products it takes
/// for 8 or more tokens (since 0.5.0) and the Q4_K weights it repacks for
/// its AVX2 kernels; prompts of up to 6 tokens, below the tiled path's
/// floor, already match it exactly on the files as Q4_K_M.
#[test]
fn q4_k_m_files_match_llamacpp_vec_dot_exactly() {
    for (name, reference) in [
        ("gemma3:270m", "gemma3-270m-vecdot.json"),
        ("qwen2.5-coder:0.5b", "qwen2.5-coder-0.5b-vecdot.json"),
    ] {
        let engine = Engine::load(&model(name), 2).unwrap();
        let c = compare(&engine, reference);
        eprintln!(
            "{name} against llama.cpp's vec_dot path\n{}",
            c.report.join("\n")
        );
        assert!(c.token_ids_differ.is_empty(), "{:?}", c.token_ids_differ);
        assert_eq!(c.equal, 12, "{name}\n{}", c.report.join("\n"));
        assert_eq!(c.max_diff, 0.0, "{name}\n{}", c.report.join("\n"));
    }
}

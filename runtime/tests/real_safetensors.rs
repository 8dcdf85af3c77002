//! The default model written as a Hugging Face safetensors folder (weights
//! dequantized to F16, Q/K rows in Hugging Face's layout) gives the logits of
//! the same weights written as an F16 GGUF (llama.cpp's layout).

use srl_models::formats::gguf::{GgufFile, GgufValue, GgufWriter};
use srl_models::formats::safetensors::hf_name_of_gguf;
use srl_models::layers::rope::gguf_rows_to_hf;
use srl_models::{Logits, Model, ModelConfig, State};
use srl_quant::GgmlType;
use std::path::PathBuf;

fn model() -> PathBuf {
    srl_runtime::model_cache::test_model_path()
}

fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

#[test]
fn safetensors_copy_of_the_default_model_gives_the_same_logits() {
    let src = GgufFile::open(model()).unwrap();
    let cfg = ModelConfig::from_gguf(&src).unwrap();
    let dir = std::env::temp_dir().join(format!("srl-real-st-{}", std::process::id()));
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();

    // The same f16 weights in both files; only the layout and format differ.
    let mut gguf = GgufWriter::new();
    for (k, v) in &src.metadata {
        if k != "general.file_type" {
            gguf.set(k, v.clone());
        }
    }
    gguf.set("general.file_type", GgufValue::U32(1));
    let mut st: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for t in &src.tensors {
        let mut x = vec![0.0f32; t.n_elements()];
        srl_quant::dequantize_row(t.ty, src.tensor_data(t), &mut x).unwrap();
        let ty = if t.dims.len() == 1 {
            GgmlType::F32
        } else {
            GgmlType::F16
        };
        let bytes = if ty == GgmlType::F32 {
            x.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            f16_bytes(&x)
        };
        gguf.add_tensor(&t.name, ty, &t.dims, bytes).unwrap();
        if t.name.contains("attn_q.") || t.name.contains("attn_k.") {
            x = gguf_rows_to_hf(&x, t.dims[0], cfg.head_dim);
        }
        let hf_bytes = if ty == GgmlType::F32 {
            x.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            f16_bytes(&x)
        };
        st.push((
            hf_name_of_gguf(&t.name).unwrap(),
            hf_bytes,
            t.dims.iter().rev().copied().collect(),
        ));
    }
    gguf.write(&dir.join("model.gguf")).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .iter()
        .map(|(n, b, s)| {
            let dt = if s.len() == 1 {
                safetensors::Dtype::F32
            } else {
                safetensors::Dtype::F16
            };
            (
                n.clone(),
                safetensors::tensor::TensorView::new(dt, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &hf.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": cfg.n_embd, "intermediate_size": cfg.n_ff,
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head_kv, "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length, "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_eps, "tie_word_embeddings": true,
    });
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // "The capital of France is" and a few more tokens.
    let tokens = [504u32, 3575, 282, 4649, 314, 7042, 30, 378, 1345];
    let logits = |path: &std::path::Path| {
        let m = Model::open(path).unwrap();
        let mut kv = m.new_cache(64);
        let mut s = State::new();
        m.forward(&tokens, &mut kv, &mut s, Logits::All, &pool)
            .unwrap();
        s.logits.clone()
    };
    let a = logits(&dir.join("model.gguf"));
    let b = logits(&hf);
    std::fs::remove_dir_all(&dir).ok();
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    eprintln!("gguf vs safetensors: max |diff| {diff} (max |logit| {scale})");
    // Same weights and numerics; only the order of q/k elements inside the
    // attention dot products differs, i.e. f32 rounding.
    assert!(diff < 2e-3 * scale, "max |diff| {diff}");
    let top = |v: &[f32]| {
        v.iter()
            .enumerate()
            .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
    };
    for t in 0..tokens.len() {
        let n = cfg.vocab_size;
        assert_eq!(
            top(&a[t * n..(t + 1) * n]),
            top(&b[t * n..(t + 1) * n]),
            "token {t}"
        );
    }
}

//! LoRA at inference: base + adapter gives the logits of the merged weights
//! W + scale * B A, for both architectures (llama's Q/K adapters in GGUF's
//! permuted row order); adapters for another base are refused.

use srl_models::formats::gguf::{GgufValue, GgufWriter};
use srl_models::layers::rope::hf_rows_to_gguf;
use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{Arch, Logits, LoraAdapter, Model, State};
use srl_quant::GgmlType;
use std::path::Path;

const TOKENS: [u32; 6] = [5, 77, 300, 12, 12, 200];
const TARGETS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

fn logits(model: &Model) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut kv = model.new_cache(32);
    let mut st = State::new();
    model
        .forward(&TOKENS, &mut kv, &mut st, Logits::All, &pool)
        .unwrap();
    st.logits.clone()
}

/// Writes a random rank-`r` adapter for every target of every layer and
/// returns, per weight, B A in Hugging Face layout ([out, in]).
fn write_adapter(w: &TinyWeights, path: &Path, r: usize, alpha: f32) -> Vec<(String, Vec<f32>)> {
    write_adapter_and_peft(w, path, None, r, alpha)
}

/// Also writes the same adapter as a PEFT folder when `peft` is given.
fn write_adapter_and_peft(
    w: &TinyWeights,
    path: &Path,
    peft: Option<&Path>,
    r: usize,
    alpha: f32,
) -> Vec<(String, Vec<f32>)> {
    let mut peft_tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    let spec = &w.spec;
    let mut seed = 99u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.1
    };
    let mut gw = GgufWriter::new();
    gw.set(
        "general.architecture",
        GgufValue::String(spec.arch.name().into()),
    );
    gw.set("general.type", GgufValue::String("adapter".into()));
    gw.set("adapter.type", GgufValue::String("lora".into()));
    gw.set("adapter.lora.alpha", GgufValue::F32(alpha));
    let mut deltas = Vec::new();
    for l in 0..spec.n_layer {
        for t in TARGETS {
            let name = format!("blk.{l}.{t}.weight");
            let shape = &w.tensors[&name].1;
            let (out, inp) = (shape[0], shape[1]);
            let a: Vec<f32> = (0..r * inp).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..out * r).map(|_| rnd()).collect();
            let mut ba = vec![0.0f32; out * inp];
            for o in 0..out {
                for i in 0..inp {
                    ba[o * inp + i] = (0..r).map(|k| b[o * r + k] * a[k * inp + i]).sum();
                }
            }
            deltas.push((name.clone(), ba));
            let stem = format!(
                "base_model.model.{}",
                srl_models::formats::safetensors::hf_name_of_gguf(&name)
                    .unwrap()
                    .trim_end_matches(".weight")
            );
            let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            peft_tensors.push((format!("{stem}.lora_A.weight"), le(&a), vec![r, inp]));
            peft_tensors.push((format!("{stem}.lora_B.weight"), le(&b), vec![out, r]));
            let b_file = if spec.arch.family().gguf_permutes_qk && (t == "attn_q" || t == "attn_k")
            {
                hf_rows_to_gguf(&b, r, spec.head_dim())
            } else {
                b
            };
            let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            gw.add_tensor(
                &format!("{name}.lora_a"),
                GgmlType::F32,
                &[inp, r],
                bytes(&a),
            )
            .unwrap();
            gw.add_tensor(
                &format!("{name}.lora_b"),
                GgmlType::F32,
                &[r, out],
                bytes(&b_file),
            )
            .unwrap();
        }
    }
    gw.write(path).unwrap();
    if let Some(dir) = peft {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = serde_json::json!({"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj"]});
        std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
        let views: Vec<(String, safetensors::tensor::TensorView)> = peft_tensors
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, &None, &dir.join("adapter_model.safetensors"))
            .unwrap();
    }
    deltas
}

#[test]
fn adapter_equals_merged_weights() {
    let dir = std::env::temp_dir().join(format!("srl-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in Arch::ALL {
        let w = TinyWeights::random(&TinySpec::new(arch));
        let base = dir.join(format!("{}-base.gguf", arch.name()));
        let adapter = dir.join(format!("{}-lora.gguf", arch.name()));
        w.write_gguf(&base, GgmlType::F32);
        let (r, alpha, user_scale) = (4, 8.0, 0.5);
        let deltas = write_adapter(&w, &adapter, r, alpha);
        let scale = user_scale * alpha / r as f32;
        let mut merged = TinyWeights::random(&TinySpec::new(arch));
        for (name, d) in &deltas {
            let t = merged.tensors.get_mut(name).unwrap();
            for (x, dx) in t.0.iter_mut().zip(d) {
                *x += scale * dx;
            }
        }
        let merged_path = dir.join(format!("{}-merged.gguf", arch.name()));
        merged.write_gguf(&merged_path, GgmlType::F32);

        let mut model = Model::open(&base).unwrap();
        let plain = logits(&model);
        model
            .add_lora(LoraAdapter::open(&adapter).unwrap(), user_scale)
            .unwrap();
        let with = logits(&model);
        let want = logits(&Model::open(&merged_path).unwrap());
        let scale_of = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        };
        let err = diff(&with, &want) / scale_of(&want);
        assert!(
            err < 1e-3,
            "{}: adapter vs merged relative error {err}",
            arch.name()
        );
        assert!(
            diff(&plain, &want) / scale_of(&want) > 20.0 * err,
            "{}: the adapter must change the output",
            arch.name()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn adapters_for_another_base_are_refused() {
    let dir = std::env::temp_dir().join(format!("srl-lora-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = TinyWeights::random(&TinySpec::new(Arch::Qwen2));
    let adapter = dir.join("lora.gguf");
    write_adapter(&small, &adapter, 2, 0.0);
    // Same architecture, other sizes.
    let mut spec = TinySpec::new(Arch::Qwen2);
    spec.n_ff = 768;
    let other = dir.join("other.gguf");
    TinyWeights::random(&spec).write_gguf(&other, GgmlType::F32);
    let mut model = Model::open(&other).unwrap();
    let e = model
        .add_lora(LoraAdapter::open(&adapter).unwrap(), 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lora.gguf") && e.contains("adapter for the wrong base"),
        "{e}"
    );
    // Other architecture.
    let llama = dir.join("llama.gguf");
    TinyWeights::random(&TinySpec::new(Arch::Llama)).write_gguf(&llama, GgmlType::F32);
    let mut model = Model::open(&llama).unwrap();
    let e = model
        .add_lora(LoraAdapter::open(&adapter).unwrap(), 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("for architecture 'qwen2'"), "{e}");
    // Not an adapter at all.
    let e = LoraAdapter::open(&llama).err().unwrap().to_string();
    assert!(e.contains("not a LoRA adapter"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A PEFT folder holding the same adapter gives the same logits as the GGUF
/// adapter (Q/K rows moved into llama's GGUF layout on load).
#[test]
fn peft_folder_equals_gguf_adapter() {
    let dir = std::env::temp_dir().join(format!("srl-lora-peft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in Arch::ALL {
        let w = TinyWeights::random(&TinySpec::new(arch));
        let base = dir.join(format!("{}-base.gguf", arch.name()));
        w.write_gguf(&base, GgmlType::F32);
        let gguf = dir.join(format!("{}-lora.gguf", arch.name()));
        let peft = dir.join(format!("{}-peft", arch.name()));
        write_adapter_and_peft(&w, &gguf, Some(&peft), 4, 8.0);
        let mut a = Model::open(&base).unwrap();
        a.add_lora(LoraAdapter::open(&gguf).unwrap(), 0.7).unwrap();
        let mut b = Model::open(&base).unwrap();
        b.add_lora(LoraAdapter::open(&peft).unwrap(), 0.7).unwrap();
        assert_eq!(logits(&a), logits(&b), "{}", arch.name());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gguf_adapter_on_a_hugging_face_llama_folder() {
    // A GGUF adapter holds llama Q/K rows in GGUF order; a llama base read
    // from a safetensors folder runs in Hugging Face order (this once applied
    // the rows unpermuted).
    let dir = std::env::temp_dir().join(format!("srl-lora-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = TinyWeights::random(&TinySpec::new(Arch::Llama));
    let (gguf, hf, adapter) = (dir.join("base.gguf"), dir.join("hf"), dir.join("a.gguf"));
    w.write_gguf(&gguf, GgmlType::F32);
    w.write_safetensors(&hf);
    write_adapter(&w, &adapter, 4, 8.0);
    let mut on_gguf = Model::open(&gguf).unwrap();
    on_gguf
        .add_lora(LoraAdapter::open(&adapter).unwrap(), 1.0)
        .unwrap();
    let mut on_hf = Model::open(&hf).unwrap();
    let plain = logits(&on_hf);
    on_hf
        .add_lora(LoraAdapter::open(&adapter).unwrap(), 1.0)
        .unwrap();
    let (a, b) = (logits(&on_gguf), logits(&on_hf));
    let max = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    let changed = plain
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff < 1e-3 * max,
        "GGUF vs HF base with the same adapter: {diff}"
    );
    assert!(changed > 20.0 * diff, "the adapter must change the output");
    std::fs::remove_dir_all(&dir).ok();
}

//! Converting a Hugging Face safetensors folder (config.json, one or more
//! .safetensors files, tokenizer.json, tokenizer_config.json) to a GGUF file
//! that llama.cpp loads, as its convert_hf_to_gguf.py does for llama and
//! qwen2, with the matrices quantized on the way (convert_hf_to_gguf followed
//! by llama-quantize for a "pure" type, in one pass):
//!
//! - metadata: `general.*`, the `{arch}.*` sizes and constants from
//!   config.json, `general.file_type`, `general.quantization_version`, and
//!   the tokenizer (see [`tokenizer`]);
//! - tensors: GGUF names ([`crate::formats::safetensors::gguf_name_of_hf`]); llama's
//!   Q/K rows permuted to GGUF's layout ([`crate::layers::rope::gguf_row_of_hf_row`];
//!   qwen2 keeps Hugging Face's); 1-D tensors (norms, biases) in F32;
//!   matrices in the target type, or llama.cpp's fallback type when their
//!   rows do not fit its blocks; a tied output head is not written.

mod tokenizer;

use crate::error::{ModelError, Result};
use crate::formats::files::ModelFiles;
use crate::formats::gguf::{GgufValue, GgufWriter};
use crate::formats::quantize::{fallback, writable_file_type, QuantizeSummary};
use crate::formats::safetensors::SafetensorsEntry;
use crate::layers::rope::{hf_row_of_gguf_row, hf_rows_to_gguf};
use crate::Model;
use rayon::prelude::*;
use serde_json::Value;
use srl_quant::GgmlType;
use std::borrow::Cow;
use std::path::Path;

/// Writes the model in the Hugging Face folder `dir` to `out` (atomically)
/// as GGUF with its matrices in `ty`. `log` receives progress and notes.
pub fn convert_hf_dir(
    dir: &Path,
    out: &Path,
    ty: GgmlType,
    log: &mut dyn FnMut(&str),
) -> Result<QuantizeSummary> {
    let file_type = writable_file_type(ty, out)?;
    // Opening the folder as a model checks config.json and every tensor's shape.
    let model = Model::open(dir)?;
    let ModelFiles::Safetensors(st) = &model.files else {
        return Err(ModelError::format(dir, "not a safetensors folder"));
    };
    let cfg = &model.config;
    let config_path = dir.join("config.json");
    let hf: Value = std::fs::read_to_string(&config_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);

    let arch = cfg.arch.name();
    let mut w = GgufWriter::new();
    let name = hf
        .get("_name_or_path")
        .and_then(Value::as_str)
        .and_then(|p| p.rsplit('/').find(|s| !s.is_empty()))
        .map(str::to_string)
        .or_else(|| {
            dir.canonicalize()
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "model".into());
    w.set("general.architecture", GgufValue::String(arch.into()));
    w.set("general.type", GgufValue::String("model".into()));
    w.set("general.name", GgufValue::String(name));
    let u = |v: usize| GgufValue::U32(v as u32);
    let key = |k: &str| format!("{arch}.{k}");
    w.set(&key("block_count"), u(cfg.n_layer));
    w.set(&key("context_length"), u(cfg.context_length));
    w.set(&key("embedding_length"), u(cfg.n_embd));
    w.set(&key("feed_forward_length"), u(cfg.n_ff));
    w.set(&key("attention.head_count"), u(cfg.n_head));
    w.set(&key("attention.head_count_kv"), u(cfg.n_head_kv));
    w.set(&key("rope.freq_base"), GgufValue::F32(cfg.rope_theta));
    w.set(
        &key("attention.layer_norm_rms_epsilon"),
        GgufValue::F32(cfg.rms_eps),
    );
    if hf.get("head_dim").is_some_and(|v| !v.is_null()) {
        w.set(&key("attention.key_length"), u(cfg.head_dim));
        w.set(&key("attention.value_length"), u(cfg.head_dim));
    }
    w.set("general.file_type", GgufValue::U32(file_type));
    w.set(&key("vocab_size"), u(cfg.vocab_size));
    w.set(&key("rope.dimension_count"), u(cfg.head_dim));
    match tokenizer::tokenizer_metadata(dir, cfg.vocab_size, cfg.arch)? {
        Some(t) => {
            log(&format!("tokenizer: {}", t.description));
            for (k, v) in t.keys {
                w.set(&k, v);
            }
        }
        None => log(
            "note: no tokenizer.json in the folder: the GGUF file has no tokenizer \
             (srl can run it on token ids; llama.cpp will not load it)",
        ),
    }
    w.set("general.quantization_version", GgufValue::U32(2));

    // Tensors in llama.cpp's order: embedding, blocks, output norm and head.
    let mut entries: Vec<(&String, &SafetensorsEntry)> = st.tensors.iter().collect();
    entries.sort_by_key(|(name, _)| {
        let layer = name
            .strip_prefix("blk.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(l, _)| l.parse::<usize>().ok());
        match (name.as_str(), layer) {
            ("token_embd.weight", _) => (0, 0, (*name).clone()),
            (_, Some(l)) => (1, l, (*name).clone()),
            _ => (2, 0, (*name).clone()),
        }
    });
    let mut summary = QuantizeSummary {
        bytes_in: st.total_size(),
        ..Default::default()
    };
    // Llama 3's RoPE scaling, as llama.cpp's converter writes it (Model::open
    // refused the kinds srl does not run).
    if let Some(f) = &cfg.rope_factors {
        let bytes: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.add_tensor("rope_freqs.weight", GgmlType::F32, &[f.len()], bytes)
            .map_err(|m| ModelError::format(st.dir.as_path(), m))?;
    }
    let total = entries.len();
    for (i, (name, e)) in entries.into_iter().enumerate() {
        if *name == e.hf_name {
            if e.hf_name.ends_with("rotary_emb.inv_freq") {
                continue;
            }
            return Err(ModelError::format(
                st.dir.as_path(),
                format!(
                    "tensor '{}' has no GGUF name (srl converts llama and qwen2 models)",
                    e.hf_name
                ),
            ));
        }
        if name.as_str() == "output.weight" && cfg.tied_embeddings {
            log("note: lm_head.weight is tied to the token embedding; not written");
            continue;
        }
        let permute = cfg.arch.family().gguf_permutes_qk
            && (name.contains(".attn_q.") || name.contains(".attn_k."));
        let target = if e.dims.len() == 1 || name.ends_with("_norm.weight") {
            GgmlType::F32
        } else if ty.row_bytes(e.dims[0]).is_some() {
            ty
        } else {
            summary.fallbacks.push((name.clone(), fallback(ty)));
            fallback(ty)
        };
        let data = convert_tensor(
            st.tensor_data(e),
            e,
            target,
            permute.then_some(cfg.head_dim),
        )?;
        w.add_tensor(name, target, &e.dims, data)
            .map_err(|m| ModelError::format(st.dir.as_path(), m))?;
        summary.tensors += 1;
        if e.dims.len() > 1 {
            summary.quantized += 1;
        }
        if (i + 1) % 32 == 0 || i + 1 == total {
            log(&format!("[{}/{total}] {name} -> {}", i + 1, target.name()));
        }
    }
    w.write(out)?;
    summary.bytes_out = std::fs::metadata(out)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    Ok(summary)
}

/// One tensor's bytes in `target`, rows reordered from Hugging Face's to
/// GGUF's llama layout when `permute_head_dim` is given. Borrows the source
/// bytes when nothing changes.
fn convert_tensor<'a>(
    src: &'a [u8],
    e: &SafetensorsEntry,
    target: GgmlType,
    permute_head_dim: Option<usize>,
) -> Result<Cow<'a, [u8]>> {
    if target == e.ty && permute_head_dim.is_none() {
        return Ok(Cow::Borrowed(src));
    }
    if e.dims.len() == 1 {
        // A norm or bias (target F32): its elements are the rows.
        let mut x = vec![0.0f32; e.dims[0]];
        srl_quant::dequantize_row(e.ty, src, &mut x)?;
        if let Some(hd) = permute_head_dim {
            x = hf_rows_to_gguf(&x, 1, hd);
        }
        let mut out = vec![0u8; target.row_bytes(x.len()).expect("F32")];
        srl_quant::quantize_row(target, &x, &mut out)?;
        return Ok(Cow::Owned(out));
    }
    let cols = e.dims[0];
    let n_rows = e.dims[1..].iter().product::<usize>();
    let in_rb = e.ty.row_bytes(cols).expect("F32, F16 and BF16 fit any row");
    let out_rb = target
        .row_bytes(cols)
        .expect("the target type fits (checked by the caller)");
    let source_row = |r: usize| match permute_head_dim {
        Some(hd) => hf_row_of_gguf_row(r, hd),
        None => r,
    };
    let mut out = vec![0u8; out_rb * n_rows];
    out.par_chunks_mut(out_rb).enumerate().try_for_each_init(
        || vec![0.0f32; cols],
        |row, (r, dst)| {
            let s = source_row(r);
            let src_row = &src[s * in_rb..(s + 1) * in_rb];
            if target == e.ty {
                dst.copy_from_slice(src_row);
                return Ok(());
            }
            srl_quant::dequantize_row(e.ty, src_row, row)?;
            srl_quant::quantize_row(target, row, dst)
        },
    )?;
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TinySpec, TinyWeights};
    use crate::{Arch, Logits, State};

    fn logits(path: &Path, tokens: &[u32]) -> Vec<f32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let m = Model::open(path).unwrap();
        let mut kv = m.new_cache(64);
        let mut s = State::new();
        m.forward(tokens, &mut kv, &mut s, Logits::All, &pool)
            .unwrap();
        s.logits.clone()
    }

    /// Relative logit difference allowed where only the order of f32 sums
    /// differs (it grows with depth: 1.4e-5 measured with 2 layers, 1.3e-4
    /// and 1.7e-4 for Llama and SmolLM3 with 4).
    const F32_ROUNDING: f32 = 3e-4;

    /// A tiny random model of each architecture, converted to F32 GGUF, gives
    /// the logits of its safetensors folder (llama's Q/K rows change order;
    /// results differ only by f32 rounding).
    #[test]
    fn converted_tiny_models_give_the_folder_logits() {
        let mut llama3 = TinySpec::new(Arch::Llama);
        llama3.llama3_rope = true;
        let specs = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::SmolLm3]
            .map(TinySpec::new)
            .into_iter()
            .chain([llama3]);
        for (i, spec) in specs.enumerate() {
            let arch = spec.arch;
            let dir = std::env::temp_dir().join(format!(
                "srl-convert-{}-{i}-{}",
                arch.name(),
                std::process::id()
            ));
            let hf = dir.join("hf");
            let weights = TinyWeights::random(&spec);
            weights.write_safetensors(&hf);
            let out = dir.join("tiny.gguf");
            let s = convert_hf_dir(&hf, &out, GgmlType::F32, &mut |_| {}).unwrap();
            let tokens = [3u32, 17, 250, 9, 101, 64, 7];
            let (a, b) = (logits(&hf, &tokens), logits(&out, &tokens));
            let g = crate::formats::gguf::GgufFile::open(&out).unwrap();
            std::fs::remove_dir_all(&dir).ok();
            // Llama 3's scaling becomes rope_freqs.weight, as llama.cpp's
            // converter writes it.
            let extra = spec.llama3_rope as usize;
            assert_eq!(s.tensors, weights.tensors.len(), "{arch:?}");
            assert_eq!(g.tensors.len(), weights.tensors.len() + extra);
            assert_eq!(
                g.tensor_info("rope_freqs.weight").is_some(),
                spec.llama3_rope
            );
            assert_eq!(
                g.tensor_info("output.weight").is_none(),
                weights.spec.tied,
                "{arch:?}"
            );
            assert_eq!(g.get_str("general.architecture"), Some(arch.name()));
            assert_eq!(g.get_u64("general.file_type"), Some(0));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            eprintln!("{arch:?}: max |diff| {diff} (max |logit| {scale})");
            assert!(
                diff <= F32_ROUNDING * scale,
                "{arch:?}: max |diff| {diff} of {scale}"
            );
        }
    }

    /// Quantized conversion writes the tensors the tiny-model GGUF writer
    /// does (llama.cpp's layout): the same bytes, so the same logits.
    #[test]
    fn quantized_conversion_matches_the_gguf_writer() {
        for (arch, ty) in [(Arch::Llama, GgmlType::Q8_0), (Arch::Qwen2, GgmlType::Q4_K)] {
            let dir = std::env::temp_dir().join(format!(
                "srl-convert-q-{}-{}",
                arch.name(),
                std::process::id()
            ));
            let weights = TinyWeights::random(&TinySpec::new(arch));
            weights.write_safetensors(&dir.join("hf"));
            weights.write_gguf(&dir.join("direct.gguf"), ty);
            let out = dir.join("converted.gguf");
            convert_hf_dir(&dir.join("hf"), &out, ty, &mut |_| {}).unwrap();
            let g = crate::formats::gguf::GgufFile::open(&out).unwrap();
            let d = crate::formats::gguf::GgufFile::open(dir.join("direct.gguf")).unwrap();
            assert_eq!(g.tensors.len(), d.tensors.len());
            for t in &d.tensors {
                let c = g.tensor_info(&t.name).unwrap();
                assert_eq!((c.ty, &c.dims), (t.ty, &t.dims), "{}", t.name);
                assert!(g.tensor_data(c) == d.tensor_data(t), "{} differs", t.name);
            }
            let tokens = [1u32, 2, 3, 300];
            let (a, b) = (
                logits(&out, &tokens),
                logits(&dir.join("direct.gguf"), &tokens),
            );
            std::fs::remove_dir_all(&dir).ok();
            assert_eq!(a, b, "{arch:?}");
        }
    }

    #[test]
    fn refuses_types_it_cannot_write() {
        let dir = std::env::temp_dir().join(format!("srl-convert-bad-{}", std::process::id()));
        TinyWeights::random(&TinySpec::new(Arch::Llama)).write_safetensors(&dir);
        let err = convert_hf_dir(&dir, &dir.join("x.gguf"), GgmlType::Q8_K, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("cannot quantize to q8_K"), "{err}");
    }
}

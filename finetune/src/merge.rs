//! Merging an adapter into its GGUF base: a standalone model whose adapted
//! weights are `W' = W + scale * B A` (scale = alpha / r), as llama.cpp's
//! export-lora computes them.
//!
//! Each adapted matrix is dequantized a row at a time, its update added, and
//! the row quantized again: to the tensor's own type, or to `ty` when one is
//! given (with llama-quantize's fallback when rows do not fit `ty`'s blocks).
//! Other tensors are copied, or requantized to `ty` as `srl quantize` does
//! (1-D tensors stay as they are). Tied embeddings are never adapted, so the
//! output head needs nothing.

use crate::adapter_files::Result;
use rayon::prelude::*;
use srl_models::formats::gguf::{GgufValue, GgufWriter, TensorInfo};
use srl_models::formats::quantize::{fallback, file_type_of};
use srl_models::{LoraParams, LoraTensor, Model, ModelError};
use srl_quant::GgmlType;
use std::collections::HashMap;
use std::path::Path;

/// What a merge did.
#[derive(Debug, Default)]
pub struct MergeSummary {
    pub tensors: usize,
    /// Matrices that received an adapter update.
    pub merged: usize,
    /// Matrices written in another type than the base's.
    pub requantized: usize,
    /// Tensors written in a fallback type because their rows do not fit.
    pub fallbacks: Vec<(String, GgmlType)>,
    /// The factor applied to B A.
    pub scale: f32,
    pub bytes_out: usize,
}

fn config_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Writes `model` (a GGUF base) with `params` merged into it to `out`
/// (atomically), its matrices in `ty` if given. To merge at a user scale,
/// scale `params`' B matrices first. Adapters applied to `model` for
/// inference are not part of the merge: pass the adapter as `params`
/// ([`crate::adapter_files::read_adapter`] reads one from files).
pub fn merge_to_gguf(
    model: &Model,
    params: &LoraParams,
    out: &Path,
    ty: Option<GgmlType>,
    log: &mut dyn FnMut(&str),
) -> Result<MergeSummary> {
    let Some(src) = model.files.gguf() else {
        return Err(config_err(
            model.files.path(),
            "merge needs a GGUF base model (this is a safetensors folder)",
        ));
    };
    if !model.adapters.is_empty() {
        return Err(config_err(
            src.path(),
            "the model has adapters applied; merge takes the adapter as LoraParams",
        ));
    }
    if same_file(src.path(), out) {
        return Err(config_err(out, "the merged model would overwrite its base"));
    }
    params.check_fits(&model.config, src.path())?;
    if let Some(ty) = ty {
        if file_type_of(ty).is_none() || !ty.can_quantize() {
            return Err(config_err(
                out,
                format!(
                    "cannot write {}: not a storage type srl can write",
                    ty.name()
                ),
            ));
        }
    }
    let scale = params.config.scale();
    let by_name: HashMap<String, &LoraTensor> =
        params.tensors.iter().map(|t| (t.base_name(), t)).collect();

    let mut w = GgufWriter::new();
    for (k, v) in &src.metadata {
        w.set(k, v.clone());
    }
    if let Some(ty) = ty {
        w.set(
            "general.file_type",
            GgufValue::U32(file_type_of(ty).expect("checked")),
        );
        w.set("general.quantization_version", GgufValue::U32(2));
    }
    let mut summary = MergeSummary {
        tensors: src.tensors.len(),
        scale,
        ..Default::default()
    };
    let total = src.tensors.len();
    for (i, t) in src.tensors.iter().enumerate() {
        if i % 32 == 0 {
            log(&format!("[{}/{total}] {}", i + 1, t.name));
        }
        let data = src.tensor_data(t);
        let lora = by_name.get(&t.name).copied();
        let wanted = match (lora, ty) {
            (_, _) if t.dims.len() == 1 => None,
            (_, Some(ty)) => Some(ty),
            // An adapted matrix keeps its type if srl can write it.
            (Some(_), None) if t.ty.can_quantize() => Some(t.ty),
            (Some(_), None) => Some(GgmlType::F16),
            (None, None) => None,
        };
        let Some(mut target) = wanted else {
            w.add_tensor(&t.name, t.ty, &t.dims, data)
                .map_err(|e| config_err(src.path(), e))?;
            continue;
        };
        if target.row_bytes(t.dims[0]).is_none() {
            target = fallback(target);
            summary.fallbacks.push((t.name.clone(), target));
        }
        if lora.is_none() && target == t.ty {
            w.add_tensor(&t.name, t.ty, &t.dims, data)
                .map_err(|e| config_err(src.path(), e))?;
            continue;
        }
        let bytes = convert_rows(t, data, target, lora.map(|l| (l, scale)))?;
        w.add_tensor(&t.name, target, &t.dims, bytes)
            .map_err(|e| config_err(src.path(), e))?;
        summary.merged += lora.is_some() as usize;
        summary.requantized += (target != t.ty) as usize;
    }
    if summary.merged != params.tensors.len() {
        // check_fits passed, so every adapted weight is in the model's config;
        // a file without one of them would not have opened as a Model.
        return Err(config_err(
            src.path(),
            format!(
                "only {} of the adapter's {} weights were found in the file",
                summary.merged,
                params.tensors.len()
            ),
        ));
    }
    w.write(out)?;
    summary.bytes_out = std::fs::metadata(out)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    Ok(summary)
}

/// Rows of `t` dequantized, updated by `scale * B A` when `lora` is given
/// (row r gains `scale * sum_k B[r, k] A[k, :]`), and quantized to `target`.
/// Rows are independent: done in parallel.
fn convert_rows(
    t: &TensorInfo,
    data: &[u8],
    target: GgmlType,
    lora: Option<(&LoraTensor, f32)>,
) -> Result<Vec<u8>> {
    let cols = t.dims[0];
    let n_rows = t.n_elements() / cols;
    let in_rb = t.ty.row_bytes(cols).expect("checked at open");
    let out_rb = target.row_bytes(cols).expect("fallback fits");
    let mut q = vec![0u8; out_rb * n_rows];
    q.par_chunks_mut(out_rb)
        .zip(data.par_chunks(in_rb))
        .enumerate()
        .try_for_each_init(
            || vec![0.0f32; cols],
            |row, (r, (dst, src_row))| {
                srl_quant::dequantize_row(t.ty, src_row, row)?;
                if let Some((l, scale)) = lora {
                    let rank = l.b.len() / l.rows;
                    for k in 0..rank {
                        let s = scale * l.b[r * rank + k];
                        let a = &l.a[k * cols..(k + 1) * cols];
                        for (w, &x) in row.iter_mut().zip(a) {
                            *w += s * x;
                        }
                    }
                }
                srl_quant::quantize_row(target, row, dst)
            },
        )?;
    Ok(q)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter_files::tests::{logits, random_params, temp_dir};
    use crate::adapter_files::write_gguf_adapter;
    use srl_models::formats::gguf::GgufFile;
    use srl_models::testing::{TinySpec, TinyWeights};
    use srl_models::{Arch, LoraAdapter, LoraConfig};

    /// Largest |a - b| relative to the largest |b|.
    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// f32 merge: the weights agree to f32 rounding (checked directly below);
    /// logits move by more because the KV cache rounds K/V to f16 (observed
    /// 1.3e-4).
    const F32_TOL: f32 = 1e-3;
    /// q8_0 merge: weights and activations rounded to 8 bits per block of 32
    /// (observed 1.8e-2 against the f32 base with the adapter applied).
    const Q8_0_TOL: f32 = 3e-2;
    /// Largest |merged - (W + scale B A)| over an f32 merge's weights.
    const WEIGHT_TOL: f64 = 1e-6;

    const TOKENS: [u32; 6] = [5, 77, 300, 12, 12, 200];

    /// The merged model gives the logits of base + adapter, for f32 and q8_0
    /// outputs, both architectures.
    #[test]
    fn merged_equals_base_plus_adapter() {
        let dir = temp_dir("merge");
        for arch in Arch::ALL {
            let w = TinyWeights::random(&TinySpec::new(arch));
            let base = dir.join(format!("{}.gguf", arch.name()));
            w.write_gguf(&base, GgmlType::F32);
            let mut model = Model::open(&base).unwrap();
            let plain = logits(&model, &TOKENS);
            // (alpha 16: Gemma's post-norms damp an adapter's effect, which
            // must stand well above the Q8_0 merge's rounding)
            let cfg = LoraConfig {
                rank: 4,
                alpha: 16.0,
                ..LoraConfig::default()
            };
            let p = random_params(&model.config, cfg, 21);
            let adapter = dir.join("a.gguf");
            write_gguf_adapter(&adapter, &p, &model).unwrap();

            let mut log = |_: &str| {};
            let out = dir.join("merged-f32.gguf");
            let s = merge_to_gguf(&model, &p, &out, None, &mut log).unwrap();
            assert_eq!(s.merged, p.tensors.len());
            assert_eq!(s.requantized, 0);
            let merged = logits(&Model::open(&out).unwrap(), &TOKENS);
            let out_q8 = dir.join("merged-q8.gguf");
            let s = merge_to_gguf(&model, &p, &out_q8, Some(GgmlType::Q8_0), &mut log).unwrap();
            assert!(s.requantized > s.merged);
            let merged_q8 = logits(&Model::open(&out_q8).unwrap(), &TOKENS);

            model
                .add_lora(LoraAdapter::open(&adapter).unwrap(), 1.0)
                .unwrap();
            let want = logits(&model, &TOKENS);
            let (e32, e8, e0) = (
                rel_err(&merged, &want),
                rel_err(&merged_q8, &want),
                rel_err(&plain, &want),
            );
            assert!(e32 < F32_TOL, "{}: f32 merge error {e32}", arch.name());
            assert!(e8 < Q8_0_TOL, "{}: q8_0 merge error {e8}", arch.name());
            assert!(
                e0 > 3.0 * e8,
                "{}: the adapter must matter ({e0} vs q8_0 {e8})",
                arch.name()
            );

            // The merged weights themselves, in the file's row order.
            let (g, m) = (
                GgufFile::open(&base).unwrap(),
                GgufFile::open(&out).unwrap(),
            );
            for t in &p.tensors {
                let name = t.base_name();
                let f32s = |f: &GgufFile| -> Vec<f32> {
                    let info = f.tensor_info(&name).unwrap();
                    let mut v = vec![0.0f32; info.n_elements()];
                    srl_quant::dequantize_row(info.ty, f.tensor_data(info), &mut v).unwrap();
                    v
                };
                let (w0, w1) = (f32s(&g), f32s(&m));
                let r = p.config.rank;
                let s = p.config.scale() as f64;
                for (i, (&x0, &x1)) in w0.iter().zip(&w1).enumerate() {
                    let (row, col) = (i / t.cols, i % t.cols);
                    let ba: f64 = (0..r)
                        .map(|k| t.b[row * r + k] as f64 * t.a[k * t.cols + col] as f64)
                        .sum();
                    let d = (x1 as f64 - (x0 as f64 + s * ba)).abs();
                    assert!(d < WEIGHT_TOL, "{name}[{row}, {col}]: off by {d}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Without `ty`, a quantized base keeps its types: adapted matrices are
    /// requantized to their own type, the others copied byte for byte.
    #[test]
    fn merge_keeps_the_base_types() {
        let dir = temp_dir("merge-types");
        let w = TinyWeights::random(&TinySpec::new(Arch::Qwen2));
        let base = dir.join("q.gguf");
        w.write_gguf(&base, GgmlType::Q8_0);
        let model = Model::open(&base).unwrap();
        let cfg = LoraConfig {
            targets: vec![srl_models::Target::V],
            last_layers: Some(1),
            ..LoraConfig::default()
        };
        let p = random_params(&model.config, cfg, 2);
        let out = dir.join("m.gguf");
        let s = merge_to_gguf(&model, &p, &out, None, &mut |_| {}).unwrap();
        assert_eq!((s.merged, s.requantized), (1, 0));
        let (a, b) = (
            GgufFile::open(&base).unwrap(),
            GgufFile::open(&out).unwrap(),
        );
        assert_eq!(a.metadata.len(), b.metadata.len());
        for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
            assert_eq!((&ta.name, ta.ty, &ta.dims), (&tb.name, tb.ty, &tb.dims));
            let same = a.tensor_data(ta) == b.tensor_data(tb);
            assert_eq!(same, ta.name != "blk.1.attn_v.weight", "{}", ta.name);
        }
        // A safetensors base cannot be merged into a GGUF.
        w.write_safetensors(&dir.join("hf"));
        let hf = Model::open(&dir.join("hf")).unwrap();
        let e = merge_to_gguf(&hf, &p, &dir.join("x.gguf"), None, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("GGUF base"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Requantizing a GGUF model to another element type, as llama-quantize does
//! for "pure" types: every matrix is dequantized and quantized again with the
//! reference quantizers (bit-exact with gguf-py and ggml); 1-D tensors (norms,
//! biases) stay as they are; a matrix whose rows do not fit the type's blocks
//! falls back to the type llama.cpp would pick.

use crate::error::{ModelError, Result};
use crate::formats::gguf::{GgufFile, GgufValue, GgufWriter};
use rayon::prelude::*;
use srl_quant::GgmlType;
use std::path::Path;

/// llama.cpp's `general.file_type` for a model mostly in `ty`.
pub fn file_type_of(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::Q2_K => 10,
        GgmlType::Q3_K => 11,
        GgmlType::Q4_K => 14,
        GgmlType::Q5_K => 16,
        GgmlType::Q6_K => 18,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// The name llama.cpp gives a `general.file_type` (its `llama_ftype`),
/// including the mixes srl reads but does not write (`Q4_K_M`, ...).
pub fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// The type llama.cpp falls back to when rows do not fit `ty`'s blocks.
pub fn fallback(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        _ => GgmlType::F16,
    }
}

/// `general.file_type` for a model written in `ty`, or the error that `ty`
/// is not a type srl can write (`out` names the file).
pub fn writable_file_type(ty: GgmlType, out: &Path) -> Result<u32> {
    file_type_of(ty)
        .filter(|_| ty.can_quantize())
        .ok_or_else(|| {
            ModelError::config(
                out,
                format!(
                    "cannot quantize to {}: not a storage type srl can write",
                    ty.name()
                ),
            )
        })
}

/// What a requantization did.
#[derive(Debug, Default)]
pub struct QuantizeSummary {
    pub tensors: usize,
    pub quantized: usize,
    /// Tensors written in a fallback type because their rows do not fit.
    pub fallbacks: Vec<(String, GgmlType)>,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// Writes `src` with its matrices in `ty` to `out` (atomically).
pub fn quantize_gguf(
    src: &GgufFile,
    out: &Path,
    ty: GgmlType,
    log: &mut dyn FnMut(&str),
) -> Result<QuantizeSummary> {
    let file_type = writable_file_type(ty, out)?;
    let mut w = GgufWriter::new();
    for (k, v) in &src.metadata {
        w.set(k, v.clone());
    }
    w.set("general.file_type", GgufValue::U32(file_type));
    w.set("general.quantization_version", GgufValue::U32(2));
    let mut summary = QuantizeSummary {
        tensors: src.tensors.len(),
        bytes_in: src.file_size(),
        ..Default::default()
    };
    let total = src.tensors.len();
    for (i, t) in src.tensors.iter().enumerate() {
        let data = src.tensor_data(t);
        if t.dims.len() == 1 {
            w.add_tensor(&t.name, t.ty, &t.dims, data)
                .map_err(|e| ModelError::format(src.path(), e))?;
            continue;
        }
        let target = if ty.row_bytes(t.dims[0]).is_some() {
            ty
        } else {
            fallback(ty)
        };
        if target != ty {
            summary.fallbacks.push((t.name.clone(), target));
        }
        let cols = t.dims[0];
        let n_rows = t.n_elements() / cols;
        let (in_rb, out_rb) = (
            t.ty.row_bytes(cols).expect("checked at open"),
            target.row_bytes(cols).expect("fallback fits"),
        );
        let mut q = vec![0u8; out_rb * n_rows];
        // Rows are independent: quantize them in parallel, a row at a time.
        q.par_chunks_mut(out_rb)
            .zip(data.par_chunks(in_rb))
            .try_for_each_init(
                || vec![0.0f32; cols],
                |row, (dst, src_row)| {
                    srl_quant::dequantize_row(t.ty, src_row, row)?;
                    srl_quant::quantize_row(target, row, dst)
                },
            )?;
        w.add_tensor(&t.name, target, &t.dims, q)
            .map_err(|e| ModelError::format(src.path(), e))?;
        summary.quantized += 1;
        if (i + 1) % 32 == 0 || i + 1 == total {
            log(&format!(
                "[{}/{total}] {} -> {}",
                i + 1,
                t.name,
                target.name()
            ));
        }
    }
    w.write(out)?;
    summary.bytes_out = std::fs::metadata(out)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    Ok(summary)
}

#[cfg(test)]
mod file_type_tests {
    use super::*;

    /// Every type srl writes has a `general.file_type` whose name starts
    /// with the type's own (`Q4_K` is written as llama.cpp's `Q4_K_S`).
    #[test]
    fn written_file_types_have_their_names() {
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            let ft = file_type_of(ty).unwrap() as u64;
            let name = file_type_name(ft).unwrap();
            assert!(
                name.starts_with(&ty.to_string().to_uppercase()),
                "{ty}: {name}"
            );
        }
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(99), None);
    }
}

//! LoRA adapters applied at inference time, without merging: a linear layer
//! computes `y = x W^T + scale * (x A^T) B^T`, with A [r, in] and B [out, r]
//! read in place from the adapter file, as llama.cpp does.
//!
//! The file format is llama.cpp's GGUF LoRA: `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and tensors named after the
//! base weight with `.lora_a` / `.lora_b` appended (ggml dims: a = [in, r],
//! b = [r, out]). Tensors follow the base's layout (for llama-arch GGUF bases,
//! Q/K rows permuted as in the base). scale = user scale * alpha / r (or the
//! user scale alone when alpha is 0).

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::transformer::Model;
use srl_quant::WeightMatrix;
use std::collections::HashMap;
use std::path::Path;

/// One adapted weight: its A and B tensors in the adapter file.
struct Pair {
    a: TensorInfo,
    b: TensorInfo,
}

/// An adapter file, mapped.
pub struct LoraAdapter {
    file: GgufFile,
    pub alpha: f32,
    pairs: HashMap<String, Pair>,
}

impl LoraAdapter {
    pub fn open(path: &Path) -> Result<LoraAdapter> {
        let file = GgufFile::open(path)?;
        let bad = |msg: String| Err(ModelError::config(path, msg));
        if file.get_str("general.type") != Some("adapter")
            || file.get_str("adapter.type") != Some("lora")
        {
            return bad(
                "not a LoRA adapter (general.type must be 'adapter' and adapter.type 'lora')"
                    .into(),
            );
        }
        let alpha = file.get_f32("adapter.lora.alpha").unwrap_or(0.0);
        let mut a_of = HashMap::new();
        let mut b_of = HashMap::new();
        for t in &file.tensors {
            if let Some(base) = t.name.strip_suffix(".lora_a") {
                a_of.insert(base.to_string(), t.clone());
            } else if let Some(base) = t.name.strip_suffix(".lora_b") {
                b_of.insert(base.to_string(), t.clone());
            } else {
                return bad(format!(
                    "unexpected tensor '{}' (adapter tensors end in .lora_a or .lora_b)",
                    t.name
                ));
            }
        }
        let mut pairs = HashMap::new();
        for (base, a) in a_of {
            let Some(b) = b_of.remove(&base) else {
                return bad(format!("'{base}.lora_a' has no matching '{base}.lora_b'"));
            };
            if a.dims.len() != 2 || b.dims.len() != 2 || a.dims[1] != b.dims[0] {
                return bad(format!(
                    "'{base}': lora_a {:?} and lora_b {:?} do not share a rank",
                    a.dims, b.dims
                ));
            }
            pairs.insert(base, Pair { a, b });
        }
        if let Some(base) = b_of.keys().next() {
            return bad(format!("'{base}.lora_b' has no matching '{base}.lora_a'"));
        }
        if pairs.is_empty() {
            return bad("the adapter holds no tensors".into());
        }
        Ok(LoraAdapter { file, alpha, pairs })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Number of adapted weights.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Refuses an adapter made for another base: architecture, tensor names
    /// and shapes must fit.
    pub fn check_base(&self, model: &Model) -> Result<()> {
        let path = self.file.path();
        let arch = self.file.architecture().unwrap_or("");
        if arch != model.config.arch.name() {
            return Err(ModelError::config(
                path,
                format!(
                    "this adapter is for architecture '{arch}', the model is '{}'",
                    model.config.arch.name()
                ),
            ));
        }
        for (base, p) in &self.pairs {
            let Some(w) = model.files.tensor(base) else {
                return Err(ModelError::config(
                    path,
                    format!("adapts '{base}', which the model does not have"),
                ));
            };
            if w.dims.len() != 2 || p.a.dims[0] != w.dims[0] || p.b.dims[1] != w.dims[1] {
                return Err(ModelError::config(
                    path,
                    format!(
                        "adapter for the wrong base: '{base}' is {:?} in the model, but lora_a is {:?} and lora_b {:?}",
                        w.dims, p.a.dims, p.b.dims
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A and B of the adapted weight `base`, and the rank.
    pub(crate) fn matrices(&self, base: &str) -> Option<(WeightMatrix<'_>, WeightMatrix<'_>)> {
        let p = self.pairs.get(base)?;
        let a = WeightMatrix {
            ty: p.a.ty,
            rows: p.a.dims[1],
            cols: p.a.dims[0],
            data: self.file.tensor_data(&p.a),
        };
        let b = WeightMatrix {
            ty: p.b.ty,
            rows: p.b.dims[1],
            cols: p.b.dims[0],
            data: self.file.tensor_data(&p.b),
        };
        Some((a, b))
    }
}

/// An adapter in use, with the user's scale.
pub struct ActiveLora {
    pub adapter: LoraAdapter,
    pub scale: f32,
}

impl ActiveLora {
    /// The factor applied to B(Ax) for a weight of rank `rank`.
    pub fn effective_scale(&self, rank: usize) -> f32 {
        if self.adapter.alpha != 0.0 {
            self.scale * self.adapter.alpha / rank as f32
        } else {
            self.scale
        }
    }
}

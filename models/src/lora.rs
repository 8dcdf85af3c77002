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
//!
//! Hugging Face PEFT folders (`adapter_config.json` + `adapter_model.safetensors`,
//! tensors `...q_proj.lora_A.weight` [r, in] and `lora_B.weight` [out, r]) are
//! read too; their Q/K `lora_B` rows are put into the base's layout when the
//! adapter is applied (rope.rs is the one place that knows the permutation).

use crate::error::{ModelError, Result};
use crate::formats::gguf::{GgufFile, TensorInfo};
use crate::formats::safetensors::gguf_name_of_hf;
use crate::layers::linear::linear_slot;
use crate::layers::rope::{gguf_rows_to_hf, hf_rows_to_gguf, RopeStyle};
use crate::lora_params::LoraParams;
use crate::transformer::Model;
use srl_quant::{GgmlType, WeightMatrix};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A LoRA matrix: in place in a GGUF adapter, or loaded (PEFT files).
enum Mat {
    File(TensorInfo),
    Owned {
        ty: GgmlType,
        /// ggml order: [cols, rows]
        dims: [usize; 2],
        data: Vec<u8>,
    },
}

impl Mat {
    fn dims(&self) -> &[usize] {
        match self {
            Mat::File(t) => &t.dims,
            Mat::Owned { dims, .. } => dims,
        }
    }
}

/// One adapted weight: its A and B matrices.
struct Pair {
    a: Mat,
    b: Mat,
}

/// A LoRA adapter: a GGUF file (mapped) or a PEFT folder (loaded).
pub struct LoraAdapter {
    path: PathBuf,
    file: Option<GgufFile>,
    pub alpha: f32,
    /// The adapted weights' base names (`blk.3.attn_q.weight`), sorted, and
    /// their matrices in the same order.
    names: Vec<String>,
    pairs: Vec<Pair>,
    /// Per linear layer of the model (its [`Linear::slot`]): the index of
    /// its pair, so a forward pass finds it without a lookup by name. Set
    /// by [`LoraAdapter::fit`] (or [`LoraAdapter::from_params`]).
    ///
    /// [`Linear::slot`]: crate::layers::linear::Linear::slot
    slots: Vec<Option<usize>>,
    /// Q/K lora_B rows are in Hugging Face order (PEFT) until fitted to a base.
    hf_rows: bool,
}

impl LoraAdapter {
    /// An adapter of `pairs` by base name (not fitted to a model yet).
    fn new(
        path: &Path,
        file: Option<GgufFile>,
        alpha: f32,
        pairs: HashMap<String, Pair>,
        hf_rows: bool,
    ) -> LoraAdapter {
        let mut pairs: Vec<(String, Pair)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, pairs) = pairs.into_iter().unzip();
        LoraAdapter {
            path: path.to_path_buf(),
            file,
            alpha,
            names,
            pairs,
            slots: Vec::new(),
            hf_rows,
        }
    }

    /// A GGUF LoRA file, or a PEFT folder (or its adapter_model.safetensors).
    pub fn open(path: &Path) -> Result<LoraAdapter> {
        if path.is_dir() || path.extension().is_some_and(|e| e == "safetensors") {
            let dir = if path.is_dir() {
                path
            } else {
                path.parent().unwrap_or(Path::new("."))
            };
            return Self::open_peft(dir);
        }
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
            pairs.insert(
                base,
                Pair {
                    a: Mat::File(a),
                    b: Mat::File(b),
                },
            );
        }
        if let Some(base) = b_of.keys().next() {
            return bad(format!("'{base}.lora_b' has no matching '{base}.lora_a'"));
        }
        if pairs.is_empty() {
            return bad("the adapter holds no tensors".into());
        }
        Ok(LoraAdapter::new(path, Some(file), alpha, pairs, false))
    }

    /// A Hugging Face PEFT folder: adapter_config.json (r, lora_alpha,
    /// use_rslora) and adapter_model.safetensors (F32, F16 or BF16).
    pub fn open_peft(dir: &Path) -> Result<LoraAdapter> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let cfg: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::config(&cfg_path, format!("invalid JSON: {e}")))?;
        if cfg
            .get("peft_type")
            .and_then(|v| v.as_str())
            .is_some_and(|t| t != "LORA")
        {
            return Err(ModelError::config(&cfg_path, "peft_type is not LORA"));
        }
        let r = cfg.get("r").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let mut alpha = cfg
            .get("lora_alpha")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        if cfg.get("use_rslora").and_then(|v| v.as_bool()) == Some(true) {
            // rsLoRA scales by alpha / sqrt(r); srl applies alpha / r.
            alpha *= r.sqrt();
        }
        let st_path = dir.join("adapter_model.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| ModelError::io(&st_path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            ModelError::format(&st_path, format!("not a valid safetensors file: {e}"))
        })?;
        let mut a_of = HashMap::new();
        let mut b_of = HashMap::new();
        for (name, view) in st.tensors() {
            let ty = match view.dtype() {
                safetensors::Dtype::F32 => GgmlType::F32,
                safetensors::Dtype::F16 => GgmlType::F16,
                safetensors::Dtype::BF16 => GgmlType::BF16,
                other => {
                    return Err(ModelError::format(
                        &st_path,
                        format!("tensor '{name}' has dtype {other:?}"),
                    ));
                }
            };
            let shape = view.shape();
            let (stem, is_a) = if let Some(s) = name.strip_suffix(".lora_A.weight") {
                (s, true)
            } else if let Some(s) = name.strip_suffix(".lora_B.weight") {
                (s, false)
            } else {
                continue;
            };
            let hf = stem.strip_prefix("base_model.model.").unwrap_or(stem);
            let Some(base) = gguf_name_of_hf(&format!("{hf}.weight")) else {
                return Err(ModelError::format(
                    &st_path,
                    format!("cannot map '{name}' to a model weight"),
                ));
            };
            if shape.len() != 2 {
                return Err(ModelError::format(
                    &st_path,
                    format!("'{name}' is not a matrix: {shape:?}"),
                ));
            }
            let mat = Mat::Owned {
                ty,
                dims: [shape[1], shape[0]],
                data: view.data().to_vec(),
            };
            if is_a {
                a_of.insert(base, mat)
            } else {
                b_of.insert(base, mat)
            };
        }
        let mut pairs = HashMap::new();
        for (base, a) in a_of {
            let Some(b) = b_of.remove(&base) else {
                return Err(ModelError::format(
                    &st_path,
                    format!("'{base}' has lora_A but no lora_B"),
                ));
            };
            if a.dims()[1] != b.dims()[0] {
                return Err(ModelError::format(
                    &st_path,
                    format!("'{base}': lora_A and lora_B do not share a rank"),
                ));
            }
            pairs.insert(base, Pair { a, b });
        }
        if pairs.is_empty() || !b_of.is_empty() {
            return Err(ModelError::format(
                &st_path,
                "no complete lora_A / lora_B pairs",
            ));
        }
        Ok(LoraAdapter::new(dir, None, alpha as f32, pairs, true))
    }

    /// An adapter made from parameters being trained (f32 copies of A and
    /// B, already in the model's own row layout: no fitting needed), so
    /// generation can sample from the current policy without writing files.
    /// `label` stands in for a path in messages.
    pub fn from_params(params: &LoraParams, label: &Path) -> LoraAdapter {
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let rank = params.config.rank;
        let pairs = params
            .tensors
            .iter()
            .map(|t| {
                let a = Mat::Owned {
                    ty: GgmlType::F32,
                    dims: [t.cols, rank],
                    data: f32_bytes(&t.a),
                };
                let b = Mat::Owned {
                    ty: GgmlType::F32,
                    dims: [rank, t.rows],
                    data: f32_bytes(&t.b),
                };
                (t.base_name(), Pair { a, b })
            })
            .collect();
        let mut adapter = LoraAdapter::new(label, None, params.config.alpha, pairs, false);
        let slot_of = |t: &crate::LoraTensor| linear_slot(t.layer, t.target);
        let n = params
            .tensors
            .iter()
            .map(slot_of)
            .max()
            .map_or(0, |m| m + 1);
        adapter.slots = vec![None; n];
        for t in &params.tensors {
            let i = adapter.names.binary_search(&t.base_name()).ok();
            adapter.slots[slot_of(t)] = i;
        }
        adapter
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the adapter fits `model` (architecture, tensor names and
    /// shapes) and puts PEFT Q/K rows into the base's layout.
    pub fn fit(&mut self, model: &Model) -> Result<()> {
        let path = self.path.clone();
        if let Some(arch) = self.file.as_ref().map(|f| f.architecture().unwrap_or("")) {
            if arch != model.config.arch.name() {
                return Err(ModelError::config(
                    &path,
                    format!(
                        "this adapter is for architecture '{arch}', the model is '{}'",
                        model.config.arch.name()
                    ),
                ));
            }
        }
        for (base, p) in self.names.iter().zip(&self.pairs) {
            let Some(w) = model.files.tensor(base) else {
                return Err(ModelError::config(
                    &path,
                    format!("adapts '{base}', which the model does not have"),
                ));
            };
            let (a, b) = (p.a.dims(), p.b.dims());
            if w.dims.len() != 2 || a[0] != w.dims[0] || b[1] != w.dims[1] {
                return Err(ModelError::config(
                    &path,
                    format!(
                        "adapter for the wrong base: '{base}' is {:?} in the model, but lora_a is {a:?} and lora_b {b:?}",
                        w.dims
                    ),
                ));
            }
        }
        if self.hf_rows && model.config.rope_style == RopeStyle::Interleaved {
            for (base, p) in self.names.iter().zip(self.pairs.iter_mut()) {
                if base.contains(".attn_q.") || base.contains(".attn_k.") {
                    if let Mat::Owned { ty, dims, data } = &mut p.b {
                        let row_bytes = ty.row_bytes(dims[0]).expect("f32/f16/bf16 rows");
                        *data = hf_rows_to_gguf(data, row_bytes, model.config.head_dim);
                    }
                }
            }
        }
        // A GGUF adapter is in GGUF's llama order; a llama base read from a
        // Hugging Face folder runs in Hugging Face order.
        if !self.hf_rows
            && model.config.arch.family().gguf_permutes_qk
            && model.config.rope_style == RopeStyle::Halves
        {
            let file = self.file.as_ref();
            for (base, p) in self.names.iter().zip(self.pairs.iter_mut()) {
                if base.contains(".attn_q.") || base.contains(".attn_k.") {
                    if let Mat::File(t) = &p.b {
                        let data = file.expect("file-backed adapter").tensor_data(t);
                        let row_bytes = t.ty.row_bytes(t.dims[0]).expect("checked at open");
                        p.b = Mat::Owned {
                            ty: t.ty,
                            dims: [t.dims[0], t.dims[1]],
                            data: gguf_rows_to_hf(data, row_bytes, model.config.head_dim),
                        };
                    }
                }
            }
        }
        self.hf_rows = false;
        let linears = model.weights.linears();
        self.slots = vec![None; linears.clone().map(|l| l.slot + 1).max().unwrap_or(0)];
        for lin in linears {
            self.slots[lin.slot] = self.names.binary_search(&lin.weight.name).ok();
        }
        Ok(())
    }

    /// A and B of the linear layer in `slot` ([`Linear::slot`]), if adapted.
    ///
    /// [`Linear::slot`]: crate::layers::linear::Linear::slot
    pub(crate) fn matrices(&self, slot: usize) -> Option<(WeightMatrix<'_>, WeightMatrix<'_>)> {
        let p = &self.pairs[(*self.slots.get(slot)?)?];
        Some((self.view(&p.a), self.view(&p.b)))
    }

    fn view<'a>(&'a self, m: &'a Mat) -> WeightMatrix<'a> {
        match m {
            Mat::File(t) => WeightMatrix {
                ty: t.ty,
                rows: t.dims[1],
                cols: t.dims[0],
                data: self
                    .file
                    .as_ref()
                    .expect("file-backed adapter")
                    .tensor_data(t),
            },
            Mat::Owned { ty, dims, data } => WeightMatrix {
                ty: *ty,
                rows: dims[1],
                cols: dims[0],
                data,
            },
        }
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

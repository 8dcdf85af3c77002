//! Hugging Face safetensors folders (config.json + model.safetensors, or
//! shards listed by model.safetensors.index.json), memory-mapped: a tensor is
//! a view into its shard's map. Tensor names are translated to GGUF's names
//! here, so the architectures see one naming scheme.

use crate::error::{ModelError, Result};
use memmap2::Mmap;
use srl_quant::GgmlType;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a tensor lives: which shard, and its bytes within that shard's map.
#[derive(Debug, Clone)]
pub struct SafetensorsEntry {
    pub shard: usize,
    pub offset: usize,
    pub size: usize,
    pub ty: GgmlType,
    /// ggml order (innermost first), i.e. the safetensors shape reversed.
    pub dims: Vec<usize>,
    /// The name in the file (Hugging Face naming).
    pub hf_name: String,
}

pub struct SafetensorsDir {
    pub dir: PathBuf,
    shards: Vec<(PathBuf, Mmap)>,
    /// Keyed by GGUF-style name (`blk.0.attn_q.weight`); unknown names keep theirs.
    pub tensors: HashMap<String, SafetensorsEntry>,
}

/// Whole-model tensors: (Hugging Face name, GGUF name).
const MODEL_TENSORS: &[(&str, &str)] = &[
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// A block's modules: (Hugging Face module under `model.layers.N.`, GGUF
/// module under `blk.N.`).
const BLOCK_MODULES: &[(&str, &str)] = &[
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

const HF_BLOCK: &str = "model.layers.";
const GGUF_BLOCK: &str = "blk.";

/// Renames `name` by the tables: `side` 0 reads Hugging Face names and
/// writes GGUF's, 1 the reverse.
fn rename(name: &str, side: usize) -> Option<String> {
    let pick = |row: &(&'static str, &'static str)| {
        let both = [row.0, row.1];
        (both[side], both[1 - side])
    };
    if let Some(row) = MODEL_TENSORS.iter().find(|r| pick(r).0 == name) {
        return Some(pick(row).1.to_string());
    }
    let (from, to) = pick(&(HF_BLOCK, GGUF_BLOCK));
    let rest = name.strip_prefix(from)?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = tail.rsplit_once('.')?;
    let row = BLOCK_MODULES.iter().find(|r| pick(r).0 == module)?;
    Some(format!("{to}{layer}.{}.{kind}", pick(row).1))
}

/// Translates a Hugging Face tensor name to its GGUF name.
pub fn gguf_name_of_hf(name: &str) -> Option<String> {
    rename(name, 0)
}

/// Inverse of [`gguf_name_of_hf`].
pub fn hf_name_of_gguf(name: &str) -> Option<String> {
    rename(name, 1)
}

/// The weight file names of a Hugging Face folder, as transformers picks them.
pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The files holding a folder's model weights (see [`SafetensorsDir::open`]).
fn model_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        let mut others: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| ModelError::io(dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".safetensors"))
            .collect();
        others.sort();
        let found = if others.is_empty() {
            String::new()
        } else {
            format!(
                " (found {}, which transformers would not load as the model either)",
                others.join(", ")
            )
        };
        return Err(ModelError::format(
            dir,
            format!("no {SINGLE_FILE} or {INDEX_FILE} in this folder{found}"),
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(&index, format!("invalid JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::format(&index, "no 'weight_map' object"))?;
    let mut names = Vec::new();
    for (tensor, file) in map {
        let n = file.as_str().ok_or_else(|| {
            ModelError::format(&index, format!("weight_map['{tensor}'] is not a file name"))
        })?;
        if n.contains('/') || n.contains('\\') || n.contains("..") {
            return Err(ModelError::format(
                &index,
                format!("shard name '{n}' leaves the folder"),
            ));
        }
        names.push(n.to_string());
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(ModelError::format(&index, "'weight_map' lists no shards"));
    }
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

impl SafetensorsDir {
    /// Opens a folder as transformers reads it: `model.safetensors`, else the
    /// shards that `model.safetensors.index.json` lists. Other `.safetensors`
    /// files in the folder (an adapter, a consolidated copy) are not the model.
    pub fn open(dir: &Path) -> Result<SafetensorsDir> {
        let files = model_files(dir)?;
        let mut shards = Vec::new();
        let mut tensors = HashMap::new();
        for (si, path) in files.into_iter().enumerate() {
            let file = std::fs::File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: read-only map; see GgufFile::open.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
            let (header_len, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
                    ModelError::format(&path, format!("not a valid safetensors file: {e}"))
                })?;
            let base = 8 + header_len;
            for (name, info) in meta.tensors() {
                let ty = match info.dtype {
                    safetensors::Dtype::F32 => GgmlType::F32,
                    safetensors::Dtype::F16 => GgmlType::F16,
                    safetensors::Dtype::BF16 => GgmlType::BF16,
                    other => {
                        return Err(ModelError::format(
                            &path,
                            format!(
                                "tensor '{name}' has dtype {other:?}; srl reads F32, F16 and BF16"
                            ),
                        ))
                    }
                };
                let (start, end) = info.data_offsets;
                let size = end - start;
                let n: usize = info.shape.iter().product();
                if n * ty.block_bytes() != size || base + end > map.len() {
                    return Err(ModelError::format(
                        &path,
                        format!(
                            "tensor '{name}' data does not match its shape {:?}",
                            info.shape
                        ),
                    ));
                }
                let mut dims: Vec<usize> = info.shape.iter().rev().copied().collect();
                if dims.is_empty() {
                    dims.push(1);
                }
                let key = gguf_name_of_hf(&name).unwrap_or_else(|| name.clone());
                tensors.insert(
                    key,
                    SafetensorsEntry {
                        shard: si,
                        offset: base + start,
                        size,
                        ty,
                        dims,
                        hf_name: name,
                    },
                );
            }
            shards.push((path, map));
        }
        Ok(SafetensorsDir {
            dir: dir.to_path_buf(),
            shards,
            tensors,
        })
    }

    pub fn tensor_data(&self, e: &SafetensorsEntry) -> &[u8] {
        self.bytes_at(e.shard, e.offset, e.size)
    }

    pub(crate) fn bytes_at(&self, shard: usize, offset: usize, size: usize) -> &[u8] {
        &self.shards[shard].1[offset..offset + size]
    }

    pub fn shard_paths(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|(p, _)| p.as_path())
    }

    /// Total bytes of all shards.
    pub fn total_size(&self) -> usize {
        self.shards.iter().map(|(_, m)| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.layers.7.self_attn.q_proj.bias",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.12.post_attention_layernorm.weight",
        ] {
            let g = gguf_name_of_hf(n).unwrap();
            assert_eq!(hf_name_of_gguf(&g).unwrap(), n);
        }
        assert_eq!(
            gguf_name_of_hf("model.layers.3.self_attn.k_proj.weight").unwrap(),
            "blk.3.attn_k.weight"
        );
    }
}

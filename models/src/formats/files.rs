//! The open files of a model, whatever their format: one GGUF file or a
//! safetensors folder. Tensors are looked up by GGUF name and read in place.

use crate::error::{ModelError, Result};
use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsDir;
use srl_quant::GgmlType;
use std::path::Path;

/// A tensor's location and type; its bytes come from [`ModelFiles::bytes`].
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` is the contiguous dimension.
    pub dims: Vec<usize>,
    shard: usize,
    offset: usize,
    size: usize,
}

impl TensorRef {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

pub enum ModelFiles {
    Gguf(GgufFile),
    Safetensors(SafetensorsDir),
}

impl ModelFiles {
    /// A file is read as GGUF; a folder as Hugging Face safetensors.
    pub fn open(path: &Path) -> Result<ModelFiles> {
        let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
        if meta.is_dir() {
            Ok(ModelFiles::Safetensors(SafetensorsDir::open(path)?))
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            let dir = path.parent().unwrap_or(Path::new("."));
            Ok(ModelFiles::Safetensors(SafetensorsDir::open(dir)?))
        } else {
            Ok(ModelFiles::Gguf(GgufFile::open(path)?))
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            ModelFiles::Gguf(g) => g.path(),
            ModelFiles::Safetensors(s) => &s.dir,
        }
    }

    pub fn gguf(&self) -> Option<&GgufFile> {
        match self {
            ModelFiles::Gguf(g) => Some(g),
            ModelFiles::Safetensors(_) => None,
        }
    }

    /// Total size of the model's files in bytes.
    pub fn size_bytes(&self) -> usize {
        match self {
            ModelFiles::Gguf(g) => g.file_size(),
            ModelFiles::Safetensors(s) => s.total_size(),
        }
    }

    pub fn tensor(&self, name: &str) -> Option<TensorRef> {
        match self {
            ModelFiles::Gguf(g) => g.tensor_info(name).map(|t| TensorRef {
                name: name.to_string(),
                ty: t.ty,
                dims: t.dims.clone(),
                shard: 0,
                offset: t.offset,
                size: t.size,
            }),
            ModelFiles::Safetensors(s) => s.tensors.get(name).map(|t| TensorRef {
                name: name.to_string(),
                ty: t.ty,
                dims: t.dims.clone(),
                shard: t.shard,
                offset: t.offset,
                size: t.size,
            }),
        }
    }

    /// A tensor that must exist with the given ggml-order dims: an error
    /// naming the file and tensor otherwise.
    pub fn require(&self, name: &str, dims: &[usize]) -> Result<TensorRef> {
        let t = self.tensor(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.path().to_path_buf(),
            name: name.to_string(),
        })?;
        if t.dims != dims {
            return Err(ModelError::Shape {
                path: self.path().to_path_buf(),
                name: name.to_string(),
                expected: dims.to_vec(),
                actual: t.dims.clone(),
            });
        }
        Ok(t)
    }

    pub fn bytes(&self, t: &TensorRef) -> &[u8] {
        match self {
            ModelFiles::Gguf(g) => {
                let _ = t.shard;
                g.bytes_at(t.offset, t.size)
            }
            ModelFiles::Safetensors(s) => s.bytes_at(t.shard, t.offset, t.size),
        }
    }

    /// Every tensor's name, type and dims (ggml order), sorted by name in
    /// natural layer order.
    pub fn tensor_list(&self) -> Vec<(String, GgmlType, Vec<usize>)> {
        let mut v: Vec<(String, GgmlType, Vec<usize>)> = match self {
            ModelFiles::Gguf(g) => g
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.ty, t.dims.clone()))
                .collect(),
            ModelFiles::Safetensors(s) => s
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.ty, t.dims.clone()))
                .collect(),
        };
        v.sort_by_key(|(n, _, _)| natural_key(n));
        v
    }

    /// Dequantizes a whole (small) tensor to f32, e.g. a norm weight or a bias.
    pub fn read_f32(&self, t: &TensorRef) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; t.n_elements()];
        srl_quant::dequantize_row(t.ty, self.bytes(t), &mut out)?;
        Ok(out)
    }
}

fn natural_key(name: &str) -> (String, usize, String) {
    if let Some(rest) = name.strip_prefix("blk.") {
        if let Some((n, tail)) = rest.split_once('.') {
            if let Ok(n) = n.parse() {
                return ("blk".into(), n, tail.to_string());
            }
        }
    }
    (name.to_string(), 0, String::new())
}

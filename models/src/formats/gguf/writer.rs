//! The GGUF writer (version 3): what quantize, merge and adapters produce.
//! Writes to a temporary file beside the target and renames it into place, so
//! an interrupted write never leaves a corrupt model behind.

use super::reader::DEFAULT_ALIGNMENT;
use super::value::GgufValue;
use crate::error::{ModelError, Result};
use srl_quant::GgmlType;
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::Path;

struct PendingTensor<'a> {
    name: String,
    dims: Vec<usize>,
    ty: GgmlType,
    data: Cow<'a, [u8]>,
}

/// Collects metadata and tensors, then writes them out in one go.
#[derive(Default)]
pub struct GgufWriter<'a> {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor<'a>>,
}

impl<'a> GgufWriter<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a metadata entry (file order is insertion order).
    pub fn set(&mut self, key: &str, value: GgufValue) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Adds a tensor. `dims` are in ggml order (innermost first); `data` must
    /// hold exactly the bytes the type and shape need.
    pub fn add_tensor(
        &mut self,
        name: &str,
        ty: GgmlType,
        dims: &[usize],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> std::result::Result<(), String> {
        let data = data.into();
        let row = ty.row_bytes(dims[0]).ok_or_else(|| {
            format!(
                "tensor '{name}': {} elements is not a whole number of {} blocks",
                dims[0],
                ty.name()
            )
        })?;
        let expected = row * dims[1..].iter().product::<usize>();
        if data.len() != expected {
            return Err(format!(
                "tensor '{name}': {} bytes given, {expected} expected for {} {dims:?}",
                data.len(),
                ty.name()
            ));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data,
        });
        Ok(())
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
        let result = self
            .write_to(&tmp)
            .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e)));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_to(&self, path: &Path) -> Result<()> {
        let io = |e| ModelError::io(path, e);
        let file = std::fs::File::create(path).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let alignment = self
            .metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT) as usize;
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut head, k);
            head.extend_from_slice(&v.tag().to_le_bytes());
            put_value(&mut head, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                head.extend_from_slice(&(d as u64).to_le_bytes());
            }
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.data.len()).div_ceil(alignment) * alignment;
        }
        head.resize(head.len().div_ceil(alignment) * alignment, 0);
        w.write_all(&head).map_err(io)?;
        let mut written = 0usize;
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            w.write_all(&vec![0u8; off - written]).map_err(io)?;
            w.write_all(&t.data).map_err(io)?;
            written = off + t.data.len();
        }
        let end = written.div_ceil(alignment) * alignment;
        w.write_all(&vec![0u8; end - written]).map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(*x as u8),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(elem, items) => {
            let elem = if items.is_empty() {
                *elem
            } else {
                items[0].tag()
            };
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(out, it);
            }
        }
    }
}

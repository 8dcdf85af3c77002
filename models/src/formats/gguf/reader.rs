//! The GGUF reader: header, metadata, tensor table, all bounds-checked, over a
//! memory map so tensor data is never copied.
//!
//! Layout (v2/v3, little-endian): magic "GGUF", version u32, tensor count u64,
//! metadata count u64, metadata (key string, type u32, value), tensor infos
//! (name, n_dims u32, dims u64 x n_dims, type u32, offset u64), padding to
//! `general.alignment` (default 32), then the tensor data.

use super::value::{tag, GgufValue};
use crate::error::{ModelError, Result};
use memmap2::Mmap;
use srl_quant::GgmlType;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;
/// Nesting limit for arrays of arrays (the format allows it; nobody needs depth).
const MAX_ARRAY_DEPTH: usize = 4;

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<usize>,
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The bytes of a GGUF file: normally a read-only map, or an owned buffer
/// (tests, fuzzing).
enum Storage {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Map(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An open GGUF file: parsed header and a map of the whole file.
pub struct GgufFile {
    path: PathBuf,
    map: Storage,
    pub version: u32,
    pub alignment: u64,
    /// Metadata in file order.
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the tensor data section.
    pub data_offset: usize,
    meta_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked little-endian cursor over the header bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ModelError {
        ModelError::format(
            self.path,
            format!(
                "truncated or corrupt GGUF: {what} at byte {} runs past the end of the file ({} bytes)",
                self.pos,
                self.buf.len()
            ),
        )
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        if end > self.buf.len() {
            return Err(self.err(what));
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(ModelError::format(
                self.path,
                format!(
                    "corrupt GGUF: {what} at byte {} claims {len} bytes, more than the file holds",
                    self.pos
                ),
            ));
        }
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            ModelError::format(
                self.path,
                format!("corrupt GGUF: {what} is not valid UTF-8"),
            )
        })
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            tag::U8 => GgufValue::U8(self.u8(key)?),
            tag::I8 => GgufValue::I8(self.u8(key)? as i8),
            tag::U16 => GgufValue::U16(self.u16(key)?),
            tag::I16 => GgufValue::I16(self.u16(key)? as i16),
            tag::U32 => GgufValue::U32(self.u32(key)?),
            tag::I32 => GgufValue::I32(self.u32(key)? as i32),
            tag::U64 => GgufValue::U64(self.u64(key)?),
            tag::I64 => GgufValue::I64(self.u64(key)? as i64),
            tag::F32 => GgufValue::F32(f32::from_bits(self.u32(key)?)),
            tag::F64 => GgufValue::F64(f64::from_bits(self.u64(key)?)),
            tag::BOOL => match self.u8(key)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(ModelError::format(
                        self.path,
                        format!("corrupt GGUF: metadata '{key}' has bool byte {b}"),
                    ))
                }
            },
            tag::STRING => GgufValue::String(self.string(key)?),
            tag::ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(ModelError::format(
                        self.path,
                        format!("corrupt GGUF: metadata '{key}' nests arrays too deeply"),
                    ));
                }
                let elem = self.u32(key)?;
                let n = self.u64(key)?;
                // Every element takes at least one byte: refuse counts the file cannot hold
                // before allocating anything.
                if n > self.remaining() as u64 {
                    return Err(ModelError::format(
                        self.path,
                        format!("corrupt GGUF: metadata array '{key}' claims {n} elements, more than the file holds"),
                    ));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                GgufValue::Array(elem, items)
            }
            other => {
                return Err(ModelError::format(
                    self.path,
                    format!("corrupt GGUF: metadata '{key}' has unknown value type {other}"),
                ))
            }
        })
    }
}

impl GgufFile {
    /// Opens and validates a GGUF file. Every size and offset is checked against
    /// the file length, so a truncated or hostile file gives an error, not a crash.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
        if len < 24 {
            return Err(ModelError::format(
                path,
                format!("not a GGUF file: only {len} bytes (a GGUF header alone takes 24)"),
            ));
        }
        // SAFETY: the map is read-only; a file changed under us while mapped is the
        // same hazard every mmap-based loader (llama.cpp included) accepts.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        Self::parse(path, Storage::Map(map))
    }

    /// Parses GGUF bytes held in memory; `name` is used in error messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<GgufFile> {
        Self::parse(name, Storage::Owned(bytes))
    }

    fn parse(path: &Path, map: Storage) -> Result<GgufFile> {
        let mut c = Cursor {
            buf: &map,
            pos: 0,
            path,
        };
        let magic = c.take(4, "magic")?;
        if magic != GGUF_MAGIC {
            return Err(ModelError::format(
                path,
                "not a GGUF file: it does not start with \"GGUF\"",
            ));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::format(
                path,
                format!("unsupported GGUF version {version} (srl reads versions 2 and 3)"),
            ));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // A metadata entry takes at least 13 bytes, a tensor info at least 24.
        if n_kv.saturating_mul(13) > c.remaining() as u64
            || n_tensors.saturating_mul(24) > c.remaining() as u64
        {
            return Err(ModelError::format(
                path,
                format!("corrupt GGUF: header claims {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold"),
            ));
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut meta_index = HashMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, &key, 0)?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(ModelError::format(
                    path,
                    format!("corrupt GGUF: duplicate metadata key '{key}'"),
                ));
            }
            metadata.push((key, value));
        }
        let alignment = match meta_index.get("general.alignment") {
            Some(&i) => {
                let a = metadata[i].1.as_u64().unwrap_or(0);
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(ModelError::format(
                        path,
                        format!(
                            "corrupt GGUF: general.alignment is {}",
                            metadata[i].1.display(4)
                        ),
                    ));
                }
                a
            }
            None => DEFAULT_ALIGNMENT,
        };

        struct RawInfo {
            name: String,
            dims: Vec<usize>,
            ty: GgmlType,
            rel: u64,
        }
        let mut raw = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor name #{i}"))?;
            let n_dims = c.u32(&name)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(ModelError::format(
                    path,
                    format!("corrupt GGUF: tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64(&name)?;
                // ggml uses int64 sizes; anything this large cannot be in a file we mapped.
                if d > (1u64 << 40) {
                    return Err(ModelError::format(
                        path,
                        format!("corrupt GGUF: tensor '{name}' has absurd dimension {d}"),
                    ));
                }
                dims.push(d as usize);
            }
            let ty_id = c.u32(&name)?;
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
                ModelError::format(
                    path,
                    format!("tensor '{name}' has unknown or unsupported ggml type {ty_id}"),
                )
            })?;
            let rel = c.u64(&name)?;
            raw.push(RawInfo {
                name,
                dims,
                ty,
                rel,
            });
        }
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = map.len() as u64;
        let mut tensors = Vec::with_capacity(raw.len());
        let mut tensor_index = HashMap::new();
        for r in raw {
            let name = r.name;
            // Checked: four dimensions of up to 2^40 overflow even u128.
            let too_big = || {
                ModelError::format(
                    path,
                    format!(
                        "corrupt GGUF: tensor '{name}' has absurd dimensions {:?}",
                        r.dims
                    ),
                )
            };
            let n = r
                .dims
                .iter()
                .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
                .filter(|&n| n <= 1u128 << 48)
                .ok_or_else(too_big)?;
            let row = r.ty.row_bytes(r.dims[0]).ok_or_else(|| {
                ModelError::format(
                    path,
                    format!(
                        "corrupt GGUF: tensor '{name}' row of {} elements is not a whole number of {} blocks ({} elements each)",
                        r.dims[0],
                        r.ty.name(),
                        r.ty.block_size()
                    ),
                )
            })? as u128;
            let n_rows = n / r.dims[0].max(1) as u128;
            let size = row * n_rows;
            if r.rel % alignment != 0 {
                return Err(ModelError::format(
                    path,
                    format!(
                        "corrupt GGUF: tensor '{name}' offset {} is not aligned to {alignment}",
                        r.rel
                    ),
                ));
            }
            let start = data_offset as u128 + r.rel as u128;
            if start + size > file_len as u128 {
                return Err(ModelError::format(
                    path,
                    format!(
                        "truncated or corrupt GGUF: tensor '{name}' data ({size} bytes at offset {start}) runs past the end of the file ({file_len} bytes)"
                    ),
                ));
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(ModelError::format(
                    path,
                    format!("corrupt GGUF: duplicate tensor '{name}'"),
                ));
            }
            tensors.push(TensorInfo {
                name,
                dims: r.dims,
                ty: r.ty,
                offset: start as usize,
                size: size as usize,
            });
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            alignment,
            metadata,
            tensors,
            data_offset: data_offset as usize,
            meta_index,
            tensor_index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str())
            .collect()
    }
    pub fn get_f32_array(&self, key: &str) -> Option<Vec<f32>> {
        self.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_f32())
            .collect()
    }
    pub fn get_i32_array(&self, key: &str) -> Option<Vec<i32>> {
        self.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_i64().and_then(|x| i32::try_from(x).ok()))
            .collect()
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor, in place in the map (bounds were checked at open).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        self.bytes_at(info.offset, info.size)
    }

    pub(crate) fn bytes_at(&self, offset: usize, size: usize) -> &[u8] {
        &self.map[offset..offset + size]
    }

    /// The architecture name (`general.architecture`).
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
}

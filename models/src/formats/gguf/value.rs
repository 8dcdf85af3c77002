//! GGUF metadata values: the twelve value types of the format, with the
//! lenient accessors (any integer width, say) that model loading wants.

/// The on-disk type tags of GGUF metadata values.
pub mod tag {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    /// Element type tag and the elements (all of that type).
    Array(u32, Vec<GgufValue>),
}

impl GgufValue {
    pub fn tag(&self) -> u32 {
        match self {
            GgufValue::U8(_) => tag::U8,
            GgufValue::I8(_) => tag::I8,
            GgufValue::U16(_) => tag::U16,
            GgufValue::I16(_) => tag::I16,
            GgufValue::U32(_) => tag::U32,
            GgufValue::I32(_) => tag::I32,
            GgufValue::U64(_) => tag::U64,
            GgufValue::I64(_) => tag::I64,
            GgufValue::F32(_) => tag::F32,
            GgufValue::F64(_) => tag::F64,
            GgufValue::Bool(_) => tag::BOOL,
            GgufValue::String(_) => tag::STRING,
            GgufValue::Array(..) => tag::ARRAY,
        }
    }

    /// Any integer type, if it is non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::I8(v) => Some(v as i64),
            GgufValue::I16(v) => Some(v as i64),
            GgufValue::I32(v) => Some(v as i64),
            GgufValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// Any float type (f64 narrowed), or an integer.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            GgufValue::F32(v) => Some(v),
            GgufValue::F64(v) => Some(v as f32),
            _ => self.as_i64().map(|v| v as f32),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(_, v) => Some(v),
            _ => None,
        }
    }

    /// A short human-readable rendering; long arrays are summarised.
    pub fn display(&self, max_items: usize) -> String {
        match self {
            GgufValue::String(s) => format!("{s:?}"),
            GgufValue::Array(_, items) => {
                let shown: Vec<String> = items
                    .iter()
                    .take(max_items)
                    .map(|v| v.display(max_items))
                    .collect();
                if items.len() > max_items {
                    format!("[{}, ... ({} items)]", shown.join(", "), items.len())
                } else {
                    format!("[{}]", shown.join(", "))
                }
            }
            GgufValue::U8(v) => v.to_string(),
            GgufValue::I8(v) => v.to_string(),
            GgufValue::U16(v) => v.to_string(),
            GgufValue::I16(v) => v.to_string(),
            GgufValue::U32(v) => v.to_string(),
            GgufValue::I32(v) => v.to_string(),
            GgufValue::U64(v) => v.to_string(),
            GgufValue::I64(v) => v.to_string(),
            GgufValue::F32(v) => v.to_string(),
            GgufValue::F64(v) => v.to_string(),
            GgufValue::Bool(v) => v.to_string(),
        }
    }
}

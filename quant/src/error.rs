//! The crate's error type: every message names the element type and the sizes.

use crate::GgmlType;

/// What can go wrong when user data meets a quantized kernel.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum QuantError {
    /// A row length is not a multiple of the type's block size.
    #[error("{n} elements of {ty} is not a whole number of blocks (block size {block})")]
    NotBlockMultiple {
        ty: GgmlType,
        n: usize,
        block: usize,
    },
    /// A byte buffer does not have the size its element count implies.
    #[error("{n} elements of {ty} take {expected} bytes, but the buffer has {actual}")]
    ByteLength {
        ty: GgmlType,
        n: usize,
        expected: usize,
        actual: usize,
    },
    /// A matrix's data does not have the size its shape implies.
    #[error("a {rows}x{cols} {ty} matrix takes {expected} bytes, but the data has {actual}")]
    MatrixBytes {
        ty: GgmlType,
        rows: usize,
        cols: usize,
        expected: usize,
        actual: usize,
    },
    /// The type exists but this operation is not implemented for it.
    #[error("{op} is not supported for {ty}")]
    Unsupported { ty: GgmlType, op: &'static str },
    /// A GGML type id or name srl does not know.
    #[error("unknown GGML type {0}")]
    UnknownType(String),
    /// A size computation overflowed usize.
    #[error("size of {n} elements of {ty} overflows")]
    Overflow { ty: GgmlType, n: usize },
}

//! srl-quant: GGML element types and the kernels that read them.
//!
//! Every type that a GGUF file can hold for the models srl runs (F32, F16,
//! BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K) is described by
//! one row of one table ([`TypeTraits`], see `types/mod.rs`): block size,
//! bytes per block, the reference dequantizer and quantizer, the activation
//! quantizer, the dot product and the activation type it pairs with. The table
//! is the only place that matches on [`GgmlType`].
//!
//! Numerics follow ggml-cpu (llama.cpp's CPU backend) so that srl reproduces
//! llama.cpp's tokens: a matrix product quantizes the activations to the
//! weight's `vec_dot_type` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) the way
//! ggml-cpu does on x86-64, then sums integer products block by block and
//! scales each block sum in f32. For several tokens, every block type has a
//! tiled AVX2 kernel that loads or unpacks each weight block once for a few
//! tokens and gives each (row, token) pair its dot product's bits (the
//! k-quants' tiles in `simd/x86_ktile.rs`); the float types follow ggml's two
//! paths, llamafile's tinyBLAS for prompts and the dot product for decoding.
//!
//! Shapes use the letters fixed for the whole project: B batch, T tokens,
//! C channels, H heads, D head dim, V vocab, L layers. A weight matrix is
//! `[rows, cols]` (output features, input features), stored row-major as
//! blocks of its type.
//!
//! ```
//! use srl_quant::{matmul_f32, quantize_row, GgmlType, QuantizedActivations, WeightMatrix};
//! let (rows, cols, n_tokens) = (4, 64, 2);
//! let w_f32: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 * 0.1).collect();
//! let ty = GgmlType::Q4_1;
//! let mut data = vec![0u8; ty.row_bytes(cols).unwrap() * rows];
//! quantize_row(ty, &w_f32, &mut data).unwrap(); // rows are contiguous blocks
//! let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
//! let x = vec![1.0f32; n_tokens * cols]; // [T, cols]
//! let mut y = vec![0.0f32; n_tokens * rows]; // [T, rows]
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
//! let mut scratch = QuantizedActivations::new(); // reused across calls
//! matmul_f32(&w, &x, n_tokens, &mut y, &mut scratch, &pool);
//! let exact: f32 = w_f32[..cols].iter().sum();
//! assert!((y[0] - exact).abs() < 0.05 * exact); // 4-bit weights: close, not equal
//! ```
//!
//! SIMD: every kernel has a scalar reference; x86-64 AVX2/FMA/F16C paths are
//! chosen once at run time ([`SimdLevel::detect`]) and tested against the
//! scalar ones. On aarch64, NEON dot products (the 32-element block types
//! and Q2_K..Q6_K) and activation quantizers repeat the AVX2 arithmetic lane
//! for lane, so they give the same bits (`tests/simd_bits.rs`).
//! The tests run on aarch64 under qemu: set
//! `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc` and
//! `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"`,
//! then `cargo test -p srl-quant --target aarch64-unknown-linux-gnu`.

// Kernels index several arrays with one counter, as the ggml code they
// mirror does; iterator chains would hide that correspondence.
#![allow(clippy::needless_range_loop)]

#[cfg(target_endian = "big")]
compile_error!("srl-quant reads GGUF data in place and supports little-endian targets only");

mod activations;
mod chunks;
mod dequantized_matmul;
mod error;
mod f32_tile;
mod fp;
mod matmul;
mod simd;
mod thread_buffer;
mod transposed_matmul;
pub mod types;

pub use activations::QuantizedActivations;
pub use dequantized_matmul::{
    gemm_f32_nn, gemm_f32_nn_serial, gemm_f32_nt, gemm_f32_nt_serial, matmul_dequantized,
    matmul_dequantized_at, matmul_dequantized_plus, transpose_f32, LowRank,
};
pub use error::QuantError;
pub use matmul::{matmul, matmul_at, matmul_f32, matmul_grouped, matmul_reference, WeightMatrix};
pub use simd::SimdLevel;
pub use transposed_matmul::{
    matmul_transposed, matmul_transposed_at, matmul_transposed_reference, matmul_transposed_sum,
    TransposedTerm,
};
pub use types::{GgmlType, Kernel, TypeTraits};

/// Dequantizes `dst.len()` elements of type `ty` from `src` into f32.
///
/// `src` must hold exactly `ty.row_bytes(dst.len())` bytes.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let bytes = check_row(ty, dst.len(), src.len())?;
    debug_assert_eq!(bytes, src.len());
    (ty.traits().dequantize)(src, dst);
    Ok(())
}

/// Quantizes `src` to type `ty` with the reference quantizer (the one that
/// creates model files: bit-exact with gguf-py, and with ggml's
/// `quantize_row_*_ref` for the k-quants).
///
/// `dst` must hold exactly `ty.row_bytes(src.len())` bytes.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let quantize = ty
        .traits()
        .quantize
        .ok_or(QuantError::Unsupported { ty, op: "quantize" })?;
    check_row(ty, src.len(), dst.len())?;
    quantize(src, dst);
    Ok(())
}

/// Checks that `n` elements of `ty` occupy exactly `bytes` bytes; returns them.
fn check_row(ty: GgmlType, n: usize, bytes: usize) -> Result<usize, QuantError> {
    let expected = ty.row_bytes(n).ok_or(QuantError::NotBlockMultiple {
        ty,
        n,
        block: ty.block_size(),
    })?;
    if expected != bytes {
        return Err(QuantError::ByteLength {
            ty,
            n,
            expected,
            actual: bytes,
        });
    }
    Ok(expected)
}

//! Q8_1: 32 signed bytes with an f16 scale d and an f16 `s = d * sum(q)`.
//! Only an activation type: it pairs with Q4_1 and Q5_1 weights, whose min
//! term then costs one multiply per block.

use super::{as_blocks, as_blocks_mut, block, neon_entry, x86_entry, Kernel, QuantizeFn};
use crate::fp::{f16_to_f32, f32_to_f16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q8_1`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [u8; QK],
}
block!(BlockQ8_1, 36);

/// Dequantizer: `d * q` (ggml has none; this one is for tests).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q8_1_ref`): round ties away from
/// zero, `s = fp16(sum * d)`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_1>(dst)) {
        let amax = x
            .iter()
            .fold(0.0f32, |a, &v| if a > v.abs() { a } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            let qi = (v * id).round() as i8;
            *q = qi as u8;
            sum += qi as i32;
        }
        b.s = f32_to_f16(sum as f32 * d);
    }
}

/// Activation quantizer with ggml-cpu's x86 numerics (`quantize_row_q8_1`
/// under AVX2): `id = 127 / amax`, round half to even, `s = fp16(d * sum)`.
pub fn from_float(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_1>(dst)) {
        let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            let qi = ((v * id).round_ties_even() as i32).clamp(-128, 127);
            *q = qi as i8 as u8;
            sum += qi;
        }
        b.s = f32_to_f16(d * sum as f32);
    }
}

x86_entry!(AVX2_FROM_FLOAT: QuantizeFn = x86::from_float);
neon_entry!(NEON_FROM_FLOAT: QuantizeFn = neon::from_float);

/// Activation quantizers.
pub const FROM_FLOAT: Kernel<QuantizeFn> = Kernel {
    scalar: from_float,
    avx2: AVX2_FROM_FLOAT,
    neon: NEON_FROM_FLOAT,
};

#[cfg(target_arch = "x86_64")]
mod x86 {
    pub(super) fn from_float(src: &[f32], dst: &mut [u8]) {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { crate::simd::x86::q8_from_float::<true>(src, dst) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    pub(super) fn from_float(src: &[f32], dst: &mut [u8]) {
        crate::simd::neon::q8_from_float::<true>(src, dst)
    }
}

//! Q4_0: 32 weights as 4-bit integers q in 0..16 around 8, one f16 scale:
//! `w = d * (q - 8)`. Pairs with Q8_0 activations.

use super::q8_0::BlockQ8_0;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
};
use crate::fp::{f16_to_f32, f32_to_f16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q4_0`: element j is the low nibble of `qs[j]` (j < 16) or
/// the high nibble of `qs[j - 16]`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}
block!(BlockQ4_0, 18);

/// Reference dequantizer (ggml `dequantize_row_q4_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q4_0_ref`, gguf-py `Q4_0`):
/// the scale maps the element of largest magnitude to -8.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ4_0>(dst)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Reference dot product with Q8_0 activations (ggml `ggml_vec_dot_q4_0_q8_0`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ4_0>(w), as_blocks::<BlockQ8_0>(x));
    let mut sum = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += ((bw.qs[j] & 0x0f) as i32 - 8) * bx.qs[j] as i8 as i32;
            sumi += ((bw.qs[j] >> 4) as i32 - 8) * bx.qs[j + QK / 2] as i8 as i32;
        }
        sum += sumi as f32 * f16_to_f32(bw.d) * f16_to_f32(bx.d);
    }
    sum
}

x86_entry!(AVX2_VEC_DOT: VecDotFn = x86::vec_dot);
neon_entry!(NEON_VEC_DOT: VecDotFn = neon::vec_dot);
x86_entry!(AVX2_GEMM: GemmFn = x86::gemm);

/// Dot product kernels.
pub const VEC_DOT: Kernel<VecDotFn> = Kernel {
    scalar: vec_dot,
    avx2: AVX2_VEC_DOT,
    neon: NEON_VEC_DOT,
};

/// Tiled matrix product kernels.
pub const GEMM: Option<Kernel<GemmFn>> = Some(Kernel {
    scalar: gemm,
    avx2: AVX2_GEMM,
    neon: None,
});

scalar_gemm!(vec_dot);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::simd::x86::*;
    use std::arch::x86_64::*;

    /// Q4_0 weights as signed bytes -8..7 against Q8_0 activations.
    pub(super) struct Q4_0;
    impl TileKernel for Q4_0 {
        const W_BYTES: usize = 18;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        const SIGNED: bool = true;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (__m256i, f32, f32) {
            let q = _mm256_sub_epi8(nibbles32(p.add(2)), _mm256_set1_epi8(8));
            (q, f16_at(p), 0.0)
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (__m256i, f32, f32) {
            load_q8_0(p)
        }
        #[inline(always)]
        unsafe fn dot(w: __m256i, x: __m256i) -> __m256 {
            mul_sum_i8_pairs_float(w, x)
        }
    }

    block32_entries!(Q4_0, 4, 2, 8);
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use crate::simd::neon::*;
    use std::arch::aarch64::*;

    pub(super) struct Q4_0;
    impl NeonBlock for Q4_0 {
        const W_BYTES: usize = 18;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            let (lo, hi) = nibbles(p.add(2));
            let off = vdupq_n_s8(8);
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), off),
                vsubq_s8(vreinterpretq_s8_u8(hi), off),
                f16_at(p),
                0.0,
            )
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            load_q8_0(p)
        }
    }

    neon_block32_vec_dot!(Q4_0);
}

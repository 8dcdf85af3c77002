//! Q4_1: 32 weights as 4-bit integers q in 0..16 with an f16 scale and an
//! f16 min: `w = d * q + m`. Pairs with Q8_1 activations.

use super::q8_1::BlockQ8_1;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
};
use crate::fp::{f16_to_f32, f32_to_f16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q4_1`: element j is the low nibble of `qs[j]` (j < 16) or
/// the high nibble of `qs[j - 16]`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; QK / 2],
}
block!(BlockQ4_1, 20);

/// Dequantizer (ggml `dequantize_row_q4_1`): 8 lanes at a time on AVX2
/// (what training's products spend on unpacking weights), the same
/// multiply and add per element as [`dequantize_scalar`].
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::SimdLevel::Avx2.available() {
        return x86::dequantize(src, dst);
    }
    dequantize_scalar(src, dst)
}

/// Reference dequantizer.
pub(crate) fn dequantize_scalar(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
        for j in 0..QK / 2 {
            y[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q4_1_ref`, gguf-py `Q4_1`):
/// 16 levels spread evenly from the block's min to its max.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ4_1>(dst)) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in x {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Reference dot product with Q8_1 activations (ggml
/// `ggml_vec_dot_q4_1_q8_1`): `d_w*d_x*sum(q_w*q_x) + m_w*s_x` per block.
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ4_1>(w), as_blocks::<BlockQ8_1>(x));
    let mut sum = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            sumi += (bw.qs[j] & 0x0f) as i32 * bx.qs[j] as i8 as i32;
            sumi += (bw.qs[j] >> 4) as i32 * bx.qs[j + QK / 2] as i8 as i32;
        }
        sum += (f16_to_f32(bw.d) * f16_to_f32(bx.d)) * sumi as f32
            + f16_to_f32(bw.m) * f16_to_f32(bx.s);
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
    use super::{BlockQ4_1, QK};
    use crate::simd::x86::*;
    use crate::types::as_blocks;
    use std::arch::x86_64::*;

    pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
        // SAFETY: the caller checked the CPU.
        unsafe { dequantize_avx2(src, dst) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequantize_avx2(src: &[u8], dst: &mut [f32]) {
        let m4 = _mm_set1_epi8(0x0f);
        for (b, y) in as_blocks::<BlockQ4_1>(src)
            .iter()
            .zip(dst.chunks_exact_mut(QK))
        {
            let d = _mm256_set1_ps(f16_at(b.d.as_ptr()));
            let m = _mm256_set1_ps(f16_at(b.m.as_ptr()));
            let q = _mm_loadu_si128(b.qs.as_ptr() as *const __m128i);
            let (lo, hi) = (
                _mm_and_si128(q, m4),
                _mm_and_si128(_mm_srli_epi16(q, 4), m4),
            );
            for (k, half) in [lo, hi].into_iter().enumerate() {
                for (e, bytes) in [half, _mm_srli_si128(half, 8)].into_iter().enumerate() {
                    let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                    let out = _mm256_add_ps(_mm256_mul_ps(v, d), m);
                    _mm256_storeu_ps(y.as_mut_ptr().add(16 * k + 8 * e), out);
                }
            }
        }
    }

    /// Q4_1 weights as unsigned bytes 0..15 against Q8_1 activations.
    pub(super) struct Q4_1;
    impl TileKernel for Q4_1 {
        const W_BYTES: usize = 20;
        const X_BYTES: usize = 36;
        const HAS_MIN: bool = true;
        const SIGNED: bool = false;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (__m256i, f32, f32) {
            (nibbles32(p.add(4)), f16_at(p), f16_at(p.add(2)))
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (__m256i, f32, f32) {
            load_q8_1(p)
        }
        #[inline(always)]
        unsafe fn dot(w: __m256i, x: __m256i) -> __m256 {
            mul_sum_us8_pairs_float(w, x)
        }
    }

    block32_entries!(Q4_1, 4, 2, 8);
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use crate::simd::neon::*;
    use std::arch::aarch64::*;

    pub(super) struct Q4_1;
    impl NeonBlock for Q4_1 {
        const W_BYTES: usize = 20;
        const X_BYTES: usize = 36;
        const HAS_MIN: bool = true;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            let (lo, hi) = nibbles(p.add(4));
            (
                vreinterpretq_s8_u8(lo),
                vreinterpretq_s8_u8(hi),
                f16_at(p),
                f16_at(p.add(2)),
            )
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            load_q8_1(p)
        }
    }

    neon_block32_vec_dot!(Q4_1);
}

//! Q8_0: 32 values as signed bytes with one f16 scale: `w = d * q`.
//! Both a weight type (pairs with itself) and the activation type of Q4_0,
//! Q5_0 and Q8_0 weights.

use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel,
    QuantizeFn, VecDotFn,
};
use crate::fp::{f16_to_f32, f32_to_f16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK],
}
block!(BlockQ8_0, 34);

/// Dequantizer (ggml `dequantize_row_q8_0`): 8 lanes at a time on AVX2,
/// the same product per element as [`dequantize_scalar`].
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::SimdLevel::Avx2.available() {
        return x86::dequantize(src, dst);
    }
    dequantize_scalar(src, dst)
}

/// Reference dequantizer.
pub(crate) fn dequantize_scalar(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q8_0_ref`, gguf-py `Q8_0`):
/// `d = amax / 127`, `q = round(x / d)` with ties away from zero.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_0>(dst)) {
        let amax = x
            .iter()
            .fold(0.0f32, |a, &v| if a > v.abs() { a } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8 as u8;
        }
    }
}

/// Activation quantizer with ggml-cpu's x86 numerics (`quantize_row_q8_0`
/// under AVX): `id = 127 / amax` and round half to even. Differs from
/// [`quantize`] in the last bit now and then, as llama.cpp's does.
pub fn from_float(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ8_0>(dst)) {
        let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = ((v * id).round_ties_even() as i32).clamp(-128, 127) as i8 as u8;
        }
    }
}

/// Reference dot product of two Q8_0 rows (ggml `ggml_vec_dot_q8_0_q8_0`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ8_0>(w), as_blocks::<BlockQ8_0>(x));
    let mut sum = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += bw.qs[j] as i8 as i32 * bx.qs[j] as i8 as i32;
        }
        sum += sumi as f32 * (f16_to_f32(bw.d) * f16_to_f32(bx.d));
    }
    sum
}

x86_entry!(AVX2_VEC_DOT: VecDotFn = x86::vec_dot);
neon_entry!(NEON_VEC_DOT: VecDotFn = neon::vec_dot);
x86_entry!(AVX2_GEMM: GemmFn = x86::gemm);
x86_entry!(AVX2_FROM_FLOAT: QuantizeFn = x86::from_float);
neon_entry!(NEON_FROM_FLOAT: QuantizeFn = neon::from_float);

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

/// Activation quantizers.
pub const FROM_FLOAT: Kernel<QuantizeFn> = Kernel {
    scalar: from_float,
    avx2: AVX2_FROM_FLOAT,
    neon: NEON_FROM_FLOAT,
};

scalar_gemm!(vec_dot);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BlockQ8_0, QK};
    use crate::simd::x86::*;
    use crate::types::as_blocks;
    use std::arch::x86_64::*;

    pub(super) fn dequantize(src: &[u8], dst: &mut [f32]) {
        // SAFETY: the caller checked the CPU.
        unsafe { dequantize_avx2(src, dst) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequantize_avx2(src: &[u8], dst: &mut [f32]) {
        for (b, y) in as_blocks::<BlockQ8_0>(src)
            .iter()
            .zip(dst.chunks_exact_mut(QK))
        {
            let d = _mm256_set1_ps(f16_at(b.d.as_ptr()));
            for e in 0..QK / 8 {
                let bytes = _mm_loadl_epi64(b.qs.as_ptr().add(8 * e) as *const __m128i);
                let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                _mm256_storeu_ps(y.as_mut_ptr().add(8 * e), _mm256_mul_ps(v, d));
            }
        }
    }

    /// Q8_0 weights against Q8_0 activations.
    pub(super) struct Q8_0;
    impl TileKernel for Q8_0 {
        const W_BYTES: usize = 34;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        const SIGNED: bool = true;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (__m256i, f32, f32) {
            load_q8_0(p)
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

    block32_entries!(Q8_0, 4, 2, 8);

    pub(super) fn from_float(src: &[f32], dst: &mut [u8]) {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { q8_from_float::<false>(src, dst) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use crate::simd::neon::*;
    use std::arch::aarch64::*;

    pub(super) struct Q8_0;
    impl NeonBlock for Q8_0 {
        const W_BYTES: usize = 34;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            load_q8_0(p)
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            load_q8_0(p)
        }
    }

    neon_block32_vec_dot!(Q8_0);

    pub(super) fn from_float(src: &[f32], dst: &mut [u8]) {
        q8_from_float::<false>(src, dst)
    }
}

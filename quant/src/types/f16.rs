//! F16: IEEE half floats. As a weight type it pairs with f16 activations
//! (ggml-cpu converts the input to f16 first, rounding to nearest even).

use super::{scalar_gemm, x86_entry, GemmFn, Kernel, QuantizeFn, VecDotFn};
use crate::fp::{f16_to_f32, f32_to_f16};

/// f16 bytes to f32 (exact).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = f16_to_f32([b[0], b[1]]);
    }
}

/// f32 to f16 bytes, round to nearest even (numpy, F16C and ggml agree).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f32_to_f16(*x));
    }
}

/// Reference dot product: f32 products accumulated in f64, as ggml's scalar
/// `ggml_vec_dot_f16`.
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(x.chunks_exact(2)).take(n) {
        sum += (f16_to_f32([a[0], a[1]]) * f16_to_f32([b[0], b[1]])) as f64;
    }
    sum as f32
}

x86_entry!(AVX2_VEC_DOT: VecDotFn = x86::vec_dot);
x86_entry!(AVX2_GEMM: GemmFn = x86::gemm);
x86_entry!(AVX2_FROM_FLOAT: QuantizeFn = x86::from_float);

/// Dot product kernels.
pub const VEC_DOT: Kernel<VecDotFn> = Kernel {
    scalar: vec_dot,
    avx2: AVX2_VEC_DOT,
    neon: None,
};

/// Activation conversion kernels.
pub const FROM_FLOAT: Kernel<QuantizeFn> = Kernel {
    scalar: quantize,
    avx2: AVX2_FROM_FLOAT,
    neon: None,
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
    use crate::fp::f16_to_f32;
    use crate::simd::x86::{avx2_gemm, dot_lanes, float_gemm_or_dots, F16Rows};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    avx2_gemm!(float_gemm_or_dots::<F16Rows>);

    pub(super) fn from_float(src: &[f32], dst: &mut [u8]) {
        // SAFETY: as above.
        unsafe { from_float_avx2(src, dst) }
    }

    /// ggml `ggml_vec_dot_f16` (F16C): 4x8 FMA lanes, then f64 leftovers.
    /// What llama.cpp runs for one token (decoding) and for row counts
    /// that are not a multiple of 4; other products go through [`gemm`]
    /// (llamafile's tinyBLAS), see `crate::matmul`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn vec_dot_avx2(n: usize, w: &[u8], x: &[u8]) -> f32 {
        assert!(w.len() >= n * 2 && x.len() >= n * 2);
        let load = |p: *const u8, i: usize| {
            _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i) as *const __m128i))
        };
        let (sum, done) = dot_lanes(n, w.as_ptr(), x.as_ptr(), load);
        let mut sum = sum as f64;
        for i in done..n {
            let a = f16_to_f32([w[2 * i], w[2 * i + 1]]);
            let b = f16_to_f32([x[2 * i], x[2 * i + 1]]);
            sum += (a * b) as f64;
        }
        sum as f32
    }

    /// f32 to f16 with F16C, 8 at a time, round to nearest even.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn from_float_avx2(src: &[f32], dst: &mut [u8]) {
        assert!(dst.len() >= src.len() * 2);
        let n8 = src.len() & !7;
        let mut i = 0;
        while i < n8 {
            let h = _mm256_cvtps_ph(_mm256_loadu_ps(src.as_ptr().add(i)), 0);
            _mm_storeu_si128(dst.as_mut_ptr().add(2 * i) as *mut __m128i, h);
            i += 8;
        }
        super::quantize(&src[n8..], &mut dst[2 * n8..]);
    }
}

//! BF16: the top 16 bits of an f32. As a weight type it pairs with bf16
//! activations.

use super::{scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn};
use crate::fp::{bf16_to_f32, f32_to_bf16};

/// bf16 bytes to f32 (exact).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = bf16_to_f32([b[0], b[1]]);
    }
}

/// f32 to bf16, round to nearest even, NaN kept quiet (ggml, gguf-py).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f32_to_bf16(*x));
    }
}

/// Reference dot product: f32 products accumulated in f64 (ggml's scalar).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(x.chunks_exact(2)).take(n) {
        sum += (bf16_to_f32([a[0], a[1]]) * bf16_to_f32([b[0], b[1]])) as f64;
    }
    sum as f32
}

x86_entry!(AVX2_VEC_DOT: VecDotFn = x86::vec_dot);
x86_entry!(AVX2_GEMM: GemmFn = x86::gemm);

/// Dot product kernels.
pub const VEC_DOT: Kernel<VecDotFn> = Kernel {
    scalar: vec_dot,
    avx2: AVX2_VEC_DOT,
    neon: None,
};

/// Tiled matrix product kernels (llamafile's tinyBLAS numerics, which
/// llama.cpp uses for prompts: see `crate::matmul`).
pub const GEMM: Option<Kernel<GemmFn>> = Some(Kernel {
    scalar: gemm,
    avx2: AVX2_GEMM,
    neon: None,
});

scalar_gemm!(vec_dot);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::fp::bf16_to_f32;
    use crate::simd::x86::{avx2_gemm, float_gemm_or_dots, hsum_float_8, Bf16Rows};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    avx2_gemm!(float_gemm_or_dots::<Bf16Rows>);

    /// ggml `ggml_vec_dot_bf16` (AVX2): 4x8 lanes, `(c1+c3)+(c2+c4)`, f64
    /// leftovers.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn vec_dot_avx2(n: usize, w: &[u8], x: &[u8]) -> f32 {
        assert!(w.len() >= n * 2 && x.len() >= n * 2);
        let load = |p: *const u8, i: usize| {
            let h = _mm_loadu_si128(p.add(2 * i) as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        };
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut c = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, c) in c.iter_mut().enumerate() {
                *c = _mm256_fmadd_ps(load(wp, i + 8 * j), load(xp, i + 8 * j), *c);
            }
            i += 32;
        }
        let c1 = _mm256_add_ps(_mm256_add_ps(c[0], c[2]), _mm256_add_ps(c[1], c[3]));
        let mut sum = hsum_float_8(c1) as f64;
        for i in i..n {
            let a = bf16_to_f32([w[2 * i], w[2 * i + 1]]);
            let b = bf16_to_f32([x[2 * i], x[2 * i + 1]]);
            sum += (a * b) as f64;
        }
        sum as f32
    }
}

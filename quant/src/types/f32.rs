//! F32: plain little-endian floats. As a weight type it pairs with f32
//! activations.

use super::{scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn};
use crate::fp::read_f32;

/// Little-endian bytes to f32.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *y = read_f32(b);
    }
}

/// f32 to little-endian bytes.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// Reference dot product, accumulated in f64 as ggml's scalar path.
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(4).zip(x.chunks_exact(4)).take(n) {
        sum += (read_f32(a) * read_f32(b)) as f64;
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

/// Tiled matrix product kernels.
pub const GEMM: Option<Kernel<GemmFn>> = Some(Kernel {
    scalar: gemm,
    avx2: AVX2_GEMM,
    neon: None,
});

scalar_gemm!(vec_dot);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::simd::x86::{avx2_gemm, dot_lanes, float_gemm_or_dots, F32Rows};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    avx2_gemm!(float_gemm_or_dots::<F32Rows>);

    /// ggml `ggml_vec_dot_f32` (AVX2) as GCC compiles it: 4x8 FMA lanes
    /// over 32-element steps, reduced; then the leftovers: groups of 8, then
    /// of 4, as rounded products added one by one (GCC vectorizes the
    /// multiplies only), the last 0-3 with scalar FMAs.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn vec_dot_avx2(n: usize, w: &[u8], x: &[u8]) -> f32 {
        assert!(w.len() >= n * 4 && x.len() >= n * 4);
        let load = |p: *const u8, i: usize| _mm256_loadu_ps((p as *const f32).add(i));
        let (mut sum, mut i) = dot_lanes(n, w.as_ptr(), x.as_ptr(), load);
        let (wp, xp) = (w.as_ptr() as *const f32, x.as_ptr() as *const f32);
        let prod = |i: usize| wp.add(i).read_unaligned() * xp.add(i).read_unaligned();
        while n - i >= 8 {
            for j in 0..8 {
                sum += prod(i + j);
            }
            i += 8;
        }
        if n - i >= 4 {
            for j in 0..4 {
                sum += prod(i + j);
            }
            i += 4;
        }
        for i in i..n {
            sum = wp
                .add(i)
                .read_unaligned()
                .mul_add(xp.add(i).read_unaligned(), sum);
        }
        sum
    }
}

//! The f32 register tile both training GEMMs run ([`crate::matmul_dequantized`]
//! and [`crate::matmul_transposed`]): `c[t, j] (+)= Σ_k a[t, k] · b[k, j]`
//! for M <= [`MT`] rows of `a` and [`NR`] columns of `b`, one multiply-add
//! chain per output in k order (fused on AVX2 and aarch64), with an AVX2+FMA
//! version chosen at run time and a portable one.

use crate::simd::SimdLevel;

/// Columns per tile: two 8-lane vectors.
pub(crate) const NR: usize = 16;
/// Rows of `a` per register tile (MT x 2 accumulators + 2 `b` vectors + 1
/// broadcast = 15 of AVX2's 16 registers).
pub(crate) const MT: usize = 6;

/// `c` rows start from zero, or from their values when `accumulate`.
///
/// # Safety
/// `b` is 32-byte aligned, `ldb` a multiple of 8, and `b` holds kc rows of
/// `ldb >= NR` floats; a rows hold `kc` floats; the outputs are valid for
/// reads and writes and touched by no other thread.
pub(crate) type TileFn =
    unsafe fn(*const f32, usize, usize, *const f32, usize, *mut f32, usize, usize, bool);

/// The tile kernels for `level`, entry `m - 1` computing m tokens (portable
/// where it has none, or where this CPU cannot run it).
pub(crate) fn tiles_at(level: SimdLevel) -> [TileFn; MT] {
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 && level.available() {
        return [
            avx2::tile::<1>,
            avx2::tile::<2>,
            avx2::tile::<3>,
            avx2::tile::<4>,
            avx2::tile::<5>,
            avx2::tile::<6>,
        ];
    }
    let _ = level;
    [
        tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>,
    ]
}

/// `a * b + c`, fused where the baseline has FMA (aarch64), so that it
/// vectorizes to `fmla` there and to a multiply and an add elsewhere.
#[inline(always)]
fn mul_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "aarch64")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        a * b + c
    }
}

/// Portable tile of `M` tokens by NR columns (see [`TileFn`]).
///
/// # Safety
/// As [`TileFn`].
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const M: usize>(
    b: *const f32,
    ldb: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    accumulate: bool,
) {
    let ar: [&[f32]; M] = std::array::from_fn(|t| std::slice::from_raw_parts(a.add(t * lda), kc));
    let mut acc = [[0.0f32; NR]; M];
    if accumulate {
        for t in 0..M {
            for j in 0..nr {
                acc[t][j] = *c.add(t * ldc + j);
            }
        }
    }
    for k in 0..kc {
        let bk = &*(b.add(k * ldb) as *const [f32; NR]);
        for t in 0..M {
            let av = ar[t][k];
            for j in 0..NR {
                acc[t][j] = mul_add(av, bk[j], acc[t][j]);
            }
        }
    }
    for t in 0..M {
        for j in 0..nr {
            *c.add(t * ldc + j) = acc[t][j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::NR;
    use std::arch::x86_64::*;

    /// AVX2+FMA tile of `M` tokens by NR columns (see [`super::TileFn`]):
    /// 2·M accumulators of 8 lanes.
    ///
    /// # Safety
    /// As [`super::TileFn`], and the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const M: usize>(
        b: *const f32,
        ldb: usize,
        kc: usize,
        a: *const f32,
        lda: usize,
        c: *mut f32,
        ldc: usize,
        nr: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        for t in 0..M {
            if !accumulate {
                break;
            }
            if nr == NR {
                acc[t][0] = _mm256_loadu_ps(c.add(t * ldc));
                acc[t][1] = _mm256_loadu_ps(c.add(t * ldc + 8));
            } else {
                let mut v = [0.0f32; NR];
                std::ptr::copy_nonoverlapping(c.add(t * ldc), v.as_mut_ptr(), nr);
                acc[t][0] = _mm256_loadu_ps(v.as_ptr());
                acc[t][1] = _mm256_loadu_ps(v.as_ptr().add(8));
            }
        }
        // One weight row: 2 loads, M broadcasts, 2·M multiply-adds.
        let step = |acc: &mut [[__m256; 2]; M], k: usize| {
            let w0 = _mm256_load_ps(b.add(k * ldb));
            let w1 = _mm256_load_ps(b.add(k * ldb + 8));
            for t in 0..M {
                let av = _mm256_broadcast_ss(&*a.add(t * lda + k));
                acc[t][0] = _mm256_fmadd_ps(av, w0, acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(av, w1, acc[t][1]);
            }
        };
        let mut k = 0;
        while k + 4 <= kc {
            step(&mut acc, k);
            step(&mut acc, k + 1);
            step(&mut acc, k + 2);
            step(&mut acc, k + 3);
            k += 4;
        }
        for k in k..kc {
            step(&mut acc, k);
        }
        for t in 0..M {
            if nr == NR {
                _mm256_storeu_ps(c.add(t * ldc), acc[t][0]);
                _mm256_storeu_ps(c.add(t * ldc + 8), acc[t][1]);
            } else {
                let mut v = [0.0f32; NR];
                _mm256_storeu_ps(v.as_mut_ptr(), acc[t][0]);
                _mm256_storeu_ps(v.as_mut_ptr().add(8), acc[t][1]);
                std::ptr::copy_nonoverlapping(v.as_ptr(), c.add(t * ldc), nr);
            }
        }
    }
}

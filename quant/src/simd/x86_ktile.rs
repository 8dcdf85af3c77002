//! The tiled product of the k-quant types on AVX2 (one weight row by several
//! tokens).
//!
//! A k-quant super-block costs more to unpack than to multiply: its 6-bit
//! scales and mins, the high bits of Q6_K and the nibble masks are worked
//! out per block, then each 32-quant piece is one `maddubs` and one `madd`
//! against the activations. ggml computes every (row, token) pair on its
//! own, unpacking each weight block once per token; here a row's block is
//! unpacked once and multiplied with [`TOKENS`] tokens' blocks. Every pair
//! still takes exactly the steps of the type's AVX2 `vec_dot` (the same
//! integer sums, which are exact in any order, and the same f32 operations
//! in the same order), so the results are its bits.

use crate::types::{q8_k::BlockQ8K, QK_K};
use std::arch::x86_64::*;

/// Tokens per tile.
pub(crate) const TOKENS: usize = 4;

/// A k-quant type's tile.
pub(crate) trait KTile {
    /// Bytes per weight super-block.
    const W_BYTES: usize;
    /// Bytes per activation super-block (Q8_K).
    const X_BYTES: usize;
    /// `out[t] = vec_dot(nb super-blocks of the row at w, the activation row
    /// at x + t * xs)` for `t < N`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds `nb` blocks and each of
    /// the N activation rows `nb` blocks.
    unsafe fn tile<const N: usize>(
        nb: usize,
        w: *const u8,
        x: *const u8,
        xs: usize,
        out: &mut [f32; N],
    );
}

/// The tiled product ([`crate::types::GemmFn`]) of a k-quant type (its
/// `gemm` entry is `avx2_gemm!(gemm_k::<Tile>)`): tokens in
/// groups of [`TOKENS`] (then one by one), each group against every row, so
/// that a group's activation blocks stay in L1 while the rows pass.
///
/// # Safety
/// As [`crate::types::GemmFn`], and the CPU has AVX2, FMA and F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_k<K: KTile>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    x: &[u8],
    xs: usize,
    nt: usize,
    y: *mut f32,
    ys: usize,
) {
    let nb = n / QK_K;
    if nr == 0 || nt == 0 {
        return;
    }
    assert!(w.len() >= (nr - 1) * ws + nb * K::W_BYTES);
    assert!(x.len() >= (nt - 1) * xs + nb * K::X_BYTES);
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut t = 0;
    while t + TOKENS <= nt {
        for r in 0..nr {
            let mut out = [0.0f32; TOKENS];
            K::tile::<TOKENS>(nb, wp.add(r * ws), xp.add(t * xs), xs, &mut out);
            for (i, v) in out.into_iter().enumerate() {
                *y.add((t + i) * ys + r) = v;
            }
        }
        t += TOKENS;
    }
    for t in t..nt {
        for r in 0..nr {
            let mut out = [0.0f32; 1];
            K::tile::<1>(nb, wp.add(r * ws), xp.add(t * xs), xs, &mut out);
            *y.add(t * ys + r) = out[0];
        }
    }
}

/// Super-block `i` of the N activation rows at `x`, `xs` bytes apart.
///
/// # Safety
/// Each row holds more than `i` Q8_K blocks.
#[inline(always)]
pub(crate) unsafe fn q8k_blocks<'a, const N: usize>(
    x: *const u8,
    xs: usize,
    i: usize,
) -> [&'a BlockQ8K; N] {
    let bytes = std::mem::size_of::<BlockQ8K>();
    std::array::from_fn(|t| &*(x.add(t * xs + i * bytes) as *const BlockQ8K))
}

/// `acc[t] += (d_x[t] * d_w) * sumi[t]`: a super-block's integer sums into
/// each token's f32 lanes, one fused multiply-add as ggml's kernels do.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[inline(always)]
pub(crate) unsafe fn add_scaled<const N: usize>(
    acc: &mut [__m256; N],
    bx: &[&BlockQ8K; N],
    wd: f32,
    sumi: &[__m256i; N],
) {
    for t in 0..N {
        let d = bx[t].d() * wd;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
}

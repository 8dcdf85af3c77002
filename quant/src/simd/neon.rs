//! aarch64 NEON kernels for the 32-element block types, and the building
//! blocks of the k-quant ones (whose kernels live in their type files).
//!
//! They compute exactly what the AVX2 kernels compute, so srl gives the same
//! bits on ARM as on x86: the 8 f32 lanes of ggml's x86 accumulator are two
//! `float32x4_t`, lane k summing the products of bytes 4k..4k+3 (the integer
//! sums are exact either way), fused multiply-adds in the same order, and
//! the same horizontal sum.
//!
//! NEON is part of the aarch64 baseline, so no run-time check is needed; the
//! intrinsics are `unsafe` only because they read raw pointers.

use crate::fp::{f16_to_f32, f32_to_f16};
use std::arch::aarch64::*;

/// A 32-element weight block type paired with its 32-element activation
/// type, as the generic NEON dot product reads them.
pub(crate) trait NeonBlock {
    /// Bytes per weight block.
    const W_BYTES: usize;
    /// Bytes per activation block.
    const X_BYTES: usize;
    /// Whether blocks carry a min (`_1` types): adds `m_w * s_x` per block.
    const HAS_MIN: bool;
    /// Weight block at `p`: elements 0..16 and 16..32 as bytes, d, m.
    unsafe fn load_w(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32);
    /// Activation block at `p`: the same, with s = d * sum(q) for Q8_1.
    unsafe fn load_x(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32);
}

/// Reads an f16 at `p` (unaligned) as f32.
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    f16_to_f32([*p, *p.add(1)])
}

/// Q8_0 activations: `d: f16, qs: [i8; 32]`.
#[inline(always)]
pub(crate) unsafe fn load_q8_0(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
    let q = p.add(2) as *const i8;
    (vld1q_s8(q), vld1q_s8(q.add(16)), f16_at(p), 0.0)
}

/// Q8_1 activations: `d: f16, s: f16, qs: [i8; 32]`.
#[inline(always)]
pub(crate) unsafe fn load_q8_1(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
    let q = p.add(4) as *const i8;
    (
        vld1q_s8(q),
        vld1q_s8(q.add(16)),
        f16_at(p),
        f16_at(p.add(2)),
    )
}

/// 16 bytes at `p` as nibbles: (low nibbles, high nibbles), each 0..15.
#[inline(always)]
pub(crate) unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let v = vld1q_u8(p);
    (vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8(v, 4))
}

/// The 32 bits at `p` as bytes: 0xFF where bit i is set (elements 0..16,
/// 16..32).
#[inline(always)]
pub(crate) unsafe fn bits(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    const MASK: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let mask = vld1q_u8(MASK.as_ptr());
    let lo = vcombine_u8(vdup_n_u8(*p), vdup_n_u8(*p.add(1)));
    let hi = vcombine_u8(vdup_n_u8(*p.add(2)), vdup_n_u8(*p.add(3)));
    (vtstq_u8(lo, mask), vtstq_u8(hi, mask))
}

/// Products of 16 byte pairs summed in groups of four: lane k holds bytes
/// 4k..4k+3 (what x86's maddubs + madd give; no saturation occurs for the
/// value ranges of these types: two products sum to at most 2 * 63 * 128,
/// Q6_K's, below x86's i16 limit).
#[inline(always)]
unsafe fn quad_sums(w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    let hi = vmull_high_s8(w, x);
    vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
}

/// The x86 `hsum_float_8` of the 8 lanes `(lo, hi)`.
#[inline(always)]
unsafe fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    let r = vaddq_f32(hi, lo);
    let a = vgetq_lane_f32(r, 0) + vgetq_lane_f32(r, 2);
    let b = vgetq_lane_f32(r, 1) + vgetq_lane_f32(r, 3);
    a + b
}

/// 8 i32 lanes, x86's `__m256i` integer accumulator: `lo` holds lanes 0..4
/// (bytes 0..16 of a 32-byte chunk), `hi` lanes 4..8 (bytes 16..32).
#[derive(Clone, Copy)]
pub(crate) struct I32x8 {
    pub lo: int32x4_t,
    pub hi: int32x4_t,
}

impl I32x8 {
    #[inline(always)]
    pub unsafe fn zero() -> Self {
        I32x8 {
            lo: vdupq_n_s32(0),
            hi: vdupq_n_s32(0),
        }
    }

    /// Adds one 32-byte chunk of weight bytes `(w_lo, w_hi)` times the
    /// activations at `x`, bytes 0..16 scaled by `s_lo` and 16..32 by `s_hi`:
    /// x86's `madd(setr(s_lo, s_hi), maddubs(w, x))` (exact integers).
    #[inline(always)]
    pub unsafe fn add_chunk(
        self,
        w_lo: int8x16_t,
        w_hi: int8x16_t,
        x: *const i8,
        s_lo: i32,
        s_hi: i32,
    ) -> Self {
        I32x8 {
            lo: vmlaq_n_s32(self.lo, quad_sums(w_lo, vld1q_s8(x)), s_lo),
            hi: vmlaq_n_s32(self.hi, quad_sums(w_hi, vld1q_s8(x.add(16))), s_hi),
        }
    }

    /// `acc + d * self` in each of the 8 lanes with one rounding (x86's
    /// `_mm256_fmadd_ps(set1(d), cvtepi32_ps(self), acc)`).
    #[inline(always)]
    pub unsafe fn fma_into(self, acc: F32x8, d: f32) -> F32x8 {
        let d = vdupq_n_f32(d);
        F32x8 {
            lo: vfmaq_f32(acc.lo, d, vcvtq_f32_s32(self.lo)),
            hi: vfmaq_f32(acc.hi, d, vcvtq_f32_s32(self.hi)),
        }
    }
}

/// 8 f32 lanes, x86's `__m256` accumulator.
#[derive(Clone, Copy)]
pub(crate) struct F32x8 {
    pub lo: float32x4_t,
    pub hi: float32x4_t,
}

impl F32x8 {
    #[inline(always)]
    pub unsafe fn zero() -> Self {
        F32x8 {
            lo: vdupq_n_f32(0.0),
            hi: vdupq_n_f32(0.0),
        }
    }

    /// ggml's `hsum_float_8`.
    #[inline(always)]
    pub unsafe fn hsum(self) -> f32 {
        hsum8(self.lo, self.hi)
    }
}

/// x86's `_mm_madd_epi16`: lane k is `a[2k] * b[2k] + a[2k+1] * b[2k+1]`.
#[inline(always)]
pub(crate) unsafe fn madd_s16(a: int16x8_t, b: int16x8_t) -> int32x4_t {
    let lo = vmull_s16(vget_low_s16(a), vget_low_s16(b));
    vpaddq_s32(lo, vmull_high_s16(a, b))
}

/// The 16 block sums of a Q8_K block at `p` (unaligned i16s), as sums
/// 0..8 and 8..16.
#[inline(always)]
pub(crate) unsafe fn load_bsums(p: *const u8) -> (int16x8_t, int16x8_t) {
    (
        vreinterpretq_s16_u8(vld1q_u8(p)),
        vreinterpretq_s16_u8(vld1q_u8(p.add(16))),
    )
}

/// The min term of Q4_K / Q5_K in 4 lanes: `mins[k]` (0..64) times the sum
/// of the activations of sub-block k of 32, lanes summing sub-blocks 2k and
/// 2k + 1 (x86's `madd(cvtepu8(mins), hadd(bsums lo, bsums hi))`).
#[inline(always)]
pub(crate) unsafe fn mins_by_sums32(mins: &[u8; 8], bsums: *const u8) -> int32x4_t {
    let m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins.as_ptr())));
    let (lo, hi) = load_bsums(bsums);
    madd_s16(m, vpaddq_s16(lo, hi))
}

/// Dot product of `n` elements with the AVX2 kernels' numerics.
#[inline(always)]
pub(crate) unsafe fn vec_dot_blocks<K: NeonBlock>(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / 32;
    assert!(w.len() >= nb * K::W_BYTES && x.len() >= nb * K::X_BYTES);
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc_lo = vdupq_n_f32(0.0);
    let mut acc_hi = vdupq_n_f32(0.0);
    let mut summs = 0.0f32;
    for i in 0..nb {
        let (w0, w1, dw, mw) = K::load_w(wp.add(i * K::W_BYTES));
        let (x0, x1, dx, sx) = K::load_x(xp.add(i * K::X_BYTES));
        let d = vdupq_n_f32(dw * dx);
        acc_lo = vfmaq_f32(acc_lo, d, vcvtq_f32_s32(quad_sums(w0, x0)));
        acc_hi = vfmaq_f32(acc_hi, d, vcvtq_f32_s32(quad_sums(w1, x1)));
        if K::HAS_MIN {
            summs = mw.mul_add(sx, summs);
        }
    }
    hsum8(acc_lo, acc_hi) + summs
}

/// Q8_0 (`WITH_SUM = false`) or Q8_1 (`true`) activation quantizer with the
/// numerics of the scalar and AVX2 ones: `id = 127 / amax`, round half to
/// even, saturate to i8; Q8_1 adds `s = fp16(d * sum(q))`.
pub(crate) fn q8_from_float<const WITH_SUM: bool>(src: &[f32], dst: &mut [u8]) {
    let bytes = if WITH_SUM { 36 } else { 34 };
    let nb = src.len() / 32;
    assert!(dst.len() >= nb * bytes);
    for i in 0..nb {
        let x = &src[32 * i..32 * i + 32];
        let y = &mut dst[i * bytes..(i + 1) * bytes];
        // SAFETY: `x` holds 32 floats and `y` `bytes` bytes (checked above).
        unsafe {
            let mut v = [vdupq_n_f32(0.0); 8];
            let mut amax = vdupq_n_f32(0.0);
            for (j, v) in v.iter_mut().enumerate() {
                *v = vld1q_f32(x.as_ptr().add(4 * j));
                amax = vmaxq_f32(amax, vabsq_f32(*v));
            }
            let max_scalar = vmaxvq_f32(amax);
            let d = max_scalar / 127.0;
            let id = if max_scalar != 0.0 {
                127.0 / max_scalar
            } else {
                0.0
            };
            y[..2].copy_from_slice(&f32_to_f16(d));
            let mut sum = vdupq_n_s32(0);
            let mut q = [0i8; 32];
            for j in 0..4 {
                let a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j], id));
                let b = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j + 1], id));
                sum = vaddq_s32(sum, vaddq_s32(a, b));
                let h = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
                vst1_s8(q.as_mut_ptr().add(8 * j), vqmovn_s16(h));
            }
            let qs = if WITH_SUM {
                let s = d * vaddvq_s32(sum) as f32;
                y[2..4].copy_from_slice(&f32_to_f16(s));
                &mut y[4..]
            } else {
                &mut y[2..]
            };
            for (o, &v) in qs.iter_mut().zip(&q) {
                *o = v as u8;
            }
        }
    }
}

/// Defines the safe NEON entry `vec_dot_neon` of a 32-element block type.
macro_rules! neon_block32_vec_dot {
    ($k:ty) => {
        pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
            unsafe { $crate::simd::neon::vec_dot_blocks::<$k>(n, w, x) }
        }
    };
}
pub(crate) use neon_block32_vec_dot;

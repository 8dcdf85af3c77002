//! Q3_K: super-blocks of 256 weights in 16 sub-blocks of 16; 3-bit quants
//! (2 low bits plus a high-bit mask) around 4, 6-bit signed sub-block scales
//! under an f16 super-scale: `w = d * (sc_j - 32) * (q - 4)`. Pairs with Q8_K.

use super::k_common::make_q3_quants;
use super::q8_k::BlockQ8K;
use super::{as_blocks, as_blocks_mut, block, Kernel, VecDotFn, QK_K};
use crate::fp::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `block_q3_K`: element `128h + 32k + l` has low bits
/// `(qs[32h + l] >> 2k) & 3` and high bit `(hmask[l] >> (4h + k)) & 1`
/// (a set bit means no -4 offset).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}
block!(BlockQ3K, 110);

/// The 16 sub-block scales minus 32.
#[inline(always)]
fn scales(b: &BlockQ3K) -> [i8; 16] {
    let mut s = [0i8; 16];
    for (j, s) in s.iter_mut().enumerate() {
        let lo = if j < 8 {
            b.scales[j] & 0x0f
        } else {
            b.scales[j - 8] >> 4
        };
        let hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        *s = (lo | (hi << 4)) as i8 - 32;
    }
    s
}

/// Signed quants in -4..3, element order.
#[inline(always)]
fn unpack(b: &BlockQ3K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (e, q) in q.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
        let low = ((b.qs[32 * h + l] >> (2 * k)) & 3) as i8;
        let high = (b.hmask[l] >> (4 * h + k)) & 1;
        *q = low - if high != 0 { 0 } else { 4 };
    }
    q
}

/// Reference dequantizer (ggml `dequantize_row_q3_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d_all = f16_to_f32(b.d);
        let (sc, q) = (scales(b), unpack(b));
        for (e, y) in y.iter_mut().enumerate() {
            let dl = d_all * sc[e / 16] as f32;
            *y = dl * q[e] as f32;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q3_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ3K>(dst)) {
        let mut l = [0i8; QK_K];
        let mut sc = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            sc[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            if sc[j].abs() > amax {
                amax = sc[j].abs();
                max_scale = sc[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for (j, &s) in sc.iter().enumerate() {
                let li = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                if j < 8 {
                    b.scales[j] = (li & 0x0f) as u8;
                } else {
                    b.scales[j - 8] |= ((li & 0x0f) << 4) as u8;
                }
                let li = li >> 4;
                b.scales[j % 4 + 8] |= (li << (2 * (j / 4))) as u8;
            }
            b.d = f32_to_f16(1.0 / iscale);
        } else {
            b.d = f32_to_f16(0.0);
        }
        let scs = scales(b);
        for j in 0..QK_K / 16 {
            let d = f16_to_f32(b.d) * scs[j] as f32;
            if d == 0.0 {
                continue;
            }
            for i in 0..16 {
                let q = nearest_int(x[16 * j + i] / d).clamp(-4, 3);
                l[16 * j + i] = (q + 4) as i8;
            }
        }
        b.hmask = [0; QK_K / 8];
        let (mut m, mut hm) = (0usize, 1u8);
        for lj in l.iter_mut() {
            if *lj > 3 {
                b.hmask[m] |= hm;
                *lj -= 4;
            }
            m += 1;
            if m == QK_K / 8 {
                m = 0;
                hm <<= 1;
            }
        }
        for h in 0..2 {
            for i in 0..32 {
                let q = |k: usize| l[128 * h + 32 * k + i] as u8;
                b.qs[32 * h + i] = q(0) | (q(1) << 2) | (q(2) << 4) | (q(3) << 6);
            }
        }
    }
}

/// Reference dot product with Q8_K (ggml `ggml_vec_dot_q3_K_q8_K_generic`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ3K>(w), as_blocks::<BlockQ8K>(x));
    let mut sums = [0.0f32; 8];
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let (sc, q) = (scales(bw), unpack(bw));
        let mut aux32 = [0i32; 8];
        for e in 0..QK_K {
            aux32[e % 8] += sc[e / 16] as i32 * (q[e] as i32 * bx.q(e));
        }
        let d = f16_to_f32(bw.d) * bx.d();
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Dot product kernels (scalar only).
pub const VEC_DOT: Kernel<VecDotFn> = Kernel {
    scalar: vec_dot,
    avx2: None,
    neon: None,
};

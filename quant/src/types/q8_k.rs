//! Q8_K: 256 signed bytes with an f32 scale and 16 partial sums. Only an
//! activation type: it pairs with every k-quant.

use super::{as_blocks, as_blocks_mut, block, QK_K};
use crate::fp::nearest_int;

/// ggml's `block_q8_K`: `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]`
/// (sums of each 16 consecutive quants).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [u8; QK_K],
    pub bsums: [u8; 32],
}
block!(BlockQ8K, 292);

impl BlockQ8K {
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    #[inline(always)]
    pub fn q(&self, i: usize) -> i32 {
        self.qs[i] as i8 as i32
    }
    #[inline(always)]
    pub fn bsum(&self, j: usize) -> i32 {
        i16::from_le_bytes([self.bsums[2 * j], self.bsums[2 * j + 1]]) as i32
    }
}

/// Dequantizer (ggml `dequantize_row_q8_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ8K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = b.d();
        for (i, y) in y.iter_mut().enumerate() {
            *y = d * b.q(i) as f32;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q8_K_ref`, which ggml-cpu also
/// uses for activations on x86): `iscale = -127 / max` where `max` is the
/// element of largest magnitude, round half to even, `d = 1 / iscale`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ8K>(dst)) {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.d = [0; 4];
            b.qs = [0; QK_K];
            b.bsums = [0; 32];
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for j in 0..QK_K / 16 {
            let sum: i32 = (0..16).map(|i| b.q(16 * j + i)).sum();
            b.bsums[2 * j..2 * j + 2].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

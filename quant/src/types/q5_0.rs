//! Q5_0: 32 weights as 5-bit integers q in 0..32 around 16, one f16 scale:
//! `w = d * (q - 16)`. The fifth bits live in a 32-bit mask. Pairs with Q8_0.

use super::q8_0::BlockQ8_0;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
};
use crate::fp::{f16_to_f32, f32_to_f16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q5_0`: low 4 bits as in Q4_0, bit 4 of element j is bit j
/// of the little-endian `qh`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
block!(BlockQ5_0, 22);

/// The 5-bit quants of a block, in element order.
#[inline(always)]
fn unpack(qh: [u8; 4], qs: &[u8; QK / 2]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

/// Packs 5-bit quants (element order) into `(qh, qs)`.
#[inline(always)]
pub(crate) fn pack(q: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        let (q0, q1) = (q[j], q[j + QK / 2]);
        qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    (qh.to_le_bytes(), qs)
}

/// Reference dequantizer (ggml `dequantize_row_q5_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for (y, q) in y.iter_mut().zip(unpack(b.qh, &b.qs)) {
            *y = (q as i32 - 16) as f32 * d;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q5_0_ref`, gguf-py `Q5_0`):
/// the scale maps the element of largest magnitude to -16.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(as_blocks_mut::<BlockQ5_0>(dst)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as i8).min(31) as u8;
        }
        (b.qh, b.qs) = pack(&q);
    }
}

/// Reference dot product with Q8_0 activations (ggml `ggml_vec_dot_q5_0_q8_0`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ5_0>(w), as_blocks::<BlockQ8_0>(x));
    let mut sum = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK) {
        let q = unpack(bw.qh, &bw.qs);
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += (q[j] as i32 - 16) * bx.qs[j] as i8 as i32;
        }
        sum += (f16_to_f32(bw.d) * f16_to_f32(bx.d)) * sumi as f32;
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
    use crate::simd::x86::*;
    use std::arch::x86_64::*;

    /// Q5_0 weights as signed bytes -16..15 against Q8_0 activations.
    pub(super) struct Q5_0;
    impl TileKernel for Q5_0 {
        const W_BYTES: usize = 22;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        const SIGNED: bool = true;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (__m256i, f32, f32) {
            let lo = nibbles32(p.add(6));
            // Where the fifth bit is clear, set the top four: q - 16 as i8.
            let hi = _mm256_andnot_si256(bits32(p.add(2)), _mm256_set1_epi8(0xf0u8 as i8));
            (_mm256_or_si256(lo, hi), f16_at(p), 0.0)
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

    block32_entries!(Q5_0, 4, 2, 8);
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use crate::simd::neon::*;
    use std::arch::aarch64::*;

    pub(super) struct Q5_0;
    impl NeonBlock for Q5_0 {
        const W_BYTES: usize = 22;
        const X_BYTES: usize = 34;
        const HAS_MIN: bool = false;
        #[inline(always)]
        unsafe fn load_w(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            let (lo, hi) = nibbles(p.add(6));
            let (b0, b1) = bits(p.add(2));
            // Where the fifth bit is clear, set the top four: q - 16 as i8.
            let f0 = vdupq_n_u8(0xf0);
            (
                vreinterpretq_s8_u8(vorrq_u8(lo, vbicq_u8(f0, b0))),
                vreinterpretq_s8_u8(vorrq_u8(hi, vbicq_u8(f0, b1))),
                f16_at(p),
                0.0,
            )
        }
        #[inline(always)]
        unsafe fn load_x(p: *const u8) -> (int8x16_t, int8x16_t, f32, f32) {
            load_q8_0(p)
        }
    }

    neon_block32_vec_dot!(Q5_0);
}

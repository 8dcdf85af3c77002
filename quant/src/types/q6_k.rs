//! Q6_K: super-blocks of 256 weights in 16 sub-blocks of 16; 6-bit quants
//! around 32, int8 sub-block scales under an f16 super-scale:
//! `w = d * sc_j * (q - 32)`. Pairs with Q8_K.

use super::k_common::{make_qx_quants_rmse1, GROUP_MAX_EPS};
use super::q8_k::BlockQ8K;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
    QK_K,
};
use crate::fp::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `block_q6_K`. In each half (128 elements, `ql` 64 bytes, `qh` 32
/// bytes), element `32k + l` has low bits from `ql[l + 32*(k%2)]` (low nibble
/// for k < 2, high for k >= 2) and high bits `(qh[l] >> 2k) & 3`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 16],
    pub d: [u8; 2],
}
block!(BlockQ6K, 210);

/// The signed quants (q - 32) of a block in element order.
#[inline(always)]
fn unpack(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for h in 0..2 {
        let (ql, qh) = (&b.ql[64 * h..64 * h + 64], &b.qh[32 * h..32 * h + 32]);
        let y = &mut q[128 * h..128 * h + 128];
        for l in 0..32 {
            y[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            y[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

/// Reference dequantizer (ggml `dequantize_row_q6_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ6K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f16_to_f32(b.d);
        let q = unpack(b);
        for (e, y) in y.iter_mut().enumerate() {
            *y = d * b.scales[e / 16] as i8 as f32 * q[e] as f32;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q6_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ6K>(dst)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..QK_K / 16 {
            let s =
                make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = BlockQ6K {
                ql: [0; QK_K / 2],
                qh: [0; QK_K / 4],
                scales: [0; QK_K / 16],
                d: f32_to_f16(0.0),
            };
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        b.d = f32_to_f16(1.0 / iscale);
        for ib in 0..QK_K / 16 {
            b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
        }
        for j in 0..QK_K / 16 {
            let d = f16_to_f32(b.d) * b.scales[j] as i8 as f32;
            if d == 0.0 {
                continue;
            }
            for i in 0..16 {
                let q = nearest_int(x[16 * j + i] / d).clamp(-32, 31);
                l[16 * j + i] = (q + 32) as i8;
            }
        }
        for h in 0..2 {
            let l = &l[128 * h..128 * h + 128];
            for i in 0..32 {
                let q = |k: usize| l[i + 32 * k] as u8;
                b.ql[64 * h + i] = (q(0) & 0x0f) | ((q(2) & 0x0f) << 4);
                b.ql[64 * h + i + 32] = (q(1) & 0x0f) | ((q(3) & 0x0f) << 4);
                b.qh[32 * h + i] =
                    (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
    }
}

/// Reference dot product with Q8_K (ggml `ggml_vec_dot_q6_K_q8_K_generic`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ6K>(w), as_blocks::<BlockQ8K>(x));
    let mut sums = [0.0f32; 8];
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack(bw);
        let mut aux32 = [0i32; 8];
        for e in 0..QK_K {
            let scale = bw.scales[e / 16] as i8 as i32;
            aux32[e % 8] += scale * (q[e] as i32 * bx.q(e));
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
    use super::BlockQ6K;
    use crate::simd::x86::{avx2_gemm, f16_at, hsum_float_8};
    use crate::simd::x86_ktile::{add_scaled, gemm_k, q8k_blocks, KTile};
    use crate::types::{q8_k::BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    /// ggml `ggml_vec_dot_q6_K_q8_K` (AVX2): quants as 0..63 against the
    /// activations, minus `32 * scale * block sum`, one f32 FMA per block.
    ///
    /// Computed by the tile for one token: the tiled product's pairs and
    /// this dot product are the same code.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn vec_dot_avx2(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let nb = n / QK_K;
        assert!(w.len() >= nb * Tile::W_BYTES && x.len() >= nb * Tile::X_BYTES);
        let mut out = [0.0f32];
        Tile::tile::<1>(nb, w.as_ptr(), x.as_ptr(), 0, &mut out);
        out[0]
    }

    avx2_gemm!(gemm_k::<Tile>);

    struct Tile;

    impl KTile for Tile {
        const W_BYTES: usize = std::mem::size_of::<BlockQ6K>();
        const X_BYTES: usize = std::mem::size_of::<BlockQ8K>();

        /// [`vec_dot_avx2`]'s steps per (row, token) pair, with the row's
        /// 6-bit quants and scales unpacked once for the N tokens.
        #[inline(always)]
        unsafe fn tile<const N: usize>(
            nb: usize,
            w: *const u8,
            x: *const u8,
            xs: usize,
            out: &mut [f32; N],
        ) {
            let m3 = _mm256_set1_epi8(3);
            let m15 = _mm256_set1_epi8(15);
            let mut acc = [_mm256_setzero_ps(); N];
            for i in 0..nb {
                let bw = &*(w.add(i * Self::W_BYTES) as *const BlockQ6K);
                let bx: [&BlockQ8K; N] = q8k_blocks(x, xs, i);
                let wd = f16_at(bw.d.as_ptr());
                let scales = _mm_loadu_si128(bw.scales.as_ptr() as *const __m128i);
                let scales_16 = _mm256_cvtepi8_epi16(scales);
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..QK_K / 128 {
                    let q4 = bw.ql.as_ptr().add(64 * j);
                    let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                    let q4bits2 = _mm256_loadu_si256(q4.add(32) as *const __m256i);
                    let q4bits_h = _mm256_loadu_si256(bw.qh.as_ptr().add(32 * j) as *const __m256i);
                    let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m3), 4);
                    let q4h_1 =
                        _mm256_slli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(12)), 2);
                    let q4h_2 = _mm256_and_si256(q4bits_h, _mm256_set1_epi8(48));
                    let q4h_3 =
                        _mm256_srli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(-64)), 2);
                    let q = [
                        _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h_0),
                        _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h_1),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15),
                            q4h_2,
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15),
                            q4h_3,
                        ),
                    ];
                    // Sub-block scales 8j + 2k (first 16 quants), 8j + 2k + 1.
                    let sc: [__m256i; 4] = std::array::from_fn(|k| {
                        let s0 = bw.scales[8 * j + 2 * k] as i8 as i16;
                        let s1 = bw.scales[8 * j + 2 * k + 1] as i8 as i16;
                        _mm256_setr_m128i(_mm_set1_epi16(s0), _mm_set1_epi16(s1))
                    });
                    for t in 0..N {
                        let q8 = bx[t].qs.as_ptr().add(128 * j);
                        let p: [__m256i; 4] = std::array::from_fn(|k| {
                            let x = _mm256_loadu_si256(q8.add(32 * k) as *const __m256i);
                            _mm256_madd_epi16(sc[k], _mm256_maddubs_epi16(q[k], x))
                        });
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p[0], p[1]));
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p[2], p[3]));
                    }
                }
                for t in 0..N {
                    let q8sums = _mm256_loadu_si256(bx[t].bsums.as_ptr() as *const __m256i);
                    let q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales_16), 5);
                    sumi[t] = _mm256_sub_epi32(sumi[t], q8sclsub);
                }
                add_scaled(&mut acc, &bx, wd, &sumi);
            }
            for t in 0..N {
                out[t] = hsum_float_8(acc[t]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::BlockQ6K;
    use crate::simd::neon::{f16_at, load_bsums, madd_s16, F32x8, I32x8};
    use crate::types::{as_blocks, q8_k::BlockQ8K, QK_K};
    use std::arch::aarch64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
        unsafe { vec_dot_neon(n, w, x) }
    }

    /// The AVX2 kernel lane for lane (so the same bits): quants as 0..63,
    /// and `32 * scale * block sum` subtracted per lane as AVX2 does (lane k
    /// holds sub-blocks 2k and 2k + 1), not folded into signed quants, which
    /// would spread the same total over the lanes differently.
    #[inline(always)]
    unsafe fn vec_dot_neon(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (w, x) = (as_blocks::<BlockQ6K>(w), as_blocks::<BlockQ8K>(x));
        let nb = n / QK_K;
        assert!(w.len() >= nb && x.len() >= nb);
        let m3 = vdupq_n_u8(3);
        let m15 = vdupq_n_u8(15);
        let mut acc = F32x8::zero();
        for i in 0..nb {
            let (bw, bx) = (&w[i], &x[i]);
            let d = bx.d() * f16_at(bw.d.as_ptr());
            let (bs_lo, bs_hi) = load_bsums(bx.bsums.as_ptr());
            let scales = vld1q_s8(bw.scales.as_ptr() as *const i8);
            let sub_lo = madd_s16(bs_lo, vmovl_s8(vget_low_s8(scales)));
            let sub_hi = madd_s16(bs_hi, vmovl_high_s8(scales));
            let mut sumi = I32x8::zero();
            for j in 0..QK_K / 128 {
                let ql = bw.ql.as_ptr().add(64 * j);
                let qh = bw.qh.as_ptr().add(32 * j);
                let q8 = (bx.qs.as_ptr() as *const i8).add(128 * j);
                // Halves (bytes 0..16, 16..32) of ql[0..32], ql[32..64], qh.
                let a = [vld1q_u8(ql), vld1q_u8(ql.add(16))];
                let b = [vld1q_u8(ql.add(32)), vld1q_u8(ql.add(48))];
                let h = [vld1q_u8(qh), vld1q_u8(qh.add(16))];
                let q = |k: usize, half: usize| {
                    let v = match k {
                        0 => vorrq_u8(vandq_u8(a[half], m15), vshlq_n_u8(vandq_u8(h[half], m3), 4)),
                        1 => vorrq_u8(
                            vandq_u8(b[half], m15),
                            vshlq_n_u8(vandq_u8(h[half], vdupq_n_u8(12)), 2),
                        ),
                        2 => vorrq_u8(vshrq_n_u8(a[half], 4), vandq_u8(h[half], vdupq_n_u8(48))),
                        _ => vorrq_u8(
                            vshrq_n_u8(b[half], 4),
                            vshrq_n_u8(vandq_u8(h[half], vdupq_n_u8(0xc0)), 2),
                        ),
                    };
                    vreinterpretq_s8_u8(v)
                };
                for k in 0..4 {
                    let s0 = bw.scales[8 * j + 2 * k] as i8 as i32;
                    let s1 = bw.scales[8 * j + 2 * k + 1] as i8 as i32;
                    sumi = sumi.add_chunk(q(k, 0), q(k, 1), q8.add(32 * k), s0, s1);
                }
            }
            let sumi = I32x8 {
                lo: vsubq_s32(sumi.lo, vshlq_n_s32(sub_lo, 5)),
                hi: vsubq_s32(sumi.hi, vshlq_n_s32(sub_hi, 5)),
            };
            acc = sumi.fma_into(acc, d);
        }
        acc.hsum()
    }
}

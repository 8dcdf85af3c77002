//! The two exponentials llama.cpp's numbers depend on, so srl computes the
//! same bits:
//!
//! - `expf` as glibc computes it ([`exp_in_place`], eight lanes at a time).
//!   llama.cpp's decode attention and srl's sampler call the C library's
//!   `expf` once per cache position or vocabulary entry; on x86-64 glibc that
//!   is Arm optimized-routines' algorithm (a 32-entry table of 2^(i/32) and a
//!   cubic polynomial, evaluated in binary64), in its FMA build.
//!   [`exp_in_place`] evaluates the same operations in AVX2 lanes, so it
//!   returns the bits `f32::exp` returns there (tested against it). Arguments
//!   of magnitude 88 and up, infinities and NaN take the library call; so
//!   does every argument without AVX2 and FMA.
//! - ggml's own polynomial ([`ggml_expf`], `ggml_v_expf`, within ~1.5 ulp of
//!   expf), which ggml's vector code uses on AVX2: SiLU in the feed-forward
//!   block and the softmax rows of training.

/// `tab[i] = bits(2^(i/32)) - (i << 47)` (glibc's `__exp2f_data.tab`).
#[cfg(target_arch = "x86_64")]
const TAB: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `x[i] = expf(x[i])` for every element (see the module docs).
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features.
        return unsafe { exp_in_place_avx2(x) };
    }
    for v in x {
        *v = v.exp();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_in_place_avx2(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = _mm256_loadu_ps(c.as_ptr());
        // |x| >= 88 (glibc's top12 test), infinities and NaN.
        let top = _mm256_and_si256(
            _mm256_srli_epi32::<20>(_mm256_castps_si256(v)),
            _mm256_set1_epi32(0x7ff),
        );
        let special = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(
            top,
            _mm256_set1_epi32(0x42a),
        )));
        let lo = exp4(_mm256_castps256_ps128(v));
        let hi = exp4(_mm256_extractf128_ps::<1>(v));
        let y = _mm256_set_m128(hi, lo);
        let orig: [f32; 8] = std::mem::transmute(v);
        _mm256_storeu_ps(c.as_mut_ptr(), y);
        if special != 0 {
            for (i, (o, x)) in c.iter_mut().zip(orig).enumerate() {
                if special & (1 << i) != 0 {
                    *o = x.exp();
                }
            }
        }
    }
    for v in chunks.into_remainder() {
        *v = v.exp();
    }
}

/// Four lanes of glibc's `__expf` main path (the FMA build's operations).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp4(x: std::arch::x86_64::__m128) -> std::arch::x86_64::__m128 {
    use std::arch::x86_64::*;
    let n = 32.0f64;
    let inv_ln2_n = _mm256_set1_pd(f64::from_bits(0x3ff71547652b82fe) * n);
    let shift = _mm256_set1_pd(f64::from_bits(0x4338000000000000));
    let c0 = _mm256_set1_pd(f64::from_bits(0x3fac6af84b912394) / (n * n * n));
    let c1 = _mm256_set1_pd(f64::from_bits(0x3fcebfce50fac4f3) / (n * n));
    let c2 = _mm256_set1_pd(f64::from_bits(0x3fe62e42ff0c52d6) / n);
    let xd = _mm256_cvtps_pd(x);
    // x*N/ln2 = k + r, k rounded to the nearest integer by the shift. GCC
    // fuses both uses of the product x*N/ln2 (its FMA build of `z + SHIFT`
    // and `z - kd`): with r = z - kd unfused, 2 arguments come out 1 ulp off.
    let kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift);
    let ki = _mm256_castpd_si256(kd);
    let kd = _mm256_sub_pd(kd, shift);
    let r = _mm256_fmsub_pd(inv_ln2_n, xd, kd);
    // 2^(k/N) from the table and k's high bits.
    let idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    let t = _mm256_i64gather_epi64::<8>(TAB.as_ptr() as *const i64, idx);
    let s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64::<47>(ki)));
    let zp = _mm256_fmadd_pd(c0, r, c1);
    let r2 = _mm256_mul_pd(r, r);
    let y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
    let y = _mm256_fmadd_pd(zp, r2, y);
    _mm256_cvtpd_ps(_mm256_mul_pd(y, s))
}

// ggml_v_expf ---------------------------------------------------------

/// f32 constants of ggml_v_expf, by bit pattern.
mod k {
    pub const ROUND: u32 = 0x4b40_0000; // 0x1.8p23
    pub const LOG2E: u32 = 0x3fb8_aa3b; // 0x1.715476p+0
    pub const LN2_LO: u32 = 0x35bf_be8e; // 0x1.7f7d1cp-20
    pub const LN2_HI: u32 = 0x3f31_7200; // 0x1.62e4p-1
    pub const C5: u32 = 0x3c07_2010; // 0x1.0e4020p-7
    pub const C4: u32 = 0x3d2b_9f17; // 0x1.573e2ep-5
    pub const C3: u32 = 0x3e2a_af33; // 0x1.555e66p-3
    pub const C2: u32 = 0x3eff_fedb; // 0x1.fffdb6p-2
    pub const C1: u32 = 0x3f7f_fff6; // 0x1.ffffecp-1
}

#[inline(always)]
fn c(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// ggml_v_expf, one lane: exp(x) by range reduction and a degree-5 polynomial.
#[inline(always)]
pub fn ggml_expf(x: f32) -> f32 {
    let r = c(k::ROUND);
    let z = x.mul_add(c(k::LOG2E), r);
    let n = z - r;
    let b = (-n).mul_add(c(k::LN2_LO), (-n).mul_add(c(k::LN2_HI), x));
    let e = z.to_bits() << 23;
    let kk = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = c(k::C5)
        .mul_add(b, c(k::C4))
        .mul_add(u, c(k::C3).mul_add(b, c(k::C2)))
        .mul_add(u, c(k::C1) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(kk, kk);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// ggml_v_expf on eight lanes: the same operations as [`ggml_expf`], so the
/// same bits.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn ggml_expf_avx2(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let r = _mm256_set1_ps(c(k::ROUND));
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(c(k::LOG2E)), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(
        n,
        _mm256_set1_ps(c(k::LN2_LO)),
        _mm256_fnmadd_ps(n, _mm256_set1_ps(c(k::LN2_HI)), x),
    );
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let kk = _mm256_castsi256_ps(_mm256_add_epi32(
        e,
        _mm256_castps_si256(_mm256_set1_ps(1.0)),
    ));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let cmask = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(c(k::C5)), b, _mm256_set1_ps(c(k::C4))),
            u,
            _mm256_fmadd_ps(_mm256_set1_ps(c(k::C3)), b, _mm256_set1_ps(c(k::C2))),
        ),
        u,
        _mm256_mul_ps(_mm256_set1_ps(c(k::C1)), b),
    );
    if _mm256_movemask_ps(cmask) == 0 {
        return _mm256_fmadd_ps(j, kk, kk);
    }
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let dmask = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    _mm256_or_ps(
        _mm256_and_ps(dmask, _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(
            dmask,
            _mm256_or_ps(
                _mm256_and_ps(cmask, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                _mm256_andnot_ps(cmask, _mm256_fmadd_ps(kk, j, kk)),
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 61st f32 bit pattern from -104 to 89 (about 35 million
    /// arguments, both signs, all exponents, the special-lane threshold),
    /// plus infinities, NaN and edge lengths: the bits `f32::exp` gives.
    #[test]
    fn equals_libm_expf_bit_for_bit() {
        assert_eq!(differences(61), 0);
    }

    /// Every argument from -104 to 89 (about 2.2 billion; run by hand:
    /// `cargo test --release -p srl-models expf -- --ignored`).
    #[test]
    #[ignore]
    fn equals_libm_expf_on_every_argument() {
        assert_eq!(differences(1), 0);
    }

    /// How many of every `step`-th argument (plus special values and short
    /// slices) differ from `f32::exp`.
    fn differences(step: usize) -> usize {
        let check = |args: &[f32]| {
            let mut got = args.to_vec();
            exp_in_place(&mut got);
            let mut bad = 0;
            for (&x, &y) in args.iter().zip(&got) {
                let want = x.exp();
                if want.to_bits() != y.to_bits() && !(want.is_nan() && y.is_nan()) {
                    if bad < 10 {
                        eprintln!("expf({x:e}) = {want:e}, got {y:e}");
                    }
                    bad += 1;
                }
            }
            bad
        };
        let mut bad = 0;
        for (lo, hi) in [(0u32, 0x42b2_0000u32), (0x8000_0000, 0xc2d0_0000)] {
            let mut start = lo;
            while start < hi {
                let end = hi.min(start.saturating_add(61 << 20));
                let args: Vec<f32> = (start..end).step_by(step).map(f32::from_bits).collect();
                bad += check(&args);
                start = end;
            }
        }
        bad += check(&[
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -0.0,
            88.0,
            -88.0,
            88.72,
            -103.97,
            -104.0,
            f32::MIN_POSITIVE,
        ]);
        for n in 0..20 {
            let args: Vec<f32> = (0..n).map(|i| -(i as f32) * 0.37).collect();
            bad += check(&args);
        }
        bad
    }

    #[test]
    fn ggml_expf_is_within_two_ulp_of_exp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = ggml_expf(x) as f64;
            assert!(
                ((got - want) / want).abs() < 2.5 * f32::EPSILON as f64,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0137;
        }
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert!(ggml_expf(200.0).is_infinite());
    }

    #[test]
    fn ggml_expf_avx2_matches_scalar_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            use std::arch::x86_64::*;
            let mut x = -210.0f32;
            while x < 210.0 {
                let xs: [f32; 8] = std::array::from_fn(|i| x + i as f32 * 0.37);
                let mut out = [0.0f32; 8];
                unsafe {
                    _mm256_storeu_ps(
                        out.as_mut_ptr(),
                        ggml_expf_avx2(_mm256_loadu_ps(xs.as_ptr())),
                    )
                };
                for i in 0..8 {
                    assert_eq!(
                        out[i].to_bits(),
                        ggml_expf(xs[i]).to_bits(),
                        "exp({})",
                        xs[i]
                    );
                }
                x += 0.731;
            }
        }
    }
}

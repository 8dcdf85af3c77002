//! The SwiGLU feed-forward block's elementwise part: silu(gate) * up, with
//! ggml's numerics. llama.cpp on AVX2 computes exp with its own polynomial
//! (`ggml_v_expf`, within ~1.5 ulp of expf); small models amplify a 1-ulp
//! difference into different greedy tokens, so srl computes the same values.

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

/// silu(x) = x / (1 + exp(-x)), as ggml_v_silu.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + ggml_expf(0.0 - x))
}

#[inline(always)]
fn swiglu_body(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// gate[i] = silu(gate[i]) * up[i], in place.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("fma") {
        // SAFETY: FMA is present (checked just above).
        unsafe { swiglu_fma(gate, up) };
        return;
    }
    swiglu_body(gate, up)
}

/// Backward of [`swiglu`]: from the pre-activation `gate` and `up` and the
/// gradient `dout` of silu(gate) * up, writes the gradients of gate and up.
/// Runs on `pool` in chunks, with hardware FMA where the CPU has it.
pub fn swiglu_backward(
    gate: &[f32],
    up: &[f32],
    dout: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    use rayon::prelude::*;
    const CHUNK: usize = 4096;
    pool.install(|| {
        dgate
            .par_chunks_mut(CHUNK)
            .zip(dup.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, (dg, du))| {
                let r = i * CHUNK..i * CHUNK + dg.len();
                let (g, u, d) = (&gate[r.clone()], &up[r.clone()], &dout[r]);
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("fma") {
                    // SAFETY: FMA is present (checked just above).
                    unsafe { swiglu_backward_fma(g, u, d, dg, du) };
                    return;
                }
                swiglu_backward_body(g, u, d, dg, du)
            })
    });
}

#[inline(always)]
fn swiglu_backward_body(
    gate: &[f32],
    up: &[f32],
    dout: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
) {
    for ((((&g, &u), &d), dg), du) in gate
        .iter()
        .zip(up)
        .zip(dout)
        .zip(dgate.iter_mut())
        .zip(dup.iter_mut())
    {
        let sig = 1.0 / (1.0 + ggml_expf(0.0 - g));
        let silu = g * sig;
        *du = d * silu;
        *dg = d * u * sig * (1.0 + g * (1.0 - sig));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn swiglu_backward_fma(
    gate: &[f32],
    up: &[f32],
    dout: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
) {
    swiglu_backward_body(gate, up, dout, dgate, dup)
}

/// The same loop compiled with hardware FMA (mul_add is exact either way;
/// this is only faster).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn swiglu_fma(gate: &mut [f32], up: &[f32]) {
    swiglu_body(gate, up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_backward_matches_finite_differences() {
        let g: Vec<f32> = (0..9).map(|i| (i as f32 - 4.0) * 0.9).collect();
        let u: Vec<f32> = (0..9).map(|i| 1.0 - i as f32 * 0.3).collect();
        let d: Vec<f32> = (0..9).map(|i| 0.5 + (i % 3) as f32 * 0.25).collect();
        let (mut dg, mut du) = (vec![0.0; 9], vec![0.0; 9]);
        swiglu_backward(
            &g,
            &u,
            &d,
            &mut dg,
            &mut du,
            &rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let f = |g: f32, u: f32| silu(g) as f64 * u as f64;
        for i in 0..9 {
            let h = 1e-2f32;
            let fd_g = (f(g[i] + h, u[i]) - f(g[i] - h, u[i])) / (2.0 * h as f64) * d[i] as f64;
            let fd_u = (f(g[i], u[i] + h) - f(g[i], u[i] - h)) / (2.0 * h as f64) * d[i] as f64;
            assert!(
                (fd_g - dg[i] as f64).abs() < 1e-3,
                "{i}: {fd_g} vs {}",
                dg[i]
            );
            assert!(
                (fd_u - du[i] as f64).abs() < 1e-3,
                "{i}: {fd_u} vs {}",
                du[i]
            );
        }
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

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!(silu(-100.0).abs() < 1e-30);
        let mut g = [1.0f32, -1.0];
        swiglu(&mut g, &[2.0, 3.0]);
        assert!((g[0] - 2.0 * silu(1.0)).abs() < 1e-7 && (g[1] - 3.0 * silu(-1.0)).abs() < 1e-7);
    }
}

//! The SwiGLU feed-forward block's elementwise part: silu(gate) * up, with
//! ggml's numerics (its exp polynomial, [`ggml_expf`]): small models amplify
//! a 1-ulp difference into different greedy tokens, so srl computes the
//! values llama.cpp computes.

use super::exp::ggml_expf;

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
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!(silu(-100.0).abs() < 1e-30);
        let mut g = [1.0f32, -1.0];
        swiglu(&mut g, &[2.0, 3.0]);
        assert!((g[0] - 2.0 * silu(1.0)).abs() < 1e-7 && (g[1] - 3.0 * silu(-1.0)).abs() < 1e-7);
    }
}

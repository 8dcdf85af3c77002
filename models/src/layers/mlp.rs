//! The gated feed-forward block's elementwise part: silu(gate) * up
//! (SwiGLU) or gelu(gate) * up (GEGLU, Gemma), with ggml's numerics (its exp
//! polynomial, [`ggml_expf`]; its f16 table of GELU): small models amplify a
//! 1-ulp difference into different greedy tokens, so srl computes the values
//! llama.cpp computes.

use super::exp::ggml_expf;

/// silu(x) = x / (1 + exp(-x)), as ggml_v_silu.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + ggml_expf(0.0 - x))
}

/// ggml's GELU constants: sqrt(2 / pi) and the cubic term's coefficient.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044_715;

/// GELU with the tanh approximation, as ggml_gelu_f32 computes it (libm's
/// tanhf; GCC fuses `1 + a*x*x` into one multiply-add).
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (GELU_COEF_A * x).mul_add(x, 1.0)).tanh())
}

/// d gelu_tanh(x) / dx.
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let t = (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF_A * x * x)
}

/// out[i] = gelu_tanh(gate[i]) * up[i] in f32 (the training pass's, a
/// smooth function; inference reads ggml's table).
pub fn geglu_into(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = gelu_tanh(g) * u;
    }
}

/// Backward of [`geglu_into`]: dgate = dout * up * gelu'(gate), dup = dout
/// * gelu(gate).
pub fn geglu_backward(
    gate: &[f32],
    up: &[f32],
    dout: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    gated_backward_par(gate, up, dout, dgate, dup, pool, |g, u, d, dg, du| {
        for ((((&g, &u), &d), dg), du) in g.iter().zip(u).zip(d).zip(dg).zip(du) {
            *dg = d * u * gelu_tanh_grad(g);
            *du = d * gelu_tanh(g);
        }
    })
}

/// ggml's GELU table: the GELU of every f16 value, rounded to f16 (what
/// ggml-cpu's f32 GELU looks up, the input rounded to f16).
fn gelu_table() -> &'static [half::f16] {
    static TABLE: std::sync::OnceLock<Vec<half::f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_f32(gelu_tanh(half::f16::from_bits(b).to_f32())))
            .collect()
    })
}

/// gate[i] = gelu(gate[i]) * up[i] in place, as ggml_vec_geglu_f32: 0
/// below -10, the identity above 10, else the f16 table's value.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = if *g <= -10.0 {
            0.0
        } else if *g >= 10.0 {
            *g * u
        } else {
            table[half::f16::from_f32(*g).to_bits() as usize].to_f32() * u
        };
    }
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
    gated_backward_par(gate, up, dout, dgate, dup, pool, |g, u, d, dg, du| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("fma") {
            // SAFETY: FMA is present (checked just above).
            unsafe { swiglu_backward_fma(g, u, d, dg, du) };
            return;
        }
        swiglu_backward_body(g, u, d, dg, du)
    })
}

/// Runs `body` on matching chunks of a gated activation's inputs, output
/// gradient and input gradients, in parallel on `pool`.
fn gated_backward_par(
    gate: &[f32],
    up: &[f32],
    dout: &[f32],
    dgate: &mut [f32],
    dup: &mut [f32],
    pool: &rayon::ThreadPool,
    body: impl Fn(&[f32], &[f32], &[f32], &mut [f32], &mut [f32]) + Sync,
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
                body(&gate[r.clone()], &up[r.clone()], &dout[r], dg, du)
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
    /// GEGLU's backward matches central differences in f64 of its f32
    /// forward, and its table-based inference forward stays within the f16
    /// rounding of the exact one.
    #[test]
    fn geglu_backward_matches_finite_differences() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let gate: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 0.21).collect();
        let up: Vec<f32> = (0..64).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.3).collect();
        let dout: Vec<f32> = (0..64).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.2).collect();
        let (mut dg, mut du) = (vec![0.0; 64], vec![0.0; 64]);
        super::geglu_backward(&gate, &up, &dout, &mut dg, &mut du, &pool);
        for i in 0..64 {
            let f = |g: f64, u: f64| {
                let t = (0.797_884_560_802_865_4 * g * (1.0 + 0.044715 * g * g)).tanh();
                0.5 * g * (1.0 + t) * u
            };
            let (g, u, h) = (gate[i] as f64, up[i] as f64, 1e-4);
            let fd_g = (f(g + h, u) - f(g - h, u)) / (2.0 * h) * dout[i] as f64;
            let fd_u = (f(g, u + h) - f(g, u - h)) / (2.0 * h) * dout[i] as f64;
            assert!(
                (fd_g - dg[i] as f64).abs() < 1e-4 * (1.0 + fd_g.abs()),
                "{i}: {fd_g} vs {}",
                dg[i]
            );
            assert!(
                (fd_u - du[i] as f64).abs() < 1e-4 * (1.0 + fd_u.abs()),
                "{i}: {fd_u} vs {}",
                du[i]
            );
        }
        let mut table = gate.clone();
        super::geglu(&mut table, &up);
        let mut exact = vec![0.0; 64];
        super::geglu_into(&gate, &up, &mut exact);
        for (a, b) in table.iter().zip(&exact) {
            assert!((a - b).abs() <= 2e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

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

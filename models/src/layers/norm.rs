//! RMSNorm, with ggml's numerics: the sum of squares is accumulated in f64,
//! the scale is computed in f32, and the weight applied after the scale.

/// y[t] = x[t] / rms(x[t]) * w, for each row t of `x` ([T, C]).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let c = w.len();
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let sum: f64 = xr.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / c as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
            *o = (v * scale) * g;
        }
    }
}

/// [`rms_norm`] with y = x: the same numbers, written over the input (the
/// per-head norms of queries and keys, whose pre-norm values inference does
/// not keep).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let c = w.len();
    for xr in x.chunks_exact_mut(c) {
        let sum: f64 = xr.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / c as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &g) in xr.iter_mut().zip(w) {
            *v = (*v * scale) * g;
        }
    }
}

/// Backward of [`rms_norm`] with respect to its input (the weight is frozen):
/// `dx += d(y)/d(x)^T dy`, row by row. With s = 1/sqrt(mean(x^2) + eps) and
/// g = dy * w: dx = s*g - x * s^3 * (g . x) / C.
pub fn rms_norm_backward(x: &[f32], w: &[f32], eps: f32, dy: &[f32], dx: &mut [f32]) {
    let c = w.len();
    for ((xr, dyr), dxr) in x
        .chunks_exact(c)
        .zip(dy.chunks_exact(c))
        .zip(dx.chunks_exact_mut(c))
    {
        let sum: f64 = xr.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / c as f64) as f32;
        let s = 1.0 / (mean + eps).sqrt();
        let gx: f64 = xr
            .iter()
            .zip(dyr)
            .zip(w)
            .map(|((&x, &d), &g)| (d * g) as f64 * x as f64)
            .sum();
        let k = s * s * s * (gx / c as f64) as f32;
        for (((o, &x), &d), &g) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
            *o += s * d * g - x * k;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backward_matches_finite_differences() {
        let x: Vec<f32> = (0..16).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let w: Vec<f32> = (0..8).map(|i| 0.5 + i as f32 * 0.1).collect();
        let dy: Vec<f32> = (0..16).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2).collect();
        let loss = |x: &[f32]| -> f64 {
            let mut y = vec![0.0; 16];
            super::rms_norm(x, &w, 1e-5, &mut y);
            y.iter()
                .zip(&dy)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let mut dx = vec![0.0; 16];
        super::rms_norm_backward(&x, &w, 1e-5, &dy, &mut dx);
        for i in 0..16 {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += 1e-3;
            xm[i] -= 1e-3;
            let fd = (loss(&xp) - loss(&xm)) / 2e-3;
            assert!(
                (fd - dx[i] as f64).abs() < 2e-3,
                "{i}: fd {fd} vs {}",
                dx[i]
            );
        }
    }

    #[test]
    fn in_place_equals_rms_norm() {
        let x: Vec<f32> = (0..24)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.37)
            .collect();
        let w: Vec<f32> = (0..8).map(|i| 0.7 + i as f32 * 0.05).collect();
        let mut y = vec![0.0; 24];
        super::rms_norm(&x, &w, 1e-6, &mut y);
        let mut z = x.clone();
        super::rms_norm_in_place(&mut z, &w, 1e-6);
        assert_eq!(y, z);
    }

    #[test]
    fn unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 0.0];
        let w = [1.0f32, 2.0, 1.0, 1.0];
        let mut y = [0.0f32; 4];
        super::rms_norm(&x, &w, 0.0, &mut y);
        // rms = sqrt(25/4) = 2.5
        assert!((y[0] - 1.2).abs() < 1e-6 && (y[1] + 3.2).abs() < 1e-6);
    }
}

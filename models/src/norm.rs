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

#[cfg(test)]
mod tests {
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

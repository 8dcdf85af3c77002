//! The SwiGLU feed-forward block's elementwise part: silu(gate) * up.

/// silu(x) = x * sigmoid(x).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// gate[i] = silu(gate[i]) * up[i], in place.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

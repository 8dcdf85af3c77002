//! The exponentials of training's softmax rows (the loss over the
//! vocabulary, attention's probabilities): `exp(x * scale - shift)` over a
//! row, and the row's sum, with ggml's exp polynomial ([`crate::layers::mlp`],
//! within ~1.5 ulp of expf): eight lanes at a time with AVX2+FMA, the same
//! bits one lane at a time elsewhere, so the values do not depend on the
//! path, and the sum is taken in one fixed order.

use crate::layers::exp::ggml_expf;

/// `row[i] = exp(row[i] * scale - shift)` for every i; returns the sum of
/// the new values in f64, accumulated as eight lane sums (lane i takes the
/// elements i, i + 8, ... of the whole groups of eight), added in lane
/// order, then the remaining elements in order.
pub fn exp_shifted(row: &mut [f32], scale: f32, shift: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked just above).
        return unsafe { exp_shifted_avx2(row, scale, shift) };
    }
    exp_shifted_scalar(row, scale, shift)
}

/// log softmax(row)[y] computed as the training loss computes it (the same
/// exps summed in the same order, [`exp_shifted`]), so that a sampler's
/// log-probability and the training pass's differ only by their logits;
/// `exps` is scratch.
pub fn log_softmax_at(row: &[f32], y: usize, exps: &mut Vec<f32>) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    exps.clear();
    exps.extend_from_slice(row);
    let sum = exp_shifted(exps, 1.0, max);
    (row[y] - max) as f64 - sum.ln()
}

/// The portable [`exp_shifted`] (what the AVX2 path computes, lane by lane).
pub fn exp_shifted_scalar(row: &mut [f32], scale: f32, shift: f32) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut groups = row.chunks_exact_mut(8);
    for g in &mut groups {
        for (v, s) in g.iter_mut().zip(lanes.iter_mut()) {
            *v = ggml_expf(*v * scale - shift);
            *s += *v as f64;
        }
    }
    let mut sum = 0.0f64;
    for s in lanes {
        sum += s;
    }
    for v in groups.into_remainder() {
        *v = ggml_expf(*v * scale - shift);
        sum += *v as f64;
    }
    sum
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_avx2(row: &mut [f32], scale: f32, shift: f32) -> f64 {
    use crate::layers::exp::ggml_expf_avx2;
    use std::arch::x86_64::*;
    let (vs, vh) = (_mm256_set1_ps(scale), _mm256_set1_ps(shift));
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut groups = row.chunks_exact_mut(8);
    for g in &mut groups {
        let x = _mm256_loadu_ps(g.as_ptr());
        let e = ggml_expf_avx2(_mm256_sub_ps(_mm256_mul_ps(x, vs), vh));
        _mm256_storeu_ps(g.as_mut_ptr(), e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
    }
    let mut lanes = [0.0f64; 8];
    _mm256_storeu_pd(lanes.as_mut_ptr(), lo);
    _mm256_storeu_pd(lanes.as_mut_ptr().add(4), hi);
    let mut sum = 0.0f64;
    for s in lanes {
        sum += s;
    }
    for v in groups.into_remainder() {
        *v = ggml_expf(*v * scale - shift);
        sum += *v as f64;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_give_the_same_bits_and_exp() {
        for n in [0, 1, 7, 8, 9, 31, 64, 100] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            let sa = exp_shifted(&mut a, 0.5, 3.0);
            let sb = exp_shifted_scalar(&mut b, 0.5, 3.0);
            assert_eq!(sa.to_bits(), sb.to_bits(), "n={n}");
            assert_eq!(a, b, "n={n}");
            let mut want = 0.0f64;
            for (&xi, &ai) in x.iter().zip(&a) {
                let e = ((xi * 0.5 - 3.0) as f64).exp();
                want += e;
                assert!((ai as f64 - e).abs() <= 4e-7 * e, "exp({xi}): {ai} vs {e}");
            }
            assert!(
                (sa - want).abs() <= 1e-6 * want,
                "n={n}: sum {sa} vs {want}"
            );
        }
    }
}

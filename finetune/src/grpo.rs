//! The arithmetic of GRPO with dynamic sampling (SRL.md, "Policy
//! optimisation"): group-normalised advantages, the group filter, and the
//! per-token weights that turn the clipped policy-gradient objective (with
//! an optional KL penalty to the base model) into the weighted
//! log-likelihood that `Model::weighted_nll` differentiates.
//!
//! For a response token t of rollout i with advantage A_i, ratio
//! r = exp(logp_t - old_logp_t), the loss is, averaged over every response
//! token of the batch (token-level averaging, N tokens):
//!
//! ```text
//! L = 1/N * sum_t [ -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) + beta * kl_t ]
//! kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1      (the k3 estimator)
//! ```
//!
//! Its derivative by logp_t is -w_t with
//! `w_t = (A r [unclipped] + beta (exp(ref_t - logp_t) - 1)) / N`,
//! so `sum_t w_t * -logp_t` has the same gradient: that is what the model's
//! weighted NLL computes. With one update per batch r = 1 and this is the
//! plain policy gradient.
//!
//! Rollouts are sampled by the inference pass (int8 activations, f16 KV
//! cache) while old_logp and logp come from the f32 training pass: the two
//! give slightly different probabilities, so the samples are a little off
//! the policy the loss assumes. Truncated importance sampling corrects
//! that: the policy-gradient part of each token's term is multiplied by
//! `min(exp(old_logp - rollout_logp), C)`, a constant of the gradient
//! ([`truncated_importance_weight`]).

use serde::{Deserialize, Serialize};

/// The settings of the policy optimisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Lower clip range: the ratio is held above 1 - clip_low.
    pub clip_low: f64,
    /// Upper clip range (DAPO's "clip-higher" uses 0.28).
    pub clip_high: f64,
    /// KL penalty to the base model (adapter off); 0 = none.
    pub kl_beta: f64,
    /// A group whose reward standard deviation is not above this carries no
    /// signal and is dropped.
    pub std_epsilon: f64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            clip_low: 0.2,
            clip_high: 0.2,
            kl_beta: 0.0,
            std_epsilon: 1e-6,
        }
    }
}

/// Mean and population standard deviation (SRL.md: "std over the group,
/// population form").
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A_i = (r_i - mean) / std within the group, or None when the std is not
/// above `std_epsilon` (dynamic sampling drops such a group: all its
/// advantages would be 0).
pub fn group_advantages(rewards: &[f64], std_epsilon: f64) -> Option<Vec<f64>> {
    let (mean, std) = mean_std(rewards);
    if rewards.len() < 2 || std <= std_epsilon {
        return None;
    }
    Some(rewards.iter().map(|r| (r - mean) / std).collect())
}

/// One token's share of the loss and of its gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTerm {
    /// The weight on -logp in the weighted NLL (see the module docs).
    pub weight: f64,
    /// The token's loss term, already divided by N.
    pub loss: f64,
    /// Whether clipping zeroed the policy-gradient part.
    pub clipped: bool,
    /// kl_t (0 when beta is 0 and no reference is given).
    pub kl: f64,
}

/// The truncated importance weight of a token the rollout pass sampled with
/// log-probability `rollout_logp`, whose log-probability under the training
/// pass (same parameters) is `old_logp`: `min(p_old / p_rollout, cap)`, or
/// 1 without a cap (the correction off). The cap bounds the variance a
/// token the rollout pass found unlikely would add.
pub fn truncated_importance_weight(old_logp: f64, rollout_logp: f64, cap: Option<f64>) -> f64 {
    match cap {
        Some(c) => (old_logp - rollout_logp).exp().min(c),
        None => 1.0,
    }
}

/// The loss term of one response token: `advantage` of its rollout, its
/// log-probability now (`logp`), when the rollouts were made (`old_logp`)
/// and under the base model (`ref_logp`, needed when beta > 0), divided by
/// `n_tokens`, the response tokens of the whole batch; the policy-gradient
/// part is weighted by `importance` ([`truncated_importance_weight`]; 1:
/// none).
pub fn token_term(
    config: &GrpoConfig,
    advantage: f64,
    logp: f64,
    old_logp: f64,
    ref_logp: Option<f64>,
    n_tokens: usize,
    importance: f64,
) -> TokenTerm {
    let n = n_tokens.max(1) as f64;
    let ratio = (logp - old_logp).exp();
    let clipped_ratio = ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high);
    let unclipped_obj = ratio * advantage;
    let clipped_obj = clipped_ratio * advantage;
    // min() takes the clipped term, which does not depend on logp, only when
    // it is strictly smaller: then the gradient is zero.
    let clipped = clipped_obj < unclipped_obj;
    let obj = unclipped_obj.min(clipped_obj);
    let mut weight = if clipped {
        0.0
    } else {
        importance * advantage * ratio
    };
    let mut loss = -importance * obj;
    let mut kl = 0.0;
    if let (Some(r), true) = (ref_logp, config.kl_beta != 0.0) {
        let d = r - logp;
        kl = d.exp() - d - 1.0;
        loss += config.kl_beta * kl;
        weight += config.kl_beta * (d.exp() - 1.0);
    }
    TokenTerm {
        weight: weight / n,
        loss: loss / n,
        clipped,
        kl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_normalised_and_flat_groups_dropped() {
        let a = group_advantages(&[1.0, 0.0, 0.5, 0.5], 1e-6).unwrap();
        let (m, s) = mean_std(&a);
        assert!(m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12, "{m} {s}");
        assert!(a[0] > 0.0 && a[1] < 0.0 && a[2] == 0.0);
        // Population std: [1, 0] has std 0.5, so advantages are +-1.
        assert_eq!(
            group_advantages(&[1.0, 0.0], 1e-6).unwrap(),
            vec![1.0, -1.0]
        );
        assert!(group_advantages(&[-1.0; 8], 1e-6).is_none());
        assert!(group_advantages(&[0.3, 0.3 + 1e-9], 1e-6).is_none());
        assert!(group_advantages(&[0.7], 1e-6).is_none());
    }

    /// The weight is minus the derivative of the loss term by logp (checked
    /// by central differences), in every clipping regime, with and without
    /// the KL penalty.
    #[test]
    fn weights_are_the_loss_gradient() {
        for beta in [0.0, 0.05] {
            let config = GrpoConfig {
                clip_low: 0.2,
                clip_high: 0.28,
                kl_beta: beta,
                ..GrpoConfig::default()
            };
            for &adv in &[1.3, -0.7] {
                // Ratios inside the range, above 1 + 0.28, below 1 - 0.2.
                for (&delta, is) in [0.05, -0.05, 0.5, -0.5].iter().zip([1.0, 0.9, 2.0, 1.3]) {
                    let (old, rf, n) = (-1.7, -1.2, 37);
                    let logp = old + delta;
                    let t = token_term(&config, adv, logp, old, Some(rf), n, is);
                    let h = 1e-6;
                    let f = |lp: f64| token_term(&config, adv, lp, old, Some(rf), n, is).loss;
                    let fd = (f(logp + h) - f(logp - h)) / (2.0 * h);
                    assert!(
                        (-t.weight - fd).abs() < 1e-7,
                        "beta {beta} adv {adv} delta {delta}: weight {} vs -dL {fd}",
                        t.weight
                    );
                    let ratio = delta.exp();
                    let expect_clip = (adv > 0.0 && ratio > 1.28) || (adv < 0.0 && ratio < 0.8);
                    assert_eq!(t.clipped, expect_clip, "adv {adv} delta {delta}");
                }
            }
        }
    }

    #[test]
    fn one_update_is_the_plain_policy_gradient() {
        let c = GrpoConfig::default();
        let t = token_term(&c, 0.8, -2.0, -2.0, None, 4, 1.0);
        assert_eq!(t.weight, 0.8 / 4.0);
        assert_eq!(t.loss, -0.8 / 4.0);
        assert!(!t.clipped);
        assert_eq!(t.kl, 0.0);
    }

    /// The correction is the identity when the passes agree, the ratio of
    /// the two probabilities below the cap, the cap above it, and off
    /// without one; it scales the policy-gradient part only.
    #[test]
    fn truncated_importance_weights() {
        for lp in [-0.01, -2.5, -11.0] {
            assert_eq!(truncated_importance_weight(lp, lp, Some(2.0)), 1.0);
        }
        let w = truncated_importance_weight(-1.0, -1.1, Some(2.0));
        assert!((w - 0.1f64.exp()).abs() < 1e-15, "{w}");
        assert_eq!(truncated_importance_weight(-1.0, -3.0, Some(2.0)), 2.0);
        assert_eq!(truncated_importance_weight(-1.0, -3.0, None), 1.0);
        let c = GrpoConfig {
            kl_beta: 0.1,
            ..GrpoConfig::default()
        };
        let plain = token_term(&c, 0.8, -2.0, -2.0, Some(-1.5), 4, 1.0);
        let weighted = token_term(&c, 0.8, -2.0, -2.0, Some(-1.5), 4, 1.5);
        let kl_weight = 0.1 * (0.5f64.exp() - 1.0) / 4.0;
        assert!((plain.weight - (0.2 + kl_weight)).abs() < 1e-15);
        assert!((weighted.weight - (1.5 * 0.2 + kl_weight)).abs() < 1e-15);
    }
}

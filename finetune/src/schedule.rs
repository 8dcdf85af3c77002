//! Learning-rate schedules: linear warmup from 0, then constant, linear or
//! cosine decay, with the formulas of Hugging Face transformers'
//! `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`,
//! `get_cosine_schedule_with_warmup` and, with a floor,
//! `get_cosine_with_min_lr_schedule_with_warmup`.
//!
//! `lr_at(s) = lr * factor(s)`, with `w` warmup steps and `n` total steps:
//! ```text
//! s < w:      factor = s / max(1, w)
//! otherwise:
//!   constant: factor = 1
//!   linear:   factor = r + (1 - r) * max(0, n - s) / max(1, n - w)
//!   cosine:   factor = r + (1 - r) * 0.5 * (1 + cos(pi * progress)),
//!             progress = min(1, (s - w) / max(1, n - w))
//! ```
//! where `r = min_lr / lr` (transformers' `min_lr_rate`, derived from
//! `min_lr` as `get_cosine_with_min_lr_schedule_with_warmup` does). Step `s`
//! counts the optimizer steps already taken: PyTorch's LambdaLR gives step
//! 0's rate to the first update, which is therefore 0 when there is a
//! warmup, as in the transformers Trainer.
//! Two departures, both outside transformers' usual range: past step `n`
//! the rate stays at its floor (transformers' cosine climbs again), and the
//! linear decay has the same floor as the cosine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The shape of the decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Constant,
    Linear,
    Cosine,
}

impl Decay {
    pub const ALL: [Decay; 3] = [Decay::Constant, Decay::Linear, Decay::Cosine];

    pub fn name(self) -> &'static str {
        match self {
            Decay::Constant => "constant",
            Decay::Linear => "linear",
            Decay::Cosine => "cosine",
        }
    }

    pub fn parse(s: &str) -> Option<Decay> {
        let s = s.trim().to_ascii_lowercase();
        Decay::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Display for Decay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A learning-rate schedule over `total` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub decay: Decay,
    /// The peak rate, reached at the end of warmup.
    pub lr: f64,
    /// The rate decay ends at (not used by `Constant`).
    pub min_lr: f64,
    /// Steps of linear warmup from 0.
    pub warmup: u64,
    /// Steps of the whole run (warmup included).
    pub total: u64,
}

impl Schedule {
    /// Warmup, then cosine decay to 0: transformers' default for SFT recipes.
    pub fn cosine(lr: f64, warmup: u64, total: u64) -> Schedule {
        Schedule {
            decay: Decay::Cosine,
            lr,
            min_lr: 0.0,
            warmup,
            total,
        }
    }

    /// The multiplier of `lr` at `step` (transformers' `lr_lambda`).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return step as f64 / self.warmup.max(1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let floor = if self.lr == 0.0 {
            0.0
        } else {
            self.min_lr / self.lr
        };
        let decayed = match self.decay {
            Decay::Constant => return 1.0,
            // transformers' form, (n - s) / (n - w), for the same rounding.
            Decay::Linear => self.total.saturating_sub(step) as f64 / span,
            Decay::Cosine => {
                let progress = ((step - self.warmup) as f64 / span).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        (decayed * (1.0 - floor) + floor).max(0.0)
    }

    /// The learning rate of the update after `step` updates.
    pub fn lr_at(&self, step: u64) -> f32 {
        (self.lr * self.factor(step)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from transformers' lr_lambda formulas in Python (f64), for
    /// lr 3e-4, 10 warmup steps, 100 total.
    const HF_COSINE_37: f64 = 0.000_238_167_787_843_870_94;
    const HF_COSINE_99: f64 = 9.137_594_713_563_568e-8;
    const HF_COSINE_MIN_RATE_0_1_37: f64 = 0.000_244_351_009_059_483_87;
    const HF_LINEAR_37: f64 = 0.000_209_999_999_999_999_98;

    fn sched(decay: Decay) -> Schedule {
        Schedule {
            decay,
            lr: 3e-4,
            min_lr: 0.0,
            warmup: 10,
            total: 100,
        }
    }

    #[test]
    fn warmup_is_linear_from_zero() {
        for decay in Decay::ALL {
            let s = sched(decay);
            assert_eq!(s.lr_at(0), 0.0);
            assert_eq!(s.lr_at(5), (3e-4 * 0.5) as f32);
            assert_eq!(s.lr_at(9), (3e-4 * 0.9) as f32);
            assert_eq!(
                s.lr_at(10),
                3e-4f64 as f32,
                "{decay}: peak at the end of warmup"
            );
        }
    }

    #[test]
    fn cosine_matches_transformers() {
        let s = sched(Decay::Cosine);
        assert_eq!(s.lr_at(37), HF_COSINE_37 as f32);
        assert_eq!(s.lr_at(55), (1.5e-4f64) as f32, "half way");
        assert_eq!(s.lr_at(99), HF_COSINE_99 as f32);
        assert_eq!(s.lr_at(100), 0.0);
        assert_eq!(s.lr_at(1000), 0.0, "held at min_lr past the end");
        let floored = Schedule { min_lr: 3e-5, ..s };
        // min_lr / lr is 0.1 to within an f64 rounding, so f32 precision here.
        let rel = (floored.lr_at(37) as f64 / HF_COSINE_MIN_RATE_0_1_37 - 1.0).abs();
        assert!(rel < 1e-7, "{rel}");
        assert_eq!(floored.lr_at(100), 3e-5f64 as f32);
        assert_eq!(floored.lr_at(5000), 3e-5f64 as f32);
    }

    #[test]
    fn linear_and_constant() {
        let s = sched(Decay::Linear);
        assert_eq!(s.lr_at(37), HF_LINEAR_37 as f32);
        assert_eq!(s.lr_at(100), 0.0);
        assert_eq!(s.lr_at(101), 0.0);
        let floored = Schedule {
            min_lr: 1.5e-4,
            ..s
        };
        assert_eq!(floored.lr_at(100), 1.5e-4f64 as f32);
        assert_eq!(floored.lr_at(55), (3e-4 * 0.75f64) as f32);
        let c = sched(Decay::Constant);
        assert_eq!(c.lr_at(10), 3e-4f64 as f32);
        assert_eq!(c.lr_at(100), 3e-4f64 as f32);
        assert_eq!(c.lr_at(100_000), 3e-4f64 as f32);
    }

    #[test]
    fn degenerate_lengths() {
        // No warmup: the first update gets the full rate.
        let s = Schedule::cosine(1e-3, 0, 10);
        assert_eq!(s.lr_at(0), 1e-3f64 as f32);
        // total <= warmup, or zero steps: no division by zero.
        let s = Schedule::cosine(1e-3, 10, 5);
        assert_eq!(s.lr_at(10), 1e-3f64 as f32);
        assert_eq!(s.lr_at(11), 0.0);
        let s = Schedule::cosine(1e-3, 0, 0);
        assert!(s.lr_at(0).is_finite());
        let zero = Schedule {
            min_lr: 1e-5,
            ..Schedule::cosine(0.0, 2, 4)
        };
        assert_eq!(zero.lr_at(3), 0.0);
    }

    #[test]
    fn decay_names_round_trip() {
        for d in Decay::ALL {
            assert_eq!(Decay::parse(&d.to_string()), Some(d));
        }
        assert_eq!(Decay::parse("Cosine"), Some(Decay::Cosine));
        assert_eq!(Decay::parse("polynomial"), None);
    }
}

//! The settings of a training run, shared by the trainers: the adapter's
//! shape, the optimizer and schedule, the loop (steps, batches, evaluation,
//! checkpoints). Read from a TOML or YAML file (`--config run.toml`), then
//! overridden by command-line flags; saved whole in `trainer_state.json` so a
//! resumed run continues with exactly the same settings.
//!
//! Defaults follow PEFT/MLX-LM practice for small models: rank 16, alpha 32,
//! all seven projections, lr 2e-4 with cosine decay, AdamW (0.9, 0.999, 1e-8)
//! without weight decay, gradient clipping at 1.0.

use serde::{Deserialize, Serialize};
use srl_models::{LoraConfig, Target};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Training data (JSONL).
    pub data: PathBuf,
    /// Validation data (JSONL), evaluated every `eval_every` steps.
    pub valid: Option<PathBuf>,
    /// The adapter folder written (checkpoints, metrics, plot).
    pub out: PathBuf,
    /// Examples longer than this many tokens are truncated (and counted).
    pub max_len: usize,
    /// Skip (and count) malformed lines instead of stopping.
    pub skip_bad: bool,
    /// prompt/completion lines as raw text, without the chat template.
    pub raw: bool,

    // The adapter.
    pub rank: usize,
    pub alpha: f32,
    pub dropout: f32,
    /// q, k, v, o, gate, up, down (or q_proj..., attn_q...).
    pub targets: Vec<String>,
    /// Adapt only the last N blocks; all when absent.
    pub num_layers: Option<usize>,
    /// Start from this adapter's weights instead of a fresh one.
    pub init_adapter: Option<PathBuf>,

    // The optimizer and schedule.
    pub lr: f64,
    /// "cosine", "linear" or "constant" decay after warmup.
    pub schedule: String,
    pub warmup_steps: u64,
    /// Lowest learning rate of the decay, as a fraction of `lr`.
    pub min_lr_ratio: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    pub max_grad_norm: f32,

    // The loop.
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub epochs: Option<f64>,
    pub max_steps: Option<u64>,
    pub seed: u64,
    /// Validation every N steps (and at the end); 0 = only at the end.
    pub eval_every: u64,
    /// Checkpoint every N steps (and at the end); 0 = only at the end.
    pub save_every: u64,
    /// Checkpoints kept (oldest removed first).
    pub keep_checkpoints: usize,
    pub threads: usize,
    /// Intermediates kept for the backward, in MiB; blocks beyond are
    /// recomputed from their input (activation checkpointing). 0 = always
    /// recompute (least memory).
    pub saved_activations_mib: usize,

    /// The RL trainers' settings (`[rl]` in a config file); `batch_size` is
    /// the number of groups per update there.
    pub rl: RlConfig,
}

/// Settings of `srl train srl` and `srl train rlvr` (SRL.md, "Policy
/// optimisation"): rollouts, the clipped objective and dynamic sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlConfig {
    /// Rollouts per instance (G).
    pub group_size: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Tokens per rollout at most.
    pub max_new_tokens: usize,
    /// Monologue tokens before `</think>` is written for the model (budget
    /// forcing; the prompt then ends with `<think>`). None: the model must
    /// close the block itself.
    pub think_budget: Option<usize>,
    /// The PPO clip range: the ratio is held in [1 - clip_low, 1 + clip_high].
    pub clip_low: f64,
    pub clip_high: f64,
    /// KL penalty to the base model (adapter off).
    pub kl_beta: f64,
    /// Groups whose reward std is not above this are dropped.
    pub std_epsilon: f64,
    /// Optimizer steps on each batch of rollouts.
    pub inner_updates: usize,
    /// Truncated importance sampling: each sampled token's policy-gradient
    /// term is weighted by min(p_train / p_rollout, cap), correcting for
    /// the inference pass that sampled it (int8 activations, f16 cache)
    /// differing slightly from the f32 training pass. 0: off.
    pub tis_cap: f64,
    /// At most this many times `batch_size` groups are sampled to fill one
    /// update's batch; then the update goes on with what it has (or, with
    /// nothing, the run stops and says why).
    pub sampling_bound: usize,
    /// Rollouts written to metrics.jsonl per update.
    pub log_samples: usize,
    /// difflib's autojunk heuristic in the SRL reward.
    pub autojunk: bool,
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            group_size: 8,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 256,
            think_budget: None,
            clip_low: 0.2,
            clip_high: 0.2,
            kl_beta: 0.0,
            std_epsilon: 1e-6,
            inner_updates: 1,
            tis_cap: 2.0,
            sampling_bound: 4,
            log_samples: 2,
            autojunk: true,
        }
    }
}

impl RlConfig {
    pub fn grpo(&self) -> crate::grpo::GrpoConfig {
        crate::grpo::GrpoConfig {
            clip_low: self.clip_low,
            clip_high: self.clip_high,
            kl_beta: self.kl_beta,
            std_epsilon: self.std_epsilon,
        }
    }

    /// The importance weights' cap, None when the correction is off.
    pub fn tis(&self) -> Option<f64> {
        (self.tis_cap > 0.0).then_some(self.tis_cap)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.group_size < 2 {
            return bad(format!(
                "group_size must be at least 2 (advantages compare rollouts), not {}",
                self.group_size
            ));
        }
        let sampling_ok = self.temperature > 0.0 && self.top_p > 0.0 && self.top_p <= 1.0;
        if !sampling_ok {
            return bad("RL sampling needs temperature > 0 and top_p in (0, 1]".into());
        }
        if self.max_new_tokens == 0 || self.think_budget == Some(0) {
            return bad("max_new_tokens and think_budget must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.clip_low) || self.clip_high < 0.0 {
            return bad("clip_low must be in [0, 1) and clip_high at least 0".into());
        }
        if self.kl_beta < 0.0 || self.std_epsilon < 0.0 {
            return bad("kl_beta and std_epsilon must not be negative".into());
        }
        if self.inner_updates == 0 || self.sampling_bound == 0 {
            return bad("inner_updates and sampling_bound must be at least 1".into());
        }
        if !(self.tis_cap.is_finite() && self.tis_cap >= 0.0) {
            return bad(format!(
                "tis_cap must be a positive number (or 0: off), not {}",
                self.tis_cap
            ));
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            valid: None,
            out: PathBuf::new(),
            max_len: 512,
            skip_bad: false,
            raw: false,
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: Target::ALL.iter().map(|t| t.to_string()).collect(),
            num_layers: None,
            init_adapter: None,
            lr: 2e-4,
            schedule: "cosine".into(),
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            batch_size: 1,
            grad_accum: 1,
            epochs: None,
            max_steps: None,
            seed: 0,
            eval_every: 50,
            save_every: 100,
            keep_checkpoints: 2,
            threads: 0,
            saved_activations_mib: 1024,
            rl: RlConfig::default(),
        }
    }
}

/// A setting that is out of range, or a config file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl TrainConfig {
    /// Reads a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file; unknown keys
    /// are errors (a typo must not silently fall back to a default).
    pub fn from_file(path: &Path) -> Result<TrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "toml" => {
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
            }
            "yaml" | "yml" => serde_yaml_ng::from_str(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display()))),
            _ => Err(ConfigError(format!(
                "{}: a config file must end in .toml, .yaml or .yml",
                path.display()
            ))),
        }
    }

    /// The adapter's shape, with target names checked.
    pub fn lora(&self) -> Result<LoraConfig, ConfigError> {
        let mut targets = Vec::new();
        for name in &self.targets {
            let t = Target::parse(name).ok_or_else(|| {
                ConfigError(format!(
                    "unknown target module '{name}' (use q, k, v, o, gate, up, down)"
                ))
            })?;
            targets.push(t);
        }
        Ok(LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            targets,
            last_layers: self.num_layers,
        })
    }

    /// Checks every range, so a bad setting fails before any work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.rank == 0 || self.rank > 1024 {
            return bad(format!("rank must be 1..=1024, not {}", self.rank));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), not {}", self.dropout));
        }
        if self.targets.is_empty() {
            return bad("no target modules".into());
        }
        self.lora()?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!(
                "the learning rate must be positive, not {}",
                self.lr
            ));
        }
        if !["cosine", "linear", "constant"].contains(&self.schedule.as_str()) {
            return bad(format!(
                "unknown schedule '{}' (cosine, linear or constant)",
                self.schedule
            ));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio must be in [0, 1]".into());
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("AdamW betas must be in [0, 1)".into());
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("batch_size and grad_accum must be at least 1".into());
        }
        if self.max_len < 2 {
            return bad("max_len must be at least 2 tokens".into());
        }
        if self.epochs.is_some_and(|e| e.is_nan() || e <= 0.0) || self.max_steps == Some(0) {
            return bad("epochs and max_steps must be positive".into());
        }
        self.rl.validate()
    }

    /// Examples per optimizer step.
    pub fn examples_per_step(&self) -> usize {
        self.batch_size * self.grad_accum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_yaml_files() {
        let dir = std::env::temp_dir().join(format!("srl-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("run.toml");
        std::fs::write(
            &t,
            "rank = 8\nalpha = 16.0\ntargets = [\"q\", \"v\"]\nlr = 1e-4\n",
        )
        .unwrap();
        let c = TrainConfig::from_file(&t).unwrap();
        assert_eq!((c.rank, c.alpha, c.lr), (8, 16.0, 1e-4));
        assert_eq!(c.lora().unwrap().targets, vec![Target::Q, Target::V]);
        let y = dir.join("run.yaml");
        std::fs::write(&y, "rank: 4\nmax_steps: 10\nnum_layers: 2\n").unwrap();
        let c = TrainConfig::from_file(&y).unwrap();
        assert_eq!((c.rank, c.max_steps, c.num_layers), (4, Some(10), Some(2)));
        std::fs::write(&t, "lr = 1e-5\n[rl]\ngroup_size = 4\nthink_budget = 32\n").unwrap();
        let c = TrainConfig::from_file(&t).unwrap();
        assert_eq!((c.rl.group_size, c.rl.think_budget), (4, Some(32)));
        assert_eq!(c.rl.clip_low, 0.2);
        std::fs::write(&t, "[rl]\ngroup = 4\n").unwrap();
        let e = TrainConfig::from_file(&t).unwrap_err().to_string();
        assert!(e.contains("group"), "{e}");
        std::fs::write(&t, "rnak = 8\n").unwrap();
        let e = TrainConfig::from_file(&t).unwrap_err().to_string();
        assert!(e.contains("rnak") && e.contains("run.toml"), "{e}");
    }

    #[test]
    fn bad_settings_are_named() {
        let c = TrainConfig {
            targets: vec!["q".into(), "lm_head".into()],
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("lm_head"));
        let c = TrainConfig {
            dropout: 1.0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        let mut c = TrainConfig::default();
        assert_eq!(c.rl.tis(), Some(2.0));
        c.rl.tis_cap = 0.0;
        assert_eq!(c.rl.tis(), None, "0 turns the correction off");
        c.validate().unwrap();
        c.rl.tis_cap = -1.0;
        assert!(c.validate().unwrap_err().to_string().contains("tis_cap"));
        TrainConfig::default().validate().unwrap();
    }
}

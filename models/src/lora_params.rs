//! A LoRA adapter being trained: f32 matrices owned in memory, one pair per
//! adapted linear layer, plus the hyper-parameters that define it.
//!
//! Rows follow the base file's layout, as [`crate::lora`] expects of adapter
//! files: for llama-arch GGUF bases the Q/K `b` rows are permuted like the
//! base's Q/K rows (the PEFT writer converts them, rope.rs knows how).
//! The same type holds gradients and optimizer moments (`zeros_like`).

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A linear layer of a transformer block that an adapter can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    /// All seven, in block order (the default target set).
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The GGUF tensor name stem (`blk.N.<stem>.weight`).
    pub fn gguf_stem(self) -> &'static str {
        match self {
            Target::Q => "attn_q",
            Target::K => "attn_k",
            Target::V => "attn_v",
            Target::O => "attn_output",
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
        }
    }

    /// The Hugging Face module path inside a layer (`model.layers.N.<path>`).
    pub fn hf_module(self) -> &'static str {
        match self {
            Target::Q => "self_attn.q_proj",
            Target::K => "self_attn.k_proj",
            Target::V => "self_attn.v_proj",
            Target::O => "self_attn.o_proj",
            Target::Gate => "mlp.gate_proj",
            Target::Up => "mlp.up_proj",
            Target::Down => "mlp.down_proj",
        }
    }

    /// PEFT's `target_modules` name (`q_proj`, ...).
    pub fn peft_name(self) -> &'static str {
        self.hf_module().split('.').nth(1).expect("two parts")
    }

    /// Accepts the short name (`q`, `gate`), PEFT's (`q_proj`) or GGUF's
    /// (`attn_q`, `ffn_gate`).
    pub fn parse(s: &str) -> Option<Target> {
        let s = s.trim().to_ascii_lowercase();
        Target::ALL.into_iter().find(|t| {
            let short = t.peft_name().trim_end_matches("_proj");
            s == short || s == t.peft_name() || s == t.gguf_stem() || (s == "o" && *t == Target::O)
        })
    }

    /// (output rows, input cols) of this layer in `c`.
    pub fn shape(self, c: &ModelConfig) -> (usize, usize) {
        match self {
            Target::Q => (c.q_dim(), c.n_embd),
            Target::K | Target::V => (c.kv_dim(), c.n_embd),
            Target::O => (c.n_embd, c.q_dim()),
            Target::Gate | Target::Up => (c.n_ff, c.n_embd),
            Target::Down => (c.n_embd, c.n_ff),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.peft_name().trim_end_matches("_proj"))
    }
}

/// The shape of an adapter: what PEFT's LoraConfig holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Probability of zeroing an input element of the LoRA branch in training.
    pub dropout: f32,
    pub targets: Vec<Target>,
    /// Adapt only the last N blocks (MLX-LM's `num_layers`); None = all.
    pub last_layers: Option<usize>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: Target::ALL.to_vec(),
            last_layers: None,
        }
    }
}

impl LoraConfig {
    /// The factor applied to B(Ax).
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// The block indices adapted in a model of `n_layer` blocks.
    pub fn layers(&self, n_layer: usize) -> std::ops::Range<usize> {
        let n = self.last_layers.unwrap_or(n_layer).min(n_layer);
        n_layer - n..n_layer
    }
}

/// One adapted layer: `y += scale * (x A^T) B^T`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTensor {
    pub layer: usize,
    pub target: Target,
    /// Output features of the base layer.
    pub rows: usize,
    /// Input features of the base layer.
    pub cols: usize,
    /// [rank, cols], row-major.
    pub a: Vec<f32>,
    /// [rows, rank], row-major.
    pub b: Vec<f32>,
}

impl LoraTensor {
    /// The adapted base weight's GGUF name (`blk.3.attn_q.weight`).
    pub fn base_name(&self) -> String {
        format!("blk.{}.{}.weight", self.layer, self.target.gguf_stem())
    }
}

/// Every adapted layer of one adapter, in (layer, target) order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraParams {
    pub config: LoraConfig,
    pub tensors: Vec<LoraTensor>,
    index: HashMap<(usize, Target), usize>,
}

impl LoraParams {
    /// A fresh adapter for `model`, initialised as PEFT does: A uniform in
    /// ±1/sqrt(cols) (kaiming-uniform with a = sqrt(5)), B zero, so training
    /// starts from the base model exactly.
    pub fn init(model: &ModelConfig, config: LoraConfig, seed: u64) -> LoraParams {
        let mut rng = SplitMix64(seed ^ 0x5EED_10AA);
        let mut p = LoraParams::zeros(model, config);
        for t in &mut p.tensors {
            let bound = 1.0 / (t.cols as f32).sqrt();
            for v in &mut t.a {
                *v = (rng.next_f32() * 2.0 - 1.0) * bound;
            }
        }
        p
    }

    /// All matrices zero (gradients, optimizer moments).
    pub fn zeros(model: &ModelConfig, config: LoraConfig) -> LoraParams {
        let mut targets = config.targets.clone();
        targets.sort();
        targets.dedup();
        let mut tensors = Vec::new();
        for layer in config.layers(model.n_layer) {
            for &target in &targets {
                let (rows, cols) = target.shape(model);
                tensors.push(LoraTensor {
                    layer,
                    target,
                    rows,
                    cols,
                    a: vec![0.0; config.rank * cols],
                    b: vec![0.0; rows * config.rank],
                });
            }
        }
        LoraParams::from_tensors(config, tensors)
    }

    /// Assembles an adapter from its tensors (as read from files).
    pub fn from_tensors(config: LoraConfig, mut tensors: Vec<LoraTensor>) -> LoraParams {
        tensors.sort_by_key(|t| (t.layer, t.target));
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.layer, t.target), i))
            .collect();
        LoraParams {
            config,
            tensors,
            index,
        }
    }

    /// The same shapes, all zero.
    pub fn zeros_like(&self) -> LoraParams {
        let mut p = self.clone();
        p.fill(0.0);
        p
    }

    pub fn fill(&mut self, v: f32) {
        for t in &mut self.tensors {
            t.a.fill(v);
            t.b.fill(v);
        }
    }

    pub fn get(&self, layer: usize, target: Target) -> Option<&LoraTensor> {
        self.index.get(&(layer, target)).map(|&i| &self.tensors[i])
    }

    pub fn get_mut(&mut self, layer: usize, target: Target) -> Option<&mut LoraTensor> {
        let i = *self.index.get(&(layer, target))?;
        Some(&mut self.tensors[i])
    }

    /// Number of trainable values.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.a.len() + t.b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every matrix as a flat slice, in a fixed order (A then B per tensor):
    /// what optimizers and gradient clipping walk.
    pub fn slices(&self) -> impl Iterator<Item = &[f32]> {
        self.tensors
            .iter()
            .flat_map(|t| [t.a.as_slice(), t.b.as_slice()])
    }

    pub fn slices_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        self.tensors
            .iter_mut()
            .flat_map(|t| [t.a.as_mut_slice(), t.b.as_mut_slice()])
    }

    /// Checks that the adapter fits `model` (every tensor's layer exists and
    /// its shape matches); `path` names the adapter in the error.
    pub fn check_fits(&self, model: &ModelConfig, path: &Path) -> Result<()> {
        for t in &self.tensors {
            let (rows, cols) = t.target.shape(model);
            let r = self.config.rank;
            if t.layer >= model.n_layer
                || (t.rows, t.cols) != (rows, cols)
                || t.a.len() != r * cols
                || t.b.len() != rows * r
            {
                return Err(ModelError::config(
                    path,
                    format!(
                        "adapter for the wrong base: {} is [{}, {}] with rank {r} in the adapter, the model's is [{rows}, {cols}] of {} blocks",
                        t.base_name(),
                        t.rows,
                        t.cols,
                        model.n_layer
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A small deterministic generator (splitmix64) for initialisation and
/// dropout masks: reproducible from a seed, no state to save.
#[derive(Debug, Clone, Copy)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// splitmix64's finaliser: a good hash of one u64.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_round_trip() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.peft_name()), Some(t));
            assert_eq!(Target::parse(t.gguf_stem()), Some(t));
            assert_eq!(Target::parse(&t.to_string()), Some(t));
        }
        assert_eq!(Target::parse("o_proj"), Some(Target::O));
        assert_eq!(Target::parse("lm_head"), None);
    }

    #[test]
    fn last_layers() {
        let c = LoraConfig {
            last_layers: Some(2),
            ..LoraConfig::default()
        };
        assert_eq!(c.layers(5), 3..5);
        assert_eq!(LoraConfig::default().layers(5), 0..5);
    }
}

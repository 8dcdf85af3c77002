//! The resolved model configuration: read once from GGUF metadata or a Hugging
//! Face config.json, then plain numbers for everything above.

use crate::error::{ModelError, Result};
use crate::families::Arch;
use crate::formats::gguf::GgufFile;
use crate::layers::rope::RopeStyle;
use serde::Deserialize;
use std::path::Path;

/// Sizes and constants of a decoder-only transformer (letters of the crate docs:
/// C channels, H heads, D head dim, V vocab, L layers, F feed-forward width).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    /// L
    pub n_layer: usize,
    /// C
    pub n_embd: usize,
    /// H
    pub n_head: usize,
    /// query heads share key/value heads in groups of H / n_head_kv
    pub n_head_kv: usize,
    /// D
    pub head_dim: usize,
    /// F
    pub n_ff: usize,
    /// V
    pub vocab_size: usize,
    /// Context length the model was trained for.
    pub context_length: usize,
    pub rope_theta: f32,
    /// Per-pair divisors of the RoPE angles (Llama 3's scaling: the GGUF
    /// tensor `rope_freqs.weight`, or computed from config.json's
    /// `rope_scaling`); [D/2].
    pub rope_factors: Option<Vec<f32>>,
    pub rope_style: RopeStyle,
    /// The window of the sliding-window layers (Gemma 3): a token attends
    /// to the last `sliding_window` positions, itself included.
    pub sliding_window: Option<usize>,
    /// The RoPE base of the sliding-window layers.
    pub rope_theta_swa: f32,
    pub rms_eps: f32,
    /// The output head is the token embedding (no separate `output.weight`).
    pub tied_embeddings: bool,
}

impl ModelConfig {
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// The window layer `l` attends within (None: the whole context).
    pub fn layer_window(&self, l: usize) -> Option<usize> {
        let every = self.arch.family().global_every?;
        let window = self.sliding_window?;
        (!(l + 1).is_multiple_of(every)).then_some(window)
    }

    /// The RoPE base of layer `l`.
    pub fn layer_rope_theta(&self, l: usize) -> f32 {
        match self.layer_window(l) {
            Some(_) => self.rope_theta_swa,
            None => self.rope_theta,
        }
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(ModelError::config(path, msg));
        let limits = [
            ("block count", self.n_layer, 1, 1024),
            ("embedding length", self.n_embd, 1, 1 << 16),
            ("head count", self.n_head, 1, 1024),
            ("kv head count", self.n_head_kv, 1, 1024),
            ("feed-forward length", self.n_ff, 1, 1 << 18),
            ("vocab size", self.vocab_size, 1, 1 << 22),
            ("context length", self.context_length, 1, 1 << 24),
        ];
        for (what, v, lo, hi) in limits {
            if v < lo || v > hi {
                return bad(format!("{what} {v} is out of range ({lo}..={hi})"));
            }
        }
        if self.arch == Arch::Gemma3 && self.n_layer == 62 {
            // Gemma 3 27B scales queries by 1/sqrt(width / heads), not by
            // 1/sqrt(head dim) as srl's attention does.
            return bad("Gemma 3 27B's attention scale is not supported".into());
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "head count {} is not a multiple of the kv head count {}",
                self.n_head, self.n_head_kv
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) || self.head_dim > 1024 {
            return bad(format!(
                "head dimension {} must be even and at most 1024",
                self.head_dim
            ));
        }
        let in_range = self.rms_eps > 0.0 && self.rms_eps < 1.0 && self.rope_theta > 0.0;
        if !in_range {
            return bad(format!(
                "rms epsilon {} or rope theta {} out of range",
                self.rms_eps, self.rope_theta
            ));
        }
        Ok(())
    }

    /// Reads `<arch>.*` keys of a GGUF file.
    pub fn from_gguf(g: &GgufFile) -> Result<ModelConfig> {
        let path = g.path();
        let arch_name = g.architecture().ok_or_else(|| {
            ModelError::config(path, "metadata key 'general.architecture' is missing")
        })?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| ModelError::UnsupportedArch {
            path: path.to_path_buf(),
            arch: arch_name.to_string(),
        })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let need = |k: &str| -> Result<usize> {
            g.get_u64(&key(k)).map(|v| v as usize).ok_or_else(|| {
                ModelError::config(
                    path,
                    format!("metadata key '{}' is missing or not an integer", key(k)),
                )
            })
        };
        let n_embd = need("embedding_length")?;
        let n_head = need("attention.head_count")?;
        let n_head_kv = g
            .get_u64(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(n_head);
        let head_dim = match g.get_u64(&key("attention.key_length")) {
            Some(v) => v as usize,
            None if n_head > 0 => n_embd / n_head,
            None => 0,
        };
        let vocab_size = match g.get_u64(&key("vocab_size")) {
            Some(v) => v as usize,
            None => g
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(|a| a.len())
                .ok_or_else(|| {
                    ModelError::config(
                        path,
                        "neither the vocab size nor tokenizer.ggml.tokens is present",
                    )
                })?,
        };
        let cfg = ModelConfig {
            arch,
            n_layer: need("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: need("feed_forward_length")?,
            vocab_size,
            context_length: need("context_length")?,
            rope_theta: g.get_f32(&key("rope.freq_base")).unwrap_or(10000.0),
            rope_factors: rope_factors_of_gguf(g, head_dim)?,
            sliding_window: arch
                .family()
                .global_every
                .and(g.get_u64(&key("attention.sliding_window")))
                .filter(|&w| w > 0)
                .map(|w| w as usize),
            rope_theta_swa: g.get_f32(&key("rope.freq_base_swa")).unwrap_or(10000.0),
            // The Q/K row order of the file decides the rotation.
            rope_style: if arch.family().gguf_permutes_qk {
                RopeStyle::Interleaved
            } else {
                RopeStyle::Halves
            },
            rms_eps: g
                .get_f32(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            tied_embeddings: g.tensor_info("output.weight").is_none(),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `config.json`. Tensors keep HF's Q/K layout, so the
    /// rotation style is always "halves".
    pub fn from_hf_config(path: &Path, has_lm_head: bool) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let c: HfConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::config(path, format!("invalid config.json: {e}")))?;
        let arch =
            Arch::from_hf_model_type(&c.model_type).ok_or_else(|| ModelError::UnsupportedArch {
                path: path.to_path_buf(),
                arch: c.model_type.clone(),
            })?;
        let n_head_kv = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
        let cfg = ModelConfig {
            arch,
            n_layer: c.num_hidden_layers,
            n_embd: c.hidden_size,
            n_head: c.num_attention_heads,
            n_head_kv,
            head_dim: c
                .head_dim
                .unwrap_or(c.hidden_size / c.num_attention_heads.max(1)),
            n_ff: c.intermediate_size,
            vocab_size: c.vocab_size,
            context_length: c.max_position_embeddings.unwrap_or(2048),
            rope_theta: c.theta().unwrap_or(10000.0) as f32,
            rope_factors: None,
            rope_style: RopeStyle::Halves,
            sliding_window: None,
            rope_theta_swa: c.theta().unwrap_or(10000.0) as f32,
            rms_eps: c.rms_norm_eps.unwrap_or(1e-6) as f32,
            tied_embeddings: c.tie_word_embeddings.unwrap_or(false) || !has_lm_head,
        };
        let mut cfg = cfg;
        cfg.rope_factors = rope_factors_of_hf(path, c.scaling(), &cfg)?;
        cfg.validate(path)?;
        Ok(cfg)
    }
}

/// `rope_freqs.weight` ([D/2]), where the file has it.
fn rope_factors_of_gguf(g: &GgufFile, head_dim: usize) -> Result<Option<Vec<f32>>> {
    let Some(t) = g.tensor_info("rope_freqs.weight") else {
        return Ok(None);
    };
    if t.dims != [head_dim / 2] {
        return Err(ModelError::config(
            g.path(),
            format!(
                "rope_freqs.weight is {:?}; expected [{}] (half the head dimension)",
                t.dims,
                head_dim / 2
            ),
        ));
    }
    let mut factors = vec![0.0f32; head_dim / 2];
    srl_quant::dequantize_row(t.ty, g.tensor_data(t), &mut factors)?;
    if factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(ModelError::config(
            g.path(),
            "rope_freqs.weight holds a factor that is not a positive number",
        ));
    }
    Ok(Some(factors))
}

/// The RoPE factors of config.json's `rope_scaling`: Llama 3's computed as
/// llama.cpp's converter computes them; none for plain RoPE; any other kind
/// is refused rather than run as plain RoPE.
fn rope_factors_of_hf(
    path: &Path,
    scaling: Option<&serde_json::Value>,
    cfg: &ModelConfig,
) -> Result<Option<Vec<f32>>> {
    let Some(rs) = scaling.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let num = |k: &str, default: f64| rs.get(k).and_then(|v| v.as_f64()).unwrap_or(default) as f32;
    match kind {
        "default" => Ok(None),
        "llama3" => Ok(Some(crate::layers::rope::llama3_rope_factors(
            cfg.rope_theta,
            cfg.head_dim,
            num("factor", 8.0),
            num("low_freq_factor", 1.0),
            num("high_freq_factor", 4.0),
            num("original_max_position_embeddings", 8192.0),
        ))),
        other => Err(ModelError::config(
            path,
            format!("rope_scaling type '{other}' is not supported (srl runs plain RoPE and Llama 3's scaling)"),
        )),
    }
}

/// The fields of config.json srl uses.
#[derive(Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes RoPE's base and scaling here instead
    /// (`rope_theta`, `rope_type`, and the scaling's own fields).
    rope_parameters: Option<serde_json::Value>,
}

impl HfConfig {
    /// RoPE's base: `rope_theta`, or transformers 5's `rope_parameters`.
    fn theta(&self) -> Option<f64> {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
    }

    /// RoPE's scaling: `rope_scaling`, or transformers 5's
    /// `rope_parameters` (whose `rope_type` is `default` without one).
    fn scaling(&self) -> Option<&serde_json::Value> {
        self.rope_scaling
            .as_ref()
            .filter(|v| !v.is_null())
            .or(self.rope_parameters.as_ref())
    }
}

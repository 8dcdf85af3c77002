//! The architecture families srl runs, one file each, and the table of them:
//! the only place that tells families apart. A family's row says how its
//! files name it, what its blocks carry (biases, the Q/K row order of its
//! GGUF files) and what llama.cpp's converter writes for it; everything
//! above reads these fields, never the family's name.
//!
//! Adding a family: one file with its [`Family`] row, one entry in
//! [`FAMILIES`] and in [`Arch`], one test.

mod gemma3;
mod llama;
mod qwen2;
mod qwen3;
mod smollm3;

/// Architectures srl runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama, SmolLM, TinyLlama, Mistral...
    Llama,
    /// Qwen2 / Qwen2.5: Llama with q/k/v biases.
    Qwen2,
    /// Qwen3 (dense): per-head RMSNorm of q and k, no biases.
    Qwen3,
    /// SmolLM3: Llama with every fourth layer without RoPE.
    SmolLm3,
    /// Gemma 3 (text): post-norms, GELU, sliding-window layers.
    Gemma3,
}

/// The feed-forward block's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForward {
    /// silu(gate) * up.
    SwiGlu,
    /// gelu_tanh(gate) * up.
    GeGlu,
}

/// What sets a family apart.
#[derive(Debug)]
pub struct Family {
    pub arch: Arch,
    /// `general.architecture` of its GGUF files (and the `{arch}.` key prefix).
    pub gguf_name: &'static str,
    /// `model_type` values of its Hugging Face `config.json`.
    pub hf_model_types: &'static [&'static str],
    /// The q, k and v projections carry biases.
    pub qkv_bias: bool,
    /// Queries and keys get a per-head RMSNorm before RoPE
    /// (`blk.N.attn_q_norm.weight`, `attn_k_norm`, [head_dim]).
    pub qk_norm: bool,
    /// Every n-th layer (1-based: layers n-1, 2n-1, ...) attends without
    /// RoPE (NoPE).
    pub no_rope_every: Option<usize>,
    /// The token embedding rows are scaled by sqrt(width).
    pub embed_scale: bool,
    /// RMSNorms after attention and after the feed-forward, before each
    /// residual sum (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    pub feed_forward: FeedForward,
    /// With a sliding window in the file's metadata, every n-th layer
    /// (1-based) attends to the whole context and the others within the
    /// window.
    pub global_every: Option<usize>,
    /// The queries are scaled by 1/sqrt(D) before attention (Gemma), not
    /// the scores after.
    pub scale_q_first: bool,
    /// llama.cpp's converter permutes the Q and K rows of its GGUF files for
    /// RoPE on interleaved pairs (Hugging Face rotates halves).
    pub gguf_permutes_qk: bool,
    /// The converter writes `tokenizer.ggml.add_space_prefix` from
    /// `tokenizer_config.json`'s `add_prefix_space`.
    pub writes_add_space_prefix: bool,
    /// The converter turns BOS off for models with this vocabulary size.
    pub no_bos_at_vocab_size: Option<usize>,
}

/// Every family srl runs, in the order error messages list them.
pub const FAMILIES: &[&Family] = &[
    &llama::LLAMA,
    &qwen2::QWEN2,
    &qwen3::QWEN3,
    &smollm3::SMOLLM3,
    &gemma3::GEMMA3,
];

impl Arch {
    /// Every family, in [`FAMILIES`]' order (for tests that run them all).
    pub const ALL: [Arch; 5] = [
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::SmolLm3,
        Arch::Gemma3,
    ];

    /// This family's row of [`FAMILIES`].
    pub fn family(self) -> &'static Family {
        FAMILIES
            .iter()
            .find(|f| f.arch == self)
            .expect("every Arch has a row in FAMILIES")
    }
    /// The GGUF name (`llama`, `qwen2`).
    pub fn name(self) -> &'static str {
        self.family().gguf_name
    }
    /// The family whose GGUF files say `general.architecture = name`.
    pub fn from_name(name: &str) -> Option<Arch> {
        FAMILIES
            .iter()
            .find(|f| f.gguf_name == name)
            .map(|f| f.arch)
    }
    /// The family of a Hugging Face `config.json`'s `model_type`.
    pub fn from_hf_model_type(model_type: &str) -> Option<Arch> {
        FAMILIES
            .iter()
            .find(|f| f.hf_model_types.contains(&model_type))
            .map(|f| f.arch)
    }
    /// Whether layer `l` rotates its queries and keys (all but NoPE layers).
    pub fn rope_in_layer(self, l: usize) -> bool {
        self.family()
            .no_rope_every
            .is_none_or(|n| !(l + 1).is_multiple_of(n))
    }
    /// Whether the attention projections carry biases.
    pub fn has_qkv_bias(self) -> bool {
        self.family().qkv_bias
    }
}

/// The GGUF names of every family, for error messages ("llama, qwen2").
pub fn supported_names() -> String {
    let names: Vec<&str> = FAMILIES.iter().map(|f| f.gguf_name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_one_row_and_unique_names() {
        for arch in [
            Arch::Llama,
            Arch::Qwen2,
            Arch::Qwen3,
            Arch::SmolLm3,
            Arch::Gemma3,
        ] {
            let f = arch.family();
            assert_eq!(f.arch, arch);
            assert_eq!(Arch::from_name(f.gguf_name), Some(arch));
            for t in f.hf_model_types {
                assert_eq!(Arch::from_hf_model_type(t), Some(arch), "{t}");
            }
        }
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.gguf_name).collect();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        assert_eq!(supported_names(), "llama, qwen2, qwen3, smollm3, gemma3");
        assert_eq!(Arch::from_name("gemma2"), None);
    }
}

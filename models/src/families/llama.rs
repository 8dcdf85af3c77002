//! Llama and the models built like it (SmolLM, TinyLlama, Mistral): RMSNorm
//! before attention and feed-forward, grouped-query attention with RoPE,
//! SwiGLU, no biases. llama.cpp's converter stores the Q and K rows permuted
//! for RoPE on interleaved pairs.

use super::{Arch, Family, FeedForward};

pub const LLAMA: Family = Family {
    arch: Arch::Llama,
    gguf_name: "llama",
    hf_model_types: &["llama", "mistral"],
    qkv_bias: false,
    qk_norm: false,
    no_rope_every: None,
    embed_scale: false,
    post_norms: false,
    feed_forward: FeedForward::SwiGlu,
    global_every: None,
    scale_q_first: false,
    gguf_permutes_qk: true,
    writes_add_space_prefix: true,
    // Granite's small models; SmolLM shares the vocabulary size.
    no_bos_at_vocab_size: Some(49152),
};

//! Qwen3 (dense): Qwen2's block without the q/k/v biases and with a
//! per-head RMSNorm of the queries and keys before RoPE (`attn_q_norm`,
//! `attn_k_norm`, one weight of the head dimension each). Its head
//! dimension is set apart from width / heads (`key_length`). Its GGUF files
//! keep Hugging Face's Q/K row order (RoPE rotates halves).

use super::{Arch, Family, FeedForward};

pub const QWEN3: Family = Family {
    arch: Arch::Qwen3,
    gguf_name: "qwen3",
    hf_model_types: &["qwen3"],
    qkv_bias: false,
    qk_norm: true,
    no_rope_every: None,
    embed_scale: false,
    post_norms: false,
    feed_forward: FeedForward::SwiGlu,
    global_every: None,
    scale_q_first: false,
    gguf_permutes_qk: false,
    writes_add_space_prefix: false,
    no_bos_at_vocab_size: None,
};

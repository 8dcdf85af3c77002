//! Qwen2 and Qwen2.5: Llama's block with biases on the q, k and v
//! projections; its GGUF files keep Hugging Face's Q/K row order (RoPE
//! rotates halves).

use super::{Arch, Family, FeedForward};

pub const QWEN2: Family = Family {
    arch: Arch::Qwen2,
    gguf_name: "qwen2",
    hf_model_types: &["qwen2"],
    qkv_bias: true,
    qk_norm: false,
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

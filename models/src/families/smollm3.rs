//! SmolLM3: Llama's block (its GGUF files permute the Q/K rows as Llama's
//! do), with every fourth layer attending without RoPE (NoPE: layers 3, 7,
//! 11, ...), as llama.cpp runs it (`n_no_rope_layer_step = 4`) and Hugging
//! Face's `no_rope_layer_interval` sets it.

use super::{Arch, Family, FeedForward};

pub const SMOLLM3: Family = Family {
    arch: Arch::SmolLm3,
    gguf_name: "smollm3",
    hf_model_types: &["smollm3"],
    qkv_bias: false,
    qk_norm: false,
    no_rope_every: Some(4),
    embed_scale: false,
    post_norms: false,
    feed_forward: FeedForward::SwiGlu,
    global_every: None,
    scale_q_first: false,
    gguf_permutes_qk: true,
    writes_add_space_prefix: true,
    no_bos_at_vocab_size: None,
};

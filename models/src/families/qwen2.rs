//! Qwen2 and Qwen2.5: Llama's block with biases on the q, k and v
//! projections; its GGUF files keep Hugging Face's Q/K row order (RoPE
//! rotates halves).

use super::{Arch, Family};

pub const QWEN2: Family = Family {
    arch: Arch::Qwen2,
    gguf_name: "qwen2",
    hf_model_types: &["qwen2"],
    qkv_bias: true,
    qk_norm: false,
    no_rope_every: None,
    gguf_permutes_qk: false,
    writes_add_space_prefix: false,
    no_bos_at_vocab_size: None,
};

//! Gemma 3 (text): embeddings scaled by sqrt(width); RMSNorm before and
//! after attention and feed-forward (`post_attention_norm`,
//! `post_ffw_norm`; llama.cpp's converter stores Gemma's norm weights as
//! 1 + w, so they multiply as every other norm's); per-head RMSNorm of q and
//! k; a GELU (tanh) gated feed-forward; five of every six layers attend
//! within a sliding window (`attention.sliding_window`) with their own RoPE
//! base (`rope.freq_base_swa`, 10000 when absent, as llama.cpp has it), the
//! sixth attends to everything. Its GGUF files keep Hugging Face's Q/K row
//! order (RoPE rotates halves). GGUF files only: a Hugging Face folder's
//! norm weights would need the converter's + 1.

use super::{Arch, Family, FeedForward};

pub const GEMMA3: Family = Family {
    arch: Arch::Gemma3,
    gguf_name: "gemma3",
    hf_model_types: &[],
    qkv_bias: false,
    qk_norm: true,
    no_rope_every: None,
    embed_scale: true,
    post_norms: true,
    feed_forward: FeedForward::GeGlu,
    global_every: Some(6),
    scale_q_first: true,
    gguf_permutes_qk: false,
    writes_add_space_prefix: false,
    no_bos_at_vocab_size: None,
};

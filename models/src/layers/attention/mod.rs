//! Grouped-query attention, in the two forms the two passes need:
//!
//! - [`decode`]: inference over the f16 KV cache, one query row or a prompt
//!   chunk at a time, with llama.cpp's numerics (token parity); long prompt
//!   chunks take its tiled path (`tiled.rs`);
//! - [`causal`]: training's exact f32 attention over a whole sequence,
//!   forward and backward side by side.

pub mod causal;
pub mod decode;
mod tiled;

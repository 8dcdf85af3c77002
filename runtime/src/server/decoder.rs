//! What the scheduler needs from a backend: a KV cache per slot and a
//! batched forward pass over some of them. The scheduler decides which rows
//! run, samples, streams and stops; a [`Decoder`] only runs the rows it is
//! given. So srl's engine ([`super::native`]) and llama.cpp
//! ([`super::llama_cpp`]) serve the same API with the same batching policy.

use super::adapters::Adapter;
use std::sync::Arc;

/// One row of a batched forward pass: tokens appended to a slot's cache.
pub struct Row<'a> {
    pub slot: usize,
    /// A prompt chunk, or the one token sampled last.
    pub tokens: &'a [u32],
    pub adapter: Option<&'a Arc<Adapter>>,
}

pub trait Decoder {
    /// Context of each slot, in tokens.
    fn n_ctx(&self) -> usize;

    /// Logits per row (V).
    fn n_vocab(&self) -> usize;

    /// Tokens the cache of `slot` holds.
    fn len(&self, slot: usize) -> usize;

    /// How many tokens of the cache of `slot` a sequence of `prompt` can
    /// keep: a common beginning, at most `prompt.len() - 1` (the last token
    /// is always read, for its logits), and only as far as it gives the
    /// numbers a fresh read would.
    fn reusable(&self, slot: usize, prompt: &[u32]) -> usize;

    /// Keeps the first `keep` tokens of the cache of `slot` (at most
    /// [`Decoder::reusable`] of the next prompt) and returns how many it
    /// kept (a backend that cannot cut a cache keeps 0).
    fn truncate(&mut self, slot: usize, keep: usize) -> usize;

    /// Empties every cache and scratch buffer (after a failed step).
    fn reset(&mut self);

    /// Appends each row's tokens to its slot's cache. Rows come grouped by
    /// adapter, slots in order within a group, each slot at most once.
    /// Afterwards [`Decoder::logits`] holds the logits of each row's last
    /// token.
    fn forward(&mut self, rows: &[Row]) -> Result<(), String>;

    /// Logits of the last [`Decoder::forward`], [rows, V].
    fn logits(&self) -> &[f32];
}

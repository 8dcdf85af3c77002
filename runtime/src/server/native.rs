//! The native backend of the server: srl's engine as a [`Decoder`]. Each
//! slot is a [`KvCache`]; a step is one [`Model::forward_batch_adapters`]
//! call, in which sequences of different adapters share the pass (the base
//! weights are read once, each adapter's term applies to its own rows).
//!
//! [`Model::forward_batch_adapters`]: srl_models::Model::forward_batch_adapters

use super::adapters::{Adapter, Weights};
use super::decoder::{Decoder, Row};
use super::metrics::Metrics;
use super::scheduler::{Handle, Loader, Scheduler};
use crate::generate::{Engine, PROMPT_BATCH};
use srl_models::layers::attention::decode::TILED_MIN_TOKENS;
use srl_models::{ActiveLora, KvCache, Logits, Segment, State};
use std::sync::Arc;

struct Slot {
    kv: KvCache,
    /// The tokens `kv` holds.
    cached: Vec<u32>,
    /// For each of them, whether attention read it with the tiled numerics
    /// (a call of [`TILED_MIN_TOKENS`] tokens or more) or the f16 ones.
    tiled: Vec<bool>,
}

pub(super) struct NativeDecoder {
    engine: Arc<Engine>,
    slots: Vec<Slot>,
    state: State,
}

/// Starts the scheduler thread on srl's engine: `parallel` slots of `n_ctx`
/// tokens (at most the model's context), up to `queue` more requests waiting.
pub(super) fn start(
    engine: Arc<Engine>,
    parallel: usize,
    n_ctx: usize,
    queue: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<Handle> {
    let n_ctx = n_ctx.clamp(2, engine.model.config.context_length);
    let loader = Loader::Native(engine.clone());
    let (handle, rx) = Handle::new(parallel, n_ctx, queue, metrics.clone(), loader);
    let mut decoder = NativeDecoder {
        slots: (0..parallel)
            .map(|_| Slot {
                kv: engine.model.new_cache(n_ctx),
                cached: Vec::new(),
                tiled: Vec::new(),
            })
            .collect(),
        engine: engine.clone(),
        state: State::new(),
    };
    let mut scheduler = Scheduler::new(engine, parallel, rx, metrics);
    std::thread::Builder::new()
        .name("srl-scheduler".into())
        .spawn(move || {
            // Adapters load beside the running sequences (Loader::Native), so
            // a load never reaches here but would be served alike.
            while let Some(load) = scheduler.run(&mut decoder) {
                let model = &decoder.engine.model;
                let _ = load
                    .reply
                    .send(Adapter::load(model, &load.name, &load.path, load.scale));
            }
        })?;
    Ok(handle)
}

impl Decoder for NativeDecoder {
    fn n_ctx(&self) -> usize {
        self.slots.first().map_or(0, |s| s.kv.capacity())
    }

    fn n_vocab(&self) -> usize {
        self.engine.model.config.vocab_size
    }

    fn len(&self, slot: usize) -> usize {
        self.slots[slot].kv.len()
    }

    /// Attention's numerics depend on a call's length (f16 below
    /// [`TILED_MIN_TOKENS`] tokens, tiled f32 from there), so a cached token
    /// counts only if it was read with its fresh chunk's numerics (see
    /// [`reusable`]).
    fn reusable(&self, slot: usize, prompt: &[u32]) -> usize {
        let s = &self.slots[slot];
        reusable(&s.cached, &s.tiled, prompt)
    }

    fn truncate(&mut self, slot: usize, keep: usize) -> usize {
        let s = &mut self.slots[slot];
        s.kv.truncate(keep);
        s.cached.truncate(keep);
        s.tiled.truncate(keep);
        s.kv.len()
    }

    fn reset(&mut self) {
        for s in &mut self.slots {
            s.kv.clear();
            s.cached.clear();
            s.tiled.clear();
        }
        self.state = State::new();
    }

    fn forward(&mut self, rows: &[Row]) -> Result<(), String> {
        let mut picked: Vec<Option<&mut Slot>> = self.slots.iter_mut().map(Some).collect();
        let mut segments = Vec::with_capacity(rows.len());
        let mut sets: Vec<&[ActiveLora]> = Vec::with_capacity(rows.len());
        for r in rows {
            let slot = picked[r.slot]
                .take()
                .ok_or_else(|| format!("slot {} appears twice in a step", r.slot))?;
            segments.push(Segment {
                tokens: r.tokens,
                kv: &mut slot.kv,
            });
            sets.push(match r.adapter.map(|a| &a.weights) {
                None => &[],
                Some(Weights::Native(lora)) => &lora[..],
                #[cfg(feature = "llama-cpp")]
                Some(Weights::LlamaCpp(_)) => {
                    return Err("an adapter loaded for llama.cpp reached srl's engine".into())
                }
            });
        }
        let e = &self.engine;
        e.model
            .forward_batch_adapters(&mut segments, &sets, &mut self.state, Logits::Last, &e.pool)
            .map_err(|err| err.to_string())?;
        for r in rows {
            let s = &mut self.slots[r.slot];
            s.cached.extend_from_slice(r.tokens);
            let tiled = r.tokens.len() >= TILED_MIN_TOKENS;
            s.tiled.resize(s.cached.len(), tiled);
        }
        Ok(())
    }

    fn logits(&self) -> &[f32] {
        &self.state.logits
    }
}

/// How many tokens of a cache holding `cached` (read as `tiled` says)
/// `prompt` can reuse with the numbers a fresh read of `prompt` would give
/// (what `srl generate` computes): a fresh read takes the prompt in chunks of
/// [`PROMPT_BATCH`] from position 0, so a cached token counts only if it was
/// read with its fresh chunk's numerics, and the rest of the chunk the reuse
/// ends in must still be long enough for the tiled numerics when the chunk
/// had them. At most `prompt.len() - 1`: the last token is always read, for
/// its logits.
fn reusable(cached: &[u32], tiled: &[bool], prompt: &[u32]) -> usize {
    let n = prompt.len();
    let chunk = |p: usize| {
        let start = p / PROMPT_BATCH * PROMPT_BATCH;
        (start, (start + PROMPT_BATCH).min(n))
    };
    let fresh_tiled = |p: usize| {
        let (start, end) = chunk(p);
        end - start >= TILED_MIN_TOKENS
    };
    let mut keep = cached
        .iter()
        .zip(tiled)
        .zip(prompt)
        .enumerate()
        .take_while(|&(p, ((c, &t), q))| c == q && t == fresh_tiled(p))
        .count()
        .min(n - 1);
    let (_, end) = chunk(keep);
    if fresh_tiled(keep) && end - keep < TILED_MIN_TOKENS {
        keep = end - TILED_MIN_TOKENS;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::super::scheduler::chunk_end;
    use super::{reusable, PROMPT_BATCH, TILED_MIN_TOKENS};

    #[test]
    fn cache_reuse_keeps_fresh_numerics() {
        let prompt: Vec<u32> = (0..40).collect();
        // Short prompts (one f16 chunk): any cached beginning read with f16
        // numerics, decoded tokens included, is reusable; the last token never.
        assert_eq!(reusable(&prompt[..30], &[false; 30], &prompt), 30);
        assert_eq!(reusable(&prompt, &[false; 40], &prompt), 39);
        assert_eq!(reusable(&[0, 1, 9], &[false; 3], &prompt), 2);
        assert_eq!(reusable(&prompt[..30], &[true; 30], &prompt), 0);
        // A 100-token prompt is one tiled chunk: cached tiled tokens count,
        // but at least 64 must be read again in one call.
        let long: Vec<u32> = (0..100).collect();
        assert_eq!(reusable(&long, &[true; 100], &long), 100 - TILED_MIN_TOKENS);
        assert_eq!(reusable(&long[..20], &[true; 20], &long), 20);
        // Decoded (f16) tokens inside a tiled chunk stop the reuse there.
        let mut t = vec![true; 30];
        t.extend([false; 10]);
        assert_eq!(reusable(&long[..40], &t, &long), 30);
        // Past the first chunk: reuse up to its end, or into a later chunk.
        let n = PROMPT_BATCH + 100;
        let big: Vec<u32> = (0..n as u32).collect();
        assert_eq!(reusable(&big, &vec![true; n], &big), n - TILED_MIN_TOKENS);
        assert_eq!(chunk_end(0, n), PROMPT_BATCH);
        assert_eq!(chunk_end(10, n), PROMPT_BATCH);
        assert_eq!(chunk_end(PROMPT_BATCH, n), n);
    }
}

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
use crate::generate::Engine;
use crate::prompt_reuse::reusable;
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

//! The llama.cpp backend of the server (cargo feature `llama-cpp`): one
//! llama.cpp context holds every slot as a sequence (sequence id = slot, each
//! with a KV cache of its own), and a step decodes all the slots' tokens
//! with llama.cpp's own batching: one `llama_decode` call takes the token of
//! every decoding sequence, and each prompt chunk is a call of its own (cut
//! as a fresh read cuts it, so greedy output equals `srl generate`'s).
//!
//! llama.cpp applies LoRA adapters to a whole context, not per sequence, so
//! the rows of each adapter (and those of the base model) are decoded in
//! calls of their own, one group after the other within the step: requests
//! for different adapters are all served together, at the cost of a pass
//! over the base weights per adapter in use (srl's engine shares one).
//! Loading an adapter at run time adds it to the model, which the context
//! borrows: the load waits for the sequences in flight to end, then the
//! context is made anew (the slots' cached prompts are forgotten).

use super::adapters::{Adapter, Weights};
use super::decoder::{Decoder, Row};
use super::errors::ServeError;
use super::metrics::Metrics;
use super::scheduler::{Handle, Loader, Scheduler};
use crate::error::Result;
use crate::generate::{Engine, PROMPT_BATCH};
use crate::llama_cpp_backend::{LlamaCppModel, LlamaLora};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use std::sync::{mpsc, Arc};

/// llama.cpp's most sequences in one context (`LLAMA_MAX_SEQ`).
const MAX_SEQ: usize = 256;

pub(super) struct LlamaDecoder<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// The tokens each slot's sequence holds.
    cached: Vec<Vec<u32>>,
    /// For each slot, how many of them were read in whole chunks of
    /// [`PROMPT_BATCH`] as a fresh read reads them (see `reusable`).
    whole: Vec<usize>,
    n_ctx: usize,
    n_vocab: usize,
    /// [rows, V] of the last forward.
    logits: Vec<f32>,
    /// The adapter the context applies now.
    current: Option<Arc<Adapter>>,
}

/// Starts the scheduler thread on llama.cpp's `model`: `parallel` slots of
/// `n_ctx` tokens (at most the model's context), up to `queue` more requests
/// waiting. `engine` gives the tokenizer and the model's context length.
pub(super) fn start(
    engine: Arc<Engine>,
    mut model: LlamaCppModel,
    parallel: usize,
    n_ctx: usize,
    queue: usize,
    metrics: Arc<Metrics>,
) -> std::result::Result<Handle, ServeError> {
    if parallel > MAX_SEQ {
        return Err(ServeError::Config(format!(
            "--parallel {parallel}: llama.cpp decodes at most {MAX_SEQ} sequences together"
        )));
    }
    let n_ctx = n_ctx.clamp(2, engine.model.config.context_length);
    let (handle, rx) = Handle::new(parallel, n_ctx, queue, metrics.clone(), Loader::Drained);
    let mut scheduler = Scheduler::new(engine, parallel, rx, metrics);
    let (ready_tx, ready) = mpsc::channel();
    std::thread::Builder::new()
        .name("srl-scheduler".into())
        .spawn(move || {
            let mut ready_tx = Some(ready_tx);
            loop {
                let mut decoder = match LlamaDecoder::new(&model, parallel, n_ctx) {
                    Ok(d) => d,
                    Err(e) => {
                        match ready_tx.take() {
                            Some(tx) => drop(tx.send(Err(e))),
                            None => scheduler.refuse_all(&format!("llama.cpp stopped: {e}")),
                        }
                        return;
                    }
                };
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Ok(()));
                }
                let Some(load) = scheduler.run(&mut decoder) else {
                    return; // the server is gone
                };
                drop(decoder);
                let adapter =
                    Adapter::load_llama_cpp(&mut model, &load.name, &load.path, load.scale);
                let _ = load.reply.send(adapter);
            }
        })?;
    match ready.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ServeError::Config(
            "the llama.cpp scheduler stopped while starting".into(),
        )),
    }
}

impl<'m> LlamaDecoder<'m> {
    fn new(model: &'m LlamaCppModel, parallel: usize, n_ctx: usize) -> Result<LlamaDecoder<'m>> {
        // A call carries a prompt chunk or one token per slot.
        let n_batch = PROMPT_BATCH.max(parallel);
        Ok(LlamaDecoder {
            ctx: model.batch_context(n_ctx, parallel, n_batch)?,
            batch: LlamaBatch::new(n_batch, 1),
            cached: vec![Vec::new(); parallel],
            whole: vec![0; parallel],
            n_ctx,
            n_vocab: model.n_vocab(),
            logits: Vec::new(),
            current: None,
        })
    }

    /// Makes the context apply `adapter` (or none) from the next call on.
    fn use_adapter(&mut self, adapter: Option<&Arc<Adapter>>) -> Result<(), String> {
        let same = match (&self.current, adapter) {
            (None, None) => true,
            (Some(c), Some(a)) => Arc::ptr_eq(c, a),
            _ => false,
        };
        if same {
            return Ok(());
        }
        fn lora(a: &Adapter) -> Result<&LlamaLora, String> {
            match &a.weights {
                Weights::LlamaCpp(l) => Ok(l),
                Weights::Native(_) => Err(format!(
                    "the adapter '{}' was loaded for srl's engine, not llama.cpp",
                    a.name
                )),
            }
        }
        match (adapter, &self.current) {
            (Some(a), _) => lora(a)?.apply(&mut self.ctx, a.scale),
            (None, Some(c)) => lora(c)?.remove(&mut self.ctx),
            (None, None) => Ok(()),
        }
        .map_err(|e| e.to_string())?;
        self.current = adapter.cloned();
        Ok(())
    }

    /// One `llama_decode` call over the rows `which` of `rows` (one sequence
    /// each); copies the logits of each row's last token to its place.
    fn decode(&mut self, rows: &[Row], which: &[usize]) -> Result<(), String> {
        self.batch.clear();
        let mut last = Vec::with_capacity(which.len());
        for &r in which {
            let row = &rows[r];
            let start = self.cached[row.slot].len();
            let seq = [row.slot as i32];
            for (k, &t) in row.tokens.iter().enumerate() {
                let is_last = k + 1 == row.tokens.len();
                self.batch
                    .add(LlamaToken(t as i32), (start + k) as i32, &seq, is_last)
                    .map_err(|e| format!("llama.cpp batch: {e}"))?;
            }
            last.push(self.batch.n_tokens() - 1);
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| format!("llama.cpp could not decode: {e}"))?;
        let v = self.n_vocab;
        for (&r, &i) in which.iter().zip(&last) {
            self.logits[r * v..(r + 1) * v].copy_from_slice(self.ctx.get_logits_ith(i));
            let (slot, tokens) = (rows[r].slot, rows[r].tokens);
            if self.whole[slot] == self.cached[slot].len() && tokens.len() == PROMPT_BATCH {
                self.whole[slot] += PROMPT_BATCH;
            }
            self.cached[slot].extend_from_slice(tokens);
        }
        Ok(())
    }
}

fn adapter_key(row: &Row) -> usize {
    row.adapter.map_or(0, |a| Arc::as_ptr(a) as usize)
}

impl Decoder for LlamaDecoder<'_> {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn len(&self, slot: usize) -> usize {
        self.cached[slot].len()
    }

    /// The common beginning, in whole chunks of [`PROMPT_BATCH`] read as
    /// such: llama.cpp's numbers for a token depend on the call that read it
    /// (a cached prefix read in a call of another length, or one token at a
    /// time, changes greedy output), so only the chunks a fresh read would
    /// make, read the same way, are kept. Prompts under [`PROMPT_BATCH`]
    /// tokens are read again in full.
    fn reusable(&self, slot: usize, prompt: &[u32]) -> usize {
        let common = self.cached[slot]
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common
            .min(self.whole[slot])
            .min(prompt.len().saturating_sub(1));
        keep / PROMPT_BATCH * PROMPT_BATCH
    }

    fn truncate(&mut self, slot: usize, keep: usize) -> usize {
        let cached = &mut self.cached[slot];
        if keep >= cached.len() {
            return cached.len();
        }
        let seq = Some(slot as u32);
        let cut = self
            .ctx
            .clear_kv_cache_seq(seq, Some(keep as u32), None)
            .unwrap_or(false);
        if cut {
            cached.truncate(keep);
        } else {
            // A cache that cannot drop a suffix starts the sequence over.
            let _ = self.ctx.clear_kv_cache_seq(seq, None, None);
            cached.clear();
        }
        self.whole[slot] = self.whole[slot].min(cached.len());
        cached.len()
    }

    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.iter_mut().for_each(Vec::clear);
        self.whole.iter_mut().for_each(|w| *w = 0);
    }

    /// Per adapter group: one call for the rows of one token (every
    /// decoding sequence), then one call per prompt chunk. A chunk shares no
    /// call because llama.cpp would cut a call of several sequences into
    /// pieces of equal length per sequence, reading the chunk otherwise than
    /// a fresh read does.
    fn forward(&mut self, rows: &[Row]) -> Result<(), String> {
        self.logits.resize(rows.len() * self.n_vocab, 0.0);
        let mut start = 0;
        while start < rows.len() {
            let key = adapter_key(&rows[start]);
            let end = (start..rows.len())
                .find(|&r| adapter_key(&rows[r]) != key)
                .unwrap_or(rows.len());
            self.use_adapter(rows[start].adapter)?;
            let singles: Vec<usize> = (start..end)
                .filter(|&r| rows[r].tokens.len() == 1)
                .collect();
            if !singles.is_empty() {
                self.decode(rows, &singles)?;
            }
            for r in (start..end).filter(|&r| rows[r].tokens.len() > 1) {
                self.decode(rows, &[r])?;
            }
            start = end;
        }
        Ok(())
    }

    fn logits(&self) -> &[f32] {
        &self.logits
    }
}

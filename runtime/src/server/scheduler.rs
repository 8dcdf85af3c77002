//! Continuous batching: one thread owns the model and serves every request.
//!
//! The server has `parallel` slots, each a KV cache. A request ([`Job`]) takes
//! `n` free slots (one per choice), or waits in a bounded queue. Each step is
//! one batched forward pass ([`Model::forward_batch_adapters`]): every decoding
//! sequence feeds its last token, and sequences still reading their prompts
//! feed their next chunks (up to [`PROMPT_BATCH`] prompt tokens a step, each
//! chunk cut as [`crate::Session`] cuts it, so greedy output equals
//! `srl generate`'s).
//! Sequences of different adapters share the pass: the base weights are read
//! once, each adapter's term applies to its own rows. New requests join
//! between steps; a sequence whose client has gone (its event channel is
//! closed) frees its slot at once. A slot keeps the tokens its cache holds
//! after a request ends, so a later prompt with the same beginning (a chat's
//! history, a shared system prompt) does not read it again, as far as that
//! gives the numbers a fresh read would (see [`Slot::reusable`]).
//!
//! [`Model::forward_batch_adapters`]: srl_models::Model::forward_batch_adapters

use super::adapters::Adapter;
use super::errors::ApiError;
use super::metrics::Metrics;
use crate::generate::{Engine, StopReason, PROMPT_BATCH};
use crate::sampler::{Sampler, SamplerConfig};
use crate::stop::StopMatcher;
use crate::tokenizer::StreamDecoder;
use srl_models::attention::TILED_MIN_TOKENS;
use srl_models::{ActiveLora, KvCache, Logits, Segment, State};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What a request asks the scheduler for.
pub struct JobSpec {
    pub prompt: Vec<u32>,
    /// Choices: independent samples, choice i drawn with seed + i.
    pub n: usize,
    /// At least 1.
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
    /// Report each token's log-probability and this many alternatives.
    pub logprobs: Option<usize>,
    pub adapter: Option<Arc<Adapter>>,
}

/// A token with its log-probability.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub chosen: Candidate,
    pub top: Vec<Candidate>,
}

/// What the scheduler tells a request, in order, per choice.
#[derive(Debug)]
pub enum Event {
    /// New text of choice `index` (empty while a possible stop string is
    /// held back), and the token's log-probability when asked for.
    Token {
        index: usize,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    Done {
        index: usize,
        reason: StopReason,
        completion_tokens: usize,
        /// Prompt tokens found in the slot's cache.
        cached_tokens: usize,
    },
    Error(String),
}

/// The handlers' side: submits jobs, refuses them when the server is full.
pub struct Handle {
    tx: mpsc::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    /// Requests running or queued at most: slots + queue.
    limit: usize,
    pub parallel: usize,
    pub n_ctx: usize,
    metrics: Arc<Metrics>,
}

impl Handle {
    /// Queues a job; its events come through the receiver. Dropping the
    /// receiver cancels the job.
    pub fn submit(&self, spec: JobSpec) -> Result<UnboundedReceiver<Event>, ApiError> {
        // The handlers check these with clearer messages; the scheduler
        // relies on them.
        if spec.prompt.is_empty() || spec.prompt.len() >= self.n_ctx {
            return Err(ApiError::invalid(
                "the prompt must be 1 to n_ctx - 1 tokens",
            ));
        }
        if spec.max_tokens == 0 || spec.n == 0 || spec.n > self.parallel {
            return Err(ApiError::invalid(
                "max_tokens and n must be at least 1, n at most the slots",
            ));
        }
        let before = self.in_flight.fetch_add(1, Relaxed);
        let permit = Permit(self.in_flight.clone());
        if before >= self.limit {
            Metrics::add(&self.metrics.rejected, 1);
            return Err(ApiError::too_many_requests(before));
        }
        let (events, rx) = unbounded_channel();
        let job = Job {
            spec,
            events,
            submitted: Instant::now(),
            _permit: permit,
        };
        Metrics::add(&self.metrics.queued, 1);
        self.tx.send(job).map_err(|_| {
            self.metrics.queued.fetch_sub(1, Relaxed);
            ApiError::unavailable("the scheduler has stopped")
        })?;
        Ok(rx)
    }
}

/// Counts a request in flight until dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

struct Job {
    spec: JobSpec,
    events: UnboundedSender<Event>,
    submitted: Instant,
    _permit: Permit,
}

/// A choice being generated in a slot.
struct Seq {
    job: Arc<Job>,
    index: usize,
    /// Prompt tokens in the cache.
    fed: usize,
    cached_tokens: usize,
    sampler: Sampler,
    stop: StopMatcher,
    utf8: StreamDecoder,
    /// Prompt and generated tokens (for the repetition penalty).
    history: Vec<u32>,
    generated: usize,
    /// The sampled token to feed next, once the prompt is read.
    next: Option<[u32; 1]>,
    /// Admission order: prompts are read first come, first served.
    order: u64,
}

struct Slot {
    kv: KvCache,
    /// The tokens `kv` holds.
    cached: Vec<u32>,
    /// For each of them, whether attention read it with the tiled numerics
    /// (a call of [`TILED_MIN_TOKENS`] tokens or more) or the f16 ones.
    tiled: Vec<bool>,
    seq: Option<Seq>,
}

impl Slot {
    fn clear(&mut self) {
        self.kv.clear();
        self.cached.clear();
        self.tiled.clear();
    }

    /// How many tokens of this slot's cache `prompt` can reuse with the
    /// numbers a fresh read of `prompt` would give (what `srl generate`
    /// computes): a fresh read takes the prompt in chunks of [`PROMPT_BATCH`]
    /// from position 0, and attention's numerics depend on a call's length
    /// (f16 below [`TILED_MIN_TOKENS`] tokens, tiled f32 from there). So a
    /// cached token counts only if it was read with its fresh chunk's
    /// numerics, and the rest of the chunk the reuse ends in must still be
    /// long enough for the tiled numerics when the chunk had them. At most
    /// `prompt.len() - 1`: the last token is always read, for its logits.
    fn reusable(&self, prompt: &[u32]) -> usize {
        reusable(&self.cached, &self.tiled, prompt)
    }
}

/// [`Slot::reusable`] of a cache holding `cached`, read as `tiled` says.
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

/// Where the prompt chunk that starts at `fed` ends: chunks are cut at the
/// multiples of [`PROMPT_BATCH`], as a fresh read cuts them.
fn chunk_end(fed: usize, n: usize) -> usize {
    ((fed / PROMPT_BATCH + 1) * PROMPT_BATCH).min(n)
}

pub struct Scheduler {
    engine: Arc<Engine>,
    slots: Vec<Slot>,
    rx: mpsc::Receiver<Job>,
    /// A job that waits for enough free slots (first in line).
    waiting: Option<Job>,
    state: State,
    metrics: Arc<Metrics>,
    admitted: u64,
}

/// Starts the scheduler thread: `parallel` slots of `n_ctx` tokens, up to
/// `queue` more requests waiting.
pub fn start(
    engine: Arc<Engine>,
    parallel: usize,
    n_ctx: usize,
    queue: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<Handle> {
    let (tx, rx) = mpsc::channel();
    let n_ctx = n_ctx.clamp(2, engine.model.config.context_length);
    let slots = (0..parallel)
        .map(|_| Slot {
            kv: engine.model.new_cache(n_ctx),
            cached: Vec::new(),
            tiled: Vec::new(),
            seq: None,
        })
        .collect();
    metrics.slots.store(parallel as u64, Relaxed);
    let mut s = Scheduler {
        engine,
        slots,
        rx,
        waiting: None,
        state: State::new(),
        metrics: metrics.clone(),
        admitted: 0,
    };
    std::thread::Builder::new()
        .name("srl-scheduler".into())
        .spawn(move || s.run())?;
    Ok(Handle {
        tx,
        in_flight: Arc::new(AtomicUsize::new(0)),
        limit: parallel + queue,
        parallel,
        n_ctx,
        metrics,
    })
}

impl Scheduler {
    fn run(&mut self) {
        loop {
            let idle = self.slots.iter().all(|s| s.seq.is_none());
            if idle && self.waiting.is_none() {
                match self.rx.recv() {
                    Ok(job) => self.waiting = Some(job),
                    Err(_) => return, // the server is gone
                }
            }
            self.admit();
            self.drop_cancelled();
            let active = self.slots.iter().filter(|s| s.seq.is_some()).count();
            self.metrics.active_slots.store(active as u64, Relaxed);
            if active > 0 {
                // A panic in a step (a bug) fails the requests in flight, not
                // the server.
                let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
                if let Err(panic) = step {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    self.fail_all(&format!("internal error while generating: {what}"));
                }
            }
        }
    }

    /// Moves queued jobs into free slots, first come first served.
    fn admit(&mut self) {
        loop {
            let job = match self.waiting.take() {
                Some(j) => j,
                None => match self.rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => return,
                },
            };
            if job.events.is_closed() {
                self.metrics.queued.fetch_sub(1, Relaxed);
                Metrics::add(&self.metrics.cancelled, 1);
                continue;
            }
            let free = self.slots.iter().filter(|s| s.seq.is_none()).count();
            if free < job.spec.n {
                self.waiting = Some(job);
                return;
            }
            self.metrics.queued.fetch_sub(1, Relaxed);
            let job = Arc::new(job);
            for index in 0..job.spec.n {
                self.place(&job, index);
            }
        }
    }

    /// Puts choice `index` of `job` in the free slot whose cache holds the
    /// longest reusable beginning of the prompt.
    fn place(&mut self, job: &Arc<Job>, index: usize) {
        let prompt = &job.spec.prompt;
        let Some((keep, slot)) = self
            .slots
            .iter_mut()
            .filter(|s| s.seq.is_none())
            .map(|s| (s.reusable(prompt), s))
            .max_by_key(|(keep, _)| *keep)
        else {
            return; // admit checked there are enough
        };
        slot.kv.truncate(keep);
        slot.cached.truncate(keep);
        slot.tiled.truncate(keep);
        let mut config = job.spec.sampler.clone();
        config.seed = config.seed.wrapping_add(index as u64);
        Metrics::add(&self.metrics.prompt_tokens, prompt.len() as u64);
        Metrics::add(&self.metrics.prompt_tokens_cached, keep as u64);
        self.admitted += 1;
        slot.seq = Some(Seq {
            job: job.clone(),
            index,
            fed: keep,
            cached_tokens: keep,
            sampler: Sampler::new(config),
            stop: StopMatcher::new(&job.spec.stop),
            utf8: StreamDecoder::new(),
            history: prompt.clone(),
            generated: 0,
            next: None,
            order: self.admitted,
        });
    }

    /// Ends every sequence with an error and empties every slot.
    fn fail_all(&mut self, message: &str) {
        for slot in &mut self.slots {
            fail(slot, message);
        }
        self.state = State::new();
    }

    /// Frees the slots of sequences whose client has gone.
    fn drop_cancelled(&mut self) {
        for slot in &mut self.slots {
            if slot.seq.as_ref().is_some_and(|s| s.job.events.is_closed()) {
                slot.seq = None;
                Metrics::add(&self.metrics.cancelled, 1);
            }
        }
    }

    /// One batched forward pass over every decoding sequence and the next
    /// prompt chunks (first come first served, up to [`PROMPT_BATCH`] prompt
    /// tokens, at least one chunk), then one new token for each sequence
    /// whose logits are ready.
    fn step(&mut self) {
        let mut reading: Vec<(u64, usize, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let q = s.seq.as_ref()?;
                let n = q.job.spec.prompt.len();
                q.next
                    .is_none()
                    .then_some((q.order, i, chunk_end(q.fed, n) - q.fed))
            })
            .collect();
        reading.sort_unstable();
        let mut budget = PROMPT_BATCH;
        let mut prefill = vec![false; self.slots.len()];
        for (k, &(_, i, n)) in reading.iter().enumerate() {
            if k > 0 && n > budget {
                break;
            }
            budget = budget.saturating_sub(n);
            prefill[i] = true;
        }
        // Rows grouped by adapter, so each adapter's rows are one block.
        let mut rows: Vec<(usize, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let q = s.seq.as_ref()?;
                (q.next.is_some() || prefill[i]).then(|| (adapter_key(q), i))
            })
            .collect();
        rows.sort_unstable();
        let t0 = Instant::now();
        let result = {
            let mut picked: Vec<Option<&mut Slot>> = self.slots.iter_mut().map(Some).collect();
            let mut segments = Vec::with_capacity(rows.len());
            let mut sets: Vec<&[ActiveLora]> = Vec::with_capacity(rows.len());
            for &(_, i) in &rows {
                let Some(Slot {
                    kv, seq: Some(q), ..
                }) = picked[i].take()
                else {
                    continue; // (never: rows name distinct occupied slots)
                };
                let tokens: &[u32] = match &q.next {
                    Some(t) => t,
                    None => {
                        let p = &q.job.spec.prompt;
                        &p[q.fed..chunk_end(q.fed, p.len())]
                    }
                };
                segments.push(Segment { tokens, kv });
                sets.push(q.job.spec.adapter.as_ref().map_or(&[], |a| &a.lora[..]));
            }
            let e = &self.engine;
            e.model.forward_batch_adapters(
                &mut segments,
                &sets,
                &mut self.state,
                Logits::Last,
                &e.pool,
            )
        };
        Metrics::add(&self.metrics.steps, 1);
        Metrics::add(&self.metrics.step_rows, rows.len() as u64);
        Metrics::add(&self.metrics.busy_us, t0.elapsed().as_micros() as u64);
        if let Err(e) = result {
            let message = e.to_string();
            for &(_, i) in &rows {
                fail(&mut self.slots[i], &message);
            }
            return;
        }
        let vocab = self.engine.model.config.vocab_size;
        for (r, &(_, i)) in rows.iter().enumerate() {
            let slot = &mut self.slots[i];
            let Some(q) = slot.seq.as_mut() else { continue };
            match q.next.take() {
                Some([tok]) => {
                    slot.cached.push(tok);
                    slot.tiled.push(false);
                }
                None => {
                    let p = &q.job.spec.prompt;
                    let end = chunk_end(q.fed, p.len());
                    slot.cached.extend_from_slice(&p[q.fed..end]);
                    let tiled = end - q.fed >= TILED_MIN_TOKENS;
                    slot.tiled.resize(slot.cached.len(), tiled);
                    q.fed = end;
                    if end < p.len() {
                        continue; // more prompt to read
                    }
                }
            }
            let logits = &self.state.logits[r * vocab..(r + 1) * vocab];
            take(&self.engine, &self.metrics, slot, logits);
        }
    }
}

fn adapter_key(q: &Seq) -> usize {
    q.job
        .spec
        .adapter
        .as_ref()
        .map_or(0, |a| Arc::as_ptr(a) as usize)
}

/// Samples the next token of the slot's sequence from `logits`, tells the
/// client, and decides whether the sequence goes on (`next` set) or ends
/// (the slot freed).
fn take(engine: &Engine, metrics: &Metrics, slot: &mut Slot, logits: &[f32]) {
    let Some(q) = slot.seq.as_mut() else { return };
    let spec = &q.job.spec;
    let tok = q.sampler.sample(logits, &q.history);
    if engine.tokenizer.is_eog(tok) {
        return finish(slot, StopReason::Eog);
    }
    if q.generated == 0 {
        Metrics::add(
            &metrics.ttft_us,
            q.job.submitted.elapsed().as_micros() as u64,
        );
        Metrics::add(&metrics.ttft_n, 1);
    }
    q.generated += 1;
    q.history.push(tok);
    Metrics::add(&metrics.generated_tokens, 1);
    let logprob = spec.logprobs.map(|k| logprob_of(engine, logits, tok, k));
    let piece = q.utf8.push(&engine.tokenizer, tok, false);
    let (text, hit) = q.stop.push(&piece);
    let _ = q.job.events.send(Event::Token {
        index: q.index,
        text,
        logprob,
    });
    if hit {
        return finish(slot, StopReason::StopString);
    }
    if q.generated >= spec.max_tokens {
        return finish(slot, StopReason::MaxTokens);
    }
    if slot.kv.len() >= slot.kv.capacity() {
        return finish(slot, StopReason::ContextFull);
    }
    q.next = Some([tok]);
}

/// Ends the slot's sequence with an error and empties the slot.
fn fail(slot: &mut Slot, message: &str) {
    if let Some(q) = slot.seq.take() {
        let events = q.job.events.clone();
        drop(q); // the job's permit first, as in `finish`
        let _ = events.send(Event::Error(message.to_string()));
    }
    slot.clear();
}

/// Ends the slot's sequence: held-back text out, then `Done`.
fn finish(slot: &mut Slot, reason: StopReason) {
    let Some(mut q) = slot.seq.take() else { return };
    if reason != StopReason::StopString {
        let (rest, _) = q.stop.push(&q.utf8.flush());
        let tail = rest + &q.stop.flush();
        if !tail.is_empty() {
            let _ = q.job.events.send(Event::Token {
                index: q.index,
                text: tail,
                logprob: None,
            });
        }
    }
    let events = q.job.events.clone();
    let done = Event::Done {
        index: q.index,
        reason,
        completion_tokens: q.generated,
        cached_tokens: q.cached_tokens,
    };
    // The job's permit goes with its last sequence, before the client hears
    // it is done (so an immediate next request finds the room free).
    drop(q);
    let _ = events.send(done);
}

/// log p(tok) under `logits` ([V]) and the `k` most likely tokens.
fn logprob_of(engine: &Engine, logits: &[f32], tok: u32, k: usize) -> TokenLogprob {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = m + logits.iter().map(|&l| (l - m).exp()).sum::<f32>().ln();
    let cand = |id: u32| {
        let bytes = engine.tokenizer.token_to_piece(id, true);
        Candidate {
            token: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            logprob: logits[id as usize] - lse,
        }
    };
    let mut top: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(top.len());
    if k > 0 {
        top.select_nth_unstable_by(k - 1, |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize])
        });
    }
    top.truncate(k);
    top.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    TokenLogprob {
        chosen: cand(tok),
        top: top.into_iter().map(cand).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::{chunk_end, reusable, PROMPT_BATCH, TILED_MIN_TOKENS};

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

//! Continuous batching: one thread owns the model and serves every request,
//! whichever backend runs the forward pass (a [`Decoder`]).
//!
//! The server has `parallel` slots, each a KV cache. A request ([`Job`]) takes
//! `n` free slots (one per choice), or waits in a bounded queue. Each step is
//! one batched forward pass ([`Decoder::forward`]): every decoding sequence
//! feeds its last token, and sequences still reading their prompts feed their
//! next chunks (up to [`PROMPT_BATCH`] prompt tokens a step, each chunk cut at
//! the multiples of [`PROMPT_BATCH`] as [`crate::Session`] cuts it, so greedy
//! output equals `srl generate`'s). Rows are grouped by adapter. New requests
//! join between steps; a sequence whose client has gone (its event channel is
//! closed) frees its slot at once. A slot keeps the tokens its cache holds
//! after a request ends, so a later prompt with the same beginning (a chat's
//! history, a shared system prompt) does not read it again, as far as the
//! decoder says that gives the numbers a fresh read would
//! ([`Decoder::reusable`]). Sampling, stop strings, log-probabilities and
//! streaming happen here, the same for every backend.

use super::adapters::Adapter;
use super::decoder::{Decoder, Row};
use super::errors::{ApiError, ServeError};
use super::metrics::Metrics;
use crate::decode::DecodeState;
use crate::generate::{Engine, StopReason, PROMPT_BATCH};
use crate::prompt_reuse::chunk_end;
use crate::sampler::{Sampler, SamplerConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
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

/// What the scheduler thread receives.
pub(super) enum Msg {
    Job(Job),
    Load(AdapterLoad),
}

/// An adapter to load on the scheduler thread once no sequence runs.
pub(super) struct AdapterLoad {
    pub name: String,
    pub path: PathBuf,
    pub scale: f32,
    pub reply: mpsc::Sender<Result<Adapter, ServeError>>,
}

/// How adapters load while the server runs.
pub(super) enum Loader {
    /// On the caller's thread, beside the running sequences: srl's engine
    /// takes an adapter as data with each forward pass.
    Native(Arc<Engine>),
    /// On the scheduler thread once the sequences in flight have ended (new
    /// ones wait meanwhile): llama.cpp adds an adapter to its model, which
    /// the context that holds the KV caches borrows.
    #[cfg_attr(not(feature = "llama-cpp"), allow(dead_code))]
    Drained,
}

/// The handlers' side: submits jobs, refuses them when the server is full.
pub struct Handle {
    tx: mpsc::Sender<Msg>,
    in_flight: Arc<AtomicUsize>,
    /// Requests running or queued at most: slots + queue.
    limit: usize,
    pub parallel: usize,
    pub n_ctx: usize,
    metrics: Arc<Metrics>,
    loader: Loader,
}

impl Handle {
    /// A handle of `parallel` slots of `n_ctx` tokens with up to `queue`
    /// requests waiting, and the receiver its scheduler thread reads.
    pub(super) fn new(
        parallel: usize,
        n_ctx: usize,
        queue: usize,
        metrics: Arc<Metrics>,
        loader: Loader,
    ) -> (Handle, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel();
        let handle = Handle {
            tx,
            in_flight: Arc::new(AtomicUsize::new(0)),
            limit: parallel + queue,
            parallel,
            n_ctx,
            metrics,
            loader,
        };
        (handle, rx)
    }

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
        self.tx.send(Msg::Job(job)).map_err(|_| {
            self.metrics.queued.fetch_sub(1, Relaxed);
            ApiError::unavailable("the scheduler has stopped")
        })?;
        Ok(rx)
    }

    /// Loads an adapter for this server's backend (see [`Loader`]); blocks
    /// until it is loaded.
    pub fn load_adapter(&self, name: &str, path: &Path, scale: f32) -> Result<Adapter, ServeError> {
        match &self.loader {
            Loader::Native(engine) => Adapter::load(&engine.model, name, path, scale),
            Loader::Drained => {
                let (reply, answer) = mpsc::channel();
                let load = AdapterLoad {
                    name: name.to_string(),
                    path: path.to_path_buf(),
                    scale,
                    reply,
                };
                let gone = || ServeError::Config("the scheduler has stopped".into());
                self.tx.send(Msg::Load(load)).map_err(|_| gone())?;
                answer.recv().map_err(|_| gone())?
            }
        }
    }
}

/// Counts a request in flight until dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

pub(super) struct Job {
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
    decode: DecodeState,
    /// The sampled token to feed next, once the prompt is read.
    next: Option<[u32; 1]>,
    /// Admission order: prompts are read first come, first served.
    order: u64,
}

/// The scheduler thread's state: one sequence (or none) per slot. The
/// caches live in the [`Decoder`] each [`Scheduler::run`] is given.
pub(super) struct Scheduler {
    engine: Arc<Engine>,
    seqs: Vec<Option<Seq>>,
    rx: mpsc::Receiver<Msg>,
    /// A job that waits for enough free slots (first in line).
    waiting: Option<Job>,
    /// An adapter to load once every slot is free; nothing is admitted
    /// meanwhile.
    load: Option<AdapterLoad>,
    /// The adapter each slot's cache was computed with (a cache is reused
    /// only by a sequence of the same adapter). Weak: the cache does not keep
    /// an unloaded adapter, and its address is not reused while this lives.
    cache_adapter: Vec<Option<Weak<Adapter>>>,
    metrics: Arc<Metrics>,
    admitted: u64,
}

impl Scheduler {
    /// A scheduler of `parallel` slots reading `rx`; `engine` gives the
    /// tokenizer.
    pub(super) fn new(
        engine: Arc<Engine>,
        parallel: usize,
        rx: mpsc::Receiver<Msg>,
        metrics: Arc<Metrics>,
    ) -> Scheduler {
        metrics.slots.store(parallel as u64, Relaxed);
        Scheduler {
            engine,
            seqs: (0..parallel).map(|_| None).collect(),
            rx,
            waiting: None,
            load: None,
            cache_adapter: vec![None; parallel],
            metrics,
            admitted: 0,
        }
    }

    /// Serves requests on `d` until the server is gone (None), or until an
    /// adapter load has waited for every slot to be free (that load).
    pub(super) fn run(&mut self, d: &mut impl Decoder) -> Option<AdapterLoad> {
        loop {
            let idle = self.seqs.iter().all(Option::is_none);
            if idle && self.load.is_some() {
                return self.load.take();
            }
            if idle && self.waiting.is_none() {
                self.metrics.active_slots.store(0, Relaxed);
                match self.rx.recv() {
                    Ok(Msg::Job(job)) => self.waiting = Some(job),
                    Ok(Msg::Load(load)) => self.load = Some(load),
                    Err(_) => return None, // the server is gone
                }
                continue;
            }
            self.admit(d);
            self.drop_cancelled();
            let active = self.seqs.iter().filter(|s| s.is_some()).count();
            self.metrics.active_slots.store(active as u64, Relaxed);
            if active > 0 {
                // A panic in a step (a bug) fails the requests in flight, not
                // the server.
                let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(d)));
                if let Err(panic) = step {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    self.fail_all(d, &format!("internal error while generating: {what}"));
                }
            }
        }
    }

    /// Answers every request and adapter load, waiting or still to come,
    /// with `message`, until the server is gone (the backend could not go
    /// on).
    #[cfg_attr(not(feature = "llama-cpp"), allow(dead_code))]
    pub(super) fn refuse_all(&mut self, message: &str) {
        let refuse_job = |job: Job| {
            let events = job.events.clone();
            drop(job); // its permit first
            let _ = events.send(Event::Error(message.to_string()));
        };
        if let Some(job) = self.waiting.take() {
            self.metrics.queued.fetch_sub(1, Relaxed);
            refuse_job(job);
        }
        let refuse_load = |load: AdapterLoad| {
            let _ = load
                .reply
                .send(Err(ServeError::Config(message.to_string())));
        };
        if let Some(load) = self.load.take() {
            refuse_load(load);
        }
        while let Ok(m) = self.rx.recv() {
            match m {
                Msg::Job(job) => {
                    self.metrics.queued.fetch_sub(1, Relaxed);
                    refuse_job(job);
                }
                Msg::Load(load) => refuse_load(load),
            }
        }
    }

    /// Moves queued jobs into free slots, first come first served; stops at
    /// an adapter load.
    fn admit(&mut self, d: &mut impl Decoder) {
        while self.load.is_none() {
            let job = match self.waiting.take() {
                Some(j) => j,
                None => match self.rx.try_recv() {
                    Ok(Msg::Job(j)) => j,
                    Ok(Msg::Load(load)) => {
                        self.load = Some(load);
                        return;
                    }
                    Err(_) => return,
                },
            };
            if job.events.is_closed() {
                self.metrics.queued.fetch_sub(1, Relaxed);
                Metrics::add(&self.metrics.cancelled, 1);
                continue;
            }
            let free = self.seqs.iter().filter(|s| s.is_none()).count();
            if free < job.spec.n {
                self.waiting = Some(job);
                return;
            }
            self.metrics.queued.fetch_sub(1, Relaxed);
            let job = Arc::new(job);
            for index in 0..job.spec.n {
                self.place(d, &job, index);
            }
        }
    }

    /// Puts choice `index` of `job` in the free slot whose cache holds the
    /// longest reusable beginning of the prompt (computed with the job's
    /// adapter).
    fn place(&mut self, d: &mut impl Decoder, job: &Arc<Job>, index: usize) {
        let prompt = &job.spec.prompt;
        let adapter = job.spec.adapter.as_ref().map(Arc::downgrade);
        let same = |cache: &Option<Weak<Adapter>>| match (cache, &adapter) {
            (None, None) => true,
            (Some(a), Some(b)) => a.ptr_eq(b),
            _ => false,
        };
        let Some((keep, slot)) = (0..self.seqs.len())
            .filter(|&i| self.seqs[i].is_none())
            .map(|i| {
                let keep = if same(&self.cache_adapter[i]) {
                    d.reusable(i, prompt)
                } else {
                    0
                };
                (keep, i)
            })
            .max_by_key(|&(keep, i)| (keep, std::cmp::Reverse(i)))
        else {
            return; // admit checked there are enough
        };
        let keep = d.truncate(slot, keep);
        self.cache_adapter[slot] = adapter;
        let mut config = job.spec.sampler.clone();
        config.seed = config.seed.wrapping_add(index as u64);
        Metrics::add(&self.metrics.prompt_tokens, prompt.len() as u64);
        Metrics::add(&self.metrics.prompt_tokens_cached, keep as u64);
        self.admitted += 1;
        self.seqs[slot] = Some(Seq {
            job: job.clone(),
            index,
            fed: keep,
            cached_tokens: keep,
            sampler: Sampler::new(config),
            decode: DecodeState::new(prompt, &job.spec.stop, job.spec.max_tokens, false),
            next: None,
            order: self.admitted,
        });
    }

    /// Ends every sequence with an error and empties every cache.
    fn fail_all(&mut self, d: &mut impl Decoder, message: &str) {
        for seq in &mut self.seqs {
            fail(seq, message);
        }
        d.reset();
    }

    /// Frees the slots of sequences whose client has gone.
    fn drop_cancelled(&mut self) {
        for seq in &mut self.seqs {
            if seq.as_ref().is_some_and(|s| s.job.events.is_closed()) {
                *seq = None;
                Metrics::add(&self.metrics.cancelled, 1);
            }
        }
    }

    /// One batched forward pass over every decoding sequence and the next
    /// prompt chunks (first come first served, up to [`PROMPT_BATCH`] prompt
    /// tokens, at least one chunk), then one new token for each sequence
    /// whose logits are ready.
    fn step(&mut self, d: &mut impl Decoder) {
        let mut reading: Vec<(u64, usize, usize)> = self
            .seqs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let q = s.as_ref()?;
                let n = q.job.spec.prompt.len();
                q.next
                    .is_none()
                    .then_some((q.order, i, chunk_end(q.fed, n) - q.fed))
            })
            .collect();
        reading.sort_unstable();
        let mut budget = PROMPT_BATCH;
        let mut prefill = vec![false; self.seqs.len()];
        for (k, &(_, i, n)) in reading.iter().enumerate() {
            if k > 0 && n > budget {
                break;
            }
            budget = budget.saturating_sub(n);
            prefill[i] = true;
        }
        // Rows grouped by adapter, slots in order within a group.
        let mut rows: Vec<(usize, usize)> = self
            .seqs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let q = s.as_ref()?;
                (q.next.is_some() || prefill[i]).then(|| (adapter_key(q), i))
            })
            .collect();
        rows.sort_unstable();
        let t0 = Instant::now();
        let batch: Vec<Row> = rows
            .iter()
            .filter_map(|&(_, i)| {
                let q = self.seqs[i].as_ref()?;
                let tokens: &[u32] = match &q.next {
                    Some(t) => t,
                    None => {
                        let p = &q.job.spec.prompt;
                        &p[q.fed..chunk_end(q.fed, p.len())]
                    }
                };
                Some(Row {
                    slot: i,
                    tokens,
                    adapter: q.job.spec.adapter.as_ref(),
                })
            })
            .collect();
        let result = d.forward(&batch);
        drop(batch);
        Metrics::add(&self.metrics.steps, 1);
        Metrics::add(&self.metrics.step_rows, rows.len() as u64);
        Metrics::add(&self.metrics.busy_us, t0.elapsed().as_micros() as u64);
        if let Err(message) = result {
            for &(_, i) in &rows {
                fail(&mut self.seqs[i], &message);
                d.truncate(i, 0);
            }
            return;
        }
        let vocab = d.n_vocab();
        for (r, &(_, i)) in rows.iter().enumerate() {
            let Some(q) = self.seqs[i].as_mut() else {
                continue;
            };
            if q.next.take().is_none() {
                let n = q.job.spec.prompt.len();
                q.fed = chunk_end(q.fed, n);
                if q.fed < n {
                    continue; // more prompt to read
                }
            }
            let full = d.len(i) >= d.n_ctx();
            let logits = &d.logits()[r * vocab..(r + 1) * vocab];
            take(&self.engine, &self.metrics, &mut self.seqs[i], full, logits);
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

/// Samples the next token of the sequence from `logits`, tells the client,
/// and decides whether the sequence goes on (`next` set) or ends (the slot
/// freed). `full`: the slot's cache has no room for another token.
fn take(engine: &Engine, metrics: &Metrics, seq: &mut Option<Seq>, full: bool, logits: &[f32]) {
    let Some(q) = seq.as_mut() else { return };
    let spec = &q.job.spec;
    let tok = q.decode.sample(&mut q.sampler, logits);
    let first = q.decode.generated() == 0;
    let Some(r) = q.decode.accept(&engine.tokenizer, tok) else {
        return finish(seq, StopReason::Eog);
    };
    if first {
        Metrics::add(
            &metrics.ttft_us,
            q.job.submitted.elapsed().as_micros() as u64,
        );
        Metrics::add(&metrics.ttft_n, 1);
    }
    Metrics::add(&metrics.generated_tokens, 1);
    let logprob = spec.logprobs.map(|k| logprob_of(engine, logits, tok, k));
    let _ = q.job.events.send(Event::Token {
        index: q.index,
        text: r.text,
        logprob,
    });
    if let Some(end) = r.end {
        return finish(seq, end);
    }
    if full {
        return finish(seq, StopReason::ContextFull);
    }
    q.next = Some([tok]);
}

/// Ends the sequence with an error and frees its slot.
fn fail(seq: &mut Option<Seq>, message: &str) {
    if let Some(q) = seq.take() {
        let events = q.job.events.clone();
        drop(q); // the job's permit first, as in `finish`
        let _ = events.send(Event::Error(message.to_string()));
    }
}

/// Ends the sequence: held-back text out (none after a stop string), then
/// `Done`.
fn finish(seq: &mut Option<Seq>, reason: StopReason) {
    let Some(mut q) = seq.take() else { return };
    let tail = q.decode.release();
    if !tail.is_empty() {
        let _ = q.job.events.send(Event::Token {
            index: q.index,
            text: tail,
            logprob: None,
        });
    }
    let events = q.job.events.clone();
    let done = Event::Done {
        index: q.index,
        reason,
        completion_tokens: q.decode.generated(),
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

//! Groups of samples of one prompt, or of several prompts, generated
//! together: what RL rollouts and evaluations need. Each prompt is read
//! once; its KV cache is shared by its samples; then all live samples decode
//! one token each per step in a single batched forward pass (the linear layers see a G-row matrix instead of G vectors,
//! which is where batching pays). Each sample has its own sampler (seed +
//! index) and its own stop conditions, and leaves the batch when it stops.
//! A [`StepFormat`] can hold each sample to the `<think>` + step shape
//! (forcing the close after a budget, stopping at the step's end).

use crate::decode::{DecodeState, Recorded};
use crate::error::{Result, RuntimeError};
use crate::generate::{Engine, GenerateParams, StopReason};
use crate::prompt_reuse::{chunk_end, reusable};
use crate::sampler::Sampler;
use crate::step_format::{StepAction, StepFormat, StepTracker, THINK_CLOSE};
use rayon::prelude::*;
use srl_models::layers::attention::decode::TILED_MIN_TOKENS;
use srl_models::layers::softmax::log_softmax_at;
use srl_models::{ActiveLora, KvCache, Logits, Segment, State};
use std::time::Instant;

/// One sample of a group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollout {
    pub ids: Vec<u32>,
    /// Per id: written by the [`StepFormat`] rather than sampled (no loss
    /// belongs on these).
    pub forced: Vec<bool>,
    /// Per id: its log-probability under the pass that sampled it, at
    /// temperature 1 whatever the sampler's settings, as the training pass
    /// computes it ([`log_softmax_at`]); 0 for forced ids (written with
    /// certainty). RL's importance weights compare these with the training
    /// pass's.
    pub logprobs: Vec<f32>,
    pub text: String,
    pub stop_reason: StopReason,
}

/// A group of samples and what they cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolloutGroup {
    pub prompt_ids: Vec<u32>,
    pub samples: Vec<Rollout>,
    pub prompt_ms: f64,
    pub decode_ms: f64,
    /// Tokens generated over all samples.
    pub generated_tokens: usize,
    /// generated_tokens per second of prompt + decode time.
    pub tokens_per_s: f64,
}

/// One prompt of [`Engine::rollouts_batch`].
#[derive(Debug, Clone, Copy)]
pub struct RolloutRequest<'a> {
    pub prompt_ids: &'a [u32],
    /// Samples of it; sample g is drawn with seed `seed + g`.
    pub n: usize,
    pub seed: u64,
}

/// A prompt's KV cache kept from one [`Engine::rollouts_batch`] to the
/// next (see there).
#[derive(Default)]
pub struct PromptCache {
    ids: Vec<u32>,
    /// Per cached token, whether attention read it with the tiled numerics
    /// (see [`crate::prompt_reuse`]).
    tiled: Vec<bool>,
    kv: Option<KvCache>,
}

impl PromptCache {
    /// The prompt whose cache is kept (empty before the first batch).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The cache cut to what `prompt` can reuse with a fresh read's numbers
    /// ([`reusable`]), and that length; None when nothing is reusable or
    /// `need` positions do not fit.
    fn take_fitting(&mut self, prompt: &[u32], need: usize) -> Option<(KvCache, usize)> {
        let keep = reusable(&self.ids, &self.tiled, prompt);
        let fits = self.kv.as_ref().is_some_and(|kv| kv.capacity() >= need);
        if keep == 0 || !fits {
            return None;
        }
        let mut kv = self.kv.take()?;
        kv.truncate(keep);
        self.tiled.truncate(keep);
        Some((kv, keep))
    }
}

/// The samples of a batch of prompts and what they cost together.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolloutBatch {
    /// Per request, its samples in seed order.
    pub groups: Vec<Vec<Rollout>>,
    /// Reading the prompts.
    pub prompt_ms: f64,
    pub decode_ms: f64,
    pub generated_tokens: usize,
    /// generated_tokens per second of prompt + decode time.
    pub tokens_per_s: f64,
}

/// A sample still decoding.
struct Live {
    /// Which request it samples.
    request: usize,
    kv: KvCache,
    sampler: Sampler,
    decode: DecodeState,
    out: Rollout,
    track: StepTracker,
    /// The tokens to feed next (not yet in the cache); empty when done.
    next: Vec<u32>,
    /// Scratch of the sampled tokens' log-probabilities.
    exps: Vec<f32>,
}

impl Engine {
    /// `n` samples of `prompt_ids`, sample g drawn with seed
    /// `params.sampler.seed + g`. Up to `params.max_tokens` tokens each;
    /// a sample stops at an end-of-generation token or one of `params.stop`
    /// (the stop string is not returned).
    pub fn rollouts(
        &self,
        prompt_ids: &[u32],
        n: usize,
        params: &GenerateParams,
    ) -> Result<RolloutGroup> {
        self.rollouts_with(prompt_ids, n, params, &StepFormat::default())
    }

    /// [`Engine::rollouts`] with each sample held to `format`.
    pub fn rollouts_with(
        &self,
        prompt_ids: &[u32],
        n: usize,
        params: &GenerateParams,
        format: &StepFormat,
    ) -> Result<RolloutGroup> {
        self.rollouts_of(&self.model.adapters, prompt_ids, n, params, format)
    }

    /// [`Engine::rollouts_with`] under `adapters` instead of the model's own
    /// (a trainer's current policy, passed in rather than set on the engine).
    pub fn rollouts_of(
        &self,
        adapters: &[ActiveLora],
        prompt_ids: &[u32],
        n: usize,
        params: &GenerateParams,
        format: &StepFormat,
    ) -> Result<RolloutGroup> {
        let request = RolloutRequest {
            prompt_ids,
            n,
            seed: params.sampler.seed,
        };
        let batch = self.rollouts_batch(adapters, &[request], None, params, format)?;
        Ok(RolloutGroup {
            prompt_ids: prompt_ids.to_vec(),
            samples: batch.groups.into_iter().next().unwrap_or_default(),
            prompt_ms: batch.prompt_ms,
            decode_ms: batch.decode_ms,
            generated_tokens: batch.generated_tokens,
            tokens_per_s: batch.tokens_per_s,
        })
    }

    /// The samples of several prompts in one batch: each prompt is read
    /// once, then every sample of every prompt decodes one token per step
    /// in a single forward pass, so the weights are read once per step for
    /// all of them (RL's groups of an update, an evaluation's problems).
    /// Each sample equals what [`Engine::rollouts_of`] gives for its prompt
    /// and seed alone: batched decoding is bit-identical.
    ///
    /// With `caches` (one per request), each prompt's KV cache is kept in
    /// its [`PromptCache`] after the batch, and the next prompt given with
    /// it reads only the tokens after the part of their common prefix that
    /// gives a fresh read's numbers ([`crate::prompt_reuse`]): a solver's
    /// next step repeats the task and the steps so far, and its samples are
    /// bit for bit those of an uncached read.
    pub fn rollouts_batch(
        &self,
        adapters: &[ActiveLora],
        requests: &[RolloutRequest],
        mut caches: Option<&mut [PromptCache]>,
        params: &GenerateParams,
        format: &StepFormat,
    ) -> Result<RolloutBatch> {
        if let Some(c) = &caches {
            assert_eq!(c.len(), requests.len(), "one prompt cache per request");
        }
        let close_ids = self
            .tokenizer
            .encode(&format!("{THINK_CLOSE}\n"), false, true);
        let model = &self.model;
        let mut state = State::new();
        let mut live: Vec<Live> = Vec::new();
        let mut shareds = Vec::with_capacity(requests.len());
        // Per request, how its newly read tokens were read.
        let mut read_tiled: Vec<Vec<bool>> = Vec::with_capacity(requests.len());
        // Each sample's first token is drawn from its prompt's logits.
        let mut first: Vec<Vec<f32>> = Vec::with_capacity(requests.len());
        let mut prompt_ms = 0.0;
        for (r, req) in requests.iter().enumerate() {
            let prompt_ids = req.prompt_ids;
            if prompt_ids.is_empty() {
                return Err(RuntimeError::EmptyPrompt);
            }
            let n_ctx = (prompt_ids.len() + params.max_tokens + 1).min(model.config.context_length);
            if prompt_ids.len() >= n_ctx {
                return Err(RuntimeError::PromptTooLong {
                    n_prompt: prompt_ids.len(),
                    n_ctx,
                    n_train: model.config.context_length,
                });
            }
            let tp = Instant::now();
            let cache = caches.as_deref_mut().map(|c| &mut c[r]);
            let (mut shared, keep) = match cache.and_then(|c| c.take_fitting(prompt_ids, n_ctx)) {
                Some(reused) => reused,
                None => {
                    // A cached prompt grows by a step or so per round.
                    let room = if caches.is_some() { 4 * n_ctx } else { n_ctx };
                    (model.new_cache(room.min(model.config.context_length)), 0)
                }
            };
            // The rest in a fresh read's chunks (the first may be cut short
            // by the reuse), the last with its logits.
            let n = prompt_ids.len();
            let mut tiled = Vec::with_capacity(n);
            let mut fed = keep;
            while fed < n {
                let end = chunk_end(fed, n);
                let mode = if end == n { Logits::Last } else { Logits::None };
                let mut one = [Segment {
                    tokens: &prompt_ids[fed..end],
                    kv: &mut shared,
                }];
                model.forward_batch_adapters(
                    &mut one,
                    &[adapters],
                    &mut state,
                    mode,
                    &self.pool,
                )?;
                tiled.resize(end - keep, end - fed >= TILED_MIN_TOKENS);
                fed = end;
            }
            read_tiled.push(tiled);
            prompt_ms += tp.elapsed().as_secs_f64() * 1e3;
            first.push(state.logits.clone());
            // Every sample reads the prompt's rows from this one cache.
            let shared = std::sync::Arc::new(shared);
            shareds.push(std::sync::Arc::clone(&shared));
            live.extend((0..req.n).map(|g| {
                let mut kv = model.new_cache(n_ctx);
                kv.share_prefix(&shared, prompt_ids.len());
                let mut config = params.sampler.clone();
                config.seed = req.seed.wrapping_add(g as u64);
                Live {
                    request: r,
                    kv,
                    sampler: Sampler::new(config),
                    decode: DecodeState::new(
                        prompt_ids,
                        &params.stop,
                        params.max_tokens,
                        params.ignore_eog,
                    ),
                    out: Rollout {
                        ids: Vec::new(),
                        forced: Vec::new(),
                        logprobs: Vec::new(),
                        text: String::new(),
                        stop_reason: StopReason::MaxTokens,
                    },
                    track: StepTracker::default(),
                    next: Vec::new(),
                    exps: Vec::new(),
                }
            }));
        }
        let t1 = Instant::now();
        for s in &mut live {
            let logits = &first[s.request];
            self.take(s, logits, format, &close_ids);
        }
        drop(first);
        let vocab = model.config.vocab_size;
        let mut per_row: Vec<&[ActiveLora]> = Vec::with_capacity(live.len());
        loop {
            if live.iter().all(|s| s.next.is_empty()) {
                break;
            }
            let tokens: Vec<Vec<u32>> = live
                .iter_mut()
                .map(|s| std::mem::take(&mut s.next))
                .collect();
            let mut segments: Vec<Segment> = live
                .iter_mut()
                .zip(&tokens)
                .filter(|(_, t)| !t.is_empty())
                .map(|(s, t)| Segment {
                    tokens: t,
                    kv: &mut s.kv,
                })
                .collect();
            per_row.clear();
            per_row.resize(segments.len(), adapters);
            model.forward_batch_adapters(
                &mut segments,
                &per_row,
                &mut state,
                Logits::Last,
                &self.pool,
            )?;
            drop(segments);
            // Each sample has its own sampler (seed), so sampling the rows
            // in parallel picks what sampling them in turn picks.
            let logits = &state.logits;
            let rows: Vec<(&mut Live, &[f32])> = live
                .iter_mut()
                .zip(&tokens)
                .filter(|(_, t)| !t.is_empty())
                .enumerate()
                .map(|(row, (s, _))| (s, &logits[row * vocab..(row + 1) * vocab]))
                .collect();
            self.pool.install(|| {
                rows.into_par_iter()
                    .for_each(|(s, l)| self.take(s, l, format, &close_ids))
            });
        }
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        let mut groups: Vec<Vec<Rollout>> =
            requests.iter().map(|r| Vec::with_capacity(r.n)).collect();
        for s in live {
            groups[s.request].push(s.out);
        }
        // The samples (and their references to the prompts' caches) are
        // gone: each prompt's cache goes back to its keeper.
        if let Some(caches) = caches {
            let kept = caches.iter_mut().zip(shareds).zip(read_tiled);
            for (((c, shared), tiled), req) in kept.zip(requests) {
                match std::sync::Arc::try_unwrap(shared) {
                    Ok(kv) => {
                        c.ids = req.prompt_ids.to_vec();
                        c.tiled.truncate(req.prompt_ids.len() - tiled.len());
                        c.tiled.extend(tiled);
                        c.kv = Some(kv);
                    }
                    Err(_) => *c = PromptCache::default(),
                }
            }
        }
        let generated_tokens = groups.iter().flatten().map(|s| s.ids.len()).sum();
        let total_ms = prompt_ms + decode_ms;
        Ok(RolloutBatch {
            groups,
            prompt_ms,
            decode_ms,
            generated_tokens,
            tokens_per_s: if total_ms > 0.0 {
                generated_tokens as f64 * 1e3 / total_ms
            } else {
                0.0
            },
        })
    }

    /// Samples the next token of `s` from `logits`, records it, and decides
    /// whether `s` goes on (then `s.next` is set).
    fn take(&self, s: &mut Live, logits: &[f32], format: &StepFormat, close_ids: &[u32]) {
        if s.decode.at_limit() {
            return self.finish(s, StopReason::MaxTokens);
        }
        let tok = s.decode.sample(&mut s.sampler, logits);
        let Some(r) = s.decode.accept(&self.tokenizer, tok) else {
            return self.finish(s, StopReason::Eog);
        };
        let logprob = log_softmax_at(logits, tok as usize, &mut s.exps) as f32;
        if self.record(s, tok, Some(logprob), &r) {
            return self.finish(s, StopReason::StopString);
        }
        let mut next = vec![tok];
        match s.track.sampled(&r.piece, format) {
            StepAction::Continue => {}
            // The step's line is done: it ends like a stop string would.
            StepAction::StepEnd => return self.finish(s, StopReason::StopString),
            StepAction::ForceClose => {
                let mut text = String::new();
                for &id in close_ids {
                    let r = s.decode.push(&self.tokenizer, id);
                    text += &r.piece;
                    if self.record(s, id, None, &r) {
                        return self.finish(s, StopReason::StopString);
                    }
                }
                s.track.forced(&text);
                next.extend_from_slice(close_ids);
            }
        }
        if s.decode.at_limit() {
            return self.finish(s, StopReason::MaxTokens);
        }
        if s.kv.len() + next.len() > s.kv.capacity() {
            return self.finish(s, StopReason::ContextFull);
        }
        s.next = next;
    }

    /// Appends a token [`DecodeState`] recorded to `s`'s output, with its
    /// log-probability if it was sampled (None: forced); returns whether it
    /// completed a stop string.
    fn record(&self, s: &mut Live, tok: u32, logprob: Option<f32>, r: &Recorded) -> bool {
        s.out.ids.push(tok);
        s.out.forced.push(logprob.is_none());
        s.out.logprobs.push(logprob.unwrap_or(0.0));
        s.out.text.push_str(&r.text);
        r.end == Some(StopReason::StopString)
    }

    fn finish(&self, s: &mut Live, reason: StopReason) {
        s.out.stop_reason = reason;
        s.out.text.push_str(&s.decode.release());
    }
}

//! Groups of samples of one prompt, generated together: what RL rollouts
//! need. The prompt is read once; its KV cache is copied to every sample;
//! then all live samples decode one token each per step in a single batched
//! forward pass (the linear layers see a G-row matrix instead of G vectors,
//! which is where batching pays). Each sample has its own sampler (seed +
//! index) and its own stop conditions, and leaves the batch when it stops.

use crate::error::{Result, RuntimeError};
use crate::generate::{Engine, GenerateParams, StopReason, PROMPT_BATCH};
use crate::sampler::Sampler;
use crate::stop::StopMatcher;
use crate::tokenizer::StreamDecoder;
use srl_models::{KvCache, Logits, Segment, State};
use std::time::Instant;

/// One sample of a group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollout {
    pub ids: Vec<u32>,
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

/// A sample still decoding.
struct Live {
    kv: KvCache,
    sampler: Sampler,
    stop: StopMatcher,
    utf8: StreamDecoder,
    history: Vec<u32>,
    out: Rollout,
    /// The token to feed next (sampled, not yet in the cache).
    next: Option<u32>,
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
        let model = &self.model;
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
        let t0 = Instant::now();
        let mut state = State::new();
        let mut shared = model.new_cache(n_ctx);
        let chunks: Vec<&[u32]> = prompt_ids.chunks(PROMPT_BATCH).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mode = if i + 1 == chunks.len() {
                Logits::Last
            } else {
                Logits::None
            };
            model.forward(chunk, &mut shared, &mut state, mode, &self.pool)?;
        }
        let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        let first_logits = state.logits.clone();
        let t1 = Instant::now();
        let mut live: Vec<Live> = (0..n)
            .map(|g| {
                let mut kv = model.new_cache(n_ctx);
                kv.copy_prefix(&shared, prompt_ids.len());
                let mut config = params.sampler.clone();
                config.seed = config.seed.wrapping_add(g as u64);
                Live {
                    kv,
                    sampler: Sampler::new(config),
                    stop: StopMatcher::new(&params.stop),
                    utf8: StreamDecoder::new(),
                    history: prompt_ids.to_vec(),
                    out: Rollout {
                        ids: Vec::new(),
                        text: String::new(),
                        stop_reason: StopReason::MaxTokens,
                    },
                    next: None,
                }
            })
            .collect();
        drop(shared);
        // Sample each sample's first token from the prompt's logits.
        for s in &mut live {
            self.take(s, &first_logits, params);
        }
        let vocab = model.config.vocab_size;
        loop {
            let active: Vec<usize> = (0..live.len())
                .filter(|&i| live[i].next.is_some())
                .collect();
            if active.is_empty() {
                break;
            }
            let tokens: Vec<[u32; 1]> = active
                .iter()
                .map(|&i| [live[i].next.expect("active")])
                .collect();
            let mut segments: Vec<Segment> = live
                .iter_mut()
                .filter(|s| s.next.is_some())
                .zip(&tokens)
                .map(|(s, tok)| Segment {
                    tokens: tok,
                    kv: &mut s.kv,
                })
                .collect();
            model.forward_batch(&mut segments, &mut state, Logits::Last, &self.pool)?;
            drop(segments);
            for (row, &i) in active.iter().enumerate() {
                let logits = &state.logits[row * vocab..(row + 1) * vocab];
                let s = &mut live[i];
                s.next = None;
                self.take(s, logits, params);
            }
        }
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        let samples: Vec<Rollout> = live.into_iter().map(|s| s.out).collect();
        let generated_tokens = samples.iter().map(|s| s.ids.len()).sum();
        let total_ms = prompt_ms + decode_ms;
        Ok(RolloutGroup {
            prompt_ids: prompt_ids.to_vec(),
            samples,
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
    fn take(&self, s: &mut Live, logits: &[f32], params: &GenerateParams) {
        if s.out.ids.len() >= params.max_tokens {
            return self.finish(s, StopReason::MaxTokens);
        }
        let tok = s.sampler.sample(logits, &s.history);
        if !params.ignore_eog && self.tokenizer.is_eog(tok) {
            return self.finish(s, StopReason::Eog);
        }
        s.out.ids.push(tok);
        s.history.push(tok);
        let piece = s.utf8.push(&self.tokenizer, tok, false);
        let (emit, hit) = s.stop.push(&piece);
        s.out.text.push_str(&emit);
        if hit {
            s.out.stop_reason = StopReason::StopString;
            return;
        }
        if s.out.ids.len() >= params.max_tokens {
            return self.finish(s, StopReason::MaxTokens);
        }
        if s.kv.len() >= s.kv.capacity() {
            return self.finish(s, StopReason::ContextFull);
        }
        s.next = Some(tok);
    }

    fn finish(&self, s: &mut Live, reason: StopReason) {
        s.out.stop_reason = reason;
        let (rest, _) = s.stop.push(&s.utf8.flush());
        s.out.text.push_str(&rest);
        s.out.text.push_str(&s.stop.flush());
    }
}

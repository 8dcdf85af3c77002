//! Generation: an [`Engine`] (model + tokenizer + template + thread pool) and
//! [`Session`]s that own a KV cache, reuse the cached prefix across calls
//! (so a chat does not re-read its history), and stream text through a
//! callback as it is produced.

use crate::chat_template::{ChatTemplate, Message, TemplateKwargs};
use crate::decode::DecodeState;
use crate::error::{Result, RuntimeError};
use crate::sampler::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;
use srl_models::{KvCache, Logits, Model, State};
use std::path::Path;
use std::time::Instant;

/// Tokens per forward call while reading a prompt (bounds scratch memory).
pub const PROMPT_BATCH: usize = 512;

pub struct Engine {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub pool: rayon::ThreadPool,
    /// Time spent opening the model, in milliseconds.
    pub load_ms: f64,
}

#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Generation stops before any of these strings (which are not returned).
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens (benchmarks, parity tests).
    pub ignore_eog: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 128,
            sampler: SamplerConfig::default(),
            stop: Vec::new(),
            ignore_eog: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    Eog,
    MaxTokens,
    StopString,
    ContextFull,
    /// The streaming callback asked to stop.
    Cancelled,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// Prompt tokens actually computed (cached prefix tokens are not).
    pub prompt_tokens: usize,
    pub prompt_ms: f64,
    pub generated_tokens: usize,
    pub generate_ms: f64,
    pub prompt_tokens_per_s: f64,
    pub generate_tokens_per_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Completion {
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    pub stop_reason: StopReason,
    pub timings: Timings,
}

impl Engine {
    /// Opens a model (GGUF file or safetensors folder) with `threads` workers
    /// (0 = all cores).
    pub fn load(path: &Path, threads: usize) -> Result<Engine> {
        let start = Instant::now();
        let model = Model::open(path)?;
        let tokenizer = match model.files.gguf() {
            Some(g) => Tokenizer::from_gguf(g)?,
            None => Tokenizer::from_hf_dir(model.files.path())?,
        };
        let template_src = match model.files.gguf() {
            Some(g) => g.get_str("tokenizer.chat_template").map(str::to_string),
            None => read_hf_chat_template(model.files.path()),
        };
        let text_of = |id: Option<u32>| {
            id.map(|i| tokenizer.token_text(i).to_string())
                .unwrap_or_default()
        };
        let template = match template_src {
            Some(src) => Some(
                ChatTemplate::new(&src, &text_of(tokenizer.bos()), &text_of(tokenizer.eos()))?
                    .with_added_specials(tokenizer.add_bos(), tokenizer.add_eos()),
            ),
            None => None,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("srl-worker-{i}"))
            .build()
            .map_err(|e| RuntimeError::Other(format!("cannot start the thread pool: {e}")))?;
        Ok(Engine {
            model,
            tokenizer,
            template,
            pool,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// A new session with a context of `n_ctx` tokens (0 = the model's own).
    pub fn session(&self, n_ctx: usize) -> Session<'_> {
        let n_ctx = if n_ctx == 0 {
            self.model.config.context_length
        } else {
            n_ctx
        };
        Session {
            engine: self,
            kv: self.model.new_cache(n_ctx),
            state: State::new(),
            cached: Vec::new(),
        }
    }

    /// Renders a conversation with the model's template.
    pub fn render_chat(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_chat_with(messages, add_generation_prompt, &TemplateKwargs::new())
    }

    /// [`Engine::render_chat`] with extra template variables
    /// (`enable_thinking`, ...).
    pub fn render_chat_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        kwargs: &TemplateKwargs,
    ) -> Result<String> {
        let t = self
            .template
            .as_ref()
            .ok_or(crate::chat_template::TemplateError::Missing)?;
        Ok(t.render_with(messages, add_generation_prompt, kwargs)?)
    }

    /// Tokenizes a prompt the way llama.cpp's tools do: BOS per the vocab,
    /// special-token text parsed.
    pub fn tokenize_prompt(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true, true)
    }
}

fn read_hf_chat_template(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("chat_template")?.as_str().map(str::to_string)
}

/// A sequence being generated: KV cache, scratch state, and the tokens the
/// cache holds.
pub struct Session<'e> {
    engine: &'e Engine,
    kv: KvCache,
    state: State,
    cached: Vec<u32>,
}

impl Session<'_> {
    pub fn n_ctx(&self) -> usize {
        self.kv.capacity()
    }

    /// Forgets the cached conversation.
    pub fn reset(&mut self) {
        self.kv.clear();
        self.cached.clear();
    }

    /// Reads `tokens` after the longest prefix already cached and returns the
    /// logits of the last one. Returns how many tokens were computed.
    fn prefill(&mut self, tokens: &[u32]) -> Result<usize> {
        let common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // Always recompute at least the last token, to get its logits.
        let keep = common.min(tokens.len() - 1);
        self.kv.truncate(keep);
        self.cached.truncate(keep);
        let rest = &tokens[keep..];
        let e = self.engine;
        for (i, chunk) in rest.chunks(PROMPT_BATCH).enumerate() {
            let last = (i + 1) * PROMPT_BATCH >= rest.len();
            let mode = if last { Logits::Last } else { Logits::None };
            e.model
                .forward(chunk, &mut self.kv, &mut self.state, mode, &e.pool)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(rest.len())
    }

    /// Logits of the last token read ([V]).
    pub fn logits(&self) -> &[f32] {
        &self.state.logits
    }

    /// Reads a prompt and generates up to `params.max_tokens` tokens, calling
    /// `on_text` with each new piece of text (return false to stop).
    pub fn generate(
        &mut self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        let engine = self.engine;
        let mut step = NativeStep {
            session: self,
            sampler: Sampler::new(params.sampler.clone()),
        };
        run_generation(&mut step, engine, prompt_ids, params, on_text)
    }
}

/// One backend's part of a generation: reading the prompt, sampling from
/// the last logits, running a sampled token. [`run_generation`] does the
/// rest the same way for every backend.
pub(crate) trait TokenStep {
    /// Context size in tokens.
    fn n_ctx(&self) -> usize;
    /// Tokens the context holds.
    fn cached(&self) -> usize;
    /// Reads the prompt (after any prefix already cached); returns the tokens
    /// computed.
    fn prefill(&mut self, prompt_ids: &[u32]) -> Result<usize>;
    /// Draws the next token from the last logits (`d`: the sequence so far).
    fn sample(&mut self, d: &DecodeState) -> u32;
    /// Runs a sampled token, leaving its logits for the next `sample`.
    fn feed(&mut self, tok: u32) -> Result<()>;
}

/// The native engine's [`TokenStep`]: srl's sampler over the session.
struct NativeStep<'s, 'e> {
    session: &'s mut Session<'e>,
    sampler: Sampler,
}

impl TokenStep for NativeStep<'_, '_> {
    fn n_ctx(&self) -> usize {
        self.session.n_ctx()
    }
    fn cached(&self) -> usize {
        self.session.kv.len()
    }
    fn prefill(&mut self, prompt_ids: &[u32]) -> Result<usize> {
        self.session.prefill(prompt_ids)
    }
    fn sample(&mut self, d: &DecodeState) -> u32 {
        d.sample(&mut self.sampler, &self.session.state.logits)
    }
    fn feed(&mut self, tok: u32) -> Result<()> {
        let s = &mut *self.session;
        let e = s.engine;
        e.model
            .forward(&[tok], &mut s.kv, &mut s.state, Logits::Last, &e.pool)?;
        s.cached.push(tok);
        Ok(())
    }
}

/// The generation loop of every backend: checks the prompt, reads it, then
/// samples until an end-of-generation token, a stop string, the token limit
/// or a full context, streaming text (stop strings held back) to `on_text`.
pub(crate) fn run_generation(
    step: &mut impl TokenStep,
    e: &Engine,
    prompt_ids: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<Completion> {
    if prompt_ids.is_empty() {
        return Err(RuntimeError::EmptyPrompt);
    }
    if prompt_ids.len() >= step.n_ctx() {
        return Err(RuntimeError::PromptTooLong {
            n_prompt: prompt_ids.len(),
            n_ctx: step.n_ctx(),
            n_train: e.model.config.context_length,
        });
    }
    let mut timings = Timings::default();
    let t0 = Instant::now();
    timings.prompt_tokens = step.prefill(prompt_ids)?;
    timings.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut ids = Vec::new();
    let mut d = DecodeState::new(
        prompt_ids,
        &params.stop,
        params.max_tokens,
        params.ignore_eog,
    );
    let mut text = String::new();
    let mut reason = StopReason::MaxTokens;
    let t1 = Instant::now();
    while !d.at_limit() {
        let tok = step.sample(&d);
        let Some(r) = d.accept(&e.tokenizer, tok) else {
            reason = StopReason::Eog;
            break;
        };
        ids.push(tok);
        text.push_str(&r.text);
        if !r.text.is_empty() && !on_text(&r.text) {
            reason = StopReason::Cancelled;
            break;
        }
        if let Some(end) = r.end {
            reason = end;
            break;
        }
        if step.cached() >= step.n_ctx() {
            reason = StopReason::ContextFull;
            break;
        }
        step.feed(tok)?;
    }
    if reason != StopReason::Cancelled {
        let tail = d.release();
        if !tail.is_empty() {
            text.push_str(&tail);
            on_text(&tail);
        }
    }
    timings.generated_tokens = ids.len();
    timings.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
    timings.prompt_tokens_per_s = per_s(timings.prompt_tokens, timings.prompt_ms);
    timings.generate_tokens_per_s = per_s(timings.generated_tokens, timings.generate_ms);
    Ok(Completion {
        prompt_ids: prompt_ids.to_vec(),
        ids,
        text,
        stop_reason: reason,
        timings,
    })
}

fn per_s(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}

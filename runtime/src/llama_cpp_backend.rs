//! The llama.cpp backend (cargo feature `llama-cpp`): the forward pass, KV
//! cache and sampling of llama.cpp through the llama-cpp-2 crate, with GPU
//! offload (`gpu_layers`) in its CUDA, Vulkan and Metal builds.
//!
//! Prompts arrive as srl's token ids (srl's tokenizer equals llama.cpp's, and
//! the chat template is srl's), and the tokens that come back are turned into
//! text, stop strings and end-of-generation by srl exactly as the native
//! [`Session`](crate::Session) does, so the two backends print the same text
//! for the same ids. Sampling maps [`SamplerConfig`] onto llama.cpp's sampler
//! chain in srl's order (repetition penalty, top-k, top-p, min-p, temperature,
//! draw); temperature 0 is llama.cpp's greedy sampler, an exact argmax.

use crate::backend::RunnerOptions;
use crate::decode::DecodeState;
use crate::error::{Result, RuntimeError};
use crate::generate::{
    run_generation, Completion, Engine, GenerateParams, TokenStep, PROMPT_BATCH,
};
use crate::sampler::SamplerConfig;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Set to 1 to let llama.cpp print its own log on stderr (silent otherwise).
pub const LOG_ENV: &str = "SRL_LLAMA_LOG";

/// A model loaded by llama.cpp, with its LoRA adapter if one was given.
pub struct LlamaCppModel {
    // Field order is drop order: the model (which frees its adapters) before
    // the backend.
    model: LlamaModel,
    lora: Option<(LlamaLora, f32)>,
    backend: LlamaBackend,
    threads: usize,
}

/// A LoRA adapter llama.cpp loaded (its model frees it).
pub struct LlamaLora(
    /// Behind a lock because llama-cpp-2 sets an adapter through `&mut`.
    Mutex<LlamaLoraAdapter>,
);

impl LlamaLora {
    /// Makes this adapter, at `scale`, the only one `ctx` applies.
    pub(crate) fn apply(&self, ctx: &mut LlamaContext, scale: f32) -> Result<()> {
        let mut adapter = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ctx.lora_adapter_set(&mut adapter, scale)
            .map_err(|e| llama_err(format!("llama.cpp cannot apply the LoRA adapter: {e}")))
    }

    /// Makes `ctx` apply no adapter.
    pub(crate) fn remove(&self, ctx: &mut LlamaContext) -> Result<()> {
        let mut adapter = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ctx.lora_adapter_remove(&mut adapter)
            .map_err(|e| llama_err(format!("llama.cpp cannot remove the LoRA adapter: {e}")))
    }
}

fn llama_err(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend(format!(
        "{what} (set {LOG_ENV}=1 to see llama.cpp's own log)"
    ))
}

/// The GPU backend this build of llama.cpp has, if any.
fn gpu_backend() -> Option<&'static str> {
    if cfg!(feature = "cuda") {
        Some("CUDA")
    } else if cfg!(feature = "vulkan") {
        Some("Vulkan")
    } else if cfg!(feature = "metal") {
        Some("Metal")
    } else {
        None
    }
}

/// Why `--gpu-layers` cannot be honoured: no GPU backend in this build, or
/// a backend that found no device (named, with how to look and what to do).
fn no_gpu_message(gpu_layers: u32) -> String {
    let Some(name) = gpu_backend() else {
        return format!(
            "--gpu-layers {gpu_layers}: this build of llama.cpp has no GPU backend; \
             rebuild srl with `--features cuda`, `--features vulkan` or `--features \
             metal` (the one your GPU and drivers support), or drop --gpu-layers"
        );
    };
    let devices: Vec<String> = llama_cpp_2::list_llama_ggml_backend_devices()
        .iter()
        .map(|d| format!("{} ({})", d.name, d.description))
        .collect();
    let hint = match name {
        "Vulkan" => {
            "`vulkaninfo --summary` lists the devices the Vulkan drivers offer; llama.cpp \
             skips CPU-type devices such as Mesa's lavapipe unless GGML_VK_VISIBLE_DEVICES \
             names them (e.g. GGML_VK_VISIBLE_DEVICES=0)"
        }
        "CUDA" => "`nvidia-smi` lists the devices the driver sees; check CUDA_VISIBLE_DEVICES",
        _ => "check that this Mac's GPU supports Metal",
    };
    format!(
        "--gpu-layers {gpu_layers}: llama.cpp's {name} backend found no GPU device (it has: \
         {}); {hint}; or drop --gpu-layers to run on the CPU",
        if devices.is_empty() {
            "none".to_string()
        } else {
            devices.join(", ")
        }
    )
}

/// The GGUF file of an adapter: the file itself, or `adapter.gguf` in an
/// adapter folder (what `srl train` writes beside the PEFT files).
fn adapter_gguf(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let file = path.join("adapter.gguf");
        if file.is_file() {
            return Ok(file);
        }
        return Err(RuntimeError::Backend(format!(
            "the llama.cpp backend loads GGUF LoRA adapters, and the folder {} has no \
             adapter.gguf; give the adapter's .gguf file (srl train writes adapter.gguf \
             beside the PEFT files) or use the native backend for a PEFT folder",
            path.display()
        )));
    }
    if !path.is_file() {
        return Err(RuntimeError::Backend(format!(
            "the LoRA adapter {} does not exist",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

impl LlamaCppModel {
    /// Loads the GGUF file at `path` (and the adapter in `opts`) with
    /// llama.cpp, decoding on `threads` threads.
    pub fn load(path: &Path, opts: &RunnerOptions, threads: usize) -> Result<LlamaCppModel> {
        if !path.is_file() {
            return Err(RuntimeError::Backend(format!(
                "the llama.cpp backend reads GGUF files and {} is not a file; convert a \
                 safetensors folder with `srl quantize {} model.gguf --type q8_0`",
                path.display(),
                path.display()
            )));
        }
        if opts.loras.len() > 1 {
            return Err(RuntimeError::Backend(format!(
                "the llama.cpp backend applies one LoRA adapter and {} were given; merge \
                 them with `srl merge` or use the native backend",
                opts.loras.len()
            )));
        }
        let mut backend =
            LlamaBackend::init().map_err(|e| llama_err(format!("cannot start llama.cpp: {e}")))?;
        if std::env::var_os(LOG_ENV).is_none_or(|v| v == "0") {
            backend.void_logs();
        }
        let gpu_layers = opts.gpu_layers.unwrap_or(0);
        if gpu_layers > 0 && !backend.supports_gpu_offload() {
            return Err(RuntimeError::Backend(no_gpu_message(gpu_layers)));
        }
        let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
        let model = LlamaModel::load_from_file(&backend, path, &params).map_err(|e| {
            llama_err(format!(
                "llama.cpp cannot load the model {} ({e}): an architecture or tensor type \
                 this llama.cpp does not know, or a damaged file",
                path.display()
            ))
        })?;
        let mut m = LlamaCppModel {
            model,
            lora: None,
            backend,
            threads,
        };
        if let Some(p) = opts.loras.first() {
            m.lora = Some((m.load_lora(p)?, opts.lora_scale));
        }
        Ok(m)
    }

    /// Loads a GGUF LoRA adapter (the file, or `adapter.gguf` in an adapter
    /// folder) into the model; llama.cpp checks it fits.
    pub fn load_lora(&mut self, path: &Path) -> Result<LlamaLora> {
        let file = adapter_gguf(path)?;
        let adapter = self.model.lora_adapter_init(&file).map_err(|e| {
            llama_err(format!(
                "llama.cpp cannot load the LoRA adapter {} ({e}): not a GGUF LoRA \
                 file, or made for another base model",
                file.display()
            ))
        })?;
        Ok(LlamaLora(Mutex::new(adapter)))
    }

    pub(crate) fn n_vocab(&self) -> usize {
        self.model.n_vocab().max(0) as usize
    }

    /// A context of `n_seq` sequences with a KV cache of their own of
    /// `n_ctx` tokens each (llama.cpp rounds it up to a multiple of 256),
    /// decoding up to `n_batch` tokens a call: the server's slots.
    pub(crate) fn batch_context(
        &self,
        n_ctx: usize,
        n_seq: usize,
        n_batch: usize,
    ) -> Result<LlamaContext<'_>> {
        let threads = i32::try_from(self.threads.max(1)).unwrap_or(i32::MAX);
        let total = u32::try_from(n_ctx * n_seq).unwrap_or(u32::MAX);
        let n_batch = u32::try_from(n_batch).unwrap_or(u32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(total))
            .with_n_seq_max(u32::try_from(n_seq).unwrap_or(u32::MAX))
            .with_kv_unified(false)
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        self.model.new_context(&self.backend, params).map_err(|e| {
            llama_err(format!(
                "llama.cpp cannot make a context of {n_seq} sequences of {n_ctx} tokens: {e}"
            ))
        })
    }

    /// A new context of `n_ctx` tokens (0 = the model's own) with the adapter set.
    pub fn session<'m>(&'m self, engine: &'m Engine, n_ctx: usize) -> Result<LlamaCppSession<'m>> {
        let n_ctx = if n_ctx == 0 {
            self.model.n_ctx_train() as usize
        } else {
            n_ctx
        };
        let threads = i32::try_from(self.threads.max(1)).unwrap_or(i32::MAX);
        let n_ctx_u32 = u32::try_from(n_ctx).unwrap_or(u32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx_u32))
            .with_n_batch(PROMPT_BATCH as u32)
            .with_n_ubatch(PROMPT_BATCH as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = self.model.new_context(&self.backend, params).map_err(|e| {
            llama_err(format!(
                "llama.cpp cannot make a context of {n_ctx} tokens: {e}"
            ))
        })?;
        if let Some((adapter, scale)) = &self.lora {
            adapter.apply(&mut ctx, *scale)?;
        }
        Ok(LlamaCppSession {
            engine,
            n_vocab: self.model.n_vocab(),
            ctx,
            batch: LlamaBatch::new(PROMPT_BATCH, 1),
            n_ctx,
            cached: Vec::new(),
        })
    }
}

/// One sequence in a llama.cpp context: the tokens its KV cache holds, reused
/// as a prefix by the next call as in the native [`Session`](crate::Session).
pub struct LlamaCppSession<'m> {
    engine: &'m Engine,
    n_vocab: i32,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    n_ctx: usize,
    cached: Vec<u32>,
}

impl LlamaCppSession<'_> {
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Forgets the cached conversation.
    pub fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// Decodes `tokens` at positions `start..`, with logits for the last one
    /// when `logits_last`.
    fn decode(&mut self, tokens: &[u32], start: usize, logits_last: bool) -> Result<()> {
        self.batch.clear();
        for (i, &t) in tokens.iter().enumerate() {
            let last = logits_last && i + 1 == tokens.len();
            self.batch
                .add(LlamaToken(t as i32), (start + i) as i32, &[0], last)
                .map_err(|e| llama_err(format!("llama.cpp batch: {e}")))?;
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| llama_err(format!("llama.cpp could not decode: {e}")))
    }

    /// Reads `tokens` after the longest prefix already cached. Returns how
    /// many tokens were computed.
    fn prefill(&mut self, tokens: &[u32]) -> Result<usize> {
        let common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // Always recompute at least the last token, to get its logits.
        let mut keep = common.min(tokens.len() - 1);
        let removed = self
            .ctx
            .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
            .unwrap_or(false);
        if !removed {
            // A cache that cannot drop a suffix starts over.
            self.ctx.clear_kv_cache();
            keep = 0;
        }
        self.cached.truncate(keep);
        let rest = &tokens[keep..];
        for (i, chunk) in rest.chunks(PROMPT_BATCH).enumerate() {
            let last = (i + 1) * PROMPT_BATCH >= rest.len();
            let start = self.cached.len();
            self.decode(chunk, start, last)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(rest.len())
    }

    /// As [`Session::generate`](crate::Session::generate), on llama.cpp.
    pub fn generate(
        &mut self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        let engine = self.engine;
        let mut sampler = sampler_chain(&params.sampler, self.n_vocab);
        sampler.accept_many(prompt_ids.iter().map(|&t| LlamaToken(t as i32)));
        let mut step = LlamaStep {
            session: self,
            sampler,
        };
        run_generation(&mut step, engine, prompt_ids, params, on_text)
    }
}

/// llama.cpp's [`TokenStep`]: its sampler chain over the session.
struct LlamaStep<'s, 'm> {
    session: &'s mut LlamaCppSession<'m>,
    sampler: LlamaSampler,
}

impl TokenStep for LlamaStep<'_, '_> {
    fn n_ctx(&self) -> usize {
        self.session.n_ctx
    }
    fn cached(&self) -> usize {
        self.session.cached.len()
    }
    fn prefill(&mut self, prompt_ids: &[u32]) -> Result<usize> {
        self.session.prefill(prompt_ids)
    }
    fn sample(&mut self, _: &DecodeState) -> u32 {
        // Samples from the last logits and records the token in the chain's
        // history (for the repetition penalty).
        self.sampler.sample(&self.session.ctx, -1).0 as u32
    }
    fn feed(&mut self, tok: u32) -> Result<()> {
        let pos = self.session.cached.len();
        self.session.decode(&[tok], pos, true)?;
        self.session.cached.push(tok);
        Ok(())
    }
}

/// llama.cpp's sampler chain for `cfg`, in the native sampler's order.
fn sampler_chain(cfg: &SamplerConfig, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if cfg.repeat_penalty != 1.0 && cfg.repeat_last_n > 0 {
        let last_n = i32::try_from(cfg.repeat_last_n).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(
            n_vocab,
            last_n,
            cfg.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if cfg.is_greedy() {
        chain.push(LlamaSampler::greedy());
    } else {
        if cfg.top_k > 0 {
            chain.push(LlamaSampler::top_k(
                i32::try_from(cfg.top_k).unwrap_or(i32::MAX),
            ));
        }
        if cfg.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(cfg.top_p, 1));
        }
        if cfg.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(cfg.min_p, 1));
        }
        chain.push(LlamaSampler::temp(cfg.temperature));
        // llama.cpp's seed is 32 bits; fold the high half in.
        chain.push(LlamaSampler::dist((cfg.seed ^ (cfg.seed >> 32)) as u32));
    }
    LlamaSampler::chain_simple(chain)
}

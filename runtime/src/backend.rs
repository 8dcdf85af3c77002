//! Which engine runs a model: srl's own (the default) or llama.cpp (cargo
//! feature `llama-cpp`, for consumer GPUs through its CUDA, Vulkan and Metal
//! builds). Either way srl's tokenizer and chat template turn text into
//! tokens, and srl's stop strings and UTF-8 streaming turn tokens back into
//! text, so the two backends see the same prompt ids and print alike; only the
//! forward pass and sampling move to llama.cpp.

use crate::error::{Result, RuntimeError};
use crate::generate::{Completion, Engine, GenerateParams, Session};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// srl's own engine.
    #[default]
    Native,
    /// llama.cpp through the llama-cpp-2 crate.
    LlamaCpp,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::LlamaCpp => "llama-cpp",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "native" | "srl" => Ok(BackendKind::Native),
            "llama-cpp" | "llama.cpp" | "llamacpp" => Ok(BackendKind::LlamaCpp),
            _ => Err(format!(
                "unknown backend {s:?}; the backends are native and llama-cpp"
            )),
        }
    }
}

/// Whether this build carries the llama.cpp backend.
pub const LLAMA_CPP_BUILT: bool = cfg!(feature = "llama-cpp");

/// Why `--backend llama-cpp` fails in a build without the feature.
pub fn llama_cpp_not_built() -> RuntimeError {
    RuntimeError::Backend(
        "this srl was built without the llama.cpp backend: rebuild it with \
         `cargo build --release --features llama-cpp` (or --features cuda, vulkan \
         or metal for a GPU build of llama.cpp)"
            .to_string(),
    )
}

/// Why `--gpu-layers` fails on srl's own engine.
pub fn gpu_layers_need_llama_cpp(n: u32) -> RuntimeError {
    RuntimeError::Backend(format!(
        "--gpu-layers {n} needs the llama.cpp backend: add --backend llama-cpp \
         (srl's native engine runs on the CPU)"
    ))
}

/// How to load a model for [`Runner::load`].
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    pub backend: BackendKind,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// LoRA adapters applied without merging.
    pub loras: Vec<PathBuf>,
    pub lora_scale: f32,
    /// Layers llama.cpp offloads to the GPU (None = 0; llama-cpp backend only).
    pub gpu_layers: Option<u32>,
}

/// A model loaded on one backend. `engine` always holds srl's tokenizer and
/// chat template (and, on the native backend, the model that runs).
pub struct Runner {
    pub engine: Engine,
    pub backend: BackendKind,
    /// Time spent loading, in milliseconds (both engines on llama-cpp).
    pub load_ms: f64,
    #[cfg(feature = "llama-cpp")]
    llama: Option<crate::llama_cpp_backend::LlamaCppModel>,
}

impl Runner {
    pub fn load(path: &Path, opts: &RunnerOptions) -> Result<Runner> {
        let start = Instant::now();
        match opts.backend {
            BackendKind::Native => {
                if let Some(n) = opts.gpu_layers.filter(|&n| n > 0) {
                    return Err(gpu_layers_need_llama_cpp(n));
                }
                let mut engine = Engine::load(path, opts.threads)?;
                for lora in &opts.loras {
                    let adapter = srl_models::LoraAdapter::open(lora)?;
                    engine.model.add_lora(adapter, opts.lora_scale)?;
                }
                Ok(Runner {
                    engine,
                    backend: opts.backend,
                    load_ms: start.elapsed().as_secs_f64() * 1e3,
                    #[cfg(feature = "llama-cpp")]
                    llama: None,
                })
            }
            #[cfg(feature = "llama-cpp")]
            BackendKind::LlamaCpp => {
                let engine = Engine::load(path, opts.threads)?;
                let threads = engine.threads();
                let llama = crate::llama_cpp_backend::LlamaCppModel::load(path, opts, threads)?;
                Ok(Runner {
                    engine,
                    backend: opts.backend,
                    load_ms: start.elapsed().as_secs_f64() * 1e3,
                    llama: Some(llama),
                })
            }
            #[cfg(not(feature = "llama-cpp"))]
            BackendKind::LlamaCpp => Err(llama_cpp_not_built()),
        }
    }

    /// A new session with a context of `n_ctx` tokens (0 = the model's own).
    pub fn session(&self, n_ctx: usize) -> Result<RunnerSession<'_>> {
        #[cfg(feature = "llama-cpp")]
        if let Some(llama) = &self.llama {
            return Ok(RunnerSession::LlamaCpp(llama.session(&self.engine, n_ctx)?));
        }
        Ok(RunnerSession::Native(Box::new(self.engine.session(n_ctx))))
    }
}

/// A conversation's state on one backend (see [`Session`]).
pub enum RunnerSession<'r> {
    Native(Box<Session<'r>>),
    #[cfg(feature = "llama-cpp")]
    LlamaCpp(crate::llama_cpp_backend::LlamaCppSession<'r>),
}

impl RunnerSession<'_> {
    pub fn n_ctx(&self) -> usize {
        match self {
            RunnerSession::Native(s) => s.n_ctx(),
            #[cfg(feature = "llama-cpp")]
            RunnerSession::LlamaCpp(s) => s.n_ctx(),
        }
    }

    /// Forgets the cached conversation.
    pub fn reset(&mut self) {
        match self {
            RunnerSession::Native(s) => s.reset(),
            #[cfg(feature = "llama-cpp")]
            RunnerSession::LlamaCpp(s) => s.reset(),
        }
    }

    /// As [`Session::generate`].
    pub fn generate(
        &mut self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        match self {
            RunnerSession::Native(s) => s.generate(prompt_ids, params, on_text),
            #[cfg(feature = "llama-cpp")]
            RunnerSession::LlamaCpp(s) => s.generate(prompt_ids, params, on_text),
        }
    }
}

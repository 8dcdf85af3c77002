//! Everything needed to run a model for a user: tokenizers, chat templates,
//! sampling, stop strings, generation sessions and the model cache.

pub mod backend;
pub mod chat_template;
pub mod decode;
pub mod error;
pub mod generate;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp_backend;
pub mod model_cache;
pub mod model_catalogue;
pub mod model_download;
mod prompt_reuse;
pub mod rollout;
pub mod sampler;
pub mod server;
pub mod step_format;
pub mod step_label;
pub mod step_trace;
pub mod stop;
pub mod think;
pub mod tokenizer;

pub use backend::{BackendKind, Runner, RunnerOptions, RunnerSession};
pub use chat_template::{thinking_kwargs, ChatTemplate, Message, TemplateKwargs};
pub use error::RuntimeError;
pub use generate::{Completion, Engine, GenerateParams, Session, StopReason, Timings};
pub use rollout::{PromptCache, Rollout, RolloutBatch, RolloutGroup, RolloutRequest};
pub use sampler::{Sampler, SamplerConfig};
pub use step_format::StepFormat;

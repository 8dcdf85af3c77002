//! The error type of srl-runtime.

use crate::chat_template::TemplateError;
use crate::tokenizer::TokenizerError;
use srl_models::ModelError;

#[derive(thiserror::Error, Debug)]
pub enum RuntimeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the prompt is empty: give at least one token of text")]
    EmptyPrompt,
    #[error("the prompt has {n_prompt} tokens but the context holds {n_ctx}; shorten it or raise --ctx (the model was trained for {n_train})")]
    PromptTooLong {
        n_prompt: usize,
        n_ctx: usize,
        n_train: usize,
    },
    #[error("could not fetch the default model: {0}")]
    Fetch(String),
    /// The backend asked for is missing from this build, or cannot run the
    /// model (see backend.rs, llama_cpp_backend.rs).
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

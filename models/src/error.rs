//! The error type of srl-models: every variant names the file (and the tensor
//! or key) it is about, so a user can tell what is wrong with which input.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed model file (bad magic, truncated, hostile sizes...).
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor '{name}'")]
    MissingTensor { path: PathBuf, name: String },
    /// A tensor exists but has the wrong shape.
    #[error("{path}: tensor '{name}' has shape {actual:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    /// A metadata key or config field the architecture needs is absent or invalid.
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    /// A token id the model has no embedding for.
    #[error("{path}: token id {token} is outside the vocabulary ({vocab} tokens)")]
    TokenOutsideVocabulary {
        path: PathBuf,
        token: u32,
        vocab: usize,
    },
    /// More tokens than the context (KV cache or training sequence) holds.
    #[error("{path}: context full: {cached} cached + {new} new tokens exceed the context size {capacity}")]
    ContextFull {
        path: PathBuf,
        cached: usize,
        new: usize,
        capacity: usize,
    },
    #[error(
        "{path}: unsupported architecture '{arch}' (supported: {})",
        crate::families::supported_names()
    )]
    UnsupportedArch { path: PathBuf, arch: String },
    #[error(transparent)]
    Quant(#[from] srl_quant::QuantError),
}

impl ModelError {
    pub fn format(path: &std::path::Path, msg: impl Into<String>) -> Self {
        ModelError::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn config(path: &std::path::Path, msg: impl Into<String>) -> Self {
        ModelError::Config {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

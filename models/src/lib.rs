//! Model files and architectures.
//!
//! Readers for GGUF and Hugging Face safetensors (both memory-mapped: a tensor
//! is a view into the map, never a copy), a GGUF writer, and the decoder-only
//! transformer that Llama and Qwen2 share.
//!
//! Shape letters used in doc comments: T tokens, C channels (embedding width),
//! H query heads, D head dim, F feed-forward width, V vocab, L layers.

pub mod attention;
mod buffers;
pub mod causal_attention;
pub mod config;
pub mod convert;
pub mod error;
pub mod expf;
pub mod files;
pub mod gguf;
pub mod kv_cache;
pub mod lora;
pub mod lora_params;
pub mod mlp;
pub mod norm;
mod parallel;
pub mod quantize;
pub mod rope;
pub mod safetensors;
pub mod softmax;
pub mod testing;
pub mod training;
pub mod transformer;

pub use config::{Arch, ModelConfig};
pub use error::ModelError;
pub use files::{ModelFiles, TensorRef};
pub use kv_cache::KvCache;
pub use lora::{ActiveLora, LoraAdapter};
pub use lora_params::{LoraConfig, LoraParams, LoraTensor, Target};
pub use rope::RopeStyle;
pub use training::{PassOptions, TrainScratch, WeightedNll};
pub use transformer::{Linear, Logits, Model, Segment, State};

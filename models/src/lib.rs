//! Model files and architectures.
//!
//! Readers for GGUF and Hugging Face safetensors (both memory-mapped: a tensor
//! is a view into the map, never a copy), a GGUF writer, and the decoder-only
//! transformer that Llama and Qwen2 share.
//!
//! Shape letters used in doc comments: T tokens, C channels (embedding width),
//! H query heads, D head dim, F feed-forward width, V vocab, L layers.

mod buffers;
pub mod config;
pub mod error;
pub mod families;
pub mod formats;
pub mod kv_cache;
pub mod layers;
pub mod lora;
pub mod lora_params;
mod parallel;
pub mod testing;
pub mod training;
pub mod transformer;

pub use config::ModelConfig;
pub use error::ModelError;
pub use families::Arch;
pub use formats::files::{ModelFiles, TensorRef};
pub use kv_cache::KvCache;
pub use layers::linear::Linear;
pub use layers::rope::RopeStyle;
pub use lora::{ActiveLora, LoraAdapter};
pub use lora_params::{LoraConfig, LoraParams, LoraTensor, Target};
pub use training::{PassOptions, TokenWeights, TrainScratch, WeightedNll};
pub use transformer::{Logits, Model, Segment, State};

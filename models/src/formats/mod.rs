//! Weights on disk: GGUF files (reader and writer), Hugging Face safetensors
//! folders, the one view over either that the architectures read
//! ([`files::ModelFiles`]), and the conversions between them (a Hugging Face
//! folder to GGUF, a GGUF to another element type).

pub mod convert;
pub mod files;
pub mod gguf;
pub mod hf_pre_tokenizer;
pub mod quantize;
pub mod safetensors;

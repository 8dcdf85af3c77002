//! GGUF, llama.cpp's model file format: a reader over a memory map and a writer.

mod reader;
mod value;
mod writer;

pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
pub use value::{tag, GgufValue};
pub use writer::GgufWriter;

#[cfg(test)]
mod tests;

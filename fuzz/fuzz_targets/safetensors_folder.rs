//! Fuzzes the Hugging Face folder reader: a `model.safetensors` (first byte
//! even) or a `model.safetensors.index.json` (odd) with any bytes must open
//! or give an error, never panic; tensors that open lie within their file.
#![no_main]

#[path = "../common/scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use srl_models::formats::safetensors::SafetensorsDir;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let name = if which % 2 == 0 {
        "model.safetensors"
    } else {
        "model.safetensors.index.json"
    };
    let dir = scratch::folder_with("hf", name, rest);
    if let Ok(st) = SafetensorsDir::open(&dir) {
        for e in st.tensors.values() {
            assert_eq!(st.tensor_data(e).len(), e.size);
        }
    }
});

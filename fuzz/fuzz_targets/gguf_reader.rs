//! Fuzzes the GGUF reader: any byte string must parse or give an error, never
//! panic or read out of bounds; a file that parses must give in-bounds tensors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srl_models::formats::gguf::GgufFile;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = GgufFile::from_bytes(Path::new("fuzz.gguf"), data.to_vec()) {
        for t in &g.tensors {
            let bytes = g.tensor_data(t);
            assert_eq!(bytes.len(), t.size);
        }
        for (_, v) in &g.metadata {
            let _ = v.display(4);
        }
    }
});

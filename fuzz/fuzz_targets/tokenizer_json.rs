//! Fuzzes the tokenizer.json reader: any bytes must load or give an error,
//! never panic; a tokenizer that loads must encode and decode text.
#![no_main]

#[path = "../common/scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use srl_runtime::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let dir = scratch::folder_with("tok", "tokenizer.json", data);
    if let Ok(t) = Tokenizer::from_hf_dir(&dir) {
        let ids = t.encode("Hello world, 123 ü <|im_start|>\n", true, true);
        let _ = t.decode(&ids, false);
    }
});

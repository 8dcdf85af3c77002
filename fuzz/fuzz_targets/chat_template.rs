//! Fuzzes chat templates and what they render: the input is a template
//! source, then (after the first 0xFF byte) a message; compiling and
//! rendering must succeed or give an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srl_runtime::{ChatTemplate, Message};

fuzz_target!(|data: &[u8]| {
    let (src, msg) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"hello"[..]),
    };
    let (src, msg) = (String::from_utf8_lossy(src), String::from_utf8_lossy(msg));
    if let Ok(t) = ChatTemplate::new(&src, "<s>", "</s>") {
        let messages = [
            Message::new("system", "Be brief."),
            Message::new("user", &msg),
            Message::new("assistant", &msg),
        ];
        let _ = t.render(&messages, true);
    }
});

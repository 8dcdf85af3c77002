//! The think block: the tags around a reasoning model's monologue, defined
//! once for everything that writes or reads them (chat traces, the server's
//! `reasoning_content`, step-wise generation, SRL's prompts and response
//! parser, answer extraction). The macros give the same text to `concat!`,
//! so prompts that name the tags are built from this one definition too.

/// `<think>`, as a literal for `concat!`.
#[macro_export]
macro_rules! think_open {
    () => {
        "<think>"
    };
}

/// `</think>`, as a literal for `concat!`.
#[macro_export]
macro_rules! think_close {
    () => {
        "</think>"
    };
}

/// What opens the monologue.
pub const THINK_OPEN: &str = think_open!();
/// What ends the monologue.
pub const THINK_CLOSE: &str = think_close!();

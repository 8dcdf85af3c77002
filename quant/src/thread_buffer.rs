//! Per-thread scratch buffers that the f32 products reuse from call to call.
//!
//! A product's packed panels live in a buffer of 40 to 128 KiB per thread.
//! Zeroing it on the stack at every call costs more than a small product
//! (attention's per-head blocks, the LoRA branch) computes, and evicts the
//! operands from L1/L2; so each thread keeps one, zeroed once.

use std::cell::RefCell;
use std::thread::LocalKey;

/// One thread's buffer of type `B`, made on first use.
pub(crate) type Slot<B> = RefCell<Option<Box<B>>>;

/// Runs `f` on this thread's buffer in `key`, made by `new` on first use.
/// A nested use on the same thread (a product started inside another's
/// work) gets a fresh buffer instead.
pub(crate) fn with_buffer<B, R>(
    key: &'static LocalKey<Slot<B>>,
    new: fn() -> Box<B>,
    f: impl FnOnce(&mut B) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => f(slot.get_or_insert_with(new)),
        Err(_) => f(&mut new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST: Slot<[u32; 4]> = const { RefCell::new(None) };
    }

    fn new() -> Box<[u32; 4]> {
        Box::new([0; 4])
    }

    #[test]
    fn kept_between_calls_and_fresh_when_nested() {
        with_buffer(&TEST, new, |b| b[0] = 7);
        with_buffer(&TEST, new, |outer| {
            assert_eq!(outer[0], 7, "the thread's buffer is kept");
            outer[1] = 1;
            with_buffer(&TEST, new, |inner| {
                assert_eq!(*inner, [0; 4], "a nested use gets its own");
                inner[1] = 2;
            });
            assert_eq!(outer[1], 1);
        });
    }
}

//! The global allocator: the system's, with every large block aligned to a
//! cache line.
//!
//! The products split a matrix's outputs between threads at block and tile
//! boundaries that are whole cache lines from the start of each row, and
//! rows are whole cache lines long. malloc aligns large blocks to 16 bytes
//! only, so two threads then write the line that straddles each boundary:
//! it moves from core to core on every tile's store ("false sharing"). On a
//! 2-core EPYC that made training's products slower by about 5-10% in most
//! rounds (`cargo bench -p srl-quant --bench matmul -- sweep`, outputs on a
//! line vs `SRL_SWEEP_OFFSET=16`, alternating).

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes are aligned to [`LINE`].
const LARGE: usize = 4096;
/// A cache line.
const LINE: usize = 64;

pub struct LineAlignedAlloc;

/// The layout `layout` is allocated with.
fn adjusted(layout: Layout) -> Layout {
    if layout.size() >= LARGE && layout.align() < LINE {
        // Fails only for sizes within LINE of isize::MAX, which no
        // allocation reaches; the layout then stays as it is.
        Layout::from_size_align(layout.size(), LINE).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every block is allocated and freed with the same adjusted layout
// through the system allocator, which upholds GlobalAlloc's contract.
unsafe impl GlobalAlloc for LineAlignedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(adjusted(layout))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        System.alloc_zeroed(adjusted(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, adjusted(layout))
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old, new) = (
            adjusted(layout),
            adjusted(Layout::from_size_align_unchecked(new_size, layout.align())),
        );
        if old.align() == new.align() {
            return System.realloc(ptr, old, new_size);
        }
        // The block crosses LARGE: move it to a block of the new alignment.
        let out = System.alloc(new);
        if !out.is_null() {
            std::ptr::copy_nonoverlapping(ptr, out, layout.size().min(new_size));
            System.dealloc(ptr, old);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_blocks_are_line_aligned_and_keep_their_contents() {
        for n in [1usize, 100, 1024, 1025, 5000, 1 << 20] {
            let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
            if n * 4 >= super::LARGE {
                assert_eq!(v.as_ptr() as usize % super::LINE, 0, "{n} floats");
            }
            // Growing across the threshold, and shrinking back.
            let mut w = v.clone();
            w.extend_from_slice(&v);
            w.truncate(n);
            w.shrink_to_fit();
            assert_eq!(w, v);
        }
    }
}

//! Activations quantized once for several matrix products.

use crate::matmul::fork;
use crate::GgmlType;
use rayon::ThreadPool;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Activations `x: [T, cols]` quantized to a `vec_dot_type` (Q8_0, Q8_1,
/// Q8_K, F16, BF16 or F32), reusable across the weight matrices that read
/// the same input (q/k/v, gate/up).
///
/// Owns its buffer; quantizing again with the same or a smaller size does not
/// allocate.
#[derive(Default)]
pub struct QuantizedActivations {
    ty: Option<GgmlType>,
    n_tokens: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

/// Below this many elements, quantize on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

impl QuantizedActivations {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x: [n_tokens, cols]` to `ty` with ggml-cpu's activation
    /// numerics.
    ///
    /// Panics (programmer errors) if `ty` is not an activation type, `cols`
    /// is not a whole number of `ty` blocks, or `x.len() != n_tokens * cols`.
    pub fn quantize(
        &mut self,
        ty: GgmlType,
        x: &[f32],
        n_tokens: usize,
        cols: usize,
        pool: &ThreadPool,
    ) {
        let from_float = ty
            .traits()
            .from_float
            .unwrap_or_else(|| panic!("{ty} is not an activation type"))
            .best();
        let row_bytes = ty
            .row_bytes(cols)
            .unwrap_or_else(|| panic!("{cols} columns is not a whole number of {ty} blocks"));
        assert_eq!(
            x.len(),
            n_tokens * cols,
            "activations are not [{n_tokens}, {cols}]"
        );
        let need = row_bytes * n_tokens;
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        self.ty = Some(ty);
        self.n_tokens = n_tokens;
        self.cols = cols;
        self.row_bytes = row_bytes;
        let data = &mut self.data[..need];
        if n_tokens * cols < PARALLEL_MIN_ELEMENTS || n_tokens < 2 {
            for (src, dst) in x.chunks_exact(cols).zip(data.chunks_exact_mut(row_bytes)) {
                from_float(src, dst);
            }
            return;
        }
        // Tokens are claimed one chunk at a time from a shared counter.
        let per_chunk = (PARALLEL_MIN_ELEMENTS / 4 / cols).max(1);
        let next = AtomicUsize::new(0);
        let out = crate::matmul::SendPtr(data.as_mut_ptr());
        fork(pool, &|| loop {
            let t0 = next.fetch_add(per_chunk, Ordering::Relaxed);
            if t0 >= n_tokens {
                break;
            }
            let t1 = (t0 + per_chunk).min(n_tokens);
            for t in t0..t1 {
                // SAFETY: each token row is claimed by exactly one thread and
                // lies inside `data` (need = n_tokens * row_bytes).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out.get().add(t * row_bytes), row_bytes)
                };
                from_float(&x[t * cols..(t + 1) * cols], dst);
            }
        });
    }

    /// The activation type, once quantized.
    pub fn ty(&self) -> Option<GgmlType> {
        self.ty
    }

    /// T, the number of token rows.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// All rows, `[T, row_bytes]`.
    pub fn data(&self) -> &[u8] {
        &self.data[..self.row_bytes * self.n_tokens]
    }

    /// Token row `t`.
    pub fn row(&self, t: usize) -> &[u8] {
        &self.data[t * self.row_bytes..(t + 1) * self.row_bytes]
    }
}

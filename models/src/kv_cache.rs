//! The key/value cache of one sequence: per layer, one f16 row of K and of V
//! (n_head_kv * D values) per position, like llama.cpp's default cache type.
//! Pages are zeroed lazily by the OS, so a large context costs memory only as
//! it fills.

use crate::config::ModelConfig;
use half::f16;

pub struct KvCache {
    /// [L][capacity, kv_dim]
    pub(crate) k: Vec<Vec<f16>>,
    pub(crate) v: Vec<Vec<f16>>,
    capacity: usize,
    len: usize,
}

impl KvCache {
    pub fn new(config: &ModelConfig, capacity: usize) -> KvCache {
        let kv_dim = config.kv_dim();
        let layer = || zeroed_f16(capacity * kv_dim);
        KvCache {
            k: (0..config.n_layer).map(|_| layer()).collect(),
            v: (0..config.n_layer).map(|_| layer()).collect(),
            capacity,
            len: 0,
        }
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Maximum positions (the context size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Forgets everything after `len` positions (e.g. to reuse a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Makes this cache hold the first `len` positions of `other` (a shared
    /// prompt prefilled once, then continued by several samples).
    pub fn copy_prefix(&mut self, other: &KvCache, len: usize) {
        let len = len.min(other.len).min(self.capacity);
        let kv_dim = self.k[0].len() / self.capacity.max(1);
        for (dst, src) in self.k.iter_mut().zip(&other.k) {
            dst[..len * kv_dim].copy_from_slice(&src[..len * kv_dim]);
        }
        for (dst, src) in self.v.iter_mut().zip(&other.v) {
            dst[..len * kv_dim].copy_from_slice(&src[..len * kv_dim]);
        }
        self.len = len;
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// A zero-filled f16 buffer from the allocator's zeroed pages (calloc), so the
/// memory becomes resident only as the cache fills. `vec![f16::ZERO; n]` would
/// write every element up front.
fn zeroed_f16(n: usize) -> Vec<f16> {
    let mut v = std::mem::ManuallyDrop::new(vec![0u16; n]);
    // SAFETY: f16 is a transparent wrapper of u16 (same size and alignment),
    // and the all-zero bit pattern is +0.0; the allocation moves into the new Vec.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut f16, v.len(), v.capacity()) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffer_is_zero() {
        let v = super::zeroed_f16(1000);
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|x| x.to_bits() == 0));
    }
}

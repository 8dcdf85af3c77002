//! The key/value cache of one sequence: per layer, one f16 row of K and of V
//! (n_head_kv * D values) per position, like llama.cpp's default cache type.
//! Pages are zeroed lazily by the OS, so a large context costs memory only as
//! it fills.

use crate::config::ModelConfig;
use crate::layers::attention::decode::CacheRows;
use half::f16;
use std::sync::Arc;

pub struct KvCache {
    /// [L][capacity, kv_dim]; positions below `shared_len` are unused (and,
    /// never written, take no memory): they live in `shared`.
    pub(crate) k: Vec<Vec<f16>>,
    pub(crate) v: Vec<Vec<f16>>,
    capacity: usize,
    len: usize,
    /// A prompt prefilled once and read by several samples in place
    /// ([`KvCache::share_prefix`]): its first `shared_len` positions are
    /// this cache's.
    shared: Option<Arc<KvCache>>,
    shared_len: usize,
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
            shared: None,
            shared_len: 0,
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
        self.shared_len = self.shared_len.min(self.len);
    }
    pub fn clear(&mut self) {
        self.len = 0;
        self.shared = None;
        self.shared_len = 0;
    }
    /// Makes this cache hold the first `len` positions of `other` (a shared
    /// prompt prefilled once, then continued by several samples).
    pub fn copy_prefix(&mut self, other: &KvCache, len: usize) {
        let len = len.min(other.len).min(self.capacity);
        let kv_dim = self.kv_dim();
        for l in 0..self.k.len() {
            let (k, v) = other.layer(l, len);
            for (rows, dst) in [(k, &mut self.k[l]), (v, &mut self.v[l])] {
                let split = rows.shared.len();
                dst[..split].copy_from_slice(rows.shared);
                dst[split..len * kv_dim].copy_from_slice(&rows.own[split..len * kv_dim]);
            }
        }
        self.len = len;
        self.shared = None;
        self.shared_len = 0;
    }

    /// Makes this cache start with the first `len` positions of `other`,
    /// read in place rather than copied: samples of one prompt share its
    /// rows (one copy in memory and in the CPU caches, instead of one each).
    /// A cache that itself shares a prefix is copied instead.
    pub fn share_prefix(&mut self, other: &Arc<KvCache>, len: usize) {
        if other.shared.is_some() {
            return self.copy_prefix(other, len);
        }
        let len = len.min(other.len).min(self.capacity);
        self.len = len;
        self.shared = Some(Arc::clone(other));
        self.shared_len = len;
    }

    /// Layer `l`'s K and V rows of positions `..n` (at most `len()`).
    pub(crate) fn layer(&self, l: usize, n: usize) -> (CacheRows<'_>, CacheRows<'_>) {
        let kv_dim = self.kv_dim();
        let split = self.shared_len.min(n) * kv_dim;
        let (sk, sv): (&[f16], &[f16]) = match &self.shared {
            Some(s) => (&s.k[l][..split], &s.v[l][..split]),
            None => (&[], &[]),
        };
        (
            CacheRows {
                shared: sk,
                own: &self.k[l][..n * kv_dim],
            },
            CacheRows {
                shared: sv,
                own: &self.v[l][..n * kv_dim],
            },
        )
    }

    fn kv_dim(&self) -> usize {
        self.k.first().map_or(0, |k| k.len() / self.capacity.max(1))
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
    use super::*;
    use crate::families::Arch;
    use crate::layers::rope::RopeStyle;

    fn cache(capacity: usize) -> KvCache {
        let config = ModelConfig {
            arch: Arch::Llama,
            n_layer: 2,
            n_embd: 8,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            n_ff: 16,
            vocab_size: 10,
            context_length: 64,
            rope_theta: 10000.0,
            rope_factors: None,
            rope_style: RopeStyle::Interleaved,
            sliding_window: None,
            rope_theta_swa: 10000.0,
            rms_eps: 1e-5,
            tied_embeddings: true,
        };
        KvCache::new(&config, capacity)
    }

    /// Writes position p's rows as p + 100 * layer (K) and its negation (V).
    fn fill(c: &mut KvCache, from: usize, to: usize) {
        for l in 0..2 {
            for p in from..to {
                let x = p as f32 + 100.0 * l as f32;
                c.k[l][p * 4..(p + 1) * 4].fill(f16::from_f32(x));
                c.v[l][p * 4..(p + 1) * 4].fill(f16::from_f32(-x));
            }
        }
        c.len = to;
    }

    /// Position p's K value in layer l as the cache exposes it.
    fn k_at(c: &KvCache, l: usize, p: usize) -> f32 {
        let (k, _) = c.layer(l, c.len());
        // SAFETY: p < len, so the row lies in `shared` or `own`.
        unsafe { (*k.at(p * 4)).to_f32() }
    }

    #[test]
    fn shared_prefix_reads_in_place_and_copies_resolve_it() {
        let mut prompt = cache(16);
        fill(&mut prompt, 0, 5);
        let prompt = Arc::new(prompt);
        let mut sample = cache(16);
        sample.share_prefix(&prompt, 5);
        assert_eq!(sample.len(), 5);
        fill(&mut sample, 5, 8);
        for p in 0..8 {
            assert_eq!(k_at(&sample, 1, p), p as f32 + 100.0);
        }
        // A copy of a sharing cache holds every row itself.
        let mut copy = cache(16);
        copy.copy_prefix(&sample, 7);
        assert!(copy.shared.is_none());
        assert_eq!(copy.len(), 7);
        for p in 0..7 {
            assert_eq!(k_at(&copy, 0, p), p as f32);
            assert_eq!(copy.v[0][p * 4].to_f32(), -(p as f32));
        }
        // Truncating below the split shrinks what is read from the prompt.
        sample.truncate(3);
        fill(&mut sample, 3, 6);
        assert_eq!(sample.layer(0, 6).0.shared.len(), 3 * 4);
        // Sharing a sharing cache copies instead of chaining.
        let mut third = cache(16);
        third.share_prefix(&Arc::new(sample), 6);
        assert!(third.shared.is_none());
        assert_eq!(k_at(&third, 0, 2), 2.0);
        sample = cache(16);
        sample.share_prefix(&prompt, 5);
        sample.clear();
        assert!(sample.shared.is_none() && sample.is_empty());
    }

    #[test]
    fn zeroed_buffer_is_zero() {
        let v = super::zeroed_f16(1000);
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|x| x.to_bits() == 0));
    }
}

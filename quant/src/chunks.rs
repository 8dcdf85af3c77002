//! How the f32 training products deal their work to threads: `units` (row
//! or column blocks, each dequantized once per chunk) times token ranges,
//! claimed from a shared counter.
//!
//! Threads finish a product together only if the last chunks are small: a
//! thread that runs out of chunks waits for the others' last ones (measured
//! at 7-13% of a 2-thread training step's products with whole chunks). So
//! the last chunks, two per thread, are cut into [`TAIL_SPLIT`] token
//! ranges each; they dequantize their block again, a small cost next to
//! the product.

use crate::f32_tile::MT;

/// Token ranges that each of the last chunks is cut into.
const TAIL_SPLIT: usize = 4;

/// The chunks of one product, in the order threads claim them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunks {
    units: usize,
    n_tokens: usize,
    /// Tokens per whole chunk (a multiple of MT unless it is all of them).
    chunk_tokens: usize,
    /// Whole chunks before the tail.
    head: usize,
    /// Chunks of the tail, each [`TAIL_SPLIT`] items.
    tail: usize,
}

impl Chunks {
    /// `units` blocks times ranges of `chunk_tokens` tokens (a multiple of
    /// MT), for `threads` threads.
    pub(crate) fn new(units: usize, n_tokens: usize, chunk_tokens: usize, threads: usize) -> Self {
        let whole = units * n_tokens.div_ceil(chunk_tokens.max(1));
        // Only ranges of at least TAIL_SPLIT tiles are cut, and only where
        // there are more chunks than threads: one each (the output head's
        // input gradient, two halves of its columns on two threads) is
        // even as it is, and cutting would dequantize each block 4 times.
        let cuttable = threads > 1 && whole > threads && chunk_tokens >= TAIL_SPLIT * MT;
        let tail = if cuttable {
            (2 * threads).min(whole)
        } else {
            0
        };
        Chunks {
            units,
            n_tokens,
            chunk_tokens,
            head: whole - tail,
            tail,
        }
    }

    /// Number of items to claim.
    pub(crate) fn len(&self) -> usize {
        self.head + self.tail * TAIL_SPLIT
    }

    /// Item `i` as (unit, first token, end token); units vary fastest.
    pub(crate) fn get(&self, i: usize) -> (usize, usize, usize) {
        let whole = |c: usize| {
            let t0 = c / self.units * self.chunk_tokens;
            (
                c % self.units,
                t0,
                (t0 + self.chunk_tokens).min(self.n_tokens),
            )
        };
        if i < self.head {
            return whole(i);
        }
        let (c, part) = ((i - self.head) / TAIL_SPLIT, (i - self.head) % TAIL_SPLIT);
        let (unit, t0, t1) = whole(self.head + c);
        let step = (t1 - t0).div_ceil(TAIL_SPLIT).next_multiple_of(MT);
        let a = (t0 + part * step).min(t1);
        (unit, a, (a + step).min(t1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (unit, token) pair is in exactly one item.
    fn covers_once(c: &Chunks, units: usize, n_tokens: usize) {
        let mut seen = vec![0u8; units * n_tokens];
        for i in 0..c.len() {
            let (u, t0, t1) = c.get(i);
            assert!(u < units && t0 <= t1 && t1 <= n_tokens, "{c:?} item {i}");
            for t in t0..t1 {
                seen[u * n_tokens + t] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "{c:?}");
    }

    #[test]
    fn items_cover_every_pair_once() {
        for (units, n_tokens, chunk_tokens, threads) in [
            (18, 512, 512, 2),
            (6, 512, 258, 2),
            (1, 7, 12, 2),
            (3, 100, 24, 16),
            (48, 130, 66, 3),
            (5, 512, 512, 1),
        ] {
            covers_once(
                &Chunks::new(units, n_tokens, chunk_tokens, threads),
                units,
                n_tokens,
            );
        }
    }

    #[test]
    fn last_chunks_are_cut() {
        let c = Chunks::new(18, 512, 512, 2);
        assert_eq!(c.len(), 14 + 4 * 4);
        assert_eq!(c.get(13), (13, 0, 512));
        assert_eq!(c.get(14), (14, 0, 132));
        assert_eq!(c.get(29), (17, 396, 512));
        // One thread, or a chunk per thread: nothing to balance.
        assert_eq!(Chunks::new(18, 512, 512, 1).len(), 18);
        assert_eq!(Chunks::new(2, 128, 128, 2).len(), 2);
    }
}

//! Reading a prompt whose beginning is already in a KV cache, with the
//! numbers a fresh read gives: a fresh read cuts the prompt into chunks of
//! [`PROMPT_BATCH`] from position 0, and attention's numerics depend on a
//! call's length (f16 below [`TILED_MIN_TOKENS`] tokens, tiled f32 from
//! there). The server's slots and the rollouts' prompt caches both reuse
//! cached prefixes this way.

use crate::generate::PROMPT_BATCH;
use srl_models::layers::attention::decode::TILED_MIN_TOKENS;

/// Where the prompt chunk that starts at `fed` ends: chunks are cut at the
/// multiples of [`PROMPT_BATCH`], as a fresh read cuts them.
pub(crate) fn chunk_end(fed: usize, n: usize) -> usize {
    ((fed / PROMPT_BATCH + 1) * PROMPT_BATCH).min(n)
}

/// How many tokens of a cache holding `cached` (read as `tiled` says)
/// `prompt` can reuse with the numbers a fresh read of `prompt` would give
/// (what `srl generate` computes): a fresh read takes the prompt in chunks of
/// [`PROMPT_BATCH`] from position 0, so a cached token counts only if it was
/// read with its fresh chunk's numerics, and the rest of the chunk the reuse
/// ends in must still be long enough for the tiled numerics when the chunk
/// had them. At most `prompt.len() - 1`: the last token is always read, for
/// its logits.
pub(crate) fn reusable(cached: &[u32], tiled: &[bool], prompt: &[u32]) -> usize {
    let n = prompt.len();
    let chunk = |p: usize| {
        let start = p / PROMPT_BATCH * PROMPT_BATCH;
        (start, (start + PROMPT_BATCH).min(n))
    };
    let fresh_tiled = |p: usize| {
        let (start, end) = chunk(p);
        end - start >= TILED_MIN_TOKENS
    };
    let mut keep = cached
        .iter()
        .zip(tiled)
        .zip(prompt)
        .enumerate()
        .take_while(|&(p, ((c, &t), q))| c == q && t == fresh_tiled(p))
        .count()
        .min(n - 1);
    let (_, end) = chunk(keep);
    if fresh_tiled(keep) && end - keep < TILED_MIN_TOKENS {
        keep = end - TILED_MIN_TOKENS;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::{chunk_end, reusable, PROMPT_BATCH, TILED_MIN_TOKENS};

    #[test]
    fn cache_reuse_keeps_fresh_numerics() {
        let prompt: Vec<u32> = (0..40).collect();
        // Short prompts (one f16 chunk): any cached beginning read with f16
        // numerics, decoded tokens included, is reusable; the last token never.
        assert_eq!(reusable(&prompt[..30], &[false; 30], &prompt), 30);
        assert_eq!(reusable(&prompt, &[false; 40], &prompt), 39);
        assert_eq!(reusable(&[0, 1, 9], &[false; 3], &prompt), 2);
        assert_eq!(reusable(&prompt[..30], &[true; 30], &prompt), 0);
        // A 100-token prompt is one tiled chunk: cached tiled tokens count,
        // but at least 64 must be read again in one call.
        let long: Vec<u32> = (0..100).collect();
        assert_eq!(reusable(&long, &[true; 100], &long), 100 - TILED_MIN_TOKENS);
        assert_eq!(reusable(&long[..20], &[true; 20], &long), 20);
        // Decoded (f16) tokens inside a tiled chunk stop the reuse there.
        let mut t = vec![true; 30];
        t.extend([false; 10]);
        assert_eq!(reusable(&long[..40], &t, &long), 30);
        // Past the first chunk: reuse up to its end, or into a later chunk.
        let n = PROMPT_BATCH + 100;
        let big: Vec<u32> = (0..n as u32).collect();
        assert_eq!(reusable(&big, &vec![true; n], &big), n - TILED_MIN_TOKENS);
        assert_eq!(chunk_end(0, n), PROMPT_BATCH);
        assert_eq!(chunk_end(10, n), PROMPT_BATCH);
        assert_eq!(chunk_end(PROMPT_BATCH, n), n);
    }
}

//! Byte-level BPE merging of one pre-tokenized word, as llama.cpp's
//! llm_tokenizer_bpe_session: repeatedly merge the adjacent pair with the
//! lowest merge rank (leftmost first among equals) until no pair has a rank.

use super::vocab::Vocab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

/// An id that no merge mentions (a char that is neither a token nor part of a
/// merge).
const NO_ID: u32 = u32::MAX;

/// Cached words before the cache is cleared (bounds its memory).
const CACHE_LIMIT: usize = 1 << 16;

/// The merge table, keyed by the ids of the two halves.
///
/// llama.cpp merges strings, so a merge may produce a string that is not a
/// token (and merge it further); such strings get ids from `n_vocab` up, and a
/// word left holding one falls back to its single bytes, as llama.cpp does.
#[derive(Debug)]
pub(crate) struct Bpe {
    /// (left id, right id) -> (rank, id of the merged string)
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Strings in merges that are not tokens, numbered from the vocab size.
    extra: HashMap<String, u32>,
    n_vocab: u32,
    n_merges: usize,
    /// Look the whole word up before merging (llama.cpp's ignore_merges).
    ignore_merges: bool,
    /// Byte-encoded word -> its tokens.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

/// A mergeable pair in the queue: (rank, left index, right index, left id,
/// right id).
type Candidate = (u32, usize, usize, u32, u32);

#[derive(Clone, Copy, Debug)]
struct Symbol {
    /// Byte range of the symbol in the word.
    start: usize,
    len: usize,
    /// Token (or extra string) id of the symbol's text; NO_ID if unknown.
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Bpe {
    /// `merges` are "left right" strings in rank order (the first is rank 0).
    pub fn new(vocab: &Vocab, merges: &[String], ignore_merges: bool) -> Bpe {
        let mut bpe = Bpe {
            merges: HashMap::with_capacity(merges.len()),
            extra: HashMap::new(),
            n_vocab: vocab.len() as u32,
            n_merges: merges.len(),
            ignore_merges,
            cache: Mutex::new(HashMap::new()),
        };
        for (rank, m) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte.
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (left, right) = (&m[..pos], &m[pos + 1..]);
            let l = bpe.intern(vocab, left);
            let r = bpe.intern(vocab, right);
            let merged = bpe.intern(vocab, &format!("{left}{right}"));
            // The first (lowest) rank of a pair wins, as with std::map::emplace.
            bpe.merges.entry((l, r)).or_insert((rank as u32, merged));
        }
        bpe
    }

    pub fn n_merges(&self) -> usize {
        self.n_merges
    }

    fn intern(&mut self, vocab: &Vocab, s: &str) -> u32 {
        if let Some(id) = vocab.id(s) {
            return id;
        }
        let next = self.n_vocab + self.extra.len() as u32;
        *self.extra.entry(s.to_string()).or_insert(next)
    }

    fn lookup(&self, vocab: &Vocab, s: &str) -> u32 {
        vocab
            .id(s)
            .or_else(|| self.extra.get(s).copied())
            .unwrap_or(NO_ID)
    }

    /// Append the tokens of one byte-encoded word to `out`.
    pub fn encode_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(id) = vocab.id(word) {
                out.push(id);
                return;
            }
        }
        if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(word).cloned()) {
            out.extend_from_slice(&ids);
            return;
        }
        let start = out.len();
        self.merge_word(vocab, word, out);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(word.to_string(), out[start..].to_vec());
        }
    }

    fn merge_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let n_chars = word.chars().count();
        for (i, (start, c)) in word.char_indices().enumerate() {
            let len = c.len_utf8();
            symbols.push(Symbol {
                start,
                len,
                id: self.lookup(vocab, &word[start..start + len]),
                prev: i.checked_sub(1),
                next: (i + 1 < n_chars).then_some(i + 1),
            });
        }

        // Min-heap on (rank, left position); the ids let a stale entry be
        // recognised (llama.cpp compares the texts, which is equivalent).
        let mut queue: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        let add = |symbols: &[Symbol],
                   queue: &mut BinaryHeap<_>,
                   left: Option<usize>,
                   right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (a, b) = (symbols[l].id, symbols[r].id);
            if let Some(&(rank, _)) = self.merges.get(&(a, b)) {
                queue.push(Reverse((rank, l, r, a, b)));
            }
        };
        for i in 1..symbols.len() {
            add(&symbols, &mut queue, Some(i - 1), Some(i));
        }

        while let Some(Reverse((_, l, r, a, b))) = queue.pop() {
            let (ls, rs) = (symbols[l], symbols[r]);
            if ls.len == 0 || rs.len == 0 || ls.id != a || rs.id != b {
                continue; // outdated
            }
            let merged = self.merges[&(a, b)].1;
            symbols[l].len += rs.len;
            symbols[l].id = merged;
            symbols[l].next = rs.next;
            symbols[r].len = 0;
            if let Some(n) = rs.next {
                symbols[n].prev = Some(l);
            }
            add(&symbols, &mut queue, ls.prev, Some(l));
            add(&symbols, &mut queue, Some(l), rs.next);
        }

        for s in symbols.iter().filter(|s| s.len > 0) {
            if s.id < self.n_vocab {
                out.push(s.id);
                continue;
            }
            // Not a token: llama.cpp looks each single byte up; only ASCII
            // bytes can be (valid UTF-8) tokens.
            for &byte in &word.as_bytes()[s.start..s.start + s.len] {
                if byte.is_ascii() {
                    if let Some(id) = vocab.id(std::str::from_utf8(&[byte]).unwrap_or_default()) {
                        out.push(id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> Vocab {
        Vocab::new(tokens.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn merges_by_rank_leftmost_first() {
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc", "aa", "aaa"]);
        let merges: Vec<String> = ["b c", "a b", "a bc", "a a", "aa a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bpe = Bpe::new(&v, &merges, false);
        let enc = |w: &str| {
            let mut out = vec![];
            bpe.encode_word(&v, w, &mut out);
            out
        };
        // "b c" has the lowest rank, then "a bc".
        assert_eq!(enc("abc"), [5]);
        assert_eq!(enc("ab"), [3]);
        // Equal ranks: leftmost first: (aa)(a) -> aaa
        assert_eq!(enc("aaa"), [7]);
        assert_eq!(enc("aaaa"), [6, 6]);
        // Unknown non-ASCII chars are dropped, ASCII ones kept by byte.
        assert_eq!(enc("aé"), [0]);
    }

    #[test]
    fn non_token_merge_results_fall_back_to_bytes() {
        // "x y" merges to "xy", which is not a token.
        let v = vocab(&["x", "y", "z"]);
        let bpe = Bpe::new(&v, &["x y".to_string()], false);
        let mut out = vec![];
        bpe.encode_word(&v, "xyz", &mut out);
        assert_eq!(out, [0, 1, 2]);
    }
}

//! SentencePiece-style tokenization of a llama vocabulary
//! (`tokenizer.ggml.model = "llama"`), as llama.cpp's llm_tokenizer_spm:
//! start from single UTF-8 chars and repeatedly merge the adjacent pair whose
//! concatenation is the token with the highest score (leftmost first among
//! equals); chars that end up in no token are emitted as byte tokens <0xXX>.

use super::vocab::Vocab;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The SentencePiece whitespace mark "▁" (U+2581).
pub(crate) const SPACE_MARK: &str = "\u{2581}";

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Higher score first, then the leftmost (llama.cpp's comparator, where
    /// scores compare with `<`, so -0.0 and 0.0 tie).
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .partial_cmp(&o.score)
            .unwrap_or(Ordering::Equal)
            .then(o.left.cmp(&self.left))
    }
}

/// The token for one byte: "<0xXX>", else the byte itself as a token.
pub(crate) fn byte_token_table(vocab: &Vocab) -> Vec<Option<u32>> {
    (0..=255u8)
        .map(|b| {
            vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                if b.is_ascii() {
                    vocab.id(&char::from(b).to_string())
                } else {
                    None
                }
            })
        })
        .collect()
}

/// Append the tokens of `text` (already "▁"-escaped) to `out`. A byte with no
/// byte token becomes `unk` (llama.cpp throws there).
pub(crate) fn encode(
    vocab: &Vocab,
    scores: &[f32],
    byte_tokens: &[Option<u32>],
    unk: Option<u32>,
    text: &str,
    out: &mut Vec<u32>,
) {
    let n_chars = text.chars().count();
    let mut symbols: Vec<Symbol> = text
        .char_indices()
        .enumerate()
        .map(|(i, (start, c))| Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < n_chars).then_some(i + 1),
        })
        .collect();

    let mut queue = BinaryHeap::new();
    let try_add = |symbols: &[Symbol],
                   queue: &mut BinaryHeap<Bigram>,
                   left: Option<usize>,
                   right: Option<usize>| {
        let (Some(l), Some(r)) = (left, right) else {
            return;
        };
        let piece = &text[symbols[l].start..symbols[r].start + symbols[r].len];
        if let Some(id) = vocab.id(piece) {
            let score = scores.get(id as usize).copied().unwrap_or(0.0);
            queue.push(Bigram {
                left: l,
                right: r,
                score,
                size: piece.len(),
            });
        }
    };
    for i in 1..symbols.len() {
        try_add(&symbols, &mut queue, Some(i - 1), Some(i));
    }

    while let Some(b) = queue.pop() {
        let (ls, rs) = (symbols[b.left], symbols[b.right]);
        if ls.len == 0 || rs.len == 0 || ls.len + rs.len != b.size {
            continue;
        }
        symbols[b.left].len += rs.len;
        symbols[b.left].next = rs.next;
        symbols[b.right].len = 0;
        if let Some(n) = rs.next {
            symbols[n].prev = Some(b.left);
        }
        try_add(&symbols, &mut queue, ls.prev, Some(b.left));
        try_add(&symbols, &mut queue, Some(b.left), rs.next);
    }

    // Every merged symbol is a token; single chars may not be.
    let mut i = if symbols.is_empty() { None } else { Some(0) };
    while let Some(k) = i {
        let s = symbols[k];
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for &b in piece.as_bytes() {
                    if let Some(id) = byte_tokens[b as usize].or(unk) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let tokens = [
            "<unk>", "▁", "a", "b", "ab", "▁a", "▁ab", "<0xC3>", "<0xA9>",
        ];
        let scores = [0.0, -1.0, -1.0, -1.0, -2.0, -3.0, -0.5, 0.0, 0.0];
        let v = Vocab::new(tokens.iter().map(|s| s.to_string()).collect());
        let bytes = byte_token_table(&v);
        let enc = |t: &str| {
            let mut out = vec![];
            encode(&v, &scores, &bytes, Some(0), t, &mut out);
            out
        };
        // "ab" (-2) beats "▁a" (-3); then "▁"+"ab" = "▁ab".
        assert_eq!(enc("▁ab"), [6]);
        assert_eq!(enc("ba"), [3, 2]);
        // "é" is not a token: its UTF-8 bytes.
        assert_eq!(enc("aé"), [2, 7, 8]);
        // No byte token for 'z': unk.
        assert_eq!(enc("z"), [0]);
    }
}

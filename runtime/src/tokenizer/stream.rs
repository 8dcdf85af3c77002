//! Streaming detokenization: token pieces are bytes, and one character may be
//! split across tokens (byte tokens, or a byte-level BPE token ending inside a
//! multi-byte character). [`StreamDecoder`] holds back an incomplete UTF-8
//! sequence until the rest of it arrives, and emits only whole characters.

use super::Tokenizer;

/// Turns a stream of token ids (or piece bytes) into text, a whole character
/// at a time. Bytes that can never form a character become U+FFFD.
///
/// ```
/// use srl_runtime::tokenizer::StreamDecoder;
/// let mut d = StreamDecoder::new();
/// assert_eq!(d.push_bytes(b"caf\xC3"), "caf");
/// assert_eq!(d.push_bytes(b"\xA9!"), "\u{e9}!");
/// assert_eq!(d.push_bytes(b"\xE2\x82"), "");
/// assert_eq!(d.flush(), "\u{FFFD}");
/// ```
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Add one token's piece (`special`: render control tokens as text) and
    /// return the text that is now complete.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32, special: bool) -> String {
        let piece = tokenizer.token_to_piece(id, special);
        self.push_bytes(&piece)
    }

    /// Add raw bytes and return the text that is now complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix is valid UTF-8 by construction.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// End of stream: whatever is held back, lossily.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_whole_chars_only() {
        let mut d = StreamDecoder::new();
        let emoji = "😀".as_bytes();
        assert_eq!(d.push_bytes(&emoji[..1]), "");
        assert_eq!(d.push_bytes(&emoji[1..3]), "");
        assert_eq!(d.pending().len(), 3);
        assert_eq!(d.push_bytes(&emoji[3..]), "😀");
        assert_eq!(d.push_bytes(b"a\xFFb"), "a\u{FFFD}b");
        assert_eq!(d.flush(), "");
    }
}

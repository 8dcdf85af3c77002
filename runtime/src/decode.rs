//! One sequence's decoding, the same whoever drives it: [`crate::Session`]
//! (on either backend), the samples of a rollout group, a server slot. After
//! each new token it decides end-of-generation, assembles the tokens' bytes
//! into UTF-8 text, holds back text that could still become a stop string,
//! counts the token limit, keeps the history the repetition penalty reads,
//! and releases the held text at the end. The driver runs the forward pass,
//! draws the token (srl's [`Sampler`] through [`DecodeState::sample`], or
//! llama.cpp's sampler chain) and checks its own context.

use crate::generate::StopReason;
use crate::sampler::Sampler;
use crate::stop::StopMatcher;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A sequence being decoded.
pub struct DecodeState {
    stop: StopMatcher,
    utf8: StreamDecoder,
    /// The prompt, then every token recorded (the repetition penalty's window).
    history: Vec<u32>,
    generated: usize,
    max_tokens: usize,
    ignore_eog: bool,
    /// A stop string ended the text: nothing after it is released.
    stopped: bool,
}

/// A token recorded by [`DecodeState::accept`] or [`DecodeState::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The token's own text (complete characters so far).
    pub piece: String,
    /// The text released to the client now (held-back text excluded).
    pub text: String,
    /// What ends the sequence after this token, if anything: a stop string
    /// (its text and what follows are dropped) or the token limit. The
    /// driver still checks its context.
    pub end: Option<StopReason>,
}

impl DecodeState {
    /// A sequence after `prompt`, stopping before any of `stop`, after
    /// `max_tokens` tokens, and at an end-of-generation token unless
    /// `ignore_eog`.
    pub fn new(prompt: &[u32], stop: &[String], max_tokens: usize, ignore_eog: bool) -> Self {
        DecodeState {
            stop: StopMatcher::new(stop),
            utf8: StreamDecoder::new(),
            history: prompt.to_vec(),
            generated: 0,
            max_tokens,
            ignore_eog,
            stopped: false,
        }
    }

    /// Tokens recorded so far (sampled and forced).
    pub fn generated(&self) -> usize {
        self.generated
    }

    /// Whether the token limit is reached.
    pub fn at_limit(&self) -> bool {
        self.generated >= self.max_tokens
    }

    /// Draws the next token from `logits` with `sampler` over this
    /// sequence's history (not recorded yet: see [`DecodeState::accept`]).
    pub fn sample(&self, sampler: &mut Sampler, logits: &[f32]) -> u32 {
        sampler.sample(logits, &self.history)
    }

    /// A sampled token: `None` when it ends generation (an end-of-generation
    /// token, which is not recorded); else it is recorded.
    pub fn accept(&mut self, tokenizer: &Tokenizer, tok: u32) -> Option<Recorded> {
        if !self.ignore_eog && tokenizer.is_eog(tok) {
            return None;
        }
        Some(self.push(tokenizer, tok))
    }

    /// Records a token whatever it is (one the driver wrote for the model,
    /// such as a forced `</think>`).
    pub fn push(&mut self, tokenizer: &Tokenizer, tok: u32) -> Recorded {
        self.generated += 1;
        self.history.push(tok);
        let piece = self.utf8.push(tokenizer, tok, false);
        let (text, hit) = self.stop.push(&piece);
        self.stopped |= hit;
        let end = if hit {
            Some(StopReason::StopString)
        } else if self.at_limit() {
            Some(StopReason::MaxTokens)
        } else {
            None
        };
        Recorded { piece, text, end }
    }

    /// The text still held back (an unfinished character, a possible start
    /// of a stop string), released when the sequence ends; empty after a
    /// stop string.
    pub fn release(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let (rest, _) = self.stop.push(&self.utf8.flush());
        rest + &self.stop.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::testing::byte_tokenizer;

    fn ids(t: &Tokenizer, s: &str) -> Vec<u32> {
        t.encode(s, false, false)
    }

    #[test]
    fn stop_strings_are_held_back_and_dropped() {
        let t = byte_tokenizer();
        let mut d = DecodeState::new(&[], &["END".into()], 100, false);
        let mut out = String::new();
        let mut end = None;
        for tok in ids(&t, "ab ENx END tail") {
            let r = d.accept(&t, tok).unwrap();
            out += &r.text;
            if r.end.is_some() {
                end = r.end;
                break;
            }
        }
        assert_eq!(end, Some(StopReason::StopString));
        assert_eq!(out, "ab ENx ");
        assert_eq!(d.release(), "");
    }

    #[test]
    fn limit_and_release_of_held_text() {
        let t = byte_tokenizer();
        let mut d = DecodeState::new(&[7], &["xyz".into()], 3, false);
        let toks = ids(&t, "abx");
        let mut out = String::new();
        for (i, &tok) in toks.iter().enumerate() {
            let r = d.accept(&t, tok).unwrap();
            out += &r.text;
            let want = (i == 2).then_some(StopReason::MaxTokens);
            assert_eq!(r.end, want);
        }
        // "x" could still start "xyz": held until the end.
        assert_eq!(out, "ab");
        assert_eq!(d.release(), "x");
        assert_eq!(d.history, [&[7], &toks[..]].concat());
        assert!(d.at_limit());
    }

    #[test]
    fn end_of_generation_is_not_recorded_unless_ignored() {
        let t = byte_tokenizer();
        let eog = (0..t.vocab_size() as u32).find(|&i| t.is_eog(i)).unwrap();
        let mut d = DecodeState::new(&[], &[], 10, false);
        assert_eq!(d.accept(&t, eog), None);
        assert_eq!(d.generated(), 0);
        let mut d = DecodeState::new(&[], &[], 10, true);
        assert!(d.accept(&t, eog).is_some());
        assert_eq!(d.generated(), 1);
    }
}

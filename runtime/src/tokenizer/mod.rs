//! Tokenizers whose ids equal llama.cpp's on the same text.
//!
//! Two kinds, as llama.cpp's llama_vocab:
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`): text is split into
//!   words by the pre-tokenizer that `tokenizer.ggml.pre` names
//!   ([`pretokenize`]), each word is byte-encoded (GPT-2's byte -> unicode
//!   table) and merged by rank ([`bpe`]);
//! - SentencePiece-style llama (`"llama"`): spaces become "▁", a space is
//!   prefixed, and chars merge by score with byte fallback ([`spm`]).
//!
//! Before either, special-token texts in the input are cut out as single
//! tokens ([`special`]). Loading: [`Tokenizer::from_gguf`] (GGUF metadata),
//! [`Tokenizer::from_hf_dir`] (tokenizer.json), or [`Tokenizer::from_spec`].
//! Decoding: [`Tokenizer::token_to_piece`] gives a token's bytes;
//! [`StreamDecoder`] turns pieces into text a whole character at a time.

mod bpe;
mod gguf;
mod hf_json;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod unicode;
mod vocab;

pub use special::TokenAttr;
pub use stream::StreamDecoder;

use special::Fragment;
use std::collections::BTreeSet;
use std::path::PathBuf;
use vocab::Vocab;

/// Everything a tokenizer is built from: the GGUF `tokenizer.ggml.*` keys,
/// one field per key. None means the key is absent (llama.cpp's defaults then
/// apply, see [`Tokenizer::from_spec`]).
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec {
    /// "gpt2" (byte-level BPE) or "llama" (SentencePiece-style).
    pub model: String,
    /// Pre-tokenizer name for BPE (`tokenizer.ggml.pre`), e.g. "smollm".
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub scores: Option<Vec<f32>>,
    /// GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte.
    pub token_types: Option<Vec<i32>>,
    /// BPE merges, "left right", in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// Ids whose special text swallows the whitespace before it (HF lstrip).
    pub lstrip: Vec<u32>,
    /// Ids whose special text swallows the whitespace after it (HF rstrip).
    pub rstrip: Vec<u32>,
    /// `general.name`: llama.cpp sets rstrip on Phi-3's special tokens by it.
    pub model_name: Option<String>,
    /// Pre-tokenizer regexes to use instead of those `pre` names (a
    /// tokenizer.json whose pre-tokenizer matches no llama.cpp type).
    pub pre_regexes: Option<Vec<String>>,
    /// Look a whole word up before merging; default per `pre`.
    pub ignore_merges: Option<bool>,
}

#[derive(thiserror::Error, Debug)]
pub enum TokenizerError {
    #[error("the model has no tokenizer: metadata key `{key}` is missing")]
    MissingKey { key: &'static str },
    #[error("metadata key `{key}` has the wrong type (expected {expected})")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("unknown tokenizer model '{0}' (tokenizer.ggml.model); supported: gpt2 (byte-level BPE), llama (SentencePiece)")]
    UnknownModel(String),
    #[error("unknown pre-tokenizer '{name}' (tokenizer.ggml.pre); supported: {known}")]
    UnknownPre { name: String, known: String },
    #[error("`{key}` has {got} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        key: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("the vocabulary is empty (tokenizer.ggml.tokens has no entries)")]
    EmptyVocab,
    #[error("pre-tokenizer regex does not compile: {message}\n  regex: {pattern}")]
    Regex { pattern: String, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    HfFormat { path: PathBuf, message: String },
}

/// The merging algorithm.
#[derive(Debug)]
enum Kind {
    Bpe {
        pre_name: String,
        pre: pretokenize::PreTokenizer,
        bpe: bpe::Bpe,
    },
    Spm {
        byte_tokens: Vec<Option<u32>>,
    },
}

/// A loaded tokenizer. Cheap to share across threads (`&Tokenizer` is Sync).
#[derive(Debug)]
pub struct Tokenizer {
    kind: Kind,
    vocab: Vocab,
    scores: Vec<f32>,
    attrs: Vec<TokenAttr>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// llama.cpp's clean_spaces: tidy " ." etc. when decoding.
    clean_spaces: bool,
    eog: BTreeSet<u32>,
    /// Special tokens in the order they are matched in text.
    special_order: Vec<u32>,
    /// Every token's piece with special=true (llama.cpp's cache_token_to_piece).
    pieces: Vec<Vec<u8>>,
}

/// Which special-token ids to assume when the spec gives none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defaults {
    /// llama.cpp's (e.g. bos=1, eos=2, unk=0 for llama; 11 for gpt2).
    LlamaCpp,
    /// None: the ids come from tokenizer_config.json or nowhere.
    Nothing,
}

impl Tokenizer {
    /// Build from a spec, applying llama.cpp's defaults for what it leaves
    /// out: for "llama", bos=1 eos=2 unk=0, add_bos and add_space_prefix on;
    /// for "gpt2", bos=eos=11, and add_bos/clean-up per pre-tokenizer; a
    /// missing pre-tokenizer is "default". An id beyond the vocabulary is
    /// ignored, as llama.cpp does.
    pub fn from_spec(spec: TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        Self::build(spec, Defaults::LlamaCpp)
    }

    /// Load from GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &srl_models::formats::gguf::GgufFile) -> Result<Tokenizer, TokenizerError> {
        Self::from_spec(gguf::spec_from_gguf(g)?)
    }

    /// Load from a Hugging Face folder: tokenizer.json, plus
    /// tokenizer_config.json for bos/eos and add_bos/add_eos when present.
    pub fn from_hf_dir(dir: &std::path::Path) -> Result<Tokenizer, TokenizerError> {
        Self::build(hf_json::spec_from_hf_dir(dir)?, Defaults::Nothing)
    }

    fn build(spec: TokenizerSpec, defaults: Defaults) -> Result<Tokenizer, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        let is_bpe = match spec.model.as_str() {
            "gpt2" => true,
            "llama" => false,
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };
        let scores = match spec.scores {
            Some(s) if s.len() < n => {
                return Err(TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.scores",
                    expected: n,
                    got: s.len(),
                })
            }
            Some(mut s) => {
                s.truncate(n);
                s
            }
            None => vec![0.0; n],
        };
        let mut attrs: Vec<TokenAttr> = match &spec.token_types {
            Some(t) if t.len() < n => {
                return Err(TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.token_type",
                    expected: n,
                    got: t.len(),
                })
            }
            Some(t) => t[..n]
                .iter()
                .map(|&t| TokenAttr::from_token_type(t))
                .collect(),
            None => vec![TokenAttr(TokenAttr::NORMAL); n],
        };
        let vocab = Vocab::new(spec.tokens);

        // llama.cpp's per-type defaults, then what the metadata says.
        let pre_cfg = if is_bpe {
            let name = spec
                .pre
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("default");
            let mut cfg = match (pretokenize::pre_config(name), &spec.pre_regexes) {
                (Some(cfg), _) => cfg,
                (None, Some(_)) => pretokenize::PreConfig::custom(),
                (None, None) => {
                    return Err(TokenizerError::UnknownPre {
                        name: name.to_string(),
                        known: pretokenize::known_pre_names().join(", "),
                    })
                }
            };
            cfg.ignore_merges = spec.ignore_merges.unwrap_or(cfg.ignore_merges);
            Some((name.to_string(), cfg))
        } else {
            None
        };
        let (mut bos, mut eos, mut unk) = match (defaults, is_bpe) {
            (Defaults::Nothing, _) => (None, None, None),
            (Defaults::LlamaCpp, true) => (Some(11), Some(11), None),
            (Defaults::LlamaCpp, false) => (Some(1), Some(2), Some(0)),
        };
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        bos = in_range(bos);
        eos = in_range(eos);
        unk = in_range(unk);
        bos = in_range(spec.bos).or(bos);
        eos = in_range(spec.eos).or(eos);
        unk = in_range(spec.unk).or(unk);
        let (eot, eom, pad) = (in_range(spec.eot), in_range(spec.eom), in_range(spec.pad));
        let (mut add_bos, clean_spaces, mut add_space_prefix) = match &pre_cfg {
            Some((_, cfg)) => (cfg.add_bos, cfg.clean_spaces, false),
            None => (true, false, true),
        };
        add_space_prefix = spec.add_space_prefix.unwrap_or(add_space_prefix);
        add_bos = spec.add_bos.unwrap_or(add_bos);
        let add_eos = spec.add_eos.unwrap_or(false);

        let specials = special::detect(&vocab, &mut attrs, eos, eot, eom);
        let special_order = special::special_token_order(&vocab, &attrs);

        let kind = match pre_cfg {
            Some((pre_name, cfg)) => {
                let regexes: Vec<String> = match spec.pre_regexes {
                    Some(r) => r,
                    None => cfg.regexes.iter().map(|s| s.to_string()).collect(),
                };
                Kind::Bpe {
                    pre_name,
                    pre: pretokenize::PreTokenizer::new(&regexes)?,
                    bpe: bpe::Bpe::new(&vocab, &spec.merges, cfg.ignore_merges),
                }
            }
            None => Kind::Spm {
                byte_tokens: spm::byte_token_table(&vocab),
            },
        };

        let mut tok = Tokenizer {
            kind,
            vocab,
            scores,
            attrs,
            bos,
            eos,
            eot: specials.eot,
            eom: specials.eom,
            unk,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            eog: specials.eog,
            special_order,
            pieces: Vec::new(),
        };
        tok.pieces = (0..n as u32).map(|id| tok.piece_uncached(id)).collect();

        // Per-token strip attributes (after the piece cache, as llama.cpp).
        let is_phi3 = spec
            .model_name
            .as_deref()
            .map(str::to_lowercase)
            .is_some_and(|m| m.contains("phi-3") || m.contains("phi3"));
        if is_phi3 {
            for &id in &tok.special_order {
                tok.attrs[id as usize].0 |= TokenAttr::RSTRIP;
            }
            if let Some(id) = tok.vocab.id("</s>") {
                tok.attrs[id as usize].0 |= TokenAttr::RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = tok.vocab.id(t) {
                    tok.attrs[id as usize].0 &= !TokenAttr::RSTRIP;
                }
            }
        }
        for &id in spec.lstrip.iter().filter(|&&i| (i as usize) < n) {
            tok.attrs[id as usize].0 |= TokenAttr::LSTRIP;
        }
        for &id in spec.rstrip.iter().filter(|&&i| (i as usize) < n) {
            tok.attrs[id as usize].0 |= TokenAttr::RSTRIP;
        }
        Ok(tok)
    }

    /// Token ids of `text`, exactly as llama_tokenize(text, add_special,
    /// parse_special): with `add_special`, BOS/EOS as the vocabulary asks;
    /// with `parse_special`, control-token texts in `text` become those
    /// tokens (user-defined token texts always do).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = special::partition(
            text,
            &self.special_order,
            &self.vocab,
            &self.attrs,
            parse_special,
        );
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.kind {
            Kind::Bpe { pre, bpe, .. } => {
                let mut encoded = String::new();
                for f in frags {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            for word in pre.split(t) {
                                unicode::byte_encode(word, &mut encoded);
                                bpe.encode_word(&self.vocab, &encoded, &mut out);
                            }
                        }
                    }
                }
            }
            Kind::Spm { byte_tokens } => {
                // A space is prefixed to text at the start and after a special token.
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            let escaped = s.replace(' ', spm::SPACE_MARK);
                            spm::encode(
                                &self.vocab,
                                &self.scores,
                                byte_tokens,
                                self.unk,
                                &escaped,
                                &mut out,
                            );
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// The bytes of one token, as llama_token_to_piece(id, lstrip=0, special):
    /// control and unknown tokens are empty unless `special`; byte tokens are
    /// their byte; byte-level BPE tokens map back through GPT-2's table; SPM
    /// "▁" is a space. Empty for an id out of range.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(attr) = self.attrs.get(id as usize) else {
            return Vec::new();
        };
        if !special && attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL) {
            return Vec::new();
        }
        self.pieces[id as usize].clone()
    }

    fn piece_uncached(&self, id: u32) -> Vec<u8> {
        let attr = self.attrs[id as usize];
        let text = self.vocab.text(id);
        if attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL | TokenAttr::USER_DEFINED) {
            return text.as_bytes().to_vec();
        }
        if attr.is_normal() {
            return match self.kind {
                Kind::Spm { .. } => text.replace(spm::SPACE_MARK, " ").into_bytes(),
                Kind::Bpe { .. } => byte_decode(text),
            };
        }
        if attr.is_byte() {
            // "<0xXX>"
            return text
                .get(3..5)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|b| vec![b])
                .unwrap_or_default();
        }
        Vec::new()
    }

    /// Text of `ids` (invalid UTF-8 replaced), as llama.cpp's
    /// common_detokenize(ids, special): pieces joined, the SPM prefix space of
    /// the first token dropped, and for vocabularies that ask for it the
    /// clean-up of " ." " ," " 's" etc.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut remove_space = self.add_space_prefix;
        for &id in ids {
            let piece = self.token_to_piece(id, special);
            let p: &[u8] = if remove_space && piece.first() == Some(&b' ') {
                &piece[1..]
            } else {
                &piece
            };
            bytes.extend_from_slice(p);
            remove_space = false;
        }
        if self.clean_spaces {
            clean_up_spaces(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The token's text as stored in the vocabulary (byte-level BPE tokens are
    /// in GPT-2's encoding, SPM ones use "▁"); "" for an id out of range.
    pub fn token_text(&self, id: u32) -> &str {
        self.vocab.text(id)
    }

    /// The id of a token by its vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    /// The token's attributes (control, user-defined, byte, ...).
    pub fn token_attr(&self, id: u32) -> TokenAttr {
        self.attrs.get(id as usize).copied().unwrap_or_default()
    }

    /// The token's SentencePiece score (0 where the vocabulary has none).
    pub fn token_score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// End of turn: from metadata, else the first of llama.cpp's EOT texts
    /// (<|eot_id|>, <|im_end|>, ...) the vocabulary has.
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    pub fn eom(&self) -> Option<u32> {
        self.eom
    }
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `id` ends generation: eos, eot, eom, the FIM pad/repo/sep
    /// tokens and the texts llama.cpp always treats so (<|im_end|>,
    /// <|endoftext|>, <|eot_id|>, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The end-of-generation set, ascending.
    pub fn eog_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// "gpt2" or "llama".
    pub fn model(&self) -> &str {
        match self.kind {
            Kind::Bpe { .. } => "gpt2",
            Kind::Spm { .. } => "llama",
        }
    }

    /// The BPE pre-tokenizer's name, None for SPM.
    pub fn pre(&self) -> Option<&str> {
        match &self.kind {
            Kind::Bpe { pre_name, .. } => Some(pre_name),
            Kind::Spm { .. } => None,
        }
    }

    /// One line for `srl info`, e.g.
    /// "byte-level BPE (pre: smollm), 49152 tokens, 48900 merges".
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Bpe { pre_name, bpe, .. } => format!(
                "byte-level BPE (pre: {pre_name}), {} tokens, {} merges",
                self.vocab.len(),
                bpe.n_merges()
            ),
            Kind::Spm { .. } => format!("SentencePiece (llama), {} tokens", self.vocab.len()),
        }
    }
}

/// GPT-2 byte decoding of a token's text; a char outside the table becomes
/// "[UNK_BYTE_0x<hex>" + text + "]", as llama.cpp's llama_decode_text.
fn byte_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match unicode::char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// llama.cpp's clean_spaces passes over detokenized bytes, in place and with
/// its exact quirks: drop the space before ? ! . , ; turn " ' " into "'";
/// join " 's", " 'm", " 're", " 've".
fn clean_up_spaces(text: &mut Vec<u8>) {
    // first pass: " ?", " !", " .", " ,"
    let total1 = text.len();
    let mut total = usize::from(total1 > 0);
    for i in 1..total1 {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    // second pass: a single apostrophe between spaces
    let total2 = total;
    total = usize::from(total2 > 0);
    let mut i = 1;
    while i < total2 {
        let x = text[i];
        if x == b'\'' && i + 1 < total2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    // third pass: contractions " 's", " 'm", " 're", " 've"
    let total3 = total;
    total = usize::from(total3 > 0);
    for i in 1..total3 {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = text[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if i + 2 < total3 {
                let x2 = text[i + 2];
                if matches!((x1, x2), (b'r', b'e') | (b'v', b'e')) {
                    total -= 1;
                }
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

#[cfg(test)]
mod tests;

/// Tokenizers for the unit tests of the modules that decode text.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Byte-level BPE over the 256 bytes alone, with an end-of-text control
    /// token: each character of ASCII text is one token.
    pub fn byte_tokenizer() -> Tokenizer {
        let mut tokens: Vec<String> = (0..=255u8)
            .map(|b| unicode::byte_to_char(b).to_string())
            .collect();
        tokens.push("<|endoftext|>".into());
        let mut types = vec![1; tokens.len()];
        types[256] = 3;
        Tokenizer::from_spec(TokenizerSpec {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens,
            token_types: Some(types),
            eos: Some(256),
            ..TokenizerSpec::default()
        })
        .expect("a valid vocabulary")
    }
}

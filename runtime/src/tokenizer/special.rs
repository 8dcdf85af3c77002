//! Token attributes and special tokens, as llama.cpp's llama_vocab builds
//! them: attributes from `tokenizer.ggml.token_type`, the end-of-generation
//! set and the EOT/EOM/FIM tokens found by their text, and the partition of
//! input text around special-token texts (`tokenizer_st_partition`).

use super::vocab::Vocab;
use std::collections::BTreeSet;

/// A token's attributes: llama.cpp's `llama_token_attr` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenAttr(pub u32);

impl TokenAttr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const NORMALIZED: u32 = 1 << 6;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
    pub const SINGLE_WORD: u32 = 1 << 9;

    /// From a GGUF token type (0 undefined, 1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte).
    pub fn from_token_type(t: i32) -> TokenAttr {
        TokenAttr(match t {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        })
    }

    /// Whether any of `bits` is set.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }
    pub fn is_control(self) -> bool {
        self.has(Self::CONTROL)
    }
    pub fn is_user_defined(self) -> bool {
        self.has(Self::USER_DEFINED)
    }
    pub fn is_byte(self) -> bool {
        self.has(Self::BYTE)
    }
    pub fn is_unknown(self) -> bool {
        self.has(Self::UNKNOWN)
    }
    pub fn is_unused(self) -> bool {
        self.has(Self::UNUSED)
    }
    pub fn is_normal(self) -> bool {
        self.has(Self::NORMAL)
    }
    fn set(&mut self, bits: u32, on: bool) {
        if on {
            self.0 |= bits;
        } else {
            self.0 &= !bits;
        }
    }
}

/// Texts llama.cpp takes for EOT when the metadata names none.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const FIM_OTHER_TEXTS: &[&[&str]] = &[
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
];
/// Texts whose tokens always end generation.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The special-token facts llama.cpp derives from the vocabulary.
#[derive(Debug, Default)]
pub(crate) struct Specials {
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub eog: BTreeSet<u32>,
}

/// Find a token by one of `texts`, mark it control, and return it.
///
/// llama.cpp walks its hash map and takes the first text it meets, so which of
/// several candidates wins depends on hash order there; we take the first in
/// `texts` order.
fn find_by_text(vocab: &Vocab, attrs: &mut [TokenAttr], texts: &[&str]) -> Option<u32> {
    let id = texts.iter().find_map(|t| vocab.id(t))?;
    attrs[id as usize].set(TokenAttr::CONTROL, true);
    Some(id)
}

/// Fill in EOT/EOM, the end-of-generation set, and adjust attributes, as
/// llama_vocab::impl::load does after reading the ids from metadata.
pub(crate) fn detect(
    vocab: &Vocab,
    attrs: &mut [TokenAttr],
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
) -> Specials {
    let eot = eot.or_else(|| find_by_text(vocab, attrs, EOT_TEXTS));
    let eom = eom.or_else(|| find_by_text(vocab, attrs, EOM_TEXTS));
    let fim_pad = find_by_text(vocab, attrs, FIM_PAD_TEXTS);
    let fim_rep = find_by_text(vocab, attrs, FIM_REP_TEXTS);
    let fim_sep = find_by_text(vocab, attrs, FIM_SEP_TEXTS);
    for texts in FIM_OTHER_TEXTS {
        find_by_text(vocab, attrs, texts);
    }

    // Control tokens named "unused..." are unused.
    for (text, id) in vocab.iter() {
        let a = &mut attrs[id as usize];
        if a.is_control() && text.contains("unused") {
            a.set(TokenAttr::UNUSED, true);
        }
    }

    let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    for t in EOG_TEXTS {
        if let Some(id) = vocab.id(t) {
            eog.insert(id);
            attrs[id as usize].set(TokenAttr::CONTROL, true);
        }
    }
    // gpt-oss: these are always rendered.
    for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(id) = vocab.id(t) {
            attrs[id as usize] = TokenAttr(TokenAttr::USER_DEFINED);
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());

    // o200k_harmony / solar-open: "<|end|>" does not end generation there.
    let in_eog = |eog: &BTreeSet<u32>, t: &str| vocab.id(t).is_some_and(|id| eog.contains(&id));
    if let Some(end) = vocab.id("<|end|>").filter(|id| eog.contains(id)) {
        let has_call = in_eog(&eog, "<|call|>") || in_eog(&eog, "<|calls|>");
        if has_call && (in_eog(&eog, "<|return|>") || in_eog(&eog, "<|flush|>")) {
            eog.remove(&end);
            attrs[end as usize] = TokenAttr(TokenAttr::USER_DEFINED);
        }
    }
    // gemma4 / plamo: "</s>" is a normal token there.
    if let Some(s) = vocab.id("</s>").filter(|id| eog.contains(id)) {
        if in_eog(&eog, "<|tool_response>") || in_eog(&eog, "<|plamo:eos|>") {
            eog.remove(&s);
            attrs[s as usize] = TokenAttr(TokenAttr::NORMAL);
        }
    }
    Specials { eot, eom, eog }
}

/// Ids of the tokens that are matched in text before tokenizing (control,
/// user-defined and unknown), longest text first.
pub(crate) fn special_token_order(vocab: &Vocab, attrs: &[TokenAttr]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..vocab.len() as u32)
        .filter(|&id| {
            attrs[id as usize]
                .has(TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
        })
        .collect();
    // llama.cpp's sort is not stable; ties (same length) keep id order here.
    ids.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));
    ids
}

/// A piece of input: raw text to tokenize, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// C's isspace in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Split `text` around the texts of special tokens, longest first
/// (llama.cpp's tokenizer_st_partition). Without `parse_special`, control and
/// unknown tokens stay text; user-defined tokens are matched regardless.
pub(crate) fn partition<'a>(
    text: &'a str,
    order: &[u32],
    vocab: &Vocab,
    attrs: &[TokenAttr],
    parse_special: bool,
) -> Vec<Fragment<'a>> {
    let mut frags = vec![Fragment::Text(text)];
    if text.is_empty() {
        return vec![];
    }
    for &id in order {
        let attr = attrs[id as usize];
        if !parse_special && attr.has(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            continue;
        }
        let needle = vocab.text(id);
        if !frags
            .iter()
            .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
        {
            continue;
        }
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            let Fragment::Text(mut rest) = f else {
                next.push(f);
                continue;
            };
            while let Some(pos) = rest.find(needle) {
                let mut left = &rest[..pos];
                if attr.has(TokenAttr::LSTRIP) {
                    left = left.trim_end_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
                if !left.is_empty() {
                    next.push(Fragment::Text(left));
                }
                next.push(Fragment::Token(id));
                rest = &rest[pos + needle.len()..];
                if attr.has(TokenAttr::RSTRIP) {
                    rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                }
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        frags = next;
    }
    frags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(tokens: &[&str], types: &[i32]) -> (Vocab, Vec<TokenAttr>) {
        let v = Vocab::new(tokens.iter().map(|s| s.to_string()).collect());
        let attrs = types
            .iter()
            .map(|&t| TokenAttr::from_token_type(t))
            .collect();
        (v, attrs)
    }

    #[test]
    fn partition_longest_first_and_user_defined_always() {
        let (v, attrs) = setup(&["a", "<s>", "<s>x", "<u>"], &[1, 3, 3, 4]);
        let order = special_token_order(&v, &attrs);
        assert_eq!(order, [2, 1, 3]);
        use Fragment::*;
        assert_eq!(
            partition("1<s>x2<s>3<u>", &order, &v, &attrs, true),
            [
                Text("1"),
                Token(2),
                Text("2"),
                Token(1),
                Text("3"),
                Token(3)
            ]
        );
        assert_eq!(
            partition("1<s>x<u>", &order, &v, &attrs, false),
            [Text("1<s>x"), Token(3)]
        );
    }

    #[test]
    fn partition_strips_where_asked() {
        let (v, mut attrs) = setup(&["a", "<m>"], &[1, 3]);
        attrs[1].set(TokenAttr::LSTRIP | TokenAttr::RSTRIP, true);
        let order = special_token_order(&v, &attrs);
        use Fragment::*;
        assert_eq!(
            partition("x \t<m>\n y", &order, &v, &attrs, true),
            [Text("x"), Token(1), Text("y")]
        );
        assert_eq!(partition(" <m> ", &order, &v, &attrs, true), [Token(1)]);
    }

    #[test]
    fn eog_set_like_llama_cpp() {
        let (v, mut attrs) = setup(
            &[
                "<|endoftext|>",
                "<|im_start|>",
                "<|im_end|>",
                "<reponame>",
                "x",
            ],
            &[3, 3, 3, 3, 1],
        );
        let s = detect(&v, &mut attrs, Some(2), None, None);
        assert_eq!(s.eot, Some(2));
        assert_eq!(s.eog.iter().copied().collect::<Vec<_>>(), [0, 2, 3]);
    }
}

//! Pre-tokenization of byte-level BPE: split text into words before merging,
//! as llama.cpp's `unicode_regex_split` does for the `tokenizer.ggml.pre` type.
//!
//! A pre-tokenizer is a list of regexes applied in turn; each one splits every
//! piece the previous ones produced, keeping both its matches and the text
//! between them. llama.cpp runs the common regexes (GPT-2, Llama-3, Qwen2,
//! "newlines") through hand-written splitters, reproduced here, and the others
//! through std::regex on a "collapsed" copy of the text where each non-ASCII
//! code point is replaced by one byte naming its category (\p{L} -> 0xD2, ...).
//! The generic path here does the same collapse and runs fancy-regex on it, so
//! a category means exactly what it means to llama.cpp.

use super::unicode::{cpt_flags, CptFlags};
use super::TokenizerError;
use srl_models::formats::hf_pre_tokenizer::SPLIT_LLAMA3;

/// GPT-2's regex; llama.cpp runs it through its custom splitter.
pub(crate) const RE_GPT2: &str =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
/// Llama-3's regex as llama.cpp adapts it (no `(?i:)`), custom splitter.
pub(crate) const RE_LLAMA3: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/// Qwen2's regex as llama.cpp adapts it, custom splitter.
pub(crate) const RE_QWEN2: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/// Qwen3.5's regex as llama.cpp adapts it, custom splitter.
pub(crate) const RE_QWEN35: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/// Runs of non-newlines and runs of newlines, custom splitter.
const RE_NEWLINES: &str = "[^\\n]+|[\\n]+";
/// Every digit on its own (SmolLM, StarCoder: HF's `Digits(individual_digits)`).
pub(crate) const RE_DIGIT: &str = "\\p{N}";

const RE_DEFAULT: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    RE_GPT2,
    "\\p{N}+",
    "[0-9][0-9][0-9]",
];
const RE_DEEPSEEK_LLM: &[&str] = &[
    "[\r\n]",
    "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+",
    "\\s?[!-/:-~\u{ff01}-\u{ff0f}\u{ff1a}-\u{ff5e}\u{2018}-\u{201f}\u{3000}-\u{3002}]+",
    "\\s+$",
    "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+",
    "\\p{N}+",
];
const RE_DEEPSEEK_CODER: &[&str] = &[
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+",
    "\\p{N}",
];
const RE_DEEPSEEK3: &[&str] = &[
    "\\p{N}{1,3}",
    "[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];
const RE_FALCON: &[&str] = &["[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"];
const RE_PORO: &str = " ?[^(\\s|.,!?\u{2026}\u{3002}\u{ff0c}\u{3001}\u{964}\u{6d4}\u{60c})]+";
const RE_TEKKEN: &str = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RE_GPT4O: &str = "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RE_SEED_CODER: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RE_BAILINGMOE: &str = "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
const RE_MINICPM5: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// What a `tokenizer.ggml.pre` name means to llama.cpp: its regexes and the
/// vocabulary flags it sets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    pub regexes: &'static [&'static str],
    /// llama.cpp's `clean_spaces` (clean_up_tokenization_spaces) for decoding.
    pub clean_spaces: bool,
    /// Look a whole word up in the vocabulary before merging (Llama-3).
    pub ignore_merges: bool,
    /// Default for add_bos when the GGUF does not say.
    pub add_bos: bool,
}

impl PreConfig {
    /// For regexes that no llama.cpp type has (from a tokenizer.json).
    pub fn custom() -> PreConfig {
        pre(&[], false)
    }
}

const fn pre(regexes: &'static [&'static str], clean_spaces: bool) -> PreConfig {
    PreConfig {
        regexes,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
    }
}

/// One row per group of names that llama.cpp treats alike.
const PRE_TABLE: &[(&[&str], PreConfig)] = &[
    (&["default"], pre(RE_DEFAULT, true)),
    (
        &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
        ],
        PreConfig {
            regexes: &[RE_LLAMA3],
            clean_spaces: true,
            ignore_merges: true,
            add_bos: true,
        },
    ),
    (&["dbrx", "smaug-bpe"], pre(&[RE_LLAMA3], true)),
    (&["deepseek-llm"], pre(RE_DEEPSEEK_LLM, false)),
    (&["deepseek-coder"], pre(RE_DEEPSEEK_CODER, false)),
    (
        &["deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"],
        pre(RE_DEEPSEEK3, false),
    ),
    (&["falcon"], pre(RE_FALCON, true)),
    (
        &[
            "gpt-2",
            "gpt2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "jina-v1-en",
            "jina-v2-code",
            "roberta-bpe",
            "mpt",
            "olmo",
            "jais",
            "exaone4",
        ],
        pre(&[RE_GPT2], true),
    ),
    (&["trillion", "granite-docling"], pre(&[RE_GPT2], false)),
    (
        &[
            "starcoder",
            "refact",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        pre(&[RE_DIGIT, RE_GPT2], true),
    ),
    (&["smollm", "command-r"], pre(&[RE_DIGIT, RE_GPT2], false)),
    (
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "kormo",
            "f2llmv2",
            "hunyuan",
            "solar-open",
            "grok-2",
        ],
        pre(&[RE_QWEN2], false),
    ),
    (&["megrez", "stablelm2"], pre(&[RE_QWEN2], true)),
    (&["qwen35"], pre(&[RE_QWEN35], false)),
    (&["laguna"], pre(&[RE_NEWLINES, RE_QWEN2], false)),
    (&["poro-chat"], pre(&[RE_PORO], false)),
    (&["bloom", "gpt3-finnish"], pre(&[RE_PORO], true)),
    (&["viking"], pre(&[RE_PORO, RE_DIGIT], false)),
    (
        &["tekken"],
        PreConfig {
            regexes: &[RE_TEKKEN],
            clean_spaces: false,
            ignore_merges: true,
            add_bos: false,
        },
    ),
    (
        &["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"],
        pre(&[RE_GPT4O], false),
    ),
    (&["seed-coder"], pre(&[RE_SEED_CODER], false)),
    (
        &["bailingmoe", "bailingmoe2", "llada-moe"],
        pre(&[RE_BAILINGMOE], false),
    ),
    (
        &["minicpm5"],
        PreConfig {
            regexes: &["\\p{N}{1,3}", RE_MINICPM5],
            clean_spaces: true,
            ignore_merges: true,
            add_bos: false,
        },
    ),
];

/// The llama.cpp meaning of a pre-tokenizer name, or None if we do not know it.
pub(crate) fn pre_config(name: &str) -> Option<PreConfig> {
    let mut cfg = PRE_TABLE
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, c)| *c)?;
    if name == "tekken" {
        cfg.add_bos = true;
    }
    Some(cfg)
}

/// Every name [`pre_config`] knows, for error messages.
pub(crate) fn known_pre_names() -> Vec<&'static str> {
    PRE_TABLE
        .iter()
        .flat_map(|(names, _)| names.iter().copied())
        .collect()
}

/// One step of a pre-tokenizer.
#[derive(Debug)]
enum Splitter {
    Gpt2,
    Llama3,
    Qwen2,
    Qwen35,
    Newlines,
    Regex {
        re: fancy_regex::Regex,
        collapsed: bool,
    },
}

/// A compiled pre-tokenizer: regexes applied in order.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    splitters: Vec<Splitter>,
}

impl PreTokenizer {
    pub fn new<S: AsRef<str>>(regexes: &[S]) -> Result<PreTokenizer, TokenizerError> {
        let splitters = regexes
            .iter()
            .map(|r| Splitter::new(r.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer { splitters })
    }

    /// Split `text` into words (slices of it), as llama.cpp's
    /// `unicode_regex_split` does before byte-encoding.
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let cpts: Vec<char> = text.chars().collect();
        let mut byte_pos = Vec::with_capacity(cpts.len() + 1);
        byte_pos.extend(text.char_indices().map(|(i, _)| i));
        byte_pos.push(text.len());

        let mut offsets = vec![cpts.len()];
        let mut hay = Haystacks::default();
        for s in &self.splitters {
            offsets = match s {
                Splitter::Gpt2 => split_custom(&cpts, &offsets, gpt2_step),
                Splitter::Llama3 => {
                    split_custom(&cpts, &offsets, |s, p| llama3_step(s, p, true, false))
                }
                Splitter::Qwen2 => {
                    split_custom(&cpts, &offsets, |s, p| llama3_step(s, p, false, false))
                }
                Splitter::Qwen35 => {
                    split_custom(&cpts, &offsets, |s, p| llama3_step(s, p, false, true))
                }
                Splitter::Newlines => split_newlines(&cpts, &offsets),
                Splitter::Regex { re, collapsed } => {
                    let h = hay.get(&cpts, *collapsed);
                    split_regex(re, h, &offsets)
                }
            };
        }

        let mut words = Vec::with_capacity(offsets.len());
        let mut start = 0;
        for len in offsets {
            if len > 0 {
                words.push(&text[byte_pos[start]..byte_pos[start + len]]);
            }
            start += len;
        }
        words
    }
}

impl Splitter {
    fn new(regex: &str) -> Result<Splitter, TokenizerError> {
        Ok(match regex {
            RE_GPT2 => Splitter::Gpt2,
            RE_LLAMA3 | SPLIT_LLAMA3 => Splitter::Llama3,
            RE_QWEN2 => Splitter::Qwen2,
            RE_QWEN35 => Splitter::Qwen35,
            RE_NEWLINES => Splitter::Newlines,
            _ => {
                let collapsed = CATEGORY_NAMES.iter().any(|(p, _)| regex.contains(p));
                let pattern = translate_regex(regex, collapsed);
                let re = fancy_regex::Regex::new(&pattern).map_err(|e| TokenizerError::Regex {
                    pattern: regex.to_string(),
                    message: e.to_string(),
                })?;
                Splitter::Regex { re, collapsed }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The custom splitters (llama.cpp's unicode_regex_split_custom_*).

/// One fragment being split: code points `ini..end` of the text.
struct Frag<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Frag<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> CptFlags {
        self.cpt(pos).map(cpt_flags).unwrap_or(CptFlags::NONE)
    }
    /// End the current word at `end`; returns its length.
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

/// Run a splitter over every fragment. `step` consumes one word starting at
/// `pos` and returns the position after it.
fn split_custom(
    cpts: &[char],
    offsets: &[usize],
    step: impl Fn(&mut Frag, usize) -> usize,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut f = Frag {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        let mut pos = start;
        while pos < f.end {
            pos = step(&mut f, pos);
        }
        start += len;
    }
    out
}

/// `'s|'t|'re|'ve|'m|'ll|'d` (case-sensitive, or ASCII case-insensitive):
/// the length of the contraction at `pos`, if any.
fn contraction(f: &Frag, pos: usize, ignore_case: bool) -> usize {
    let lower = |c: Option<char>| {
        let c = c.unwrap_or('\0');
        if ignore_case {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    if f.cpt(pos) != Some('\'') || pos + 1 >= f.end {
        return 0;
    }
    let next = lower(f.cpt(pos + 1));
    if matches!(next, 's' | 't' | 'm' | 'd') {
        return 2;
    }
    if pos + 2 < f.end {
        let next2 = lower(f.cpt(pos + 2));
        if matches!((next, next2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
            return 3;
        }
    }
    0
}

fn is_other(f: CptFlags) -> bool {
    // [^\s\p{L}\p{N}], and inside the fragment
    !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any()
}

/// Whitespace at `pos`: `\s+(?!\S)` or `\s+`. Returns the new position, or
/// None if there is no whitespace at `pos`.
fn whitespace_run(f: &mut Frag, pos: usize, newline_rule: bool) -> Option<usize> {
    let mut n = 0;
    let mut last_newline_end = 0;
    while f.flags(pos + n).is_whitespace() {
        if matches!(f.cpt(pos + n), Some('\r' | '\n')) {
            last_newline_end = pos + n + 1;
        }
        n += 1;
    }
    // \s*[\r\n]+
    if newline_rule && last_newline_end > 0 {
        f.add(last_newline_end);
        return Some(last_newline_end);
    }
    // \s+(?!\S): all but the last if a non-space follows
    if n > 1 && f.cpt(pos + n).is_some() {
        f.add(pos + n - 1);
        return Some(pos + n - 1);
    }
    // \s+
    if n > 0 {
        f.add(pos + n);
        return Some(pos + n);
    }
    None
}

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2_step(f: &mut Frag, pos: usize) -> usize {
    let n = contraction(f, pos, false);
    if n > 0 {
        f.add(pos + n);
        return pos + n;
    }
    let space = f.cpt(pos) == Some(' ');
    let mut p = pos;
    let mut flags = if space {
        f.flags(pos + 1)
    } else {
        f.flags(pos)
    };
    type Class = fn(CptFlags) -> bool;
    for class in [CptFlags::is_letter as Class, CptFlags::is_number, is_other] {
        if class(flags) {
            p += space as usize;
            while class(flags) {
                p += 1;
                flags = f.flags(p);
            }
            f.add(p);
            return p;
        }
    }
    if let Some(p) = whitespace_run(f, pos, false) {
        return p;
    }
    f.add(pos + 1);
    pos + 1
}

/// Llama-3 (`digits3`), Qwen2 (single digits) and Qwen3.5 (single digits,
/// marks join letters):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3_step(f: &mut Frag, pos: usize, digits3: bool, marks: bool) -> usize {
    let n = contraction(f, pos, true);
    if n > 0 {
        f.add(pos + n);
        return pos + n;
    }
    let cpt = f.cpt(pos).unwrap_or('\0');
    let flags = f.flags(pos);
    // \p{L}, or [\p{L}\p{M}] for Qwen3.5
    let word = |fl: CptFlags| fl.is_letter() || (marks && fl.is_mark());

    // [^\r\n\p{L}\p{N}]?\p{L}+
    if !(cpt == '\r' || cpt == '\n' || flags.is_number()) && (word(flags) || word(f.flags(pos + 1)))
    {
        let mut p = pos + 1;
        while word(f.flags(p)) {
            p += 1;
        }
        f.add(p);
        return p;
    }

    // \p{N}{1,3} (Llama-3) or \p{N} (Qwen2)
    if flags.is_number() {
        if !digits3 {
            f.add(pos + 1);
            return pos + 1;
        }
        let mut p = pos;
        let mut ini = pos;
        while f.flags(p).is_number() {
            p += 1;
            if p - ini >= 3 {
                f.add(p);
                ini = p;
            }
        }
        f.add(p);
        return p;
    }

    // ' ?[^\s\p{L}\p{N}]+[\r\n]*' (note: llama.cpp tests the first code point's
    // own flags for being in range, the one after a space for the class)
    let other = |fl: CptFlags| !(fl.is_whitespace() || word(fl) || fl.is_number());
    let mut flags2 = if cpt == ' ' { f.flags(pos + 1) } else { flags };
    if other(flags2) && flags.any() {
        let mut p = pos + (cpt == ' ') as usize;
        while other(flags2) && flags2.any() {
            p += 1;
            flags2 = f.flags(p);
        }
        while matches!(f.cpt(p), Some('\r' | '\n')) {
            p += 1;
        }
        f.add(p);
        return p;
    }

    if let Some(p) = whitespace_run(f, pos, true) {
        return p;
    }
    f.add(pos + 1);
    pos + 1
}

/// `[^\n]+|[\n]+`
fn split_newlines(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let end = start + len;
        let mut pos = start;
        while pos < end {
            let nl = cpts[pos] == '\n';
            let run = pos;
            while pos < end && (cpts[pos] == '\n') == nl {
                pos += 1;
            }
            out.push(pos - run);
        }
        start = end;
    }
    out
}

// ---------------------------------------------------------------------------
// The generic path: std::regex on collapsed text, emulated with fancy-regex.

/// The categories llama.cpp can collapse, the byte standing for each, and the
/// ASCII members of each (llama.cpp's k_ucat_cpt and k_ucat_map).
const CATEGORY_NAMES: &[(&str, u16)] = &[
    ("\\p{N}", CptFlags::NUMBER),
    ("\\p{L}", CptFlags::LETTER),
    ("\\p{P}", CptFlags::PUNCTUATION),
    ("\\p{M}", CptFlags::MARK),
    ("\\p{S}", CptFlags::SYMBOL),
    ("\\p{Lu}", CptFlags::LETTER),
    ("\\p{Ll}", CptFlags::LETTER),
    ("\\p{Lt}", CptFlags::LETTER),
    ("\\p{Lm}", CptFlags::LETTER),
    ("\\p{Lo}", CptFlags::LETTER),
];

/// The collapsed char standing for a category, and the class body that
/// replaces `\p{..}` (that char plus the category's ASCII members).
fn category_class(flag: u16) -> (char, &'static str) {
    match flag {
        CptFlags::NUMBER => ('\u{D1}', "\u{D1}0-9"),
        CptFlags::LETTER => ('\u{D2}', "\u{D2}A-Za-z"),
        CptFlags::PUNCTUATION => ('\u{D3}', "\u{D3}!-#%-*,-/:-;?-@\\[-\\]_{}"),
        CptFlags::MARK => ('\u{D4}', "\u{D4}"),
        CptFlags::SYMBOL => ('\u{D5}', "\u{D5}$+<->^`|~"),
        _ => ('\u{D0}', ""),
    }
}

/// std::regex's `\s` in the C locale (the whitespace of the collapsed text).
const ASCII_SPACE: &str = "\\t\\n\\x0B\\x0C\\r ";

/// Rewrite a llama.cpp regex for fancy-regex: `\p{..}` becomes its collapsed
/// class (when `collapsed`), and `\s`/`\S`/`\d`/`\D` get std::regex's ASCII
/// meaning (non-ASCII whitespace is already 0x0B in the haystack).
fn translate_regex(regex: &str, collapsed: bool) -> String {
    let chars: Vec<char> = regex.chars().collect();
    let mut out = String::with_capacity(regex.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            if collapsed && e == 'p' && chars.get(i + 2) == Some(&'{') {
                if let Some(close) = chars[i + 3..]
                    .iter()
                    .position(|&c| c == '}')
                    .map(|p| p + i + 3)
                {
                    let pat: String = chars[i..=close].iter().collect();
                    if let Some(&(_, flag)) = CATEGORY_NAMES.iter().find(|(p, _)| *p == pat) {
                        let body = category_class(flag).1;
                        if inside {
                            out.push_str(body);
                        } else {
                            out.push('[');
                            out.push_str(body);
                            out.push(']');
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
            match (e, inside) {
                ('s', false) => out.push_str(&format!("[{ASCII_SPACE}]")),
                ('s', true) => out.push_str(ASCII_SPACE),
                ('S', false) => out.push_str(&format!("[^{ASCII_SPACE}]")),
                ('d', false) => out.push_str("[0-9]"),
                ('d', true) => out.push_str("0-9"),
                ('D', false) => out.push_str("[^0-9]"),
                _ => {
                    out.push(c);
                    out.push(e);
                }
            }
            i += 2;
            continue;
        }
        if c == '[' && !inside {
            inside = true;
        } else if c == ']' && inside {
            inside = false;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The collapsed and the plain ("wide") haystacks, built on first use.
#[derive(Default)]
struct Haystacks {
    collapsed: Option<Haystack>,
    wide: Option<Haystack>,
}

/// The text as the regex sees it: one char per code point, and the byte
/// offset of each char (plus the end).
struct Haystack {
    text: String,
    byte_pos: Vec<usize>,
}

impl Haystacks {
    fn get(&mut self, cpts: &[char], collapsed: bool) -> &Haystack {
        let slot = if collapsed {
            &mut self.collapsed
        } else {
            &mut self.wide
        };
        slot.get_or_insert_with(|| {
            let mut text = String::with_capacity(cpts.len() * 2);
            let mut byte_pos = Vec::with_capacity(cpts.len() + 1);
            for &c in cpts {
                byte_pos.push(text.len());
                text.push(collapse(c, collapsed));
            }
            byte_pos.push(text.len());
            Haystack { text, byte_pos }
        })
    }
}

fn collapse(c: char, collapsed: bool) -> char {
    if c.is_ascii() {
        return c;
    }
    let flags = cpt_flags(c);
    if flags.is_whitespace() {
        return '\u{0B}';
    }
    if !collapsed {
        return c;
    }
    category_class(flags.category()).0
}

/// llama.cpp's unicode_regex_split_stl: in each fragment, every match and
/// every gap between matches becomes a word.
fn split_regex(re: &fancy_regex::Regex, hay: &Haystack, offsets: &[usize]) -> Vec<usize> {
    let char_at = |byte: usize| hay.byte_pos.partition_point(|&b| b < byte);
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let (b0, b1) = (hay.byte_pos[start], hay.byte_pos[start + len]);
        let sub = &hay.text[b0..b1];
        let mut done = start; // code points of this fragment already emitted
        for m in re.find_iter(sub) {
            // A regex that fails at run time (backtrack limit) ends the matches.
            let Ok(m) = m else { break };
            if m.start() == m.end() {
                continue;
            }
            let (ms, me) = (char_at(b0 + m.start()), char_at(b0 + m.end()));
            if ms > done {
                out.push(ms - done);
            }
            out.push(me - ms);
            done = me;
        }
        if done < start + len {
            out.push(start + len - done);
        }
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(regexes: &[&str], text: &str) -> Vec<String> {
        PreTokenizer::new(regexes)
            .unwrap()
            .split(text)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_table_regex_compiles() {
        for (names, cfg) in PRE_TABLE {
            assert!(PreTokenizer::new(cfg.regexes).is_ok(), "{names:?}");
        }
    }

    #[test]
    fn gpt2_splits_like_the_regex() {
        assert_eq!(
            split(&[RE_GPT2], "Hello world's  big   test\n\n x 123 !!?"),
            ["Hello", " world", "'s", " ", " big", "  ", " test", "\n\n", " x", " 123", " !!?"]
        );
        assert_eq!(split(&[RE_GPT2], "a  "), ["a", "  "]);
        assert_eq!(split(&[RE_GPT2], "\t\tx"), ["\t", "\t", "x"]);
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            split(&[RE_DIGIT, RE_GPT2], "ab 1234 x²"),
            ["ab", " ", "1", "2", "3", "4", " x", "²"]
        );
    }

    #[test]
    fn llama3_groups_three_digits_and_newlines() {
        assert_eq!(
            split(&[RE_LLAMA3], "I'M here 12345\n\n  x.\n"),
            ["I", "'M", " here", " ", "123", "45", "\n\n", " ", " x", ".\n"]
        );
        assert_eq!(split(&[RE_QWEN2], "x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn generic_regex_uses_collapsed_categories() {
        // The default pre-tokenizer: punctuation runs are isolated first.
        assert_eq!(
            split(RE_DEFAULT, "hi!! 1234"),
            ["hi", "!!", " ", "123", "4"]
        );
        // \p{P} on a non-ASCII punctuation mark goes through the collapse.
        assert_eq!(split(&["\\p{P}+"], "a«»b"), ["a", "«»", "b"]);
        // deepseek-coder uses the wide path for CJK and the collapsed one for \p.
        assert_eq!(
            split(RE_DEEPSEEK_CODER, "hi 你好\n12"),
            ["hi", " ", "你好", "\n", "1", "2"]
        );
    }
}

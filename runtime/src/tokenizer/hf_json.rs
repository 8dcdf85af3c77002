//! A [`TokenizerSpec`] from a Hugging Face folder: tokenizer.json (a BPE model
//! with a ByteLevel pre-tokenizer, optionally after Split/Digits steps, as
//! Llama-3, SmolLM and Qwen2 have) and tokenizer_config.json (bos/eos tokens,
//! add_bos_token/add_eos_token, clean_up_tokenization_spaces).
//!
//! The vocabulary is laid out as llama.cpp's convert_hf_to_gguf.py does:
//! ids without a token become "[PAD<id>]" (unused), added tokens are control
//! (special) or user-defined. A pre-tokenizer whose regexes equal a llama.cpp
//! type's gets that type (so the same splitter runs); others run their own
//! regexes.

use super::pretokenize::{RE_DIGIT, RE_GPT2, RE_LLAMA3, RE_QWEN2};
use super::{TokenizerError, TokenizerSpec};
use serde_json::Value;
use srl_models::formats::hf_pre_tokenizer::{llama_cpp_pre_name, SPLIT_LLAMA3, SPLIT_QWEN2};
use std::path::{Path, PathBuf};

/// Token ids at or above this are refused (the model side refuses such
/// vocabularies too).
const MAX_VOCAB: usize = 1 << 22;

fn read_json(path: &Path) -> Result<Value, TokenizerError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| TokenizerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, message: impl Into<String>) -> TokenizerError {
    TokenizerError::HfFormat {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A token named in tokenizer_config.json: a string or {"content": ...}.
fn token_content(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v.get("content")?.as_str())
}

pub(crate) fn spec_from_hf_dir(dir: &Path) -> Result<TokenizerSpec, TokenizerError> {
    let path: PathBuf = dir.join("tokenizer.json");
    let tj = read_json(&path)?;
    let config_path = dir.join("tokenizer_config.json");
    let config = if config_path.exists() {
        Some(read_json(&config_path)?)
    } else {
        None
    };

    let model = tj.get("model").ok_or_else(|| bad(&path, "no \"model\""))?;
    let mtype = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    if mtype != "BPE" {
        return Err(bad(
            &path,
            format!("model type \"{mtype}\" is not supported (only byte-level BPE)"),
        ));
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            &path,
            "BPE with byte_fallback (SentencePiece-style) is not supported; use the GGUF file",
        ));
    }

    // Vocabulary: model.vocab plus added_tokens, placed by id.
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(&path, "no model.vocab object"))?;
    let mut entries: Vec<(u32, String, i32)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(&path, format!("token {text:?} has no integer id")))?;
        entries.push((id as u32, text.clone(), 1));
    }
    let mut lstrip = Vec::new();
    let mut rstrip = Vec::new();
    for t in tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            t.get("id").and_then(Value::as_u64),
            t.get("content").and_then(Value::as_str),
        ) else {
            return Err(bad(
                &path,
                format!("added token without id or content: {t}"),
            ));
        };
        let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
        entries.push((id as u32, content.to_string(), if special { 3 } else { 4 }));
        if t.get("lstrip").and_then(Value::as_bool) == Some(true) {
            lstrip.push(id as u32);
        }
        if t.get("rstrip").and_then(Value::as_bool) == Some(true) {
            rstrip.push(id as u32);
        }
    }
    // Ids index a table: a hostile id must not size it.
    if let Some(e) = entries.iter().find(|e| e.0 as usize >= MAX_VOCAB) {
        return Err(bad(
            &path,
            format!(
                "token {:?} has id {}, beyond the largest vocabulary srl reads ({MAX_VOCAB})",
                e.1, e.0
            ),
        ));
    }
    let n = entries.iter().map(|e| e.0 as usize + 1).max().unwrap_or(0);
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![5i32; n];
    for (id, text, ty) in entries {
        tokens[id as usize] = Some(text);
        types[id as usize] = ty;
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();

    let merges = match model.get("merges").and_then(Value::as_array) {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|m| match m {
                Value::String(s) => Ok(s.clone()),
                Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str())
                {
                    (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                    _ => Err(bad(&path, format!("bad merge {m}"))),
                },
                _ => Err(bad(&path, format!("bad merge {m}"))),
            })
            .collect::<Result<_, _>>()?,
    };

    let regexes = pre_regexes(&path, tj.get("pre_tokenizer"))?;
    let clean = config
        .as_ref()
        .and_then(|c| c.get("clean_up_tokenization_spaces"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // llama.cpp's name for this pre-tokenizer, where it has one; otherwise
    // its regexes are used as they are.
    let pre_name = llama_cpp_pre_name(tj.get("pre_tokenizer"), clean).ok();

    let find = |key: &str| -> Option<u32> {
        let content = token_content(config.as_ref()?.get(key)?)?;
        tokens.iter().position(|t| t == content).map(|i| i as u32)
    };
    let config_flag = |key: &str| {
        config
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_bool)
    };
    let (bos, eos, unk, pad) = (
        find("bos_token"),
        find("eos_token"),
        find("unk_token"),
        find("pad_token"),
    );
    let (template_bos, template_eos) = template_adds(tj.get("post_processor"), &tokens, bos, eos);

    Ok(TokenizerSpec {
        model: "gpt2".to_string(),
        pre: Some(pre_name.unwrap_or("custom").to_string()),
        pre_regexes: if pre_name.is_some() {
            None
        } else {
            Some(regexes)
        },
        ignore_merges: model.get("ignore_merges").and_then(Value::as_bool),
        tokens,
        scores: None,
        token_types: Some(types),
        merges,
        bos,
        eos,
        unk,
        pad,
        add_bos: config_flag("add_bos_token").or(template_bos),
        add_eos: config_flag("add_eos_token").or(template_eos),
        add_space_prefix: Some(false),
        lstrip,
        rstrip,
        ..TokenizerSpec::default()
    })
}

/// The regex list of a tokenizer.json pre-tokenizer, in llama.cpp's spelling
/// where llama.cpp has one.
fn pre_regexes(path: &Path, pre: Option<&Value>) -> Result<Vec<String>, TokenizerError> {
    let mut out = Vec::new();
    let Some(pre) = pre.filter(|p| !p.is_null()) else {
        return Err(bad(
            path,
            "no pre_tokenizer: only byte-level BPE tokenizers are supported",
        ));
    };
    let steps: Vec<&Value> = match pre.get("type").and_then(Value::as_str) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect(),
        _ => vec![pre],
    };
    let mut byte_level = false;
    for step in steps {
        match step.get("type").and_then(Value::as_str).unwrap_or("") {
            "ByteLevel" => {
                byte_level = true;
                if step
                    .get("use_regex")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
                {
                    out.push(RE_GPT2.to_string());
                }
            }
            "Digits" => {
                let single = step
                    .get("individual_digits")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                out.push(if single { RE_DIGIT } else { "\\p{N}+" }.to_string());
            }
            "Split" => {
                let pattern = step.get("pattern");
                let regex = match (
                    pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str),
                    pattern
                        .and_then(|p| p.get("String"))
                        .and_then(Value::as_str),
                ) {
                    (Some(r), _) => r.to_string(),
                    (None, Some(s)) => fancy_regex::escape(s).into_owned(),
                    _ => {
                        return Err(bad(
                            path,
                            format!("Split pre-tokenizer without a pattern: {step}"),
                        ))
                    }
                };
                let behavior = step
                    .get("behavior")
                    .and_then(Value::as_str)
                    .unwrap_or("Isolated");
                let invert = step.get("invert").and_then(Value::as_bool).unwrap_or(false);
                if behavior != "Isolated" || invert {
                    return Err(bad(
                        path,
                        format!(
                            "Split with behavior {behavior} (invert {invert}) is not supported"
                        ),
                    ));
                }
                out.push(match regex.as_str() {
                    SPLIT_LLAMA3 => RE_LLAMA3.to_string(),
                    SPLIT_QWEN2 => RE_QWEN2.to_string(),
                    _ => regex,
                });
            }
            other => {
                return Err(bad(
                    path,
                    format!("pre-tokenizer step \"{other}\" is not supported"),
                ))
            }
        }
    }
    if !byte_level {
        return Err(bad(
            path,
            "the pre-tokenizer has no ByteLevel step: only byte-level BPE is supported",
        ));
    }
    Ok(out)
}

/// Whether the post-processor's single-sequence template starts with BOS and
/// ends with EOS (None when there is no template).
fn template_adds(
    pp: Option<&Value>,
    tokens: &[String],
    bos: Option<u32>,
    eos: Option<u32>,
) -> (Option<bool>, Option<bool>) {
    let Some(pp) = pp.filter(|p| !p.is_null()) else {
        return (None, None);
    };
    let template = match pp.get("type").and_then(Value::as_str) {
        Some("TemplateProcessing") => Some(pp),
        Some("Sequence") => pp
            .get("processors")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("type").and_then(Value::as_str) == Some("TemplateProcessing"))
            }),
        _ => None,
    };
    let Some(single) = template
        .and_then(|t| t.get("single"))
        .and_then(Value::as_array)
    else {
        return (None, None);
    };
    let special = |v: &Value| {
        v.get("SpecialToken")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let is = |v: Option<&Value>, id: Option<u32>| -> bool {
        match (v.and_then(special), id) {
            (Some(t), Some(id)) => tokens.get(id as usize) == Some(&t),
            _ => false,
        }
    };
    (Some(is(single.first(), bos)), Some(is(single.last(), eos)))
}

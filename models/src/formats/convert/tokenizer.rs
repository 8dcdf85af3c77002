//! A Hugging Face tokenizer (tokenizer.json, tokenizer_config.json) as GGUF
//! `tokenizer.*` metadata, laid out as llama.cpp's convert_hf_to_gguf.py does
//! for byte-level BPE (`get_vocab_base`, `gguf.SpecialVocab`):
//!
//! - `tokens`/`token_type`: one entry per id below config.json's vocab_size;
//!   ids without a token are "[PAD<id>]" (unused); added tokens are control
//!   when marked special or when they look special (`<|...|>`), else
//!   user-defined; the rest are normal.
//! - `merges` from tokenizer.json ("a b"; pairs with spaces get them written
//!   as U+0120, as gguf-py does).
//! - `pre`: llama.cpp names the pre-tokenizer by hashing how the tokenizer
//!   splits a test text. Without a tokenizer at hand, srl matches the
//!   pre-tokenizer's structure to the families llama.cpp knows (the same
//!   table the runtime's tokenizer.json loader uses), and refuses the others
//!   rather than guess.
//! - special ids from tokenizer_config.json (looked up among added tokens),
//!   else config.json's `*_token_id`; add_bos/add_eos from the
//!   post-processor, else tokenizer_config.json; the chat template from
//!   tokenizer_config.json, chat_template.jinja or chat_template.json.

use crate::error::{ModelError, Result};
use crate::families::Arch;
use crate::formats::gguf::{tag, GgufValue};
use crate::formats::hf_pre_tokenizer::llama_cpp_pre_name;
use serde_json::Value;
use std::path::Path;

/// GGUF token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The tokenizer's GGUF metadata and a one-line description of it.
pub(super) struct TokenizerMetadata {
    pub keys: Vec<(String, GgufValue)>,
    pub description: String,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::format(path, format!("invalid JSON: {e}")))
}

fn strings(items: Vec<String>) -> GgufValue {
    GgufValue::Array(
        tag::STRING,
        items.into_iter().map(GgufValue::String).collect(),
    )
}

/// convert_hf_to_gguf's `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// Reads the folder's tokenizer; None when it has no tokenizer.json.
/// `n_vocab` is config.json's vocab_size (the embedding's rows).
pub(super) fn tokenizer_metadata(
    dir: &Path,
    n_vocab: usize,
    arch: Arch,
) -> Result<Option<TokenizerMetadata>> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        return Ok(None);
    }
    let tj = read_json(&path)?;
    let config_path = dir.join("tokenizer_config.json");
    let tc = if config_path.exists() {
        read_json(&config_path)?
    } else {
        Value::Null
    };
    let bad = |msg: String| ModelError::format(&path, msg);
    let model = tj
        .get("model")
        .ok_or_else(|| bad("no \"model\" object".into()))?;
    let mtype = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    if mtype != "BPE" || model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(bad(format!(
            "a {mtype} tokenizer{}: srl converts byte-level BPE tokenizers only",
            if mtype == "BPE" {
                " with byte fallback (SentencePiece-style)"
            } else {
                ""
            }
        )));
    }

    // Tokens by id: the model's vocabulary, then added tokens over it.
    let mut by_id: Vec<Option<(String, i32)>> = vec![None; n_vocab];
    let mut place = |id: Option<u64>, text: String, ty: i32| -> Result<()> {
        let id = id.ok_or_else(|| bad(format!("token {text:?} has no integer id")))? as usize;
        let slot = by_id.get_mut(id).ok_or_else(|| {
            bad(format!(
                "token {text:?} has id {id}, beyond config.json's vocab_size {n_vocab}"
            ))
        })?;
        *slot = Some((text, ty));
        Ok(())
    };
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no model.vocab object".into()))?;
    for (text, id) in vocab {
        place(id.as_u64(), text.clone(), NORMAL)?;
    }
    let added: &[Value] = tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    for t in added {
        let content = t
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("added token without content: {t}")))?;
        let special = t.get("special").and_then(Value::as_bool) == Some(true);
        if special || looks_special(content) {
            place(t.get("id").and_then(Value::as_u64), content.into(), CONTROL)?;
        } else {
            // llama.cpp expects user-defined tokens with their spaces spelled out.
            let text = content.replace('\u{2581}', " ");
            place(t.get("id").and_then(Value::as_u64), text, USER_DEFINED)?;
        }
    }
    let (tokens, types): (Vec<String>, Vec<i32>) = by_id
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED)))
        .unzip();

    let merges: Vec<String> = match model.get("merges").and_then(Value::as_array) {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|m| match m {
                Value::String(s) => Some(s.clone()),
                Value::Array(p) if p.len() == 2 => {
                    let enc = |v: &Value| v.as_str().map(|s| s.replace(' ', "\u{0120}"));
                    Some(format!("{} {}", enc(&p[0])?, enc(&p[1])?))
                }
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("model.merges holds something other than merges".into()))?,
    };

    let clean = tc
        .get("clean_up_tokenization_spaces")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let pre = llama_cpp_pre_name(tj.get("pre_tokenizer"), clean).map_err(bad)?;

    let mut keys: Vec<(String, GgufValue)> = Vec::new();
    let mut set = |k: &str, v: GgufValue| keys.push((format!("tokenizer.{k}"), v));
    if arch.family().writes_add_space_prefix {
        if let Some(p) = tc.get("add_prefix_space").and_then(Value::as_bool) {
            set("ggml.add_space_prefix", GgufValue::Bool(p));
        }
    }
    set("ggml.model", GgufValue::String("gpt2".into()));
    set("ggml.pre", GgufValue::String(pre.into()));
    let n_tokens = tokens.len();
    set("ggml.tokens", strings(tokens.clone()));
    set(
        "ggml.token_type",
        GgufValue::Array(tag::I32, types.into_iter().map(GgufValue::I32).collect()),
    );
    let n_merges = merges.len();
    set("ggml.merges", strings(merges));

    // Special tokens: tokenizer_config.json's text, found among added tokens;
    // else config.json's id.
    let hf_config = read_json(&dir.join("config.json")).unwrap_or(Value::Null);
    let content_of = |typ: &str| -> Option<String> {
        let v = tc.get(format!("{typ}_token"))?;
        v.as_str()
            .or_else(|| v.get("content")?.as_str())
            .map(str::to_string)
    };
    let special_types = [
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"),
        ("cls", "cls_token_id"),
        ("mask", "mask_token_id"),
    ];
    for (typ, key) in special_types {
        let from_added = content_of(typ).and_then(|c| {
            added
                .iter()
                .find(|t| t.get("content").and_then(Value::as_str) == Some(c.as_str()))
                .and_then(|t| t.get("id")?.as_u64())
        });
        let id = from_added.or_else(|| hf_config.get(format!("{typ}_token_id"))?.as_u64());
        if let Some(id) = id.filter(|&id| (id as usize) < n_tokens) {
            set(&format!("ggml.{key}"), GgufValue::U32(id as u32));
        }
    }

    // add_bos/add_eos: the post-processor first, then tokenizer_config.json.
    let (mut add_bos, mut add_eos) = post_processor_adds(
        tj.get("post_processor"),
        content_of("bos").or_else(|| content_of("cls")).as_deref(),
        content_of("eos").as_deref(),
    );
    add_bos = add_bos.or_else(|| tc.get("add_bos_token")?.as_bool());
    add_eos = add_eos.or_else(|| tc.get("add_eos_token")?.as_bool());
    if arch.family().no_bos_at_vocab_size == Some(n_vocab) {
        add_bos = Some(false);
    }
    if let Some(b) = add_bos {
        set("ggml.add_bos_token", GgufValue::Bool(b));
    }
    if let Some(b) = add_eos {
        set("ggml.add_eos_token", GgufValue::Bool(b));
    }

    let template = chat_template(dir, &tc)?;
    let has_template = !template.is_empty();
    for (k, v) in template {
        set(&k, v);
    }
    Ok(Some(TokenizerMetadata {
        keys,
        description: format!(
            "byte-level BPE (pre: {pre}), {n_tokens} tokens, {n_merges} merges{}",
            if has_template { ", chat template" } else { "" }
        ),
    }))
}

/// Whether the post-processor adds BOS and EOS, as gguf-py's SpecialVocab
/// reads it: a ByteLevel step adds neither; a template adds its first and
/// last special tokens when they are BOS (or CLS) and EOS.
fn post_processor_adds(
    pp: Option<&Value>,
    bos: Option<&str>,
    eos: Option<&str>,
) -> (Option<bool>, Option<bool>) {
    let (mut add_bos, mut add_eos) = (None, None);
    let Some(pp) = pp.filter(|p| !p.is_null()) else {
        return (None, None);
    };
    let steps: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![pp],
    };
    for step in steps {
        match step.get("type").and_then(Value::as_str) {
            Some("ByteLevel") => {
                add_bos.get_or_insert(false);
                add_eos.get_or_insert(false);
            }
            Some("RobertaProcessing") => {
                add_bos = Some(true);
                add_eos = Some(true);
            }
            Some("TemplateProcessing") => {
                let single = step
                    .get("single")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                if single.len() > 1 {
                    fn special(v: &Value) -> Option<&str> {
                        v.pointer("/SpecialToken/id")?.as_str()
                    }
                    if let Some(first) = special(&single[0]) {
                        add_bos = Some(Some(first) == bos);
                    }
                    if let Some(last) = special(&single[single.len() - 1]) {
                        add_eos = Some(Some(last) == eos);
                    }
                }
            }
            _ => {}
        }
    }
    (add_bos, add_eos)
}

/// `tokenizer.chat_template` (and named templates, as gguf-py writes them)
/// from tokenizer_config.json, else chat_template.jinja or chat_template.json.
fn chat_template(dir: &Path, tc: &Value) -> Result<Vec<(String, GgufValue)>> {
    let mut value = tc.get("chat_template").cloned();
    if value.is_none() {
        let jinja = dir.join("chat_template.jinja");
        let json = dir.join("chat_template.json");
        if jinja.exists() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?;
            value = Some(Value::String(text));
        } else if json.exists() {
            value = read_json(&json)?.get("chat_template").cloned();
        }
    }
    let mut out = Vec::new();
    match value {
        Some(Value::String(t)) => out.push(("chat_template".into(), GgufValue::String(t))),
        Some(Value::Array(list)) => {
            let mut names = Vec::new();
            for choice in list {
                let name: String = choice
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let Some(t) = choice.get("template").and_then(Value::as_str) else {
                    continue;
                };
                if name == "default" {
                    out.push(("chat_template".into(), GgufValue::String(t.into())));
                } else if !name.is_empty() {
                    out.push((format!("chat_template.{name}"), GgufValue::String(t.into())));
                    names.push(name);
                }
            }
            if !names.is_empty() {
                out.push(("chat_templates".into(), strings(names)));
            }
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, tj: &Value, tc: &Value) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tj.to_string()).unwrap();
        std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
    }

    fn get<'a>(m: &'a TokenizerMetadata, k: &str) -> Option<&'a GgufValue> {
        m.keys
            .iter()
            .find(|(key, _)| key == &format!("tokenizer.{k}"))
            .map(|(_, v)| v)
    }

    /// A SmolLM-shaped tokenizer: vocabulary padded to the config's size,
    /// added tokens typed, merge pairs encoded, special ids and template kept.
    #[test]
    fn smollm_layout() {
        let dir = std::env::temp_dir().join(format!("srl-convert-tok-{}", std::process::id()));
        let tj = json!({
            "added_tokens": [
                {"id": 0, "content": "<|endoftext|>", "special": true},
                {"id": 1, "content": "<|im_start|>", "special": true},
                {"id": 2, "content": "<|im_end|>", "special": true},
                {"id": 5, "content": "<think>", "special": false},
                {"id": 6, "content": "\u{2581}\u{2581}", "special": false},
            ],
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            ]},
            "post_processor": {"type": "ByteLevel", "trim_offsets": false},
            "model": {"type": "BPE", "vocab": {"<|endoftext|>": 0, "a": 3, "b": 4},
                      "merges": [["a", "b"], ["a b", "c"]]},
        });
        let tc = json!({
            "bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
            "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>",
            "add_prefix_space": false, "clean_up_tokenization_spaces": false,
            "chat_template": "{{ messages }}",
        });
        write(&dir, &tj, &tc);
        let m = tokenizer_metadata(&dir, 8, Arch::Llama).unwrap().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let s = |v: &GgufValue| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            s(get(&m, "ggml.tokens").unwrap()),
            [
                "<|endoftext|>",
                "<|im_start|>",
                "<|im_end|>",
                "a",
                "b",
                "<think>",
                "  ",
                "[PAD7]"
            ]
        );
        let types: Vec<i64> = get(&m, "ggml.token_type")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(types, [3, 3, 3, 1, 1, 4, 4, 5]);
        assert_eq!(s(get(&m, "ggml.merges").unwrap()), ["a b", "a\u{0120}b c"]);
        assert_eq!(get(&m, "ggml.pre").unwrap().as_str(), Some("smollm"));
        let id = |k: &str| get(&m, k).and_then(GgufValue::as_u64);
        assert_eq!(
            [
                id("ggml.bos_token_id"),
                id("ggml.eos_token_id"),
                id("ggml.unknown_token_id"),
                id("ggml.padding_token_id")
            ],
            [Some(1), Some(2), Some(0), Some(2)]
        );
        assert_eq!(
            get(&m, "ggml.add_bos_token").and_then(GgufValue::as_bool),
            Some(false)
        );
        assert_eq!(
            get(&m, "ggml.add_space_prefix").and_then(GgufValue::as_bool),
            Some(false)
        );
        assert_eq!(
            get(&m, "chat_template").and_then(GgufValue::as_str),
            Some("{{ messages }}")
        );
        assert!(m
            .description
            .starts_with("byte-level BPE (pre: smollm), 8 tokens, 2 merges"));
    }

    #[test]
    fn template_processing_adds_bos() {
        let pp = json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]});
        assert_eq!(
            post_processor_adds(Some(&pp), Some("<s>"), Some("</s>")),
            (Some(true), None)
        );
    }

    #[test]
    fn sentencepiece_style_is_refused() {
        let dir = std::env::temp_dir().join(format!("srl-convert-spm-{}", std::process::id()));
        let tj =
            json!({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}});
        write(&dir, &tj, &json!({}));
        let err = tokenizer_metadata(&dir, 4, Arch::Llama)
            .err()
            .unwrap()
            .to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("byte fallback"), "{err}");
    }
}

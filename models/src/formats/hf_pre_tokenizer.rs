//! The pre-tokenizer of a Hugging Face `tokenizer.json` and the llama.cpp
//! pre-tokenizer type it is (`tokenizer.ggml.pre`): one table, read by the
//! converter (which writes the name into a GGUF file) and by the runtime's
//! tokenizer for Hugging Face folders (which then splits text as llama.cpp
//! does for that name).

use serde_json::Value;

/// Llama-3's and Qwen2's pre-tokenizer regexes as tokenizer.json spells them
/// (the runtime tokenizer's pretokenize.rs holds llama.cpp's spelling of the same).
pub const SPLIT_LLAMA3: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
pub const SPLIT_QWEN2: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// The llama.cpp pre-tokenizer type whose splitting equals this
/// tokenizer.json pre-tokenizer's. `clean` (clean_up_tokenization_spaces)
/// picks between types that split alike but decode differently.
pub fn llama_cpp_pre_name(
    pre: Option<&Value>,
    clean: bool,
) -> std::result::Result<&'static str, String> {
    let Some(pre) = pre.filter(|p| !p.is_null()) else {
        return Err("no pre_tokenizer: srl reads byte-level BPE tokenizers only".into());
    };
    let steps: Vec<&Value> = match pre.get("type").and_then(Value::as_str) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![pre],
    };
    let shape: Vec<&str> = steps
        .iter()
        .map(|s| {
            let flag =
                |k: &str, default: bool| s.get(k).and_then(Value::as_bool).unwrap_or(default);
            match s.get("type").and_then(Value::as_str).unwrap_or("") {
                "ByteLevel" if flag("use_regex", true) => "ByteLevel(regex)",
                "ByteLevel" => "ByteLevel",
                "Digits" if flag("individual_digits", false) => "Digits(single)",
                "Split"
                    if s.get("behavior").and_then(Value::as_str) == Some("Isolated")
                        && !flag("invert", false) =>
                {
                    match s.pointer("/pattern/Regex").and_then(Value::as_str) {
                        Some(SPLIT_LLAMA3) => "Split(llama3)",
                        Some(SPLIT_QWEN2) => "Split(qwen2)",
                        _ => "Split(other)",
                    }
                }
                _ => "other",
            }
        })
        .collect();
    Ok(match (shape.as_slice(), clean) {
        (["Digits(single)", "ByteLevel(regex)"], false) => "smollm",
        (["Digits(single)", "ByteLevel(regex)"], true) => "starcoder",
        (["Split(llama3)", "ByteLevel"], _) => "llama-bpe",
        (["Split(qwen2)", "ByteLevel"], false) => "qwen2",
        (["Split(qwen2)", "ByteLevel"], true) => "stablelm2",
        (["ByteLevel(regex)"], true) => "gpt-2",
        (["ByteLevel(regex)"], false) => "trillion",
        _ => {
            return Err(format!(
                "the pre-tokenizer [{}] matches none of the llama.cpp types srl can name \
                 (smollm, starcoder, llama-bpe, qwen2, stablelm2, gpt-2, trillion): \
                 a GGUF file would split text differently",
                shape.join(", ")
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_tokenizer_families() {
        let byte_level = |regex: bool| json!({"type": "ByteLevel", "use_regex": regex});
        let split = |r: &str| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false});
        let seq = |steps: Vec<Value>| json!({"type": "Sequence", "pretokenizers": steps});
        let digits = json!({"type": "Digits", "individual_digits": true});
        let name = |v: Value, clean| llama_cpp_pre_name(Some(&v), clean);
        assert_eq!(
            name(seq(vec![digits.clone(), byte_level(true)]), true),
            Ok("starcoder")
        );
        assert_eq!(
            name(seq(vec![split(SPLIT_LLAMA3), byte_level(false)]), true),
            Ok("llama-bpe")
        );
        assert_eq!(
            name(seq(vec![split(SPLIT_QWEN2), byte_level(false)]), false),
            Ok("qwen2")
        );
        assert_eq!(name(byte_level(true), true), Ok("gpt-2"));
        let err = name(seq(vec![split("\\s+"), byte_level(false)]), false).unwrap_err();
        assert!(err.contains("Split(other), ByteLevel"), "{err}");
        assert!(llama_cpp_pre_name(None, false).is_err());
    }
}

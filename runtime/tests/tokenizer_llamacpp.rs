//! The tokenizer against llama.cpp itself, on the default model.
//!
//! tests/data/llamacpp/tokenize.json holds llama.cpp's ids and pieces
//! (llama_tokenize, llama_token_to_piece(special=true)) for varied texts; for
//! every case our ids and piece bytes must equal them exactly. All mismatching
//! cases are reported, not just the first.
//!
//! The model: `model_cache::test_model_path()` ($SRL_TEST_MODEL, else the
//! cache `srl pull` fills). A missing model is a failure, not a skip. $SRL_LLAMACPP_TOKENIZE may point at another case
//! file in the same format.

use sha2::Digest;
use srl_runtime::tokenizer::{StreamDecoder, Tokenizer};
use std::path::PathBuf;

fn model_path() -> PathBuf {
    srl_runtime::model_cache::test_model_path()
}

fn load() -> Tokenizer {
    let path = model_path();
    let g = srl_models::formats::gguf::GgufFile::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    Tokenizer::from_gguf(&g)
        .unwrap_or_else(|e| panic!("cannot load the tokenizer of {}: {e}", path.display()))
}

fn cases_path() -> PathBuf {
    match std::env::var_os("SRL_LLAMACPP_TOKENIZE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/llamacpp/tokenize.json")
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check `tok` against every case of the llama.cpp file; panics listing all
/// mismatches.
fn check_against_llama_cpp(tok: &Tokenizer) {
    let path = cases_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); it is made with llama.cpp by the scripts in scripts/reference",
            path.display()
        )
    });
    let data: serde_json::Value = serde_json::from_str(&text).expect("tokenize.json is JSON");
    // The cases belong to one model file: make sure it is the one we load.
    if let Some(want) = data["model_sha256"].as_str().filter(|s| !s.is_empty()) {
        let model = model_path();
        let bytes = std::fs::read(&model).expect("read the model");
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got,
            want,
            "{} is not the model {} was made with",
            model.display(),
            path.display()
        );
    }
    let cases = data["cases"].as_array().expect("a \"cases\" array");
    assert!(!cases.is_empty(), "no cases in {}", path.display());

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let text = case["text"].as_str().expect("text");
        let add_special = case["add_special"].as_bool().expect("add_special");
        let parse_special = case["parse_special"].as_bool().expect("parse_special");
        let want_ids: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let want_pieces: Vec<String> = case["piece_bytes"]
            .as_array()
            .expect("piece_bytes")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect();

        let ids = tok.encode(text, add_special, parse_special);
        let pieces: Vec<String> = ids
            .iter()
            .map(|&id| hex(&tok.token_to_piece(id, true)))
            .collect();
        if ids != want_ids || pieces != want_pieces {
            failures.push(format!(
                "case {i}: text {text:?} (add_special {add_special}, parse_special {parse_special})\n  \
                 expected ids {want_ids:?}\n  got      ids {ids:?}\n  expected pieces {want_pieces:?}\n  got      pieces {pieces:?}"
            ));
        }
    }
    eprintln!(
        "{} of {} llama.cpp cases match",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn tokenizer_ids_and_pieces_equal_llama_cpp() {
    check_against_llama_cpp(&load());
}

/// Llama-3's and Qwen2's pre-tokenizer regexes as their tokenizer.json spell them.
const HF_LLAMA3: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const HF_QWEN2: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// The tokenizer.json path: write the model's vocabulary out as a Hugging
/// Face folder in its family's layout (SmolLM: Digits + ByteLevel; Llama-3,
/// Qwen2: Split + ByteLevel; control tokens as special added tokens) and hold
/// it to the same llama.cpp cases.
#[test]
fn tokenizer_from_hf_json_equals_llama_cpp() {
    let path = model_path();
    let g = srl_models::formats::gguf::GgufFile::open(&path).expect("open model");
    let gguf_tok = Tokenizer::from_gguf(&g).expect("tokenizer");
    let byte_level = |use_regex: bool| serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |regex: &str| serde_json::json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false});
    let (steps, clean) = match gguf_tok.pre() {
        Some("smollm") => (
            vec![
                serde_json::json!({"type": "Digits", "individual_digits": true}),
                byte_level(true),
            ],
            false,
        ),
        Some("llama-bpe" | "llama3") => (vec![split(HF_LLAMA3), byte_level(false)], true),
        Some("qwen2") => (vec![split(HF_QWEN2), byte_level(false)], false),
        _ => {
            eprintln!(
                "skipping the tokenizer.json check: no layout written for {}",
                gguf_tok.describe()
            );
            return;
        }
    };
    let tokens = g.get_str_array("tokenizer.ggml.tokens").expect("tokens");
    let merges = g.get_str_array("tokenizer.ggml.merges").expect("merges");
    let types = g
        .get_i32_array("tokenizer.ggml.token_type")
        .expect("token types");
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        match ty {
            3 => added.push(serde_json::json!({"id": i, "content": t, "special": true})),
            4 => added.push(serde_json::json!({"id": i, "content": t, "special": false})),
            _ => {
                vocab.insert(t.to_string(), i.into());
            }
        }
    }
    let text = |id: Option<u32>| gguf_tok.token_text(id.expect("bos/eos")).to_string();
    // add_bos comes from the post-processor template here, as in Llama-3's files.
    let single = if gguf_tok.add_bos() {
        serde_json::json!([{"SpecialToken": {"id": text(gguf_tok.bos()), "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}])
    } else {
        serde_json::json!([{"Sequence": {"id": "A", "type_id": 0}}])
    };
    let tj = serde_json::json!({
        "added_tokens": added,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": steps},
        "post_processor": {"type": "Sequence", "processors": [
            byte_level(false),
            {"type": "TemplateProcessing", "single": single, "pair": []},
        ]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    });
    let config = serde_json::json!({
        "bos_token": text(gguf_tok.bos()),
        "eos_token": text(gguf_tok.eos()),
        "clean_up_tokenization_spaces": clean,
    });
    let dir = std::env::temp_dir().join(format!("srl-tokenizer-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("tokenizer.json"), tj.to_string()).expect("write tokenizer.json");
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string())
        .expect("write tokenizer_config.json");
    let hf = Tokenizer::from_hf_dir(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let hf = hf.expect("load tokenizer.json");
    assert_eq!(hf.describe(), gguf_tok.describe());
    assert_eq!(
        (hf.bos(), hf.eos(), hf.add_bos()),
        (gguf_tok.bos(), gguf_tok.eos(), gguf_tok.add_bos())
    );
    assert_eq!(
        hf.eog_ids().collect::<Vec<_>>(),
        gguf_tok.eog_ids().collect::<Vec<_>>()
    );
    check_against_llama_cpp(&hf);
}

#[test]
fn tokenizer_default_model_facts() {
    let tok = load();
    assert_eq!(
        tok.describe(),
        "byte-level BPE (pre: smollm), 49152 tokens, 48900 merges"
    );
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert!(!tok.add_bos());
    let im_end = tok.token_id("<|im_end|>").expect("<|im_end|>");
    let eot = tok.token_id("<|endoftext|>").expect("<|endoftext|>");
    assert!(tok.is_eog(im_end) && tok.is_eog(eot));
    assert!(!tok.is_eog(tok.token_id("<|im_start|>").expect("<|im_start|>")));
    // llama.cpp also ends generation at the FIM "repo" token <reponame>.
    assert_eq!(tok.eog_ids().collect::<Vec<_>>(), [0, 2, 4]);
    // Control tokens render only when asked.
    assert_eq!(tok.token_to_piece(im_end, false), b"");
    assert_eq!(tok.token_to_piece(im_end, true), b"<|im_end|>");
}

#[test]
fn tokenizer_decode_round_trips_and_streams() {
    let tok = load();
    let text = "Hello, world! naïve café 日本語 😀👍🏽\n\tcode(x) 12345";
    let ids = tok.encode(text, false, false);
    assert_eq!(tok.decode(&ids, false), text);

    let mut stream = StreamDecoder::new();
    let mut out = String::new();
    for &id in &ids {
        let piece = stream.push(&tok, id, false);
        assert!(
            !piece.contains('\u{FFFD}'),
            "a partial character leaked: {piece:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&stream.flush());
    assert_eq!(out, text);
}

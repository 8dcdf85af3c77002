//! Tokenizer tests on small hand-built vocabularies. (The real-model tests
//! against llama.cpp are in runtime/tests/tokenizer_llamacpp.rs.)

use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A tiny byte-level BPE vocabulary: every byte as its GPT-2 char, a few
/// merges, and two control tokens.
fn bpe_spec(pre: &str) -> TokenizerSpec {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| unicode::byte_to_char(b).to_string())
        .collect();
    let merges = strings(&[
        "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d", "1 2",
    ]);
    for m in &merges {
        tokens.push(m.replace(' ', ""));
    }
    tokens.push("<|im_start|>".into());
    tokens.push("<|im_end|>".into());
    let n = tokens.len();
    let mut types = vec![1; n];
    types[n - 2] = 3;
    types[n - 1] = 3;
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types: Some(types),
        merges,
        bos: Some(n as u32 - 2),
        eos: Some(n as u32 - 1),
        ..TokenizerSpec::default()
    }
}

#[test]
fn bpe_encodes_and_decodes() {
    let tok = Tokenizer::from_spec(bpe_spec("smollm")).unwrap();
    let id = |t: &str| tok.token_id(t).unwrap();
    let ids = tok.encode("hello world 12", false, false);
    // smollm splits digits one by one, so "12" never merges.
    assert_eq!(ids, [id("hello"), id("Ġworld"), id("Ġ"), id("1"), id("2")]);
    assert_eq!(tok.decode(&ids, false), "hello world 12");
    assert_eq!(tok.token_to_piece(id("Ġworld"), false), b" world");
    assert_eq!(
        tok.describe(),
        "byte-level BPE (pre: smollm), 268 tokens, 10 merges"
    );

    // "gpt-2" keeps digit runs together, so "12" merges.
    let tok2 = Tokenizer::from_spec(bpe_spec("gpt-2")).unwrap();
    assert_eq!(
        tok2.encode("12", false, false),
        [tok2.token_id("12").unwrap()]
    );
}

#[test]
fn bpe_special_tokens_and_flags() {
    let tok = Tokenizer::from_spec(bpe_spec("smollm")).unwrap();
    let (start, end) = (
        tok.token_id("<|im_start|>").unwrap(),
        tok.token_id("<|im_end|>").unwrap(),
    );
    let parsed = tok.encode("<|im_start|>hello<|im_end|>", false, true);
    assert_eq!(parsed, [start, tok.token_id("hello").unwrap(), end]);
    // Without parse_special the text is just text.
    let plain = tok.encode("<|im_start|>", false, false);
    assert_eq!(plain.len(), 12); // one token per byte: no merge applies
    assert!(!plain.contains(&start));
    // add_special: no BOS unless the vocabulary asks for it.
    assert_eq!(
        tok.encode("hello", true, false),
        [tok.token_id("hello").unwrap()]
    );
    let mut spec = bpe_spec("smollm");
    spec.add_bos = Some(true);
    spec.add_eos = Some(true);
    let tok_b = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(
        tok_b.encode("hello", true, false),
        [start, tok.token_id("hello").unwrap(), end]
    );
    // Control tokens: empty unless special; <|im_end|> ends generation.
    assert_eq!(tok.token_to_piece(end, false), b"");
    assert_eq!(tok.decode(&[end], true), "<|im_end|>");
    assert!(tok.is_eog(end) && !tok.is_eog(start));
    assert_eq!(tok.eot(), Some(end));
    // llama3 pre-tokenizers add BOS by default.
    assert!(Tokenizer::from_spec(bpe_spec("llama-bpe"))
        .unwrap()
        .add_bos());
}

#[test]
fn unknown_names_are_clear_errors() {
    let err = Tokenizer::from_spec(bpe_spec("no-such-pre"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown pre-tokenizer 'no-such-pre'") && err.contains("smollm"),
        "{err}"
    );
    let mut spec = bpe_spec("smollm");
    spec.model = "wordpiece".into();
    let err = Tokenizer::from_spec(spec).unwrap_err().to_string();
    assert!(err.contains("unknown tokenizer model 'wordpiece'"), "{err}");
    let mut spec = bpe_spec("smollm");
    spec.token_types = Some(vec![1; 3]);
    let err = Tokenizer::from_spec(spec).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.ggml.token_type") && err.contains("268"),
        "{err}"
    );
}

/// A tiny SentencePiece vocabulary in llama's layout: <unk>, <s>, </s>, then
/// the 256 byte tokens, then pieces with scores.
fn spm_spec() -> TokenizerSpec {
    let mut tokens = strings(&["<unk>", "<s>", "</s>"]);
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (piece, score) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("r", -2.0),
        ("d", -2.0),
        ("he", -3.0),
        ("ll", -3.0),
        ("hell", -4.0),
        ("hello", -5.0),
        ("▁hello", -6.0),
        ("▁w", -7.0),
        ("or", -7.5),
        ("▁wor", -8.0),
        ("ld", -8.0),
        ("▁world", -9.0),
    ] {
        tokens.push(piece.to_string());
        types.push(1);
        scores.push(score);
    }
    TokenizerSpec {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        ..TokenizerSpec::default()
    }
}

#[test]
fn spm_merges_by_score_with_space_prefix_and_byte_fallback() {
    let tok = Tokenizer::from_spec(spm_spec()).unwrap();
    let id = |t: &str| tok.token_id(t).unwrap();
    assert_eq!(tok.describe(), "SentencePiece (llama), 277 tokens");
    // llama.cpp defaults for "llama": bos=1, eos=2, add_bos, add_space_prefix.
    assert_eq!(
        (tok.bos(), tok.eos(), tok.add_bos()),
        (Some(1), Some(2), true)
    );
    assert_eq!(
        tok.encode("hello world", true, false),
        [1, id("▁hello"), id("▁world")]
    );
    assert_eq!(
        tok.encode("hello world", false, false),
        [id("▁hello"), id("▁world")]
    );
    // "é" has no piece: its two UTF-8 bytes as <0xC3><0xA9>.
    assert_eq!(
        tok.encode("hé", false, false),
        [id("▁"), id("h"), id("<0xC3>"), id("<0xA9>")]
    );
    // A space is prefixed again after a special token.
    assert_eq!(
        tok.encode("hello</s>hello", false, true),
        [id("▁hello"), 2, id("▁hello")]
    );
    // Without add_space_prefix there is no leading "▁".
    let mut spec = spm_spec();
    spec.add_space_prefix = Some(false);
    let tok2 = Tokenizer::from_spec(spec).unwrap();
    assert_eq!(tok2.encode("hello", false, false), [id("hello")]);
}

#[test]
fn spm_pieces_and_decode() {
    let tok = Tokenizer::from_spec(spm_spec()).unwrap();
    let id = |t: &str| tok.token_id(t).unwrap();
    assert_eq!(tok.token_to_piece(id("▁hello"), false), b" hello");
    assert_eq!(tok.token_to_piece(id("<0xC3>"), false), [0xC3]);
    assert_eq!(tok.token_to_piece(1, false), b"");
    assert_eq!(tok.token_to_piece(1, true), b"<s>");
    assert_eq!(tok.token_to_piece(9999, true), b"");
    // The prefix space of the first token is dropped, as llama.cpp does.
    let ids = tok.encode("hello hé", false, false);
    assert_eq!(tok.decode(&ids, false), "hello hé");
    // Byte tokens split across a character stream correctly.
    let mut s = StreamDecoder::new();
    let text: String = ids.iter().map(|&i| s.push(&tok, i, false)).collect();
    assert_eq!(text + &s.flush(), " hello hé");
}

#[test]
fn clean_up_spaces_like_llama_cpp() {
    let clean = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        clean_up_spaces(&mut b);
        String::from_utf8(b).unwrap()
    };
    assert_eq!(clean("Hello , world ! ok ."), "Hello, world! ok.");
    assert_eq!(clean("it ' s"), "it's");
    assert_eq!(
        clean("I 'm sure you 're right , it 's he 'll"),
        "I'm sure you're right, it's he 'll"
    );
    assert_eq!(clean(" ?"), "?");
    assert_eq!(clean(""), "");
}

#[test]
fn hf_json_folder_loads() {
    let dir = std::env::temp_dir().join(format!("srl-tok-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = bpe_spec("smollm");
    let n = spec.tokens.len();
    let vocab: serde_json::Map<String, serde_json::Value> = spec.tokens[..n - 2]
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), (i as u64).into()))
        .collect();
    let tj = serde_json::json!({
        "added_tokens": [
            {"id": n - 2, "content": "<|im_start|>", "special": true},
            {"id": n - 1, "content": "<|im_end|>", "special": true},
        ],
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
        ]},
        "model": {"type": "BPE", "vocab": vocab, "merges": spec.merges},
    });
    std::fs::write(dir.join("tokenizer.json"), tj.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "clean_up_tokenization_spaces": false}"#,
    )
    .unwrap();
    let hf = Tokenizer::from_hf_dir(&dir).unwrap();
    let gguf = Tokenizer::from_spec(bpe_spec("smollm")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(hf.pre(), Some("smollm"));
    assert_eq!((hf.bos(), hf.eos()), (gguf.bos(), gguf.eos()));
    assert!(!hf.add_bos());
    for text in [
        "hello world 12",
        "<|im_start|>hello<|im_end|>",
        "héllo\n\n  wörld!",
    ] {
        assert_eq!(
            hf.encode(text, true, true),
            gguf.encode(text, true, true),
            "{text:?}"
        );
    }
    let missing = Tokenizer::from_hf_dir(Path::new("/nonexistent/dir"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/dir/tokenizer.json"),
        "{missing}"
    );
}

use std::path::Path;

/// A hostile token id does not size the vocabulary table: it used to try to
/// allocate a table of four billion entries.
#[test]
fn huge_token_ids_in_tokenizer_json_are_refused() {
    let dir = std::env::temp_dir().join(format!("srl-tok-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tj = serde_json::json!({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 4294967295u64}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
    });
    std::fs::write(dir.join("tokenizer.json"), tj.to_string()).unwrap();
    let e = Tokenizer::from_hf_dir(&dir).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("4294967295"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<StreamDecoder>();
}

//! A [`TokenizerSpec`] from GGUF metadata (`tokenizer.ggml.*`).

use super::{TokenizerError, TokenizerSpec};
use srl_models::formats::gguf::GgufFile;

const MODEL: &str = "tokenizer.ggml.model";
const TOKENS: &str = "tokenizer.ggml.tokens";
const MERGES: &str = "tokenizer.ggml.merges";

fn wrong(key: &'static str, expected: &'static str) -> TokenizerError {
    TokenizerError::WrongType { key, expected }
}

/// A present key of the wrong type is an error; an absent key is None.
fn opt<T>(
    g: &GgufFile,
    key: &'static str,
    expected: &'static str,
    get: Option<T>,
) -> Result<Option<T>, TokenizerError> {
    match (g.get(key).is_some(), get) {
        (_, Some(v)) => Ok(Some(v)),
        (false, None) => Ok(None),
        (true, None) => Err(wrong(key, expected)),
    }
}

fn id(g: &GgufFile, key: &'static str) -> Result<Option<u32>, TokenizerError> {
    let v = opt(g, key, "an integer", g.get_u64(key))?;
    Ok(v.and_then(|v| u32::try_from(v).ok()))
}

fn flag(g: &GgufFile, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    opt(g, key, "a bool", g.get_bool(key))
}

fn strings(g: &GgufFile, key: &'static str) -> Result<Option<Vec<String>>, TokenizerError> {
    let v = opt(g, key, "an array of strings", g.get_str_array(key))?;
    Ok(v.map(|v| v.into_iter().map(str::to_string).collect()))
}

pub(crate) fn spec_from_gguf(g: &GgufFile) -> Result<TokenizerSpec, TokenizerError> {
    let model = opt(g, MODEL, "a string", g.get_str(MODEL))?
        .ok_or(TokenizerError::MissingKey { key: MODEL })?
        .to_string();
    let tokens = strings(g, TOKENS)?.ok_or(TokenizerError::MissingKey { key: TOKENS })?;
    let merges = match strings(g, MERGES)? {
        Some(m) => m,
        None if model == "gpt2" => return Err(TokenizerError::MissingKey { key: MERGES }),
        None => Vec::new(),
    };
    let key = "tokenizer.ggml.scores";
    // Scores are f32, or (rarely) i32.
    let scores = match g.get(key) {
        None => None,
        Some(_) => Some(
            g.get_f32_array(key)
                .or_else(|| {
                    g.get_i32_array(key)
                        .map(|v| v.into_iter().map(|x| x as f32).collect())
                })
                .ok_or(wrong(key, "an array of f32"))?,
        ),
    };
    let key = "tokenizer.ggml.token_type";
    let token_types = opt(g, key, "an array of i32", g.get_i32_array(key))?;
    Ok(TokenizerSpec {
        model,
        pre: opt(
            g,
            "tokenizer.ggml.pre",
            "a string",
            g.get_str("tokenizer.ggml.pre"),
        )?
        .map(str::to_string),
        tokens,
        scores,
        token_types,
        merges,
        bos: id(g, "tokenizer.ggml.bos_token_id")?,
        eos: id(g, "tokenizer.ggml.eos_token_id")?,
        eot: id(g, "tokenizer.ggml.eot_token_id")?,
        eom: id(g, "tokenizer.ggml.eom_token_id")?,
        unk: id(g, "tokenizer.ggml.unknown_token_id")?,
        pad: id(g, "tokenizer.ggml.padding_token_id")?,
        add_bos: flag(g, "tokenizer.ggml.add_bos_token")?,
        add_eos: flag(g, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: flag(g, "tokenizer.ggml.add_space_prefix")?,
        model_name: g.get_str("general.name").map(str::to_string),
        ..TokenizerSpec::default()
    })
}

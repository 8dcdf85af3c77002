//! `srl tokenize`: token ids and pieces, as llama.cpp's llama-tokenize prints them.

use super::common::resolve_model;
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or safetensors folder [default: the default model]
    #[arg(short, long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Text to tokenize
    text: String,
    /// Treat special-token text (e.g. <|im_start|>) as plain text
    #[arg(long)]
    no_parse_special: bool,
    /// Do not add BOS/EOS even if the vocabulary asks for them
    #[arg(long)]
    no_add_special: bool,
    /// Print only the list of ids
    #[arg(long)]
    ids: bool,
    /// Print one JSON object with ids and pieces
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let path = resolve_model(a.model.as_ref())?;
    let files = srl_models::ModelFiles::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let tok = match files.gguf() {
        Some(g) => srl_runtime::tokenizer::Tokenizer::from_gguf(g)?,
        None => srl_runtime::tokenizer::Tokenizer::from_hf_dir(files.path())?,
    };
    let ids = tok.encode(&a.text, !a.no_add_special, !a.no_parse_special);
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| String::from_utf8_lossy(&tok.token_to_piece(id, true)).into_owned())
        .collect();
    if a.json {
        println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
    } else if a.ids {
        println!("{ids:?}");
    } else {
        for (id, p) in ids.iter().zip(&pieces) {
            println!("{id:>6} -> '{p}'");
        }
    }
    Ok(())
}

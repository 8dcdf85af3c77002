//! `srl generate`: one completion, streamed to stdout (or one JSON object).

use super::common::{BackendArgs, ModelArgs, SamplingArgs, ThinkArgs};
use anyhow::Context;
use srl_runtime::{GenerateParams, Message};
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    think: ThinkArgs,
    /// The prompt text
    #[arg(short, long, required_unless_present = "file", conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from a file
    #[arg(short, long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Maximum tokens to generate
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Wrap the prompt as a user message in the model's chat template
    #[arg(long)]
    chat: bool,
    /// System message (with --chat)
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Stop before this string (repeatable)
    #[arg(long)]
    stop: Vec<String>,
    /// Keep generating past end-of-generation tokens
    #[arg(long)]
    ignore_eos: bool,
    /// Context size in tokens (0: the model's trained context)
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Print one JSON object (prompt and generated token ids, text, timings)
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let prompt = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the prompt file {}", f.display()))?,
        (None, None) => unreachable!("clap requires one of --prompt and --file"),
    };
    let runner = a.model.load_runner(&a.backend)?;
    let engine = &runner.engine;
    let text = if a.chat {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message::new("system", s));
        }
        msgs.push(Message::new("user", &prompt));
        engine.render_chat_with(&msgs, true, &a.think.kwargs())?
    } else {
        prompt
    };
    let prompt_ids = engine.tokenize_prompt(&text);
    let params = GenerateParams {
        max_tokens: a.n_predict,
        sampler: a.sampling.config(),
        stop: a.stop.clone(),
        ignore_eog: a.ignore_eos,
    };
    let mut session = runner.session(a.ctx)?;
    let stdout = std::io::stdout();
    let done = if a.json {
        session.generate(&prompt_ids, &params, |_| true)?
    } else {
        let mut out = stdout.lock();
        let c = session.generate(&prompt_ids, &params, |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
            true
        })?;
        writeln!(out).context("writing to stdout")?;
        c
    };
    if a.json {
        let obj = serde_json::json!({
            "prompt": text,
            "prompt_ids": done.prompt_ids,
            "ids": done.ids,
            "text": done.text,
            "stop_reason": done.stop_reason,
            "backend": runner.backend.name(),
            "timings": {
                "load_ms": runner.load_ms,
                "prompt_tokens": done.timings.prompt_tokens,
                "prompt_ms": done.timings.prompt_ms,
                "prompt_tokens_per_s": done.timings.prompt_tokens_per_s,
                "generated_tokens": done.timings.generated_tokens,
                "generate_ms": done.timings.generate_ms,
                "generate_tokens_per_s": done.timings.generate_tokens_per_s,
            },
        });
        println!("{obj}");
    } else {
        let t = &done.timings;
        eprintln!(
            "[{} prompt tokens, {:.1} tok/s; {} generated, {:.1} tok/s; stop: {:?}]",
            t.prompt_tokens,
            t.prompt_tokens_per_s,
            t.generated_tokens,
            t.generate_tokens_per_s,
            done.stop_reason
        );
    }
    Ok(())
}

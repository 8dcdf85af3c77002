//! `srl chat`: an interactive conversation in the terminal, using the model's
//! own chat template, streaming tokens and keeping the conversation (the KV
//! cache of earlier turns is reused, not recomputed). Replies are shown as
//! step traces (chat_trace.rs): the monologue apart, steps numbered with
//! their tokens and time; `--trace FILE` records every turn.

use super::chat_trace::{approve_turn, record_turn, TraceView};
use super::common::{BackendArgs, ModelArgs, SamplingArgs, ThinkArgs};
use srl_runtime::think::THINK_OPEN;
use srl_runtime::{GenerateParams, Message};
use std::io::{BufRead, IsTerminal, Write};

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
    /// System message
    #[arg(long)]
    system: Option<String>,
    /// Maximum tokens per reply
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n_predict: usize,
    /// Context size in tokens (0: the model's trained context)
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Fold the <think> monologue to one line (its tokens and time)
    #[arg(long)]
    hide_think: bool,
    /// Append every turn (messages, thought, steps, timings, sampler) to this JSONL file
    #[arg(long, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
}

const HELP: &str = "commands: /reset (forget the conversation), /system TEXT (set the system message and reset), /approve (mark the last reply a good solution in the --trace file), /quit";

pub fn run(a: Args) -> anyhow::Result<()> {
    let runner = a.model.load_runner(&a.backend)?;
    let engine = &runner.engine;
    if engine.template.is_none() {
        anyhow::bail!("this model has no chat template; use `srl generate` with a raw prompt");
    }
    let interactive = std::io::stdin().is_terminal();
    let mut system = a.system.clone();
    let kwargs = a.think.kwargs();
    let mut messages: Vec<Message> = Vec::new();
    let mut session = runner.session(a.ctx)?;
    let params = GenerateParams {
        max_tokens: a.n_predict,
        sampler: a.sampling.config(),
        ..Default::default()
    };
    if interactive {
        eprintln!(
            "srl chat — {} ({} threads). {HELP}",
            engine.model.files.path().display(),
            engine.threads()
        );
    }
    let color = std::io::stdout().is_terminal();
    let mut turn = 0;
    // Names this chat in the trace file, so /approve names one turn.
    let trace_session = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| format!("{}-{}", d.as_millis(), std::process::id()))
        .unwrap_or_default();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("\x1b[1m> \x1b[0m");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        match input
            .split_once(' ')
            .map(|(c, r)| (c, r.trim()))
            .unwrap_or((input, ""))
        {
            ("/quit" | "/exit", _) => break,
            ("/reset", _) => {
                messages.clear();
                session.reset();
                eprintln!("(conversation reset)");
                continue;
            }
            ("/system", text) => {
                system = if text.is_empty() {
                    None
                } else {
                    Some(text.to_string())
                };
                messages.clear();
                session.reset();
                eprintln!(
                    "(system message {}; conversation reset)",
                    if system.is_some() { "set" } else { "cleared" }
                );
                continue;
            }
            ("/approve", _) => {
                match (&a.trace, turn) {
                    (None, _) => {
                        eprintln!("/approve needs --trace FILE: there is no trace to mark")
                    }
                    (Some(_), 0) => eprintln!("no reply to approve yet"),
                    (Some(path), t) => {
                        approve_turn(path, &trace_session, t)?;
                        eprintln!("(turn {t} approved in {})", path.display());
                    }
                }
                continue;
            }
            ("/help", _) => {
                eprintln!("{HELP}");
                continue;
            }
            (cmd, _)
                if cmd.starts_with('/')
                    && !cmd.contains(char::is_whitespace)
                    && cmd.len() > 1
                    && cmd[1..].chars().all(|c| c.is_ascii_alphabetic()) =>
            {
                eprintln!("unknown command {cmd}; {HELP}");
                continue;
            }
            _ => {}
        }
        messages.push(Message::new("user", input));
        let mut convo = Vec::new();
        if let Some(s) = &system {
            convo.push(Message::new("system", s));
        }
        convo.extend(messages.iter().cloned());
        let prompt = engine.render_chat_with(&convo, true, &kwargs)?;
        let ids = engine.tokenize_prompt(&prompt);
        let mut out = std::io::stdout().lock();
        let in_think = prompt.trim_end().ends_with(THINK_OPEN);
        let mut view = TraceView::new(in_think, a.hide_think, color);
        let mut shown = 0;
        let result = session.generate(&ids, &params, |piece| {
            // One call per token whose text is complete: the count is exact
            // but for tokens holding part of a character or a stop string.
            view.push(piece, 1, &mut out);
            shown += 1;
            true
        });
        match result {
            Ok(done) => {
                let mut parts = view.finish(&mut out);
                if let Some(last) = parts.last_mut() {
                    last.tokens += done.ids.len().saturating_sub(shown);
                }
                turn += 1;
                if let Some(path) = &a.trace {
                    record_turn(
                        path,
                        &trace_session,
                        turn,
                        &convo,
                        &done.text,
                        &parts,
                        &done.timings,
                        &params.sampler,
                    )?;
                }
                if interactive {
                    let t = &done.timings;
                    eprintln!(
                        "\x1b[2m[{} tokens, {:.1} tok/s; prompt {} tokens, {:.1} tok/s]\x1b[0m",
                        t.generated_tokens,
                        t.generate_tokens_per_s,
                        t.prompt_tokens,
                        t.prompt_tokens_per_s
                    );
                }
                messages.push(Message::new("assistant", done.text.trim()));
            }
            Err(e) => {
                messages.pop();
                eprintln!("error: {e}");
            }
        }
    }
    Ok(())
}

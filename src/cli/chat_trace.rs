//! How `srl chat` shows a reply's step trace as it streams: the `<think>`
//! monologue dimmed (or folded to one line with `--hide-think`), the answer
//! as written, and after the reply one line per part (thought, each numbered
//! step) with its tokens and time. `--trace FILE` appends each turn as one
//! JSON line (messages, thought, steps, timings, sampler settings): a record
//! that can later serve as a trajectory.

use serde_json::json;
use srl_runtime::step_trace::{StepTracer, TraceEvent, TracePart};
use srl_runtime::think::{THINK_CLOSE, THINK_OPEN};
use srl_runtime::{Message, SamplerConfig, Timings};
use std::io::Write;
use std::path::Path;

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Draws one reply.
pub struct TraceView {
    tracer: StepTracer,
    hide_think: bool,
    color: bool,
    in_thought: bool,
}

impl TraceView {
    pub fn new(in_think: bool, hide_think: bool, color: bool) -> TraceView {
        TraceView {
            tracer: StepTracer::new(in_think),
            hide_think,
            color,
            in_thought: false,
        }
    }

    /// Shows the text of `tokens` new tokens.
    pub fn push(&mut self, piece: &str, tokens: usize, out: &mut dyn Write) {
        let events = self.tracer.push(piece, tokens);
        self.show(&events, out);
    }

    /// Ends the reply: the rest of its text, then a line per part. Returns
    /// the parts.
    pub fn finish(mut self, out: &mut dyn Write) -> Vec<TracePart> {
        let tracer = std::mem::replace(&mut self.tracer, StepTracer::new(false));
        let (events, parts) = tracer.finish();
        self.show(&events, out);
        self.end_thought(out);
        let _ = writeln!(out);
        let numbered = parts.iter().any(|p| p.step.is_some());
        if numbered || parts.iter().any(|p| p.thought) {
            for p in &parts {
                let what = match (p.thought, p.step) {
                    (true, _) => "thought".to_string(),
                    (false, Some(n)) => format!("step {n}"),
                    (false, None) => "answer".to_string(),
                };
                let line = format!("[{what}: {} tokens, {:.2} s]", p.tokens, p.ms / 1e3);
                let _ = writeln!(out, "{}", self.dim(&line));
            }
        }
        let _ = out.flush();
        parts
    }

    fn show(&mut self, events: &[TraceEvent], out: &mut dyn Write) {
        for e in events {
            match e {
                TraceEvent::Thought(text) => {
                    if !self.in_thought {
                        self.in_thought = true;
                        let head = if self.hide_think {
                            "(thinking...)"
                        } else {
                            THINK_OPEN
                        };
                        let _ = write!(out, "{}", self.dim_open(head));
                    }
                    if !self.hide_think {
                        let _ = write!(out, "{text}");
                    }
                }
                TraceEvent::ThoughtEnd => self.end_thought(out),
                TraceEvent::StepStart(_) => {}
                TraceEvent::Answer(text) => {
                    let _ = write!(out, "{text}");
                }
            }
        }
        let _ = out.flush();
    }

    fn end_thought(&mut self, out: &mut dyn Write) {
        if self.in_thought {
            self.in_thought = false;
            let tail = if self.hide_think { "" } else { THINK_CLOSE };
            let _ = writeln!(out, "{tail}{}", if self.color { RESET } else { "" });
        }
    }

    fn dim_open(&self, head: &str) -> String {
        if self.color {
            format!("{DIM}{head}")
        } else {
            head.to_string()
        }
    }

    fn dim(&self, s: &str) -> String {
        if self.color {
            format!("{DIM}{s}{RESET}")
        } else {
            s.to_string()
        }
    }
}

/// Appends one turn to the `--trace` file (`session` names the chat).
#[allow(clippy::too_many_arguments)]
pub fn record_turn(
    path: &Path,
    session: &str,
    turn: usize,
    messages: &[Message],
    reply: &str,
    parts: &[TracePart],
    timings: &Timings,
    sampler: &SamplerConfig,
) -> anyhow::Result<()> {
    let thought: String = parts
        .iter()
        .filter(|p| p.thought)
        .map(|p| p.text.as_str())
        .collect();
    let steps: Vec<_> = parts
        .iter()
        .filter(|p| !p.thought)
        .map(|p| json!({"step": p.step, "text": p.text.trim(), "tokens": p.tokens, "ms": p.ms}))
        .collect();
    let line = json!({
        "session": session,
        "turn": turn,
        "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
        "reply": reply,
        "thought": thought,
        "steps": steps,
        "timings": timings,
        "sampler": {
            "temperature": sampler.temperature, "top_k": sampler.top_k, "top_p": sampler.top_p,
            "min_p": sampler.min_p, "repeat_penalty": sampler.repeat_penalty, "seed": sampler.seed,
        },
    });
    append_line(path, &line)
}

/// Appends `/approve`'s mark of turn `turn` of chat `session`: `srl data
/// from-traces --approved-only` takes only the turns so marked.
pub fn approve_turn(path: &Path, session: &str, turn: usize) -> anyhow::Result<()> {
    append_line(path, &json!({"session": session, "approve": turn}))
}

/// One JSON line, appended whole and flushed to disk.
fn append_line(path: &Path, line: &serde_json::Value) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the trace file {}: {e}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| anyhow::anyhow!("cannot write the trace file {}: {e}", path.display()))?;
    Ok(())
}

//! Step traces of a streamed response: which text is the `<think>`
//! monologue, where each numbered step of the answer begins, and how many
//! tokens and how much time each part took. `srl chat` draws the trace as it
//! streams (the monologue dimmed or folded, steps numbered with their cost)
//! and records it with `--trace`.
//!
//! A step starts at the beginning of an answer line with a step label
//! (`Step N:`, `N.`, `N)`, `**N.**`...: the grammar of [`crate::step_label`],
//! which `srl data build` splits solutions on); an answer without labels is
//! one part, unnumbered.

use crate::step_label::{line_start, LineStart};
use serde::Serialize;
use std::time::Instant;

use crate::think::{THINK_CLOSE as CLOSE, THINK_OPEN as OPEN};

/// What a piece of streamed text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// Monologue text (tags removed).
    Thought(String),
    /// The monologue ended.
    ThoughtEnd,
    /// A numbered step begins (its label text follows as `Answer`).
    StepStart(usize),
    /// Answer text.
    Answer(String),
}

/// One finished part of a response (`ms`: its time from its first token,
/// the first part's from the response's first token).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracePart {
    /// The step number, or None for the monologue and unlabelled text.
    pub step: Option<usize>,
    pub thought: bool,
    pub text: String,
    pub tokens: usize,
    pub ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Only whitespace so far: a `<think>` may open.
    Start,
    Think,
    Answer,
}

/// Follows a response as it streams; see the module docs.
pub struct StepTracer {
    at: At,
    /// Text held back: a partial tag, or the start of an answer line that
    /// may still become a step label.
    held: String,
    /// Whether the next answer text begins a line.
    line_start: bool,
    parts: Vec<TracePart>,
    current: TracePart,
    /// From the first token on: the prompt's reading is not a step's time.
    started: Option<Instant>,
}

impl StepTracer {
    /// `in_think`: the prompt opened the monologue, so the response starts
    /// inside it.
    pub fn new(in_think: bool) -> StepTracer {
        StepTracer {
            at: if in_think { At::Think } else { At::Start },
            held: String::new(),
            line_start: true,
            parts: Vec::new(),
            current: TracePart {
                step: None,
                thought: in_think,
                text: String::new(),
                tokens: 0,
                ms: 0.0,
            },
            started: None,
        }
    }

    /// Takes the text of `tokens` new tokens; returns what it was.
    pub fn push(&mut self, piece: &str, tokens: usize) -> Vec<TraceEvent> {
        self.started.get_or_insert_with(Instant::now);
        self.current.tokens += tokens;
        self.held.push_str(piece);
        let mut events = Vec::new();
        self.drain(&mut events, false);
        events
    }

    /// The end of the response: releases held text and closes the last part.
    pub fn finish(mut self) -> (Vec<TraceEvent>, Vec<TracePart>) {
        let mut events = Vec::new();
        self.drain(&mut events, true);
        self.close_part(None, false);
        (events, self.parts)
    }

    fn drain(&mut self, events: &mut Vec<TraceEvent>, end: bool) {
        loop {
            match self.at {
                At::Start => {
                    let t = self.held.trim_start();
                    if t.is_empty() {
                        if end {
                            self.held.clear();
                        }
                        return;
                    }
                    if let Some(rest) = t.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.at = At::Think;
                        self.current.thought = true;
                    } else if OPEN.starts_with(t) && !end {
                        return;
                    } else {
                        self.at = At::Answer;
                    }
                }
                At::Think => {
                    if let Some(i) = self.held.find(CLOSE) {
                        let text = self.held[..i].to_string();
                        self.held = self.held[i + CLOSE.len()..].trim_start().to_string();
                        self.emit_thought(text, events);
                        events.push(TraceEvent::ThoughtEnd);
                        self.close_part(None, false);
                        self.at = At::Answer;
                        self.line_start = true;
                        continue;
                    }
                    // Keep what could be the start of `</think>`.
                    let keep = if end {
                        0
                    } else {
                        partial_suffix(&self.held, CLOSE)
                    };
                    let cut = self.held.len() - keep;
                    let text = self.held[..cut].to_string();
                    self.held.drain(..cut);
                    self.emit_thought(text, events);
                    return;
                }
                At::Answer => {
                    if self.held.is_empty() {
                        return;
                    }
                    if self.line_start {
                        let line_end = self.held.find('\n');
                        let head = &self.held[..line_end.unwrap_or(self.held.len())];
                        match line_start(head, line_end.is_some() || end) {
                            LineStart::Step(n) => {
                                let n = n as usize;
                                self.close_part(Some(n), false);
                                events.push(TraceEvent::StepStart(n));
                            }
                            LineStart::Undecided => return,
                            LineStart::Text => {}
                        }
                        self.line_start = false;
                    }
                    // Up to and including the next newline is settled.
                    let cut = match self.held.find('\n') {
                        Some(i) => {
                            self.line_start = true;
                            i + 1
                        }
                        None => self.held.len(),
                    };
                    let text: String = self.held.drain(..cut).collect();
                    self.current.text.push_str(&text);
                    events.push(TraceEvent::Answer(text));
                }
            }
        }
    }

    fn emit_thought(&mut self, text: String, events: &mut Vec<TraceEvent>) {
        if !text.is_empty() {
            self.current.text.push_str(&text);
            events.push(TraceEvent::Thought(text));
        }
    }

    /// Ends the current part (kept if it has text or tokens) and starts the
    /// next one.
    fn close_part(&mut self, step: Option<usize>, thought: bool) {
        let now = self
            .started
            .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
        let next = TracePart {
            step,
            thought,
            text: String::new(),
            tokens: 0,
            ms: now,
        };
        let mut done = std::mem::replace(&mut self.current, next);
        done.ms = now - done.ms;
        if !done.text.trim().is_empty() {
            self.parts.push(done);
        } else {
            // Tokens of a blank part (whitespace, tags) go to the next one.
            self.current.tokens += done.tokens;
        }
    }
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            s.len() >= n && s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], in_think: bool) -> (Vec<TraceEvent>, Vec<TracePart>) {
        let mut t = StepTracer::new(in_think);
        let mut events: Vec<TraceEvent> = Vec::new();
        for p in pieces {
            events.extend(t.push(p, 1));
        }
        let (rest, parts) = t.finish();
        events.extend(rest);
        (events, parts)
    }

    fn joined(events: &[TraceEvent], thought: bool) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Thought(s) if thought => Some(s.as_str()),
                TraceEvent::Answer(s) if !thought => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn monologue_and_numbered_steps_split_across_pieces() {
        let pieces = [
            "<thi",
            "nk>",
            "Convert",
            " first.</",
            "think>\n",
            "Step",
            " 1: 1 km",
            " is 1000 m.\n",
            "Step 2: 3 × 1000 = 3000",
            ".\n",
            "So 3000 m.",
        ];
        let (events, parts) = run(&pieces, false);
        assert_eq!(joined(&events, true), "Convert first.");
        assert_eq!(
            joined(&events, false),
            "Step 1: 1 km is 1000 m.\nStep 2: 3 × 1000 = 3000.\nSo 3000 m."
        );
        let starts: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::StepStart(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [1, 2]);
        let summary: Vec<(Option<usize>, bool, &str)> = parts
            .iter()
            .map(|p| (p.step, p.thought, p.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (None, true, "Convert first."),
                (Some(1), false, "Step 1: 1 km is 1000 m.\n"),
                (Some(2), false, "Step 2: 3 × 1000 = 3000.\nSo 3000 m."),
            ]
        );
        // Every token is counted once.
        assert_eq!(parts.iter().map(|p| p.tokens).sum::<usize>(), pieces.len());
    }

    #[test]
    fn labels_and_plain_answers() {
        for (line, step) in [
            ("1. Multiply", Some(1)),
            ("**2.** Add", Some(2)),
            ("Step 3 - Add", Some(3)),
            ("Step 3 is to add", None),
            ("## Step 4: Done", Some(4)),
            ("10) Ten", Some(10)),
            ("1000 meters", None),
            ("Stepping stones", None),
        ] {
            let got = match line_start(line, true) {
                LineStart::Step(n) => Some(n),
                _ => None,
            };
            assert_eq!(got, step, "{line}");
        }
        // No think block, no labels: one unnumbered part.
        let (events, parts) = run(&["Paris is", " the capital."], false);
        assert_eq!(joined(&events, false), "Paris is the capital.");
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].step, parts[0].thought), (None, false));
        // A prompt that opened the block: the output starts inside it.
        let (events, _) = run(&["hmm</think>ok"], true);
        assert_eq!(
            (joined(&events, true), joined(&events, false)),
            ("hmm".to_string(), "ok".to_string())
        );
        // An unclosed monologue is released at the end.
        let (events, _) = run(&["<think>never closed </th"], false);
        assert_eq!(joined(&events, true), "never closed </th");
    }
}

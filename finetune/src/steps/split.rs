//! Raw solution text cut into numbered steps, for `srl data build`.
//!
//! A step starts at a line (outside code fences) carrying a step label (the
//! grammar of [`srl_runtime::step_label`]: `Step 1:`, `**1.**`, `## 1. Title`
//! ...), or at a markdown heading. Labels must count up from 1; a label out of sequence
//! is text of the current step. "Step k" labels win when there are any;
//! else numbered lines, counted at the indentation of the first (deeper
//! ones are sub-lists); else headings of the highest level, when there are
//! two or more (also preferred over numbers that restart at 1, i.e. one
//! list per section). A step runs up to the next step's line; the label
//! and the decoration around it (heading hashes, bold around the label) are
//! removed. Text before the first step is not a step and is dropped (and
//! counted); a solution with no steps is skipped and counted.
//!
//! A step's title (for `--title-hint`) is the text of its first line when
//! that line is a markdown heading or all bold and more lines follow.

use srl_runtime::step_label::{marker, Label, Marker};

/// A step found in a solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundStep {
    /// The step's text, its label removed.
    pub text: String,
    /// Its title (see the module docs), if it has one.
    pub title: Option<String>,
}

/// What [`split_solution`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Empty when no steps were found.
    pub steps: Vec<FoundStep>,
    /// The text before the first step (trimmed), which is not a step.
    pub preamble: String,
}

/// The lines joined, without the blank lines at either end (indentation
/// of the first kept).
fn join_trimmed(lines: &[&str]) -> String {
    let blank = |l: &&str| l.trim().is_empty();
    let start = lines.iter().position(|l| !blank(l)).unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !blank(l))
        .map_or(start, |i| i + 1);
    let mut s = lines[start..end].join("\n");
    s.truncate(s.trim_end().len());
    s
}

/// A step from its marker line and the lines after it.
fn found_step(first: &Marker, body: &[&str]) -> FoundStep {
    let first_text = first.text.trim();
    let mut lines = Vec::with_capacity(body.len() + 1);
    lines.push(first_text);
    lines.extend_from_slice(body);
    let has_body = body.iter().any(|l| !l.trim().is_empty());
    let title = first
        .title
        .clone()
        .filter(|_| has_body && !first_text.is_empty());
    FoundStep {
        text: join_trimmed(&lines),
        title,
    }
}

/// The lines that start steps: markers whose label `number` gives counting
/// up from 1, at or above the indentation of the first; and whether a
/// label 1 came again at that level (a list restarting per section).
fn chain(
    markers: &[Option<Marker>],
    number: impl Fn(&Marker) -> Option<u32>,
) -> (Vec<usize>, bool) {
    let mut starts = Vec::new();
    let mut base = usize::MAX;
    let mut restarted = false;
    for (i, m) in markers.iter().enumerate() {
        let Some((m, n)) = m.as_ref().and_then(|m| number(m).map(|n| (m, n))) else {
            continue;
        };
        if m.indent > base {
            continue;
        }
        if n as usize == starts.len() + 1 {
            if starts.is_empty() {
                base = m.indent;
            }
            starts.push(i);
        } else if n == 1 && !starts.is_empty() {
            restarted = true;
        }
    }
    (starts, restarted)
}

/// Cuts a raw solution into steps (see the module docs).
pub fn split_solution(text: &str) -> Split {
    let lines: Vec<&str> = text.lines().collect();
    let mut fence = false;
    let markers: Vec<Option<Marker>> = lines
        .iter()
        .map(|line| {
            let t = line.trim_start();
            if t.starts_with("```") || t.starts_with("~~~") {
                fence = !fence;
                return None;
            }
            if fence {
                return None;
            }
            marker(line).filter(|m| m.label.is_some() || m.heading.is_some())
        })
        .collect();
    let (step_words, _) = chain(&markers, |m| match m.label {
        Some(Label::Step(n)) => Some(n),
        _ => None,
    });
    let (numbers, restarted) = chain(&markers, |m| match m.label {
        Some(Label::Number(n)) => Some(n),
        _ => None,
    });
    let headings: Vec<usize> = {
        let unlabelled = |m: &Marker| m.label.is_none() && m.heading.is_some();
        let top = markers
            .iter()
            .flatten()
            .filter(|m| unlabelled(m))
            .filter_map(|m| m.heading)
            .min();
        (0..markers.len())
            .filter(|&i| {
                markers[i]
                    .as_ref()
                    .is_some_and(|m| unlabelled(m) && m.heading == top)
            })
            .collect()
    };
    let starts = if !step_words.is_empty() {
        step_words
    } else if !numbers.is_empty() && !restarted {
        numbers
    } else if headings.len() >= 2 {
        headings
    } else {
        numbers
    };
    let Some(&first) = starts.first() else {
        return Split {
            steps: Vec::new(),
            preamble: text.trim().to_string(),
        };
    };
    let steps = starts
        .iter()
        .enumerate()
        .filter_map(|(k, &s)| {
            let end = starts.get(k + 1).copied().unwrap_or(lines.len());
            Some(found_step(markers[s].as_ref()?, &lines[s + 1..end]))
        })
        .collect();
    Split {
        steps,
        preamble: join_trimmed(&lines[..first]),
    }
}

/// `text` without a leading "Step k:" label in any of the forms of the
/// module docs (and the heading or bold around it); else `text` trimmed.
pub fn strip_step_label(text: &str) -> String {
    let text = text.trim();
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    match marker(first) {
        Some(m) if matches!(m.label, Some(Label::Step(_))) => {
            let rest = rest.trim_end();
            match (m.text.is_empty(), rest.trim().is_empty()) {
                (_, true) => m.text,
                (true, false) => rest.trim_start_matches(['\n', '\r']).to_string(),
                (false, false) => format!("{}\n{rest}", m.text),
            }
        }
        _ => text.to_string(),
    }
}

/// An expert step given in a `steps` array: its label removed, its title.
pub(super) fn given_step(action: &str) -> FoundStep {
    let text = strip_step_label(action);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let title = marker(first)
        .and_then(|m| m.title)
        .filter(|_| !rest.trim().is_empty());
    FoundStep { text, title }
}

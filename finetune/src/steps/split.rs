//! Raw solution text cut into numbered steps, for `srl data build`.
//!
//! A step starts at a line (outside code fences) carrying a step label:
//! `Step 1:` / `Step 1.` / `Step 1 -` / `**Step 1:**` / `### Step 1: Title`,
//! `1.` / `1)` / `(1)` / `**1.**` / `**1. Title**` / `## 1. Title`, or at a
//! markdown heading. Labels must count up from 1; a label out of sequence
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

/// A step label: "Step k" or a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Step(u32),
    Number(u32),
}

/// What one line says about steps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    label: Option<Label>,
    /// The markdown heading level.
    heading: Option<usize>,
    /// Leading whitespace width (a tab is 4).
    indent: usize,
    /// The line without heading hashes, label, and bold around the label.
    text: String,
    /// The heading's text, or the text a bold span wraps entirely.
    title: Option<String>,
}

/// Reads a step label at the start of `s` (after any heading hashes and an
/// opening bold `bold`): the label, the text after it, and whether the
/// bold closed inside the label (`**Step 1:**`).
fn parse_label<'a>(
    s: &'a str,
    bold: Option<&str>,
    heading: bool,
) -> Option<(Label, &'a str, bool)> {
    let word = s.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("step"));
    let paren = !word && s.starts_with('(');
    let t = if word {
        s[4..].trim_start()
    } else if paren {
        &s[1..]
    } else {
        s
    };
    let n_digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if n_digits == 0 || n_digits > 3 {
        return None;
    }
    let n: u32 = t[..n_digits].parse().ok()?;
    let mut t = &t[n_digits..];
    if paren {
        t = t.strip_prefix(')')?;
    }
    let mut closed = false;
    let mut close = |t: &'a str| -> &'a str {
        match bold.and_then(|d| t.strip_prefix(d)) {
            Some(rest) if !closed => {
                closed = true;
                rest
            }
            _ => t,
        }
    };
    t = close(t);
    let mut sep = paren;
    if !paren {
        let u = if word { t.trim_start() } else { t };
        if let Some(c) = u.chars().next().filter(|c| ":.)-–—".contains(*c)) {
            let after = &u[c.len_utf8()..];
            // "1.5" and "Step 1.2" are numbers, not labels.
            if after.starts_with(|d: char| d.is_ascii_digit()) || (!word && !".)".contains(c)) {
                return None;
            }
            t = after;
            sep = true;
        }
    }
    t = close(t);
    let label = if word {
        if !(sep || closed || heading || t.trim().is_empty()) {
            return None; // "Step 1 is to ..."
        }
        Label::Step(n)
    } else {
        // "1." then a space, the end, or the bold's end.
        if !sep || !(closed || t.is_empty() || t.starts_with(char::is_whitespace)) {
            return None;
        }
        Label::Number(n)
    };
    Some((label, t.trim_start(), closed))
}

/// What `line` says about steps; None for ordinary text.
fn marker(line: &str) -> Option<Marker> {
    let trimmed = line.trim_start();
    let indent = line[..line.len() - trimmed.len()]
        .chars()
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum();
    let mut s = trimmed.trim_end();
    let mut heading = None;
    let hashes = s.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) && s[hashes..].chars().next().is_none_or(char::is_whitespace) {
        heading = Some(hashes);
        s = s[hashes..].trim();
        let unclosed = s.trim_end_matches('#');
        if unclosed.len() < s.len() && (unclosed.is_empty() || unclosed.ends_with(' ')) {
            s = unclosed.trim_end(); // "## Title ##"
        }
    }
    let bold = ["**", "__"].into_iter().find(|d| s.starts_with(d));
    let label = parse_label(bold.map_or(s, |d| &s[d.len()..]), bold, heading.is_some());
    let (label, text, title) = match (label, bold) {
        // Bold opened before the label and still open: "**1. Title**".
        (Some((label, rest, false)), Some(d)) => match rest.find(d) {
            Some(i) if i + d.len() == rest.len() => {
                let title = rest[..i].trim();
                (Some(label), title.to_string(), Some(title.to_string()))
            }
            Some(i) => (
                Some(label),
                format!("{}{}", &rest[..i], &rest[i + d.len()..]),
                None,
            ),
            None => (Some(label), rest.to_string(), None),
        },
        (Some((label, rest, _)), _) => (Some(label), rest.to_string(), whole_bold(rest)),
        (None, _) => (None, s.to_string(), whole_bold(s)),
    };
    let title = match heading {
        Some(_) => whole_bold(&text).or(Some(text.clone())),
        None => title,
    }
    .filter(|t| !t.is_empty());
    if label.is_none() && heading.is_none() && title.is_none() {
        return None;
    }
    Some(Marker {
        label,
        heading,
        indent,
        text,
        title,
    })
}

/// The inside of `**text**` / `__text__` when the bold spans all of `s`.
fn whole_bold(s: &str) -> Option<String> {
    ["**", "__"].into_iter().find_map(|d| {
        let inner = s.strip_prefix(d)?.strip_suffix(d)?;
        (!inner.contains(d) && !inner.trim().is_empty()).then(|| inner.trim().to_string())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let l = |s: &str| marker(s).and_then(|m| m.label);
        assert_eq!(l("Step 1: x"), Some(Label::Step(1)));
        assert_eq!(l("step 2. x"), Some(Label::Step(2)));
        assert_eq!(l("STEP 3 - x"), Some(Label::Step(3)));
        assert_eq!(l("Step 4 — x"), Some(Label::Step(4)));
        assert_eq!(l("Step 5"), Some(Label::Step(5)));
        assert_eq!(l("**Step 6:** x"), Some(Label::Step(6)));
        assert_eq!(l("**Step 7**: x"), Some(Label::Step(7)));
        assert_eq!(l("### Step 8 Compute"), Some(Label::Step(8)));
        assert_eq!(l("Step1: x"), Some(Label::Step(1)));
        assert_eq!(l("Step 1 is to add"), None);
        assert_eq!(l("Steps 1-3 add"), None);
        assert_eq!(l("Step 1.5 x"), None);
        assert_eq!(l("1. x"), Some(Label::Number(1)));
        assert_eq!(l("  12) x"), Some(Label::Number(12)));
        assert_eq!(l("(3) x"), Some(Label::Number(3)));
        assert_eq!(l("**4.** x"), Some(Label::Number(4)));
        assert_eq!(l("**5**. x"), Some(Label::Number(5)));
        assert_eq!(l("## 6. Title"), Some(Label::Number(6)));
        assert_eq!(l("1."), Some(Label::Number(1)));
        assert_eq!(l("1.5 is half of 3"), None);
        assert_eq!(l("1.x"), None);
        assert_eq!(l("1 - 2 = -1"), None);
        assert_eq!(l("1: x"), None);
        assert_eq!(l("2024. A year"), None);
        assert_eq!(l("#hashtag 1."), None);
    }

    #[test]
    fn marker_text_and_title() {
        let m = |s: &str| marker(s).map(|m| (m.text, m.title));
        let some = |t: &str, title: Option<&str>| Some((t.to_string(), title.map(String::from)));
        assert_eq!(
            m("**Step 1: Add them**"),
            some("Add them", Some("Add them"))
        );
        assert_eq!(m("**Step 1:** Add them"), some("Add them", None));
        assert_eq!(m("**1. Add** them"), some("Add them", None));
        assert_eq!(m("1. **Add them**"), some("**Add them**", Some("Add them")));
        assert_eq!(m("### Step 2: Add ###"), some("Add", Some("Add")));
        assert_eq!(m("## **Add**"), some("**Add**", Some("Add")));
        assert_eq!(m("**Note**"), some("**Note**", Some("Note")));
        assert_eq!(m("plain text"), None);
    }
}

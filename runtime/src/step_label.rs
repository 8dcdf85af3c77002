//! Step labels: the one grammar of the lines that begin a numbered step,
//! read by `srl data build` (cutting expert solutions into steps), by SRL's
//! response parser (an action's own "Step k:" is removed) and by the step
//! traces of `srl chat` (which part of a streamed answer is which step).
//!
//! A label is `Step 1:` / `Step 1.` / `Step 1 -` / `**Step 1:**` /
//! `### Step 1: Title` ("Step k" labels), or `1.` / `1)` / `(1)` / `**1.**` /
//! `**1. Title**` / `## 1. Title` (numbers). "Step 1 is to ..." and "1.5 is
//! half of 3" are text, not labels.

/// A step label: "Step k" or a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Step(u32),
    Number(u32),
}

/// What one line says about steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub label: Option<Label>,
    /// The markdown heading level.
    pub heading: Option<usize>,
    /// Leading whitespace width (a tab is 4).
    pub indent: usize,
    /// The line without heading hashes, label, and bold around the label.
    pub text: String,
    /// The heading's text, or the text a bold span wraps entirely.
    pub title: Option<String>,
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
pub fn marker(line: &str) -> Option<Marker> {
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

/// What the beginning of a line that is still streaming says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStart {
    /// It carries a step label with this number.
    Step(u32),
    /// It is ordinary text.
    Text,
    /// Not known until more of the line arrives.
    Undecided,
}

/// Characters after which a line's label (or its absence) is settled
/// whatever follows (a bound on what a stream holds back).
const LABEL_WINDOW: usize = 24;

/// Whether text that carries no label yet could still become a labelled
/// line's beginning: heading hashes, an opening bold, then a prefix of
/// "step", "step" and a number, "(" and digits, or digits.
fn could_become_label(head: &str) -> bool {
    let t = head.trim_start();
    let hashes = t.bytes().take_while(|&b| b == b'#').count();
    let t = if hashes > 0 {
        t[hashes..].trim_start()
    } else {
        t
    };
    let t = ["**", "__", "*", "_"]
        .into_iter()
        .find_map(|d| t.strip_prefix(d))
        .unwrap_or(t);
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 3;
    let word = t.get(..4.min(t.len())).unwrap_or("");
    if t.len() <= 4 && "step".starts_with(&word.to_ascii_lowercase()) {
        return true; // "", "S", "st", "Step"
    }
    if word.eq_ignore_ascii_case("step") {
        // "Step 1", "Step 12 " (a separator may still come).
        return digits_only(t[4..].trim());
    }
    digits_only(t.strip_prefix('(').unwrap_or(t))
}

/// Reads the beginning `head` of a line (`complete`: the whole line) with
/// [`marker`]'s grammar, deciding as soon as more text can no longer change
/// the answer: a stream holds back only a line's beginning that is still a
/// label's prefix ("Ste", "12", "Step 3:" before the text after it).
pub fn line_start(head: &str, complete: bool) -> LineStart {
    let marker = marker(head);
    let label = marker.as_ref().and_then(|m| m.label);
    if !complete && head.trim_start().chars().count() < LABEL_WINDOW {
        let undecided = match &marker {
            // A label with nothing after it yet: "1." may become "1.5".
            Some(m) if label.is_some() => m.text.trim().is_empty(),
            _ => could_become_label(head),
        };
        if undecided {
            return LineStart::Undecided;
        }
    }
    match label {
        Some(Label::Step(n) | Label::Number(n)) => LineStart::Step(n),
        None => LineStart::Text,
    }
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

    #[test]
    fn streamed_line_starts() {
        assert_eq!(line_start("1.", false), LineStart::Undecided);
        assert_eq!(line_start("1.", true), LineStart::Step(1));
        assert_eq!(line_start("1.5 is half of three", true), LineStart::Text);
        assert_eq!(line_start("Paris", false), LineStart::Text);
        assert_eq!(
            line_start("**Step 12:** then a long text", false),
            LineStart::Step(12)
        );
        assert_eq!(
            line_start("Step 1 is to add the two", false),
            LineStart::Text
        );
        assert_eq!(line_start("  ", false), LineStart::Undecided);
        // Decided as soon as the text cannot be a label's beginning.
        assert_eq!(line_start("So the answer", false), LineStart::Text);
        assert_eq!(line_start("12 minutes", false), LineStart::Text);
        assert_eq!(line_start("Ste", false), LineStart::Undecided);
        assert_eq!(line_start("## Step 2", false), LineStart::Undecided);
        assert_eq!(line_start("(3", false), LineStart::Undecided);
        assert_eq!(line_start("Step 3 is", false), LineStart::Text);
        assert_eq!(line_start("**1.** Add", false), LineStart::Step(1));
    }
}

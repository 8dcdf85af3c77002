//! Final answers for RLVR's verifiable reward (SRL.md, "RLVR"): find the
//! answer a whole-solution rollout ends with, normalise it and the reference,
//! and compare.
//!
//! Extraction ([`final_answer`]), in the text after the last `</think>` when
//! there is one:
//! 1. the last `\boxed{...}` (or `\fbox{...}`, `\boxed 5`), nested braces
//!    matched;
//! 2. else the last "answer is ..." / "answer: ..." (any case, "The final
//!    answer is $42$. I hope it is correct." gives `42`): the rest of that
//!    line, up to a closing `$` when it starts with one, else up to the end
//!    of the sentence;
//! 3. else the last number (`-3`, `1,234.5`, `.5`, `3/4`; not an exponent or
//!    index like `^2`), or the whole `$...$` formula it sits in.
//!
//! Normalisation ([`normalize`]) writes one spelling of an answer: no `$`,
//! `\left`/`\right`, LaTeX spacing or `\text{}` wrappers; `\dfrac`/`\tfrac`
//! as `\frac`, `\frac{a}{b}` as `a/b`, `\sqrt2` as `\sqrt{2}`; `^\circ` as
//! `°`, `\%` as `%`; no whitespace, no trailing period, no thousands
//! separators (`1,000`, `1{,}000`, `1\,000`), no leading `x =`. A trailing
//! unit (`cm`, `m/s`, `apples`, `°`, `%`) after a number is split off.
//!
//! Comparison ([`answers_match`]): the values are equal as text, or both are
//! numbers of equal value (exact rationals: `0.5`, `.50`, `1/2`,
//! `\frac{1}{2}`, `2/4`), or both are tuples/intervals with the same
//! brackets whose items are equal. Units: two different units never match
//! (no conversion); the same unit on both sides, or a unit on one side only
//! (references often leave units out, so `5 cm` matches `5`), is ignored.
//! `50%` therefore matches `50`, not `0.5`.

/// Decides whether a rollout's response earns the verifiable reward.
pub trait AnswerChecker {
    /// Whether `response`'s final answer matches `reference` (an answer,
    /// possibly written as `\boxed{...}`).
    fn check(&self, response: &str, reference: &str) -> bool;
}

/// Math answers: extraction, normalisation and value comparison as in the
/// module docs. The default checker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MathAnswer;

/// The extracted answer equals the reference as text, up to surrounding
/// whitespace. The answer is the last `\boxed{}` or the "answer: ..." text,
/// else the whole response (after `</think>`): for tasks whose answers are
/// labels or strings, not numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactMatch;

impl AnswerChecker for MathAnswer {
    fn check(&self, response: &str, reference: &str) -> bool {
        let reference = extract_boxed(reference).unwrap_or(reference);
        final_answer(response).is_some_and(|a| answers_match(a, reference))
    }
}

impl AnswerChecker for ExactMatch {
    fn check(&self, response: &str, reference: &str) -> bool {
        let text = after_think(response);
        let answer = extract_boxed(text)
            .or_else(|| marked_answer(text))
            .unwrap_or(text);
        answer.trim() == reference.trim()
    }
}

/// The part of a response that holds its answer: after the last
/// `</think>`, if anything follows it.
fn after_think(response: &str) -> &str {
    use srl_runtime::think::THINK_CLOSE;
    match response.rfind(THINK_CLOSE) {
        Some(i) if !response[i + THINK_CLOSE.len()..].trim().is_empty() => {
            &response[i + THINK_CLOSE.len()..]
        }
        _ => response,
    }
}

/// The final answer of a response (see the module docs), trimmed; None when
/// it has no box, no "answer" phrase and no number.
pub fn final_answer(response: &str) -> Option<&str> {
    let text = after_think(response);
    extract_boxed(text)
        .or_else(|| marked_answer(text))
        .or_else(|| last_number(text))
}

/// The answer a text states: its last `\boxed{}`, else its last
/// "answer is ..." / "answer: ..." (not a bare number, which prose has
/// plenty of); trimmed.
pub fn stated_answer(text: &str) -> Option<&str> {
    let text = after_think(text);
    extract_boxed(text).or_else(|| marked_answer(text))
}

/// The content of the last `\boxed{...}` or `\fbox{...}` in `text`
/// (nested braces matched, `\{` and `\}` skipped), or of `\boxed 5` (up to
/// whitespace or `$`); trimmed.
pub fn extract_boxed(text: &str) -> Option<&str> {
    let mut starts: Vec<(usize, usize)> = ["\\boxed", "\\fbox"]
        .iter()
        .flat_map(|cmd| text.match_indices(cmd).map(|(i, m)| (i, i + m.len())))
        .collect();
    starts.sort_unstable();
    starts.iter().rev().find_map(|&(_, end)| {
        let rest = &text[end..];
        if let Some(body) = rest.trim_start().strip_prefix('{') {
            let close = matching_brace(body)?;
            return Some(body[..close].trim());
        }
        // `\boxed 5`: a space, then one token.
        let token = rest.strip_prefix(' ')?.trim_start();
        let end = token
            .find(|c: char| c.is_whitespace() || c == '$')
            .unwrap_or(token.len());
        (end > 0).then(|| &token[..end])
    })
}

/// Index of the `}` that closes a group whose `{` came just before `s`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The text after the last "answer is" / "answer:" phrase, as the module
/// docs describe; None if there is none or it is empty.
fn marked_answer(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let (pos, len) = ["answer is", "answer:"]
        .iter()
        .filter_map(|m| lower.rfind(m).map(|i| (i, m.len())))
        .max()?;
    let rest = &text[pos + len..];
    let rest = rest[..rest.find('\n').unwrap_or(rest.len())]
        .trim_start_matches([':', '*', ' ', '\t'])
        .trim();
    let answer = if let Some(math) = rest.strip_prefix('$') {
        let math = math.strip_prefix('$').unwrap_or(math);
        &math[..math.find('$').unwrap_or(math.len())]
    } else {
        let end = rest
            .char_indices()
            .find(|&(i, c)| c == '.' && rest[i + 1..].starts_with(char::is_whitespace))
            .map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    };
    let answer = answer.trim().trim_end_matches(['.', '*']).trim();
    (!answer.is_empty()).then_some(answer)
}

/// The last number in `text`: an optional sign (when not glued to a word
/// before it), digits with optional thousands groups, a decimal part, and
/// an optional `/digits` denominator; or `.5`. Digits glued to a name or
/// an index (`x2`, `^2`, `_{1}`) are not numbers; a number inside `$...$`
/// gives the whole formula.
fn last_number(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut last = None;
    let mut i = 0;
    while i < b.len() {
        let starts_number =
            b[i].is_ascii_digit() || (b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit());
        // Not inside a number, a name (`x2`) or an index (`^2`, `_{10}`).
        let glued =
            |j: usize| j > 0 && (b[j - 1].is_ascii_alphanumeric() || b"^_".contains(&b[j - 1]));
        if !starts_number || glued(i) || (i > 1 && b[i - 1] == b'{' && b"^_".contains(&b[i - 2])) {
            i += 1;
            continue;
        }
        let mut start = i;
        if start > 0
            && b[start - 1] == b'-'
            && (start == 1 || !b[start - 2].is_ascii_alphanumeric())
        {
            start -= 1;
        }
        let mut end = digits(i);
        // Thousands groups: ",ddd" not followed by another digit.
        while end + 4 <= b.len()
            && b[end] == b','
            && b[end + 1..end + 4].iter().all(u8::is_ascii_digit)
            && digits(end + 1) == end + 4
        {
            end += 4;
        }
        if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
            end = digits(end + 1);
        }
        if end + 1 < b.len() && b[end] == b'/' && b[end + 1].is_ascii_digit() {
            end = digits(end + 1);
        }
        last = Some((start, end));
        i = end.max(i + 1);
    }
    let (start, end) = last?;
    // Inside `$...$`: the whole formula (`$\frac{1}{2}$` is not `2`).
    let mut open = None;
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && (j == 0 || b[j - 1] != b'\\') {
            let len = if b.get(j + 1) == Some(&b'$') { 2 } else { 1 };
            match open {
                None => open = Some(j + len),
                Some(from) => {
                    if from <= start && end <= j {
                        return Some(text[from..j].trim());
                    }
                    open = None;
                }
            }
            j += len;
        } else {
            j += 1;
        }
    }
    Some(&text[start..end])
}

/// An answer in one spelling: its value (no whitespace) and the unit split
/// off its end, if any (lower case, singular; `°` for degrees, `%` for
/// percent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub value: String,
    pub unit: Option<String>,
}

/// Units that may follow a number with no space (`5cm`) or that are a
/// single letter (`5 m`); longer words after a space are units anyway.
const KNOWN_UNITS: &[&str] = &[
    "m", "cm", "mm", "km", "g", "kg", "mg", "s", "h", "l", "ml", "ft", "in", "yd", "mi", "lb",
    "lbs", "oz", "min", "hr", "hrs", "sec", "m^2", "cm^2", "m^3", "cm^3", "km/h", "m/s", "mph",
];

/// One spelling of an answer (see the module docs).
pub fn normalize(answer: &str) -> Normalized {
    let s = clean_latex(answer.trim());
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s).trim();
    let s = strip_variable(s);
    let (value, unit) = split_unit(s);
    Normalized {
        value: compact(value),
        unit,
    }
}

/// Whether two answers match (see the module docs).
pub fn answers_match(a: &str, b: &str) -> bool {
    let (x, y) = (normalize(a), normalize(b));
    if x.value.is_empty() || y.value.is_empty() {
        return false;
    }
    let units = match (&x.unit, &y.unit) {
        (Some(u), Some(v)) => u == v,
        _ => true,
    };
    units && values_equal(&x.value, &y.value)
}

/// Normalised values: equal text, equal numbers, or tuples of equal items.
fn values_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let (Some(x), Some(y)) = (parse_number(a), parse_number(b)) {
        return x == y;
    }
    match (tuple_items(a), tuple_items(b)) {
        (Some((oa, ia, ca)), Some((ob, ib, cb))) => {
            oa == ob
                && ca == cb
                && ia.len() == ib.len()
                && ia.iter().zip(&ib).all(|(x, y)| values_equal(x, y))
        }
        _ => false,
    }
}

/// `(a,b,...)`, `[a,b)` and the like: the brackets and the top-level items
/// (at least two).
fn tuple_items(s: &str) -> Option<(char, Vec<&str>, char)> {
    let open = s.chars().next().filter(|c| "([{".contains(*c))?;
    let close = s.chars().last().filter(|c| ")]}".contains(*c))?;
    let inner = &s[1..s.len() - 1];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    (items.len() >= 2).then_some((open, items, close))
}

/// Removes `\name` where it is a whole command (not followed by a letter),
/// replacing it with `with`.
fn replace_command(s: &str, name: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(name) {
        let after = &rest[i + name.len()..];
        out.push_str(&rest[..i]);
        if after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            out.push_str(name);
        } else {
            out.push_str(with);
        }
        rest = after;
    }
    out + rest
}

/// LaTeX spelled one way: see the module docs.
fn clean_latex(s: &str) -> String {
    let mut s = s.replace("\\$", "").replace('$', "");
    for (from, to) in [
        ("\\(", ""),
        ("\\)", ""),
        ("\\[", ""),
        ("\\]", ""),
        ("\\!", ""),
        ("\\,", " "),
        ("\\;", " "),
        ("\\:", " "),
        ("\\ ", " "),
        ("~", " "),
        ("{,}", ""),
        ("^{\\circ}", "°"),
        ("^\\circ", "°"),
        ("\\%", "%"),
        ("−", "-"),
    ] {
        s = s.replace(from, to);
    }
    for (from, to) in [
        ("\\left", ""),
        ("\\right", ""),
        ("\\displaystyle", ""),
        ("\\quad", " "),
        ("\\qquad", " "),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\circ", "°"),
        ("\\degree", "°"),
    ] {
        s = replace_command(&s, from, to);
    }
    for cmd in [
        "\\text", "\\textbf", "\\textit", "\\textrm", "\\mathrm", "\\mathbf", "\\mbox",
    ] {
        s = unwrap_command(&s, cmd);
    }
    s
}

/// `\text{X}` -> ` X` (the space separates a unit from its number).
fn unwrap_command(s: &str, name: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(name) {
        out.push_str(&rest[..i]);
        let after = &rest[i + name.len()..];
        let group = after
            .strip_prefix('{')
            .and_then(|body| matching_brace(body).map(|c| (body, c)));
        match group {
            Some((body, close)) => {
                out.push(' ');
                out.push_str(&body[..close]);
                rest = &body[close + 1..];
            }
            None => {
                out.push_str(name);
                rest = after;
            }
        }
    }
    out + rest
}

/// `x = 5` -> `5`: one variable (optionally subscripted) and one `=`.
fn strip_variable(s: &str) -> &str {
    let Some((lhs, rhs)) = s.split_once('=') else {
        return s;
    };
    let lhs = lhs.trim();
    let mut chars = lhs.chars();
    let is_var = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c == '{' || c == '}' || c.is_ascii_alphanumeric())
        && lhs.len() <= 6;
    if is_var && !rhs.contains('=') && !rhs.trim().is_empty() {
        rhs.trim()
    } else {
        s
    }
}

/// The value and the unit after it (see [`Normalized`]); no unit unless
/// the value is a number.
fn split_unit(s: &str) -> (&str, Option<String>) {
    let is_number = |v: &str| parse_number(&compact(v)).is_some();
    for sym in ['%', '°'] {
        if let Some(v) = s.strip_suffix(sym) {
            if is_number(v) {
                return (v, Some(sym.to_string()));
            }
        }
    }
    // Unit words after a space: letters, with `/` and `^2` inside.
    let unit_word = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_alphabetic())
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '^')
    };
    let words: Vec<(usize, &str)> = s
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - s.as_ptr() as usize, w))
        .collect();
    let first_unit = words
        .iter()
        .rposition(|(_, w)| !unit_word(w))
        .map_or(0, |i| i + 1);
    if first_unit > 0 && first_unit < words.len() {
        let start = words[first_unit].0;
        let (value, unit) = (&s[..start], &s[start..]);
        let letters = unit.chars().filter(char::is_ascii_alphabetic).count();
        let unit = unit_name(unit);
        if is_number(value) && (letters >= 2 || KNOWN_UNITS.contains(&unit.as_str())) {
            return (value.trim(), Some(unit));
        }
    }
    // A known unit glued to its number: `5cm`.
    if let Some(i) = s.find(|c: char| c.is_ascii_alphabetic()) {
        let unit = unit_name(&s[i..]);
        if KNOWN_UNITS.contains(&unit.as_str()) && is_number(&s[..i]) {
            return (&s[..i], Some(unit));
        }
    }
    (s, None)
}

/// A unit in one spelling: lower case, no spaces, singular, `°` and `%`.
fn unit_name(unit: &str) -> String {
    let u: String = unit
        .split_whitespace()
        .collect::<String>()
        .to_ascii_lowercase();
    match u.as_str() {
        "degree" | "degrees" | "deg" => "°".into(),
        "percent" | "pct" => "%".into(),
        _ if u.len() >= 4 && u.ends_with('s') && !u.ends_with("ss") => u[..u.len() - 1].into(),
        _ => u,
    }
}

/// The value without whitespace, `+` signs in front, outer braces or
/// thousands separators, with `\frac` as `/` and `\sqrt` arguments braced.
fn compact(value: &str) -> String {
    let mut s: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    while s.starts_with('{') && matching_brace(&s[1..]).map(|i| i + 2) == Some(s.len()) {
        s = s[1..s.len() - 1].to_string();
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest.to_string();
    }
    if is_thousands(&s) {
        s.retain(|c| c != ',');
    }
    let s = brace_sqrt(&s);
    fracs(&s)
}

/// `1,234` or `-12,345,678.9`: comma groups of three digits.
fn is_thousands(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let int = s.split_once('.').map_or(s, |(i, f)| {
        if f.chars().all(|c| c.is_ascii_digit()) {
            i
        } else {
            ""
        }
    });
    let mut groups = int.split(',');
    let head = groups.next().unwrap_or("");
    let rest: Vec<&str> = groups.collect();
    !rest.is_empty()
        && (1..=3).contains(&head.len())
        && head.chars().all(|c| c.is_ascii_digit())
        && rest
            .iter()
            .all(|g| g.len() == 3 && g.chars().all(|c| c.is_ascii_digit()))
}

/// `\sqrt2` -> `\sqrt{2}`.
fn brace_sqrt(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut rest = s;
    while let Some(i) = rest.find("\\sqrt") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let mut chars = rest.chars();
        if let Some(c) = chars.next().filter(|c| c.is_ascii_alphanumeric()) {
            out.push('{');
            out.push(c);
            out.push('}');
            rest = chars.as_str();
        }
    }
    out + rest
}

/// `\frac{a}{b}` (and `\frac12`) -> `a/b`, each part in parentheses unless
/// it is a plain number or name; the whole in parentheses after a digit
/// (`2\frac12` is not `21/2`).
fn fracs(s: &str) -> String {
    let Some(i) = s.find("\\frac") else {
        return s.to_string();
    };
    let arg = |t: &str| -> Option<(String, usize)> {
        if let Some(body) = t.strip_prefix('{') {
            let close = matching_brace(body)?;
            Some((fracs(&body[..close]), close + 2))
        } else {
            let c = t.chars().next().filter(|c| c.is_ascii_alphanumeric())?;
            Some((c.to_string(), c.len_utf8()))
        }
    };
    let after = &s[i + 5..];
    let parsed = arg(after).and_then(|(a, n)| arg(&after[n..]).map(|(b, m)| (a, b, n + m)));
    let Some((a, b, used)) = parsed else {
        return format!("{}\\frac{}", &s[..i], fracs(after));
    };
    let part = |p: String| {
        let plain = p.strip_prefix('-').unwrap_or(&p);
        if !plain.is_empty() && plain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            p
        } else {
            format!("({p})")
        }
    };
    let frac = format!("{}/{}", part(a), part(b));
    let frac = if s[..i].ends_with(|c: char| c.is_ascii_digit()) {
        format!("({frac})")
    } else {
        frac
    };
    format!("{}{frac}{}", &s[..i], fracs(&after[used..]))
}

/// An exact rational `n / d`, reduced, `d > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ratio {
    n: i128,
    d: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

impl Ratio {
    fn new(n: i128, d: i128) -> Option<Ratio> {
        if d == 0 {
            return None;
        }
        let g = gcd(n, d).max(1);
        let sign = if d < 0 { -1 } else { 1 };
        Some(Ratio {
            n: sign * n / g,
            d: sign * d / g,
        })
    }

    fn div(self, o: Ratio) -> Option<Ratio> {
        Ratio::new(self.n.checked_mul(o.d)?, self.d.checked_mul(o.n)?)
    }
}

/// A compact value as a number: `-12`, `3.50`, `.5`, `1e-3`, `3/4`,
/// `(-1)/(2)`, `-(1/2)`; None for anything else or past i128.
fn parse_number(s: &str) -> Option<Ratio> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = unparen(s);
    let r = match s.split_once('/') {
        Some((a, b)) => parse_signed(unparen(a))?.div(parse_signed(unparen(b))?)?,
        None => parse_decimal(s)?,
    };
    if neg {
        Ratio::new(-r.n, r.d)
    } else {
        Some(r)
    }
}

/// `s` without one pair of parentheses around all of it.
fn unparen(s: &str) -> &str {
    let Some(body) = s.strip_prefix('(') else {
        return s;
    };
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return if i + 1 == body.len() { &body[..i] } else { s },
            ')' => depth -= 1,
            _ => {}
        }
    }
    s
}

fn parse_signed(s: &str) -> Option<Ratio> {
    match s.strip_prefix('-') {
        Some(rest) => parse_decimal(rest).and_then(|r| Ratio::new(-r.n, r.d)),
        None => parse_decimal(s),
    }
}

/// `12`, `3.50`, `.5`, `2.`, `1e-3`, `1.5E+2`: unsigned.
fn parse_decimal(s: &str) -> Option<Ratio> {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
        || exp.abs() > 30
    {
        return None;
    }
    let mut n: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        n = n.checked_mul(10)?.checked_add(c as i128 - '0' as i128)?;
    }
    let scale = exp - frac.len() as i32;
    let pow = 10i128.checked_pow(scale.unsigned_abs())?;
    if scale >= 0 {
        Ratio::new(n.checked_mul(pow)?, 1)
    } else {
        Ratio::new(n, pow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_nested_last_and_unbraced() {
        assert_eq!(
            extract_boxed(r"so \boxed{\frac{1}{2}}."),
            Some(r"\frac{1}{2}")
        );
        assert_eq!(
            extract_boxed(r"\boxed{1} then \boxed{ \{a, b\} }"),
            Some(r"\{a, b\}")
        );
        assert_eq!(extract_boxed(r"$\boxed 5$"), Some("5"));
        assert_eq!(extract_boxed(r"\fbox{x^{2}}"), Some("x^{2}"));
        assert_eq!(extract_boxed(r"\boxed{unclosed"), None);
        // An unclosed last box falls back to the one before it.
        assert_eq!(extract_boxed(r"\boxed{3} \boxed{4"), Some("3"));
        assert_eq!(extract_boxed("no box"), None);
    }

    #[test]
    fn last_numbers() {
        assert_eq!(last_number("It costs 1,234.50 dollars."), Some("1,234.50"));
        assert_eq!(last_number("x = -3, so"), Some("-3"));
        assert_eq!(last_number("pages 3-4"), Some("4"));
        assert_eq!(last_number("ratio 3/4."), Some("3/4"));
        assert_eq!(last_number("about .5"), Some(".5"));
        assert_eq!(last_number("1, 2, 3"), Some("3"));
        assert_eq!(last_number("none"), None);
        assert_eq!(last_number("area 12 cm^2 and x_{3}"), Some("12"));
        assert_eq!(last_number("H2O, 3 atoms"), Some("3"));
        assert_eq!(
            last_number(r"it is $p = \frac{1}{2}$."),
            Some(r"p = \frac{1}{2}")
        );
        assert_eq!(last_number(r"cost \$5 then $$x^2$$ is 7"), Some("7"));
    }

    #[test]
    fn numbers_parse_exactly() {
        let r = |s: &str| parse_number(s).map(|r| (r.n, r.d));
        assert_eq!(r("0.50"), Some((1, 2)));
        assert_eq!(r(".5"), Some((1, 2)));
        assert_eq!(r("2/4"), Some((1, 2)));
        assert_eq!(r("-(1)/(2)"), Some((-1, 2)));
        assert_eq!(r("(-1)/(2)"), Some((-1, 2)));
        assert_eq!(r("1e-3"), Some((1, 1000)));
        assert_eq!(r("1.5E+2"), Some((150, 1)));
        assert_eq!(r("1/0"), None);
        assert_eq!(r("x"), None);
        assert_eq!(r("."), None);
        assert_eq!(r("1.2.3"), None);
        assert_eq!(r(&"9".repeat(60)), None);
    }

    #[test]
    fn fracs_and_sqrt() {
        assert_eq!(compact(r"\frac{1}{2}"), "1/2");
        assert_eq!(compact(r"\frac12"), "1/2");
        assert_eq!(compact(r"-\frac{x+1}{2}"), "-(x+1)/2");
        assert_eq!(compact(r"\frac{\frac{1}{2}}{3}"), "(1/2)/3");
        assert_eq!(compact(r"2\frac{1}{2}"), "2(1/2)");
        assert_eq!(compact(r"\sqrt2+\sqrt{3}"), r"\sqrt{2}+\sqrt{3}");
        assert_eq!(compact("1,234,567"), "1234567");
        assert_eq!(compact("(1,234)"), "(1,234)");
        assert_eq!(compact("{5}"), "5");
    }
}

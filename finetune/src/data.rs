//! SFT data: JSONL training files turned into token sequences with a loss
//! mask, for `srl train sft --data train.jsonl`.
//!
//! One example a line; each line's shape is detected on its own:
//! - trajectory: `{"id", "task", "steps": [...], "answer"}` (or a raw
//!   `"solution"` string instead of `steps`). The task is the user message;
//!   the assistant message is "Step 1: ...\nStep 2: ..." then "Answer: ..."
//!   when there is an answer. Agentic steps `{"action", "observation"}` render
//!   as "Step k: action\nObservation: observation"; the observation is the
//!   environment's, so it is context, not target.
//! - chat: `{"messages": [{"role", "content"}, ...]}`: loss on assistant turns.
//! - `{"prompt", "completion"}`: prompt as user message, completion as the
//!   assistant's; or, with [`LoadOptions::raw`], the two texts concatenated
//!   with no template (then an EOS token ends the completion).
//!
//! The mask comes from rendering the conversation prefix by prefix with the
//! model's chat template: the text up to an assistant turn (with the
//! generation prompt) is context; what the template adds for the turn is the
//! assistant's content (target) and the turn's end, whose tokens are target
//! through the first end-of-generation token (`<|im_end|>`, so the model
//! learns to stop) and context after it. Each segment is tokenized on its own
//! and the pieces concatenated: exactly as at inference, where the prompt is
//! tokenized alone and the reply generated after it. For byte-level BPE this
//! equals tokenizing the whole rendering except where a token would straddle
//! a segment boundary (the tests check that it is equal on ordinary data).
//! SentencePiece vocabularies that prefix a space to every text would get a
//! stray space at each segment, so for them the whole rendering is tokenized
//! once and each token assigned to the segment its bytes start in.

use serde_json::{Map, Value};
use srl_runtime::tokenizer::Tokenizer;
use srl_runtime::{ChatTemplate, Engine, Message};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// One training sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    /// Per token: whether predicting it is trained (len == tokens.len();
    /// false for the first token).
    pub target: Vec<bool>,
    /// 1-based line number in its file.
    pub line: usize,
}

/// What loading a file found. Every non-blank line is one of: an example,
/// a bad line (`skipped_bad`) or one with nothing to train on
/// (`skipped_empty`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSummary {
    /// Non-blank lines read.
    pub lines: usize,
    pub examples: usize,
    /// Malformed lines skipped (only with [`LoadOptions::skip_bad`]).
    pub skipped_bad: usize,
    /// Lines with no target tokens (after truncation).
    pub skipped_empty: usize,
    /// Lines cut to `max_len` tokens (those then empty included).
    pub truncated: usize,
    /// Target tokens over the examples kept.
    pub target_tokens: usize,
    /// Tokens over the examples kept.
    pub tokens: usize,
}

impl DataSummary {
    /// One line for the command, e.g. "120 lines: 118 examples (2 bad lines
    /// skipped), 3 truncated; 45012 tokens, 20110 of them trained".
    pub fn describe(&self) -> String {
        let mut s = format!("{} lines: {} examples", self.lines, self.examples);
        let mut skipped = Vec::new();
        if self.skipped_bad > 0 {
            skipped.push(format!("{} bad lines", self.skipped_bad));
        }
        if self.skipped_empty > 0 {
            skipped.push(format!("{} with nothing to train on", self.skipped_empty));
        }
        if !skipped.is_empty() {
            s += &format!(" ({} skipped)", skipped.join(", "));
        }
        if self.truncated > 0 {
            s += &format!(", {} truncated", self.truncated);
        }
        s + &format!(
            "; {} tokens, {} of them trained",
            self.tokens, self.target_tokens
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Longest example in tokens; longer ones are cut (0 = no limit).
    pub max_len: usize,
    /// Count and skip malformed lines instead of failing on the first.
    pub skip_bad: bool,
    /// No chat template: prompt + completion (and task + solution)
    /// concatenated as plain text.
    pub raw: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_len: 2048,
            skip_bad: false,
            raw: false,
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum DataError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: line {line}: this line needs a chat template and the model has none (use prompt/completion data with raw text)", path.display())]
    NoTemplate { path: PathBuf, line: usize },
    #[error("{}: the file has no examples (it is empty or blank)", path.display())]
    Empty { path: PathBuf },
    #[error("{}: no usable examples ({skipped_bad} bad lines, {skipped_empty} with nothing to train on)", path.display())]
    NoExamples {
        path: PathBuf,
        skipped_bad: usize,
        skipped_empty: usize,
    },
}

/// One line's content, before rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Trajectory {
        task: String,
        solution: Solution,
        answer: Option<String>,
    },
    Chat(Vec<Message>),
    PromptCompletion {
        prompt: String,
        completion: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Solution {
    Steps(Vec<Step>),
    /// A raw solution text, kept as one target.
    Text(String),
}

/// One expert step: an action and, for agentic data, what the environment
/// answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: String,
    pub observation: Option<String>,
}

/// Why one line cannot become an example.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatError {
    /// The line is malformed (the message names the field).
    Bad(String),
    /// The line needs a chat template and there is none.
    NoTemplate,
}

/// Turns records into tokens and loss masks with a model's tokenizer and
/// chat template; needs no weights.
pub struct Formatter<'a> {
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
    /// The vocabulary prefixes a space to each text (SentencePiece).
    space_prefix: bool,
}

/// A stretch of rendered text and how its tokens are trained.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Context,
    Target,
    /// The end of an assistant turn: target through the first
    /// end-of-generation token, context after it.
    TurnEnd,
}

/// A message whose text is a run of spans; for assistant turns only spans
/// marked `train` are targets.
struct Turn {
    role: String,
    spans: Vec<(String, bool)>,
}

impl Turn {
    fn new(role: &str, text: &str) -> Turn {
        Turn {
            role: role.to_string(),
            spans: vec![(text.to_string(), true)],
        }
    }

    fn content(&self) -> String {
        self.spans.iter().map(|(s, _)| s.as_str()).collect()
    }
}

impl<'a> Formatter<'a> {
    pub fn new(tokenizer: &'a Tokenizer, template: Option<&'a ChatTemplate>) -> Formatter<'a> {
        let space_prefix = tokenizer.model() == "llama"
            && tokenizer
                .encode("a", false, false)
                .first()
                .is_some_and(|&t| tokenizer.token_to_piece(t, true).first() == Some(&b' '));
        Formatter {
            tokenizer,
            template,
            space_prefix,
        }
    }

    /// The engine's tokenizer and template.
    pub fn from_engine(engine: &'a Engine) -> Formatter<'a> {
        Formatter::new(&engine.tokenizer, engine.template.as_ref())
    }

    /// Tokens and target mask of one JSONL line.
    pub fn format_line(&self, line: &str, raw: bool) -> Result<(Vec<u32>, Vec<bool>), FormatError> {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| FormatError::Bad(format!("not valid JSON: {e}")))?;
        let record = parse_record(&value).map_err(FormatError::Bad)?;
        self.format(&record, raw)
    }

    /// Tokens and target mask of one record; `raw` renders prompt/completion
    /// and trajectories as plain text (chats always need the template).
    pub fn format(&self, record: &Record, raw: bool) -> Result<(Vec<u32>, Vec<bool>), FormatError> {
        let (prompt, reply) = match record {
            Record::Chat(messages) => {
                let turns: Vec<Turn> = messages
                    .iter()
                    .map(|m| Turn::new(&m.role, &m.content))
                    .collect();
                return self.chat(&turns);
            }
            Record::PromptCompletion { prompt, completion } => {
                (prompt.clone(), vec![(completion.clone(), true)])
            }
            Record::Trajectory {
                task,
                solution,
                answer,
            } => (task.clone(), solution_spans(solution, answer.as_deref())),
        };
        if raw {
            let prompt = match record {
                Record::Trajectory { .. } => prompt + "\n",
                _ => prompt,
            };
            let mut pieces = vec![(prompt, Kind::Context)];
            pieces.extend(reply.into_iter().map(|(s, t)| (s, target_kind(t))));
            let (mut tokens, mut target) = self.tokenize(&pieces);
            if let Some(eos) = self.tokenizer.eos() {
                tokens.push(eos);
                target.push(true);
            }
            Ok(finish(tokens, target))
        } else {
            let user = Turn::new("user", &prompt);
            let assistant = Turn {
                role: "assistant".into(),
                spans: reply,
            };
            self.chat(&[user, assistant])
        }
    }

    /// Renders `turns` prefix by prefix: the text before each assistant turn
    /// (ending in the generation prompt) is context, the turn's own text is
    /// split into its spans and its end.
    fn chat(&self, turns: &[Turn]) -> Result<(Vec<u32>, Vec<bool>), FormatError> {
        let template = self.template.ok_or(FormatError::NoTemplate)?;
        let messages: Vec<Message> = turns
            .iter()
            .map(|t| Message::new(&t.role, &t.content()))
            .collect();
        let render = |m: &[Message], gen: bool| {
            template
                .render(m, gen)
                .map_err(|e| FormatError::Bad(e.to_string()))
        };
        let mut pieces: Vec<(String, Kind)> = Vec::new();
        let mut done = String::new();
        for (i, turn) in turns.iter().enumerate() {
            if turn.role != "assistant" {
                continue;
            }
            let before = render(&messages[..i], true)?;
            let with = render(&messages[..=i], false)?;
            if !before.starts_with(&done) || !with.starts_with(&before) {
                return Err(FormatError::Bad(format!(
                    "the chat template does not render this conversation prefix by prefix \
                     (message {} is an assistant turn that does not start where the \
                     generation prompt ends), so its loss mask cannot be found",
                    i + 1
                )));
            }
            pieces.push((before[done.len()..].to_string(), Kind::Context));
            assistant_pieces(&with[before.len()..], turn, &mut pieces);
            done = with;
        }
        let full = render(&messages, false)?;
        if !full.starts_with(&done) {
            return Err(FormatError::Bad(
                "the chat template renders the whole conversation differently from its beginning"
                    .into(),
            ));
        }
        pieces.push((full[done.len()..].to_string(), Kind::Context));
        let (tokens, target) = self.tokenize(&pieces);
        Ok(finish(tokens, target))
    }

    /// Tokens of the pieces, BOS first where the vocabulary asks for it.
    fn tokenize(&self, pieces: &[(String, Kind)]) -> (Vec<u32>, Vec<bool>) {
        let tok = self.tokenizer;
        let mut tokens = Vec::new();
        let mut target = Vec::new();
        if tok.add_bos() {
            if let Some(bos) = tok.bos() {
                tokens.push(bos);
                target.push(false);
            }
        }
        if self.space_prefix {
            let text: String = pieces.iter().map(|(s, _)| s.as_str()).collect();
            let ids = tok.encode(&text, false, true);
            if let Some(starts) = token_starts(tok, &text, &ids) {
                let mut piece = 0;
                let mut end = pieces.first().map_or(0, |p| p.0.len());
                let mut open = true;
                for (&id, &start) in ids.iter().zip(&starts) {
                    while start >= end && piece + 1 < pieces.len() {
                        piece += 1;
                        end += pieces[piece].0.len();
                        open = true;
                    }
                    target.push(trained(tok, pieces[piece].1, id, &mut open));
                }
                tokens.extend(ids);
                return (tokens, target);
            }
        }
        for (text, kind) in pieces {
            let mut open = true;
            for id in tok.encode(text, false, true) {
                tokens.push(id);
                target.push(trained(tok, *kind, id, &mut open));
            }
        }
        (tokens, target)
    }
}

fn target_kind(train: bool) -> Kind {
    if train {
        Kind::Target
    } else {
        Kind::Context
    }
}

/// Whether token `id` of a piece of `kind` is trained; `open` tracks a turn
/// end's first end-of-generation token.
fn trained(tok: &Tokenizer, kind: Kind, id: u32, open: &mut bool) -> bool {
    match kind {
        Kind::Context => false,
        Kind::Target => true,
        Kind::TurnEnd => {
            let t = *open;
            if tok.is_eog(id) {
                *open = false;
            }
            t
        }
    }
}

/// Splits the template's text for one assistant turn: anything it puts
/// before the content (target), the content's spans, and the turn's end. If
/// the template altered the content so that it cannot be found, the whole
/// turn is target through its end-of-generation token (context spans such
/// as observations then included).
fn assistant_pieces(text: &str, turn: &Turn, pieces: &mut Vec<(String, Kind)>) {
    let content = turn.content();
    let Some(start) = text.find(&content) else {
        pieces.push((text.to_string(), Kind::TurnEnd));
        return;
    };
    pieces.push((text[..start].to_string(), Kind::Target));
    for (s, train) in &turn.spans {
        pieces.push((s.clone(), target_kind(*train)));
    }
    pieces.push((text[start + content.len()..].to_string(), Kind::TurnEnd));
}

/// Where each token's text starts in `text`, or None when the pieces do not
/// spell it (e.g. an unknown token). A SentencePiece prefix space that is not
/// in the text is allowed.
fn token_starts(tok: &Tokenizer, text: &str, ids: &[u32]) -> Option<Vec<usize>> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut starts = Vec::with_capacity(ids.len());
    for &id in ids {
        let piece = tok.token_to_piece(id, true);
        let rest = &bytes[pos..];
        starts.push(pos);
        if rest.starts_with(&piece) {
            pos += piece.len();
        } else if piece.first() == Some(&b' ') && rest.starts_with(&piece[1..]) {
            pos += piece.len() - 1;
        } else {
            return None;
        }
    }
    (pos == bytes.len()).then_some(starts)
}

/// The first token is never predicted.
fn finish(tokens: Vec<u32>, mut target: Vec<bool>) -> (Vec<u32>, Vec<bool>) {
    if let Some(t) = target.first_mut() {
        *t = false;
    }
    (tokens, target)
}

/// The assistant text of a trajectory as spans (text, trained): one line per
/// step, "Step k: action" trained and "Observation: ..." not, then
/// "Answer: ...". The newline between lines belongs to the line before.
fn solution_spans(solution: &Solution, answer: Option<&str>) -> Vec<(String, bool)> {
    let mut spans: Vec<(String, bool)> = Vec::new();
    let mut push = |text: String, train: bool| {
        if let Some(last) = spans.last_mut() {
            last.0.push('\n');
            if last.1 == train {
                last.0.push_str(&text);
                return;
            }
        }
        spans.push((text, train));
    };
    match solution {
        Solution::Text(text) => push(text.trim().to_string(), true),
        Solution::Steps(steps) => {
            for (k, step) in steps.iter().enumerate() {
                push(format!("Step {}: {}", k + 1, step.action.trim()), true);
                if let Some(obs) = step.observation.as_deref().filter(|o| !o.trim().is_empty()) {
                    push(format!("Observation: {}", obs.trim()), false);
                }
            }
        }
    }
    if let Some(answer) = answer {
        push(format!("Answer: {}", answer.trim()), true);
    }
    spans
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_field(obj: &Map<String, Value>, key: &str, name: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{name} must be a string, found {}", type_name(v))),
    }
}

fn required(obj: &Map<String, Value>, key: &str, name: &str) -> Result<String, String> {
    string_field(obj, key, name)?.ok_or_else(|| format!("{name} is missing"))
}

/// Reads one line's JSON value; the error names the field.
pub fn parse_record(value: &Value) -> Result<Record, String> {
    let Value::Object(obj) = value else {
        return Err(format!(
            "expected a JSON object, found {}",
            type_name(value)
        ));
    };
    if let Some(messages) = obj.get("messages") {
        let Value::Array(items) = messages else {
            return Err(format!(
                "'messages' must be an array, found {}",
                type_name(messages)
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, m) in items.iter().enumerate() {
            let Value::Object(m) = m else {
                return Err(format!(
                    "'messages'[{i}] must be an object with 'role' and 'content', found {}",
                    type_name(m)
                ));
            };
            let role = required(m, "role", &format!("'messages'[{i}].role"))?;
            let content = required(m, "content", &format!("'messages'[{i}].content"))?;
            out.push(Message { role, content });
        }
        if out.is_empty() {
            return Err("'messages' is empty".into());
        }
        return Ok(Record::Chat(out));
    }
    if obj.contains_key("steps") || obj.contains_key("solution") {
        let task = required(obj, "task", "'task'")?;
        let answer = match obj.get("answer") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(v) => {
                return Err(format!(
                    "'answer' must be a string or a number, found {}",
                    type_name(v)
                ))
            }
        };
        let solution = match obj.get("steps") {
            Some(Value::Array(items)) => Solution::Steps(parse_steps(items)?),
            Some(v) => {
                return Err(format!("'steps' must be an array, found {}", type_name(v)));
            }
            None => Solution::Text(required(obj, "solution", "'solution'")?),
        };
        let empty = match &solution {
            Solution::Steps(s) => s.is_empty(),
            Solution::Text(t) => t.trim().is_empty(),
        };
        if empty && answer.is_none() {
            return Err("the trajectory has no steps and no answer".into());
        }
        return Ok(Record::Trajectory {
            task,
            solution,
            answer,
        });
    }
    if obj.contains_key("prompt") || obj.contains_key("completion") {
        return Ok(Record::PromptCompletion {
            prompt: required(obj, "prompt", "'prompt'")?,
            completion: required(obj, "completion", "'completion'")?,
        });
    }
    let keys: Vec<String> = obj.keys().map(|k| format!("'{k}'")).collect();
    Err(format!(
        "expected 'steps' (or 'solution'), 'messages' or 'prompt'/'completion'; found {}",
        if keys.is_empty() {
            "an empty object".to_string()
        } else {
            format!("keys {}", keys.join(", "))
        }
    ))
}

fn parse_steps(items: &[Value]) -> Result<Vec<Step>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(Step {
                action: s.clone(),
                observation: None,
            }),
            Value::Object(o) => Ok(Step {
                action: required(o, "action", &format!("'steps'[{i}].action"))?,
                observation: string_field(o, "observation", &format!("'steps'[{i}].observation"))?,
            }),
            v => Err(format!(
                "'steps'[{i}] must be a string or an object with 'action' (and optional \
                 'observation'), found {}",
                type_name(v)
            )),
        })
        .collect()
}

/// Reads a JSONL file of SFT examples (see the module docs for the shapes).
pub fn load_examples(
    path: &Path,
    fmt: &Formatter,
    opts: &LoadOptions,
) -> Result<(Vec<Example>, DataSummary), DataError> {
    load_examples_with(path, fmt, opts, &mut |_| {})
}

/// [`load_examples`], handing each bad line skipped with `skip_bad` to
/// `on_skip` (e.g. to print the first few).
pub fn load_examples_with(
    path: &Path,
    fmt: &Formatter,
    opts: &LoadOptions,
    on_skip: &mut dyn FnMut(&DataError),
) -> Result<(Vec<Example>, DataSummary), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut examples = Vec::new();
    let mut summary = DataSummary::default();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        line += 1;
        let result = match std::str::from_utf8(&buf) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => fmt.format_line(text, opts.raw),
            Err(e) => Err(FormatError::Bad(format!("not valid UTF-8: {e}"))),
        };
        summary.lines += 1;
        let (mut tokens, mut target) = match result {
            Ok(x) => x,
            Err(FormatError::NoTemplate) => {
                return Err(DataError::NoTemplate {
                    path: path.to_path_buf(),
                    line,
                })
            }
            Err(FormatError::Bad(message)) => {
                let err = DataError::Line {
                    path: path.to_path_buf(),
                    line,
                    message,
                };
                if !opts.skip_bad {
                    return Err(err);
                }
                on_skip(&err);
                summary.skipped_bad += 1;
                continue;
            }
        };
        if opts.max_len > 0 && tokens.len() > opts.max_len {
            tokens.truncate(opts.max_len);
            target.truncate(opts.max_len);
            summary.truncated += 1;
        }
        let n_target = target.iter().filter(|&&t| t).count();
        if n_target == 0 {
            summary.skipped_empty += 1;
            continue;
        }
        summary.examples += 1;
        summary.tokens += tokens.len();
        summary.target_tokens += n_target;
        examples.push(Example {
            tokens,
            target,
            line,
        });
    }
    if summary.lines == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    if examples.is_empty() {
        return Err(DataError::NoExamples {
            path: path.to_path_buf(),
            skipped_bad: summary.skipped_bad,
            skipped_empty: summary.skipped_empty,
        });
    }
    Ok((examples, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use srl_runtime::tokenizer::TokenizerSpec;
    use std::sync::OnceLock;

    /// The default model's tokenizer and chat template (SmolLM2, ChatML).
    struct Vocab {
        tok: Tokenizer,
        template: ChatTemplate,
    }

    fn smollm() -> &'static Vocab {
        static V: OnceLock<Vocab> = OnceLock::new();
        V.get_or_init(|| {
            let path = srl_runtime::model_cache::test_model_path();
            let g = srl_models::formats::gguf::GgufFile::open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            let tok = Tokenizer::from_gguf(&g).unwrap();
            let text = |id: Option<u32>| {
                id.map(|i| tok.token_text(i).to_string())
                    .unwrap_or_default()
            };
            let src = g
                .get_str("tokenizer.chat_template")
                .expect("the model has a chat template");
            let template = ChatTemplate::new(src, &text(tok.bos()), &text(tok.eos())).unwrap();
            Vocab { tok, template }
        })
    }

    fn formatter() -> Formatter<'static> {
        let v = smollm();
        Formatter::new(&v.tok, Some(&v.template))
    }

    /// A JSONL file under the temp folder, unique to this test.
    fn file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("srl-data-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The exact text of `ids`, special tokens included.
    fn text_of(tok: &Tokenizer, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| tok.token_to_piece(i, true))
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    /// The text of each run of consecutive target tokens.
    fn target_runs(tok: &Tokenizer, tokens: &[u32], target: &[bool]) -> Vec<String> {
        assert_eq!(tokens.len(), target.len());
        assert!(!target[0], "the first token is never a target");
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for (&id, &t) in tokens.iter().zip(target) {
            if t {
                run.push(id);
            } else if !run.is_empty() {
                runs.push(text_of(tok, &run));
                run.clear();
            }
        }
        if !run.is_empty() {
            runs.push(text_of(tok, &run));
        }
        runs
    }

    /// Formats one line with the default model and checks that the segment
    /// tokens equal tokenizing the whole rendering of `messages`; returns
    /// the target runs.
    fn check_chat(line: &str, messages: &[Message]) -> Vec<String> {
        let v = smollm();
        let (tokens, target) = formatter().format_line(line, false).unwrap();
        let rendered = v.template.render(messages, false).unwrap();
        assert_eq!(text_of(&v.tok, &tokens), rendered);
        assert_eq!(
            tokens,
            v.tok.encode(&rendered, true, true),
            "segments vs the whole rendering"
        );
        target_runs(&v.tok, &tokens, &target)
    }

    #[test]
    fn trajectory_trains_steps_answer_and_end_of_turn() {
        let line = r#"{"id": "t1", "task": "What is 2+2?", "steps": ["Add 2 and 2.", " The sum is 4. "], "answer": "4"}"#;
        let reply = "Step 1: Add 2 and 2.\nStep 2: The sum is 4.\nAnswer: 4";
        let runs = check_chat(
            line,
            &[
                Message::new("user", "What is 2+2?"),
                Message::new("assistant", reply),
            ],
        );
        assert_eq!(runs, [format!("{reply}<|im_end|>")]);
    }

    #[test]
    fn raw_solution_is_one_target() {
        let line =
            r#"{"task": "Sum 1 and 3.", "solution": "1 + 3 = 4, so the sum is 4.", "answer": 4}"#;
        let reply = "1 + 3 = 4, so the sum is 4.\nAnswer: 4";
        let runs = check_chat(
            line,
            &[
                Message::new("user", "Sum 1 and 3."),
                Message::new("assistant", reply),
            ],
        );
        assert_eq!(runs, [format!("{reply}<|im_end|>")]);
    }

    #[test]
    fn agentic_observations_are_context() {
        let line = r#"{"task": "Print a.txt.", "steps": [{"action": "ls", "observation": "a.txt b.txt"}, {"action": "cat a.txt", "observation": "hello"}], "answer": "hello"}"#;
        let reply = "Step 1: ls\nObservation: a.txt b.txt\nStep 2: cat a.txt\nObservation: hello\nAnswer: hello";
        let runs = check_chat(
            line,
            &[
                Message::new("user", "Print a.txt."),
                Message::new("assistant", reply),
            ],
        );
        assert_eq!(
            runs,
            [
                "Step 1: ls\n",
                "Step 2: cat a.txt\n",
                "Answer: hello<|im_end|>"
            ]
        );
    }

    #[test]
    fn chat_trains_assistant_turns_only() {
        let line = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]}"#;
        let messages = [
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello! How can I help?"),
            Message::new("user", "Capital of France?"),
            Message::new("assistant", "Paris."),
        ];
        let runs = check_chat(line, &messages);
        assert_eq!(
            runs,
            ["Hello! How can I help?<|im_end|>", "Paris.<|im_end|>"]
        );
    }

    #[test]
    fn prompt_completion_with_template_and_raw() {
        let v = smollm();
        let line = r#"{"prompt": "Translate 'chat' to English.", "completion": "cat"}"#;
        let runs = check_chat(
            line,
            &[
                Message::new("user", "Translate 'chat' to English."),
                Message::new("assistant", "cat"),
            ],
        );
        assert_eq!(runs, ["cat<|im_end|>"]);

        let line = r#"{"prompt": "The capital of France is", "completion": " Paris."}"#;
        let (tokens, target) = formatter().format_line(line, true).unwrap();
        let eos = v.tok.eos().expect("the default model has an EOS token");
        let mut want = v.tok.encode("The capital of France is", true, false);
        want.extend(v.tok.encode(" Paris.", false, false));
        want.push(eos);
        assert_eq!(tokens, want);
        let eos_text = v.tok.token_text(eos);
        assert_eq!(
            target_runs(&v.tok, &tokens, &target),
            [format!(" Paris.{eos_text}")]
        );
    }

    #[test]
    fn truncation_is_counted_and_empty_examples_skipped() {
        let fmt = formatter();
        let task = "Count to five, saying each number. ".repeat(20);
        let long =
            format!(r#"{{"task": "{task}", "steps": ["one", "two", "three", "four", "five"]}}"#);
        let short = r#"{"prompt": "a", "completion": "b"}"#;
        let (tokens, target) = fmt.format_line(&long, false).unwrap();
        let first = target.iter().position(|&t| t).unwrap();
        let (short_tokens, _) = fmt.format_line(short, false).unwrap();
        assert!(
            short_tokens.len() < first,
            "the short line fits before the long one's target"
        );
        let path = file("truncate", &format!("{long}\n{short}\n"));

        // Cut inside the long line's target: kept, with two target tokens.
        let opts = LoadOptions {
            max_len: first + 2,
            ..LoadOptions::default()
        };
        let (ex, sum) = load_examples(&path, &fmt, &opts).unwrap();
        assert_eq!((sum.examples, sum.truncated, sum.skipped_empty), (2, 1, 0));
        assert_eq!(ex[0].tokens, tokens[..first + 2]);
        assert_eq!(ex[0].target, target[..first + 2]);
        assert_eq!(ex[0].target.iter().filter(|&&t| t).count(), 2);
        assert_eq!(sum.tokens, first + 2 + short_tokens.len());

        // Cut before it: nothing left to train on, counted, not kept.
        let opts = LoadOptions {
            max_len: first,
            ..LoadOptions::default()
        };
        let (ex, sum) = load_examples(&path, &fmt, &opts).unwrap();
        assert_eq!(
            (sum.lines, sum.examples, sum.truncated, sum.skipped_empty),
            (2, 1, 1, 1)
        );
        assert_eq!(ex[0].line, 2);

        // No limit.
        let opts = LoadOptions {
            max_len: 0,
            ..LoadOptions::default()
        };
        let (ex, sum) = load_examples(&path, &fmt, &opts).unwrap();
        assert_eq!((sum.truncated, ex[0].tokens.len()), (0, tokens.len()));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_lines_name_file_line_and_field() {
        let fmt = formatter();
        let good = r#"{"task": "t", "steps": ["s"]}"#;
        let cases = [
            (r#"{"task": "t", "steps": 5}"#, "'steps' must be an array, found a number"),
            (r#"{"id": "x", "foo": 1}"#, "expected 'steps' (or 'solution'), 'messages' or 'prompt'/'completion'; found keys 'foo', 'id'"),
            (r#"{"task": "t", "steps": ["a", 7]}"#, "'steps'[1] must be a string or an object"),
            (r#"{"steps": ["a"]}"#, "'task' is missing"),
            (r#"{"messages": [{"role": "user", "content": 3}]}"#, "'messages'[0].content must be a string, found a number"),
            (r#"{"prompt": "p"}"#, "'completion' is missing"),
            ("{oops", "not valid JSON"),
            ("[1, 2]", "expected a JSON object, found an array"),
        ];
        for (i, (bad, want)) in cases.iter().enumerate() {
            let path = file(&format!("bad{i}"), &format!("{good}\n\n{bad}\n{good}\n"));
            let err = load_examples(&path, &fmt, &LoadOptions::default()).unwrap_err();
            let msg = err.to_string();
            let prefix = format!("{}: line 3: ", path.display());
            assert!(
                msg.starts_with(&prefix) && msg.contains(want),
                "{msg}\n(wanted {want})"
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn skip_bad_counts_lines_and_ignores_blank_ones() {
        let fmt = formatter();
        let text = [
            "",
            r#"{"task": "t", "steps": ["s"]}"#,
            "   ",
            r#"{"task": "t", "steps": 5}"#,
            r#"{"messages": [{"role": "user", "content": "no reply"}]}"#,
            "not json",
            r#"{"prompt": "p", "completion": "c"}"#,
            "",
        ]
        .join("\r\n");
        let path = file("skip", &text);
        let err = load_examples(&path, &fmt, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("line 4:"), "{err}");

        let opts = LoadOptions {
            skip_bad: true,
            ..LoadOptions::default()
        };
        let mut skipped = Vec::new();
        let (ex, sum) =
            load_examples_with(&path, &fmt, &opts, &mut |e| skipped.push(e.to_string())).unwrap();
        assert_eq!(
            (
                sum.lines,
                sum.examples,
                sum.skipped_bad,
                sum.skipped_empty,
                sum.truncated
            ),
            (5, 2, 2, 1, 0)
        );
        assert_eq!(ex.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 7]);
        assert_eq!(sum.tokens, ex.iter().map(|e| e.tokens.len()).sum::<usize>());
        let n_target: usize = ex
            .iter()
            .map(|e| e.target.iter().filter(|&&t| t).count())
            .sum();
        assert_eq!(sum.target_tokens, n_target);
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped[0].contains("line 4: 'steps'") && skipped[1].contains("line 6: not valid JSON"),
            "{skipped:?}"
        );
        assert!(
            sum.describe().starts_with(
                "5 lines: 2 examples (2 bad lines, 1 with nothing to train on skipped)"
            ),
            "{}",
            sum.describe()
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_missing_and_unusable_files_are_errors() {
        let fmt = formatter();
        for (name, text) in [("empty", ""), ("blank", "\n  \n\n")] {
            let path = file(name, text);
            let err = load_examples(&path, &fmt, &LoadOptions::default()).unwrap_err();
            assert!(matches!(err, DataError::Empty { .. }), "{err}");
            assert!(err.to_string().contains("no examples"), "{err}");
            std::fs::remove_file(path).unwrap();
        }
        let path = file("unusable", "{\"x\": 1}\n");
        let opts = LoadOptions {
            skip_bad: true,
            ..LoadOptions::default()
        };
        let err = load_examples(&path, &fmt, &opts).unwrap_err();
        assert!(
            matches!(err, DataError::NoExamples { skipped_bad: 1, .. }),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = load_examples(&path, &fmt, &opts).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
    }

    #[test]
    fn without_a_template_only_raw_text_works() {
        let v = smollm();
        let fmt = Formatter::new(&v.tok, None);
        let path = file("notemplate", "{\"prompt\": \"p\", \"completion\": \"c\"}\n");
        let err = load_examples(&path, &fmt, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(err, DataError::NoTemplate { line: 1, .. }),
            "{err}"
        );
        let opts = LoadOptions {
            raw: true,
            ..LoadOptions::default()
        };
        let (ex, _) = load_examples(&path, &fmt, &opts).unwrap();
        assert_eq!(
            target_runs(&v.tok, &ex[0].tokens, &ex[0].target),
            [format!("c{}", v.tok.token_text(v.tok.eos().unwrap()))]
        );
        std::fs::remove_file(path).unwrap();

        // A raw trajectory: the task, a newline, then the solution.
        let line = r#"{"task": "T", "steps": ["a"], "answer": "b"}"#;
        let (tokens, _) = fmt.format_line(line, true).unwrap();
        assert!(text_of(&v.tok, &tokens).starts_with("T\nStep 1: a\nAnswer: b"));
    }

    /// A tiny SentencePiece vocabulary (as runtime's tokenizer tests): a
    /// space is prefixed to each text, so segments cannot be tokenized
    /// apart; the whole rendering is, and each token goes to the segment it
    /// starts in.
    #[test]
    fn sentencepiece_space_prefix_tokenizes_the_whole_rendering() {
        let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for piece in ["▁", "hello", "▁hello", "▁world", "world"] {
            tokens.push(piece.to_string());
            types.push(1);
        }
        let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
        let spec = TokenizerSpec {
            model: "llama".into(),
            tokens,
            scores: Some(scores),
            token_types: Some(types),
            ..TokenizerSpec::default()
        };
        let tok = Tokenizer::from_spec(spec).unwrap();
        let src = "{% for m in messages %}{{ m.role + ':\n' + m.content + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant:\n' }}{% endif %}";
        let template = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        let fmt = Formatter::new(&tok, Some(&template));
        assert!(fmt.space_prefix);
        let line = r#"{"prompt": "hello", "completion": "hello world"}"#;
        let (ids, target) = fmt.format_line(line, false).unwrap();
        let rendered = "user:\nhello</s>assistant:\nhello world</s>";
        assert_eq!(ids, tok.encode(rendered, true, true));
        assert_eq!(
            target_runs(&tok, &ids, &target),
            ["hello▁world</s>".replace('▁', " ")]
        );
    }
}

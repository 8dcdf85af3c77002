//! SRL step instances (SRL.md, "Data"): expert trajectories cut into one
//! instance per step, `srl data build`; the prompt an instance is shown
//! with, and how a model's response splits into thought and action.
//!
//! # Input
//! Trajectory JSONL as the SFT loader reads it ([`crate::data::parse_record`]):
//! `{"id", "task", "steps": [...], "answer"}`, steps being strings or
//! `{"action", "observation"}` objects, or a raw `"solution"` string that
//! [`split_solution`] cuts into steps (see [`split`] for the layouts it
//! knows). `id` may be a string or a number; a line without one is called
//! `line<N>`. When there is no `answer`, the last `\boxed{}` of the
//! solution (or of the last step) is used, if any.
//!
//! # Output: one step instance a line
//! ```json
//! {"id": "t1:3", "source": "t1", "format": "math", "task": "...",
//!  "previous": ["step 1", "step 2"], "target": "step 3", "step": 3,
//!  "total": 5, "hint": "Compute the sum", "answer": "42"}
//! ```
//! - `id` is `<source>:<step>`; `step` is 1-based, `total` the trajectory's
//!   step count N (instances are built for steps 1..=N, or 1..N with
//!   `--drop-last`).
//! - `format` is `math` or `agentic` (`--format`; by default a trajectory is
//!   agentic when any of its steps has an observation).
//! - `previous` holds the context steps, oldest first, each a string or
//!   `{"action", "observation"}`. Math: all steps 1..step-1. Agentic: only
//!   the last W rounds (`--window`, paper W = 2; 0 keeps all), each action
//!   with its observation; the older ones are dropped, as SRL.md says, and
//!   the prompt says how many. So `step - 1 - previous.len()` steps are
//!   omitted.
//! - `target` is the expert's step `step`: the action only (its own
//!   observation is the future).
//! - `hint` (only with `--title-hint`, and only for steps that have one) is
//!   the step's title: the text of its first line when that line is a
//!   markdown heading or all bold and more lines follow (SRL.md mentions
//!   title hints but not where titles come from; a one-line step has no
//!   title, since its title would be the answer).
//! - `answer` is the trajectory's final answer, when known.
//!
//! [`read_instances`] reads the file back (the SRL trainer does);
//! [`render_prompt`] gives the chat messages of an instance, and
//! [`parse_response`] splits a rollout into `<think>` monologue and action.
//!
//! Expert steps given as an array are taken as written, except a leading
//! "Step k:" label (`Step 2:`, `**Step 2:**`, `### Step 2` ...), which is
//! removed as it is from split steps and from model responses: the prompt
//! numbers the steps itself, so a model that copies the numbering is not
//! scored on it.

mod prompt;
pub mod split;

pub use prompt::{
    parse_response, prompt_ids, render_prompt, FormatFailure, Parsed, AGENTIC_SYSTEM_PROMPT,
    MATH_SYSTEM_PROMPT,
};
use split::given_step;
pub use split::{split_solution, strip_step_label, FoundStep, Split};

use crate::answer::extract_boxed;
use crate::data::{parse_record, Record, Solution, Step};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// How a trajectory's context is kept: every earlier step (math) or the
/// last W action/observation rounds (agentic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Math,
    Agentic,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Format::Math => "math",
            Format::Agentic => "agentic",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "math" => Ok(Format::Math),
            "agentic" => Ok(Format::Agentic),
            _ => Err(format!("unknown format '{s}' (expected math or agentic)")),
        }
    }
}

/// One SRL training instance: the context of expert step `step` and that
/// step (see the module docs for the JSONL line).
#[derive(Debug, Clone, PartialEq)]
pub struct StepInstance {
    /// `<source>:<step>`.
    pub id: String,
    /// The trajectory's id.
    pub source: String,
    pub format: Format,
    pub task: String,
    /// The context steps kept, oldest first: steps
    /// `step - previous.len() ..= step - 1`.
    pub previous: Vec<Step>,
    /// The expert's step `step` (its action).
    pub target: String,
    /// 1-based.
    pub step: usize,
    /// Steps in the trajectory.
    pub total: usize,
    /// The step's title, given to the model as a hint.
    pub hint: Option<String>,
    pub answer: Option<String>,
}

impl StepInstance {
    /// Earlier steps left out of `previous` (agentic windows).
    pub fn omitted(&self) -> usize {
        self.step - 1 - self.previous.len()
    }
}

/// A context step in the JSONL: a string, or an object when it has an
/// observation.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StepJson {
    Text(String),
    Round {
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observation: Option<String>,
    },
}

/// The JSONL line, in the order a reader sees its fields.
#[derive(Serialize, Deserialize)]
struct InstanceJson {
    id: String,
    source: String,
    format: Format,
    task: String,
    previous: Vec<StepJson>,
    target: String,
    step: usize,
    total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
}

impl StepInstance {
    /// The instance's JSONL line (no newline).
    pub fn to_json(&self) -> String {
        let previous = self
            .previous
            .iter()
            .map(|s| match &s.observation {
                None => StepJson::Text(s.action.clone()),
                Some(o) => StepJson::Round {
                    action: s.action.clone(),
                    observation: Some(o.clone()),
                },
            })
            .collect();
        let json = InstanceJson {
            id: self.id.clone(),
            source: self.source.clone(),
            format: self.format,
            task: self.task.clone(),
            previous,
            target: self.target.clone(),
            step: self.step,
            total: self.total,
            hint: self.hint.clone(),
            answer: self.answer.clone(),
        };
        // A struct of strings and numbers always serializes.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Reads one JSONL line; the error names the field.
    pub fn from_json(line: &str) -> Result<StepInstance, String> {
        let j: InstanceJson = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if j.step == 0 || j.step > j.total {
            return Err(format!(
                "'step' must be in 1..={} ('total'), found {}",
                j.total, j.step
            ));
        }
        if j.previous.len() >= j.step {
            return Err(format!(
                "'previous' has {} steps, more than the {} before step {}",
                j.previous.len(),
                j.step - 1,
                j.step
            ));
        }
        let previous = j
            .previous
            .into_iter()
            .map(|s| match s {
                StepJson::Text(action) => Step {
                    action,
                    observation: None,
                },
                StepJson::Round {
                    action,
                    observation,
                } => Step {
                    action,
                    observation,
                },
            })
            .collect();
        Ok(StepInstance {
            id: j.id,
            source: j.source,
            format: j.format,
            task: j.task,
            previous,
            target: j.target,
            step: j.step,
            total: j.total,
            hint: j.hint,
            answer: j.answer,
        })
    }
}

// ---------------------------------------------------------------------------
// Trajectories to instances
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// None: agentic when a step has an observation, else math.
    pub format: Option<Format>,
    /// Agentic context rounds (0 = all).
    pub window: usize,
    /// Give each instance its step's title as `hint`.
    pub title_hint: bool,
    /// No instance for a trajectory's last step.
    pub drop_last: bool,
    /// Count and skip malformed lines instead of failing on the first.
    pub skip_bad: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            format: None,
            window: 2,
            title_hint: false,
            drop_last: false,
            skip_bad: false,
        }
    }
}

/// "1 step", "2 steps".
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Why a line gave no instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Malformed (the message names the field); an error unless `skip_bad`.
    Bad(String),
    EmptyTask,
    /// A raw solution in which no steps were found, or an empty `steps`.
    NoSteps,
    /// Step k (1-based) is blank.
    BlankStep(usize),
    /// One step, dropped by `drop_last`.
    OnlyLastStep,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SkipReason::Bad(m) => f.write_str(m),
            SkipReason::EmptyTask => f.write_str("the task is empty"),
            SkipReason::NoSteps => f.write_str("no steps found"),
            SkipReason::BlankStep(k) => write!(f, "step {k} is blank"),
            SkipReason::OnlyLastStep => f.write_str("its only step is the last (--drop-last)"),
        }
    }
}

/// The instances of one trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub instances: Vec<StepInstance>,
    pub format: Format,
    /// Steps in the trajectory.
    pub steps: usize,
    /// A raw solution had text before its first step (dropped).
    pub preamble: bool,
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

/// The step instances of one trajectory line (its JSON value; `line` names
/// it when it has no id).
pub fn step_instances(
    value: &Value,
    line: usize,
    opts: &BuildOptions,
) -> Result<Built, SkipReason> {
    let bad = |m: String| SkipReason::Bad(m);
    let source = match value.get("id") {
        None | Some(Value::Null) => format!("line{line}"),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => {
            return Err(bad(format!(
                "'id' must be a string or a number, found {}",
                type_name(v)
            )))
        }
    };
    // An empty `steps` (or blank `solution`) is a trajectory with nothing to
    // learn from: counted, not an error (the SFT reader refuses it when it
    // also lacks an answer).
    let empty_steps = matches!(value.get("steps"), Some(Value::Array(a)) if a.is_empty())
        || matches!(value.get("solution"), Some(Value::String(s)) if s.trim().is_empty());
    if empty_steps && value.get("messages").is_none() && value.get("prompt").is_none() {
        return Err(SkipReason::NoSteps);
    }
    let (task, solution, answer) = match parse_record(value).map_err(bad)? {
        Record::Trajectory {
            task,
            solution,
            answer,
        } => (task, solution, answer),
        Record::Chat(_) => return Err(bad("a chat ('messages'), not a trajectory".into())),
        Record::PromptCompletion { .. } => {
            return Err(bad("a prompt/completion pair, not a trajectory".into()))
        }
    };
    if task.trim().is_empty() {
        return Err(SkipReason::EmptyTask);
    }
    let (found, observations, preamble, boxed) = match &solution {
        Solution::Text(text) => {
            let split = split_solution(text);
            let boxed = extract_boxed(text).map(str::to_string);
            let obs = vec![None; split.steps.len()];
            (split.steps, obs, !split.preamble.is_empty(), boxed)
        }
        Solution::Steps(steps) => (
            steps.iter().map(|s| given_step(&s.action)).collect(),
            steps
                .iter()
                .map(|s| {
                    s.observation
                        .as_deref()
                        .map(str::trim)
                        .filter(|o| !o.is_empty())
                        .map(str::to_string)
                })
                .collect::<Vec<_>>(),
            false,
            steps
                .last()
                .and_then(|s| extract_boxed(&s.action))
                .map(str::to_string),
        ),
    };
    if found.is_empty() {
        return Err(SkipReason::NoSteps);
    }
    if let Some(k) = found.iter().position(|s| s.text.trim().is_empty()) {
        return Err(SkipReason::BlankStep(k + 1));
    }
    let total = found.len();
    if opts.drop_last && total == 1 {
        return Err(SkipReason::OnlyLastStep);
    }
    let format = opts
        .format
        .unwrap_or(if observations.iter().any(Option::is_some) {
            Format::Agentic
        } else {
            Format::Math
        });
    let answer = answer.map(|a| a.trim().to_string()).or(boxed);
    let context: Vec<Step> = found
        .iter()
        .zip(&observations)
        .map(|(s, o)| Step {
            action: s.text.clone(),
            observation: o.clone(),
        })
        .collect();
    let last = if opts.drop_last { total - 1 } else { total };
    let instances = (1..=last)
        .map(|k| {
            let keep = match format {
                Format::Agentic if opts.window > 0 => opts.window.min(k - 1),
                _ => k - 1,
            };
            StepInstance {
                id: format!("{source}:{k}"),
                source: source.clone(),
                format,
                task: task.trim().to_string(),
                previous: context[k - 1 - keep..k - 1].to_vec(),
                target: found[k - 1].text.clone(),
                step: k,
                total,
                hint: found[k - 1].title.clone().filter(|_| opts.title_hint),
                answer: answer.clone(),
            }
        })
        .collect();
    Ok(Built {
        instances,
        format,
        steps: total,
        preamble,
    })
}

/// What `srl data build` did, for its summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSummary {
    /// Non-blank lines read.
    pub lines: usize,
    /// Trajectories that gave instances, by format.
    pub math: usize,
    pub agentic: usize,
    /// Steps found in those trajectories.
    pub steps: usize,
    pub instances: usize,
    /// Last steps left out by `drop_last`.
    pub dropped_last: usize,
    /// Instances with a title hint.
    pub hints: usize,
    /// Raw solutions whose text before the first step was dropped.
    pub preambles: usize,
    /// Lines skipped, by reason.
    pub skipped_bad: usize,
    pub skipped_empty_task: usize,
    pub skipped_no_steps: usize,
    pub skipped_blank_step: usize,
    pub skipped_one_step: usize,
}

impl BuildSummary {
    pub fn skipped(&self) -> usize {
        self.skipped_bad
            + self.skipped_empty_task
            + self.skipped_no_steps
            + self.skipped_blank_step
            + self.skipped_one_step
    }

    /// A few lines for the command, e.g.
    /// "12 trajectories read: 10 used (10 math), 2 skipped (1 with no steps
    /// found, 1 bad line)\n47 steps found; 37 step instances written (10
    /// last steps dropped)".
    pub fn describe(&self) -> String {
        let mut formats = Vec::new();
        if self.math > 0 {
            formats.push(format!("{} math", self.math));
        }
        if self.agentic > 0 {
            formats.push(format!("{} agentic", self.agentic));
        }
        let used = self.math + self.agentic;
        let mut s = format!(
            "{} read: {used} used{}",
            plural(self.lines, "trajectory", "trajectories"),
            if formats.is_empty() {
                String::new()
            } else {
                format!(" ({})", formats.join(", "))
            }
        );
        let reasons: Vec<String> = [
            (self.skipped_no_steps, "with no steps found"),
            (self.skipped_empty_task, "with an empty task"),
            (self.skipped_blank_step, "with a blank step"),
            (self.skipped_one_step, "with only a last step"),
            (self.skipped_bad, "malformed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        if !reasons.is_empty() {
            s += &format!(", {} skipped ({})", self.skipped(), reasons.join(", "));
        }
        s += &format!(
            "\n{} found; {} written",
            plural(self.steps, "step", "steps"),
            plural(self.instances, "step instance", "step instances")
        );
        if self.dropped_last > 0 {
            s += &format!(
                " ({} dropped)",
                plural(self.dropped_last, "last step", "last steps")
            );
        }
        if self.hints > 0 {
            s += &format!("; {} with a title hint", self.hints);
        }
        if self.preambles > 0 {
            s += &format!(
                "\ntext before the first step dropped in {}",
                plural(self.preambles, "raw solution", "raw solutions")
            );
        }
        s
    }

    fn count(&mut self, reason: &SkipReason) {
        *match reason {
            SkipReason::Bad(_) => &mut self.skipped_bad,
            SkipReason::EmptyTask => &mut self.skipped_empty_task,
            SkipReason::NoSteps => &mut self.skipped_no_steps,
            SkipReason::BlankStep(_) => &mut self.skipped_blank_step,
            SkipReason::OnlyLastStep => &mut self.skipped_one_step,
        } += 1;
    }
}

#[derive(thiserror::Error, Debug)]
pub enum StepsError {
    // The I/O error is part of the message, not a `source` (which would
    // print it a second time in an error chain).
    #[error("cannot read {}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: the file is empty or blank", path.display())]
    Empty { path: PathBuf },
    #[error("{}: no step instances: {summary}", path.display())]
    NoInstances { path: PathBuf, summary: String },
    #[error("the output {} is the input", path.display())]
    SamePath { path: PathBuf },
}

/// One line skipped by [`build_instances`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What [`for_each_line`] calls with each line.
pub(crate) type EachLine<'f> =
    dyn FnMut(usize, Result<&str, String>) -> Result<(), StepsError> + 'f;

/// Non-blank lines of a JSONL file with their 1-based numbers, to `each`
/// (a line that is not UTF-8 as an error message).
pub(crate) fn for_each_line(path: &Path, each: &mut EachLine) -> Result<usize, StepsError> {
    let read = |err| StepsError::Read {
        path: path.to_path_buf(),
        err,
    };
    let mut reader = BufReader::new(File::open(path).map_err(read)?);
    let mut buf = Vec::new();
    let (mut line, mut seen) = (0, 0);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(read)? == 0 {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|e| format!("not valid UTF-8: {e}"));
        if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            continue;
        }
        seen += 1;
        each(line, text)?;
    }
    if seen == 0 {
        return Err(StepsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(seen)
}

/// Reads trajectories from `input` and writes their step instances to
/// `output` (JSONL, see the module docs); each skipped line goes to
/// `on_skip`. The output appears only when all went well (it is written
/// to `<output>.tmp` and renamed).
pub fn build_instances(
    input: &Path,
    output: &Path,
    opts: &BuildOptions,
    on_skip: &mut dyn FnMut(&Skipped),
) -> Result<BuildSummary, StepsError> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(StepsError::SamePath {
                path: output.to_path_buf(),
            });
        }
    }
    let mut tmp_name = output.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = output.with_file_name(tmp_name);
    let write_err = |err| StepsError::Write {
        path: output.to_path_buf(),
        err,
    };
    let mut out = BufWriter::new(File::create(&tmp).map_err(write_err)?);
    let mut summary = BuildSummary::default();
    let result = for_each_line(input, &mut |line, text| {
        summary.lines += 1;
        let built = text
            .map_err(SkipReason::Bad)
            .and_then(|t| {
                serde_json::from_str::<Value>(t)
                    .map_err(|e| SkipReason::Bad(format!("not valid JSON: {e}")))
            })
            .and_then(|v| step_instances(&v, line, opts));
        let built = match built {
            Ok(b) => b,
            Err(SkipReason::Bad(message)) if !opts.skip_bad => {
                return Err(StepsError::Line {
                    path: input.to_path_buf(),
                    line,
                    message,
                })
            }
            Err(reason) => {
                summary.count(&reason);
                on_skip(&Skipped { line, reason });
                return Ok(());
            }
        };
        match built.format {
            Format::Math => summary.math += 1,
            Format::Agentic => summary.agentic += 1,
        }
        summary.steps += built.steps;
        summary.preambles += built.preamble as usize;
        summary.dropped_last += opts.drop_last as usize;
        for inst in &built.instances {
            writeln!(out, "{}", inst.to_json()).map_err(write_err)?;
            summary.instances += 1;
            summary.hints += inst.hint.is_some() as usize;
        }
        Ok(())
    })
    .and_then(|_| out.flush().map_err(write_err));
    drop(out);
    let result = result.and_then(|_| {
        if summary.instances == 0 {
            Err(StepsError::NoInstances {
                path: input.to_path_buf(),
                summary: summary.describe().replace('\n', "; "),
            })
        } else {
            std::fs::rename(&tmp, output).map_err(write_err)
        }
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(summary)
}

/// Reads a step-instance JSONL file (as [`build_instances`] writes it);
/// errors name the file, line and field.
pub fn read_instances(path: &Path) -> Result<Vec<StepInstance>, StepsError> {
    let mut instances = Vec::new();
    for_each_line(path, &mut |line, text| {
        let inst = text
            .and_then(StepInstance::from_json)
            .map_err(|message| StepsError::Line {
                path: path.to_path_buf(),
                line,
                message,
            })?;
        instances.push(inst);
        Ok(())
    })?;
    Ok(instances)
}

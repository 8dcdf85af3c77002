//! `srl data distill`: expert trajectories from a teacher model. Each task
//! (`task`, `question` or `problem`, optional `answer` and `id`) is sent to
//! an OpenAI-compatible endpoint ([`super::teacher`]) with a prompt that
//! asks for numbered steps and a final `Answer:` line; the reply's content
//! is cut into steps as `data build` cuts solutions. Its
//! `reasoning_content` (the teacher's monologue, not its steps) is kept
//! apart, in the line's `distilled.reasoning`.
//!
//! With `verify`, a solution is kept only when its answer matches the
//! task's (the answer checker of `eval` and RLVR); a task without an
//! answer keeps the samples that agree with the majority answer of its K
//! samples (self-consistency; no strict majority, none kept).
//!
//! The output is appended line by line, each line written whole and
//! flushed, so a kill loses at most the tasks in flight; a task whose
//! samples were all rejected is recorded in `<out>.rejected.jsonl` with its
//! reasons. Resuming skips the tasks found in either file, except those
//! rejected only for the teacher's errors (HTTP, timeouts, connections),
//! which are asked again.

use super::check::AnswerKind;
use super::teacher::{Teacher, TeacherError};
use crate::answer::{answers_match, extract_boxed, stated_answer};
use crate::steps::{plural, split_solution, StepsError};
use serde_json::{json, Value};
use srl_runtime::Message;
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default system prompt: steps a parser can find, and an answer line.
pub const DISTILL_SYSTEM_PROMPT: &str =
    "Solve the problem step by step. Write each step on its own \
line, starting with \"Step 1:\", \"Step 2:\" and so on; keep each step to one short idea. After \
the last step, write the final answer on its own line as \"Answer: <final answer>\".";

/// One task to distil.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub task: String,
    pub answer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DistillOptions {
    /// Samples asked per task.
    pub samples: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub verify: bool,
    pub answers: AnswerKind,
    pub system: String,
    /// Go on with an existing output (else it must not exist).
    pub resume: bool,
    /// The seed of sample k of task i is `seed + i * samples + k`.
    pub seed: u64,
}

/// What happened, for the progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `todo` tasks to ask; `done` found in the output already.
    Start { todo: usize, done: usize },
    /// One task finished with this many samples kept and rejected.
    Task { kept: usize, rejected: usize },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistillSummary {
    pub tasks: usize,
    /// Tasks skipped because an earlier run finished them.
    pub resumed: usize,
    /// Tasks with at least one trajectory written, and the trajectories.
    pub tasks_kept: usize,
    pub trajectories: usize,
    /// Rejected samples by reason.
    pub rejected: BTreeMap<String, usize>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Requests tried again after a 429, 5xx, timeout or dropped connection.
    pub retries: u64,
    /// A last line cut short by a kill, removed when resuming.
    pub cut_line_removed: bool,
}

impl DistillSummary {
    pub fn describe(&self) -> String {
        let rejected: usize = self.rejected.values().sum();
        let mut s = format!(
            "{}: {} with trajectories ({} written), {} rejected",
            plural(self.tasks, "task", "tasks"),
            self.tasks_kept,
            plural(self.trajectories, "trajectory", "trajectories"),
            plural(rejected, "sample", "samples")
        );
        if rejected > 0 {
            let why: Vec<String> = self
                .rejected
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            s += &format!(" ({})", why.join(", "));
        }
        if self.resumed > 0 {
            s += &format!("; {} done by an earlier run", self.resumed);
        }
        s += &format!(
            "\nteacher tokens: {} prompt, {} completion; {}",
            self.prompt_tokens,
            self.completion_tokens,
            plural(self.retries as usize, "retry", "retries")
        );
        if self.cut_line_removed {
            s += "\na line cut short by an earlier kill was removed from the output";
        }
        s
    }
}

#[derive(thiserror::Error, Debug)]
pub enum DistillError {
    #[error(transparent)]
    Tasks(#[from] StepsError),
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("{} exists: --resume goes on with it, --overwrite starts again", path.display())]
    Exists { path: PathBuf },
}

/// Reads tasks: every non-blank line must be a JSON object with a task.
pub fn read_tasks(path: &Path) -> Result<Vec<Task>, StepsError> {
    let mut tasks = Vec::new();
    crate::steps::for_each_line(path, &mut |line, text| {
        let bad = |message: String| StepsError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let v: Value = serde_json::from_str(text.map_err(bad)?)
            .map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let task = ["task", "question", "problem"]
            .iter()
            .find_map(|k| v.get(*k)?.as_str())
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| bad("no 'task' (or 'question', 'problem') text".into()))?;
        let answer = match v.get("answer") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(bad("'answer' must be a string or a number".into())),
        };
        let id = match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("line{line}"),
        };
        tasks.push(Task {
            id,
            task: task.trim().to_string(),
            answer,
        });
        Ok(())
    })?;
    Ok(tasks)
}

/// A reply's steps and final answer: the text before the last `Answer:`
/// line cut into steps, that line's rest as the answer (else the last
/// `\boxed{}`); an inline `<think>` block is left out.
pub fn parse_solution(content: &str) -> Result<(Vec<String>, Option<String>), &'static str> {
    let text = match content.rfind(srl_runtime::think::THINK_CLOSE) {
        Some(i) => &content[i + srl_runtime::think::THINK_CLOSE.len()..],
        None => content,
    };
    // Answer lines leave the steps; the last one gives the answer.
    let mut body = String::new();
    let mut answer = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim().trim_start_matches(['#', '*', ' ']);
        let lower = bare.to_ascii_lowercase();
        let rest = ["final answer:", "answer:"]
            .iter()
            .find_map(|m| lower.starts_with(m).then(|| &bare[m.len()..]));
        match rest {
            Some(rest) => {
                let a = rest.trim().trim_matches(['*', '$', ' ']).trim();
                let a = extract_boxed(a).unwrap_or(a).trim_end_matches('.').trim();
                answer = Some(a.to_string()).filter(|a| !a.is_empty());
            }
            None => body.push_str(line),
        }
    }
    let answer = answer.or_else(|| stated_answer(text).map(str::to_string));
    let steps: Vec<String> = split_solution(&body)
        .steps
        .into_iter()
        .map(|s| s.text)
        .filter(|s| !s.trim().is_empty())
        .collect();
    if steps.is_empty() {
        return Err("no steps");
    }
    Ok((steps, answer))
}

/// Tasks finished in an earlier run: in the output, or rejected for what
/// the teacher wrote (not for its errors). Removes a last line cut short.
fn finished_tasks(out: &Path, rejected: &Path) -> Result<(HashSet<String>, bool), DistillError> {
    let write_err = |err| DistillError::Write {
        path: out.to_path_buf(),
        err,
    };
    let mut done = HashSet::new();
    let mut cut = false;
    if out.exists() {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(out)
            .map_err(write_err)?;
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(write_err)?;
        if !text.is_empty() && !text.ends_with('\n') {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            f.set_len(keep as u64).map_err(write_err)?;
            f.seek(SeekFrom::End(0)).map_err(write_err)?;
            text.truncate(keep);
            cut = true;
        }
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if let Some(t) = v["distilled"]["task"].as_str() {
                    done.insert(t.to_string());
                }
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(rejected) {
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if v["retry"] == false {
                    if let Some(t) = v["task"].as_str() {
                        done.insert(t.to_string());
                    }
                }
            }
        }
    }
    Ok((done, cut))
}

/// Where the tasks rejected in full are recorded.
pub fn rejected_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}.rejected.jsonl"))
}

/// One task's samples, judged.
struct Judged {
    kept: Vec<Value>,
    /// Reasons of the rejected samples.
    rejected: Vec<String>,
    /// Every rejection was the teacher's error, not its content.
    teacher_failed: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn same_answer(kind: AnswerKind, a: &str, b: &str) -> bool {
    match kind {
        AnswerKind::Math => answers_match(a, extract_boxed(b).unwrap_or(b)),
        AnswerKind::Exact => a.trim() == b.trim(),
    }
}

fn ask(teacher: &Teacher, model: &str, task: &Task, index: usize, opts: &DistillOptions) -> Judged {
    let messages = [
        Message::new("system", &opts.system),
        Message::new("user", &task.task),
    ];
    let mut j = Judged {
        kept: Vec::new(),
        rejected: Vec::new(),
        teacher_failed: true,
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    // (sample, steps, answer) of the samples with steps.
    let mut solved = Vec::new();
    for k in 0..opts.samples {
        let seed = opts.seed + (index * opts.samples + k) as u64;
        match teacher.chat(&messages, seed) {
            Err(e) => {
                // HTTP errors, timeouts and dropped connections are asked
                // again on resume; a malformed answer is what it wrote.
                if matches!(e, TeacherError::Malformed(_)) {
                    j.teacher_failed = false;
                }
                j.rejected.push(e.reason());
            }
            Ok(r) => {
                j.prompt_tokens += r.prompt_tokens;
                j.completion_tokens += r.completion_tokens;
                j.teacher_failed = false;
                match parse_solution(&r.content) {
                    Ok((steps, answer)) => solved.push((k, steps, answer, r.reasoning)),
                    Err(why) => j.rejected.push(why.into()),
                }
            }
        }
    }
    let majority = if opts.verify && task.answer.is_none() {
        // The answer more than half of all K samples agree on.
        solved
            .iter()
            .filter_map(|(_, _, a, _)| a.as_deref())
            .find(|a| {
                solved
                    .iter()
                    .filter(|(_, _, b, _)| {
                        b.as_deref()
                            .is_some_and(|b| same_answer(opts.answers, b, a))
                    })
                    .count()
                    * 2
                    > opts.samples
            })
            .map(str::to_string)
    } else {
        None
    };
    for (k, steps, answer, reasoning) in solved {
        if opts.verify {
            let verdict = match (&task.answer, &answer, &majority) {
                (_, None, _) => Err("no answer"),
                (Some(reference), Some(a), _) => {
                    if same_answer(opts.answers, a, reference) {
                        Ok(())
                    } else {
                        Err("wrong answer")
                    }
                }
                (None, Some(a), Some(m)) => {
                    if same_answer(opts.answers, a, m) {
                        Ok(())
                    } else {
                        Err("against the majority")
                    }
                }
                (None, Some(_), None) => Err("no majority answer"),
            };
            if let Err(why) = verdict {
                j.rejected.push(why.into());
                continue;
            }
        }
        let answer = if opts.verify {
            task.answer.clone().or(answer)
        } else {
            answer
        };
        let id = if opts.samples > 1 {
            format!("{}#{k}", task.id)
        } else {
            task.id.clone()
        };
        let mut line = json!({"id": id, "task": task.task, "steps": steps});
        if let Some(a) = answer {
            line["answer"] = a.into();
        }
        line["distilled"] = json!({"task": task.id, "sample": k, "model": model});
        if let Some(r) = reasoning.filter(|r| !r.trim().is_empty()) {
            line["distilled"]["reasoning"] = r.into();
        }
        j.kept.push(line);
    }
    j
}

/// Distils `tasks` into `out` (see the module docs); `on_event` sees the
/// progress.
pub fn distill(
    tasks: &[Task],
    out: &Path,
    teacher: &Teacher,
    model: &str,
    opts: &DistillOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<DistillSummary, DistillError> {
    let rejected_file = rejected_path(out);
    if !opts.resume && out.exists() {
        return Err(DistillError::Exists {
            path: out.to_path_buf(),
        });
    }
    let (done, cut) = finished_tasks(out, &rejected_file)?;
    let todo: Vec<usize> = (0..tasks.len())
        .filter(|&i| !done.contains(&tasks[i].id))
        .collect();
    let mut summary = DistillSummary {
        tasks: tasks.len(),
        resumed: tasks.len() - todo.len(),
        cut_line_removed: cut,
        ..DistillSummary::default()
    };
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|err| DistillError::Write {
                path: path.to_path_buf(),
                err,
            })
    };
    let mut out_file: File = open(out)?;
    let mut rejected_out: Option<File> = None;
    on_event(Event::Start {
        todo: todo.len(),
        done: summary.resumed,
    });
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Judged)>();
    let workers = opts.concurrency.clamp(1, todo.len().max(1));
    std::thread::scope(|scope| -> Result<(), DistillError> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, todo) = (&next, &todo);
            scope.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = todo.get(n) else { break };
                if tx
                    .send((i, ask(teacher, model, &tasks[i], i, opts)))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        for (i, j) in rx {
            let write = |f: &mut File, path: &Path, text: String| {
                f.write_all(text.as_bytes())
                    .and_then(|_| f.flush())
                    .map_err(|err| DistillError::Write {
                        path: path.to_path_buf(),
                        err,
                    })
            };
            let lines: String = j.kept.iter().map(|l| format!("{l}\n")).collect();
            write(&mut out_file, out, lines)?;
            if j.kept.is_empty() {
                let f = match &mut rejected_out {
                    Some(f) => f,
                    None => rejected_out.insert(open(&rejected_file)?),
                };
                let line =
                    json!({"task": tasks[i].id, "reasons": j.rejected, "retry": j.teacher_failed});
                write(f, &rejected_file, format!("{line}\n"))?;
            } else {
                summary.tasks_kept += 1;
            }
            summary.trajectories += j.kept.len();
            for r in &j.rejected {
                *summary.rejected.entry(r.clone()).or_default() += 1;
            }
            summary.prompt_tokens += j.prompt_tokens;
            summary.completion_tokens += j.completion_tokens;
            on_event(Event::Task {
                kept: j.kept.len(),
                rejected: j.rejected.len(),
            });
        }
        Ok(())
    })?;
    summary.retries = teacher.retries();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_split_into_steps_and_an_answer() {
        let (steps, answer) = parse_solution(
            "<think>let me see</think>\nStep 1: 3 hours is 3 × 60 minutes.\nStep 2: That is 180.\n\nAnswer: 180 minutes.",
        )
        .unwrap();
        assert_eq!(steps, vec!["3 hours is 3 × 60 minutes.", "That is 180."]);
        assert_eq!(answer.as_deref(), Some("180 minutes"));
        let (steps, answer) = parse_solution("1. Add: 2 + 2 = 4\n2. So \\boxed{4}").unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(answer.as_deref(), Some("4"));
        let (steps, answer) =
            parse_solution("Step 1: x\nAnswer: 11\nStep 2: y\n**Final answer:** $\\boxed{12}$")
                .unwrap();
        assert_eq!(
            (steps, answer.as_deref()),
            (vec!["x".to_string(), "y".into()], Some("12"))
        );
        assert_eq!(parse_solution("Answer: 4"), Err("no steps"));
        assert_eq!(parse_solution(""), Err("no steps"));
    }
}

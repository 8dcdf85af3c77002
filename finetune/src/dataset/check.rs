//! `srl data check`: what a trajectory file holds and what is wrong with it,
//! before hours of training find out.
//!
//! Errors (a line training would refuse or skip, or a task shared between
//! the train and valid files, which makes every held-out figure a lie):
//! malformed lines, an empty task, no steps, a blank step, leakage.
//! Warnings (data that trains, but probably not as meant): a step that
//! repeats an earlier one, a task that appears twice, a repeated id, an
//! answer the answer checker cannot read, a trajectory longer than
//! `--max-len` tokens (training cuts it).
//!
//! Token lengths are under the chosen model's tokenizer and chat template:
//! the whole trajectory as SFT trains it, and the longest SRL prompt (the
//! last step's, which holds every earlier step).

use super::{normalized_task, read_trajectory_lines, TrajectoryLine};
use crate::answer::final_answer;
use crate::data::{parse_record, Formatter};
use crate::steps::{plural, render_prompt, SkipReason, StepInstance, StepsError};
use srl_runtime::Engine;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How answers are read, as `srl eval` and `train rlvr` read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// Numbers and formulas ([`crate::answer::MathAnswer`]).
    Math,
    /// Any text, compared exactly ([`crate::answer::ExactMatch`]).
    Exact,
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The SFT sequence length training cuts to.
    pub max_len: usize,
    pub answers: AnswerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing found wrong, at a line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

/// What one file holds.
#[derive(Debug, Clone, Default)]
pub struct FileStats {
    pub path: PathBuf,
    /// Non-blank lines.
    pub lines: usize,
    /// Lines that are usable trajectories.
    pub trajectories: usize,
    /// Steps of each usable trajectory.
    pub steps: Vec<usize>,
    pub with_answer: usize,
    /// Whole trajectories in tokens (SFT), when a model was given.
    pub sft_tokens: Vec<usize>,
    /// Each trajectory's longest SRL prompt in tokens.
    pub prompt_tokens: Vec<usize>,
    /// Trajectories longer than `max_len` tokens.
    pub over_max_len: usize,
}

/// Everything `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub files: Vec<FileStats>,
    pub findings: Vec<Finding>,
    /// Tasks found in both files.
    pub leaked: usize,
    pub max_len: usize,
    /// The model's context length, when a model was given.
    pub context: Option<usize>,
}

impl CheckReport {
    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// The report for a terminal: per file its figures, then the errors and
    /// warnings (the first `show` of each, then a count of the rest).
    pub fn describe(&self, show: usize) -> String {
        let mut s = String::new();
        for f in &self.files {
            describe_file(&mut s, f, self.max_len, self.context);
        }
        if self.files.len() == 2 {
            let _ = writeln!(
                s,
                "leakage: {} shared between {} and {}",
                plural(self.leaked, "task", "tasks"),
                self.files[0].path.display(),
                self.files[1].path.display()
            );
        }
        for (sev, name) in [(Severity::Error, "errors"), (Severity::Warning, "warnings")] {
            let all: Vec<&Finding> = self.findings.iter().filter(|f| f.severity == sev).collect();
            if all.is_empty() {
                continue;
            }
            let _ = writeln!(s, "{name} ({}):", all.len());
            for f in all.iter().take(show) {
                let _ = writeln!(s, "  {}: line {}: {}", f.file.display(), f.line, f.what);
            }
            if all.len() > show {
                let _ = writeln!(s, "  ... {} more", all.len() - show);
            }
        }
        let _ = write!(
            s,
            "{}, {}",
            plural(self.count(Severity::Error), "error", "errors"),
            plural(self.count(Severity::Warning), "warning", "warnings")
        );
        s
    }
}

/// "min 2, median 4, max 9".
fn spread(v: &[usize]) -> String {
    let mut v = v.to_vec();
    v.sort_unstable();
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => format!("min {lo}, median {}, max {hi}", v[v.len() / 2]),
        _ => "none".into(),
    }
}

fn describe_file(s: &mut String, f: &FileStats, max_len: usize, context: Option<usize>) {
    let _ = writeln!(
        s,
        "{}: {} read, {} usable",
        f.path.display(),
        plural(f.lines, "line", "lines"),
        plural(f.trajectories, "trajectory", "trajectories")
    );
    if f.trajectories == 0 {
        return;
    }
    let _ = writeln!(
        s,
        "  steps per trajectory: {} ({} in all)",
        spread(&f.steps),
        f.steps.iter().sum::<usize>()
    );
    let _ = writeln!(
        s,
        "  final answers: {} given, {} without",
        f.with_answer,
        f.trajectories - f.with_answer
    );
    if !f.sft_tokens.is_empty() {
        let _ = writeln!(
            s,
            "  tokens per trajectory (SFT): {}; {} over --max-len {max_len} (training cuts them)",
            spread(&f.sft_tokens),
            f.over_max_len
        );
        let _ = writeln!(
            s,
            "  longest SRL prompt per trajectory: {}{}",
            spread(&f.prompt_tokens),
            context
                .map(|c| format!(" (context {c})"))
                .unwrap_or_default()
        );
    }
}

/// Token lengths under a model's tokenizer and template.
struct Lengths<'a> {
    engine: &'a Engine,
    formatter: Formatter<'a>,
}

impl Lengths<'_> {
    fn sft(&self, value: &serde_json::Value) -> Option<usize> {
        let record = parse_record(value).ok()?;
        Some(self.formatter.format(&record, false).ok()?.0.len())
    }

    fn prompt(&self, inst: &StepInstance) -> Option<usize> {
        let text = self.engine.render_chat(&render_prompt(inst), true).ok()?;
        Some(self.engine.tokenize_prompt(&text).len())
    }
}

/// Checks `train` (and `valid`, for leakage); token lengths when `engine`
/// is given.
pub fn check(
    train: &Path,
    valid: Option<&Path>,
    engine: Option<&Engine>,
    opts: &CheckOptions,
) -> Result<CheckReport, StepsError> {
    let lengths = engine.map(|engine| Lengths {
        engine,
        formatter: Formatter::from_engine(engine),
    });
    let mut report = CheckReport {
        max_len: opts.max_len,
        context: engine.map(|e| e.model.config.context_length),
        ..CheckReport::default()
    };
    let train_lines = read_trajectory_lines(train)?;
    report.files.push(check_file(
        train,
        &train_lines,
        lengths.as_ref(),
        opts,
        &mut report.findings,
    ));
    if let Some(valid) = valid {
        let valid_lines = read_trajectory_lines(valid)?;
        report.files.push(check_file(
            valid,
            &valid_lines,
            lengths.as_ref(),
            opts,
            &mut report.findings,
        ));
        let mut in_train: HashMap<String, usize> = HashMap::new();
        for l in &train_lines {
            if let Some(task) = l.task() {
                in_train.entry(normalized_task(task)).or_insert(l.line);
            }
        }
        for l in &valid_lines {
            let Some(task) = l.task() else { continue };
            if let Some(&at) = in_train.get(&normalized_task(task)) {
                report.leaked += 1;
                report.findings.push(Finding {
                    severity: Severity::Error,
                    file: valid.to_path_buf(),
                    line: l.line,
                    what: format!("the same task as {} line {at} (leakage)", train.display()),
                });
            }
        }
    }
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(report)
}

fn check_file(
    path: &Path,
    lines: &[TrajectoryLine],
    lengths: Option<&Lengths>,
    opts: &CheckOptions,
    findings: &mut Vec<Finding>,
) -> FileStats {
    let mut stats = FileStats {
        path: path.to_path_buf(),
        lines: lines.len(),
        ..FileStats::default()
    };
    let mut found = |severity, line, what: String| {
        findings.push(Finding {
            severity,
            file: path.to_path_buf(),
            line,
            what,
        })
    };
    let mut tasks: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for l in lines {
        let built = match &l.read {
            Ok(b) => b,
            Err(reason) => {
                let what = match reason {
                    SkipReason::Bad(m) => m.clone(),
                    r => r.to_string(),
                };
                found(Severity::Error, l.line, what);
                continue;
            }
        };
        stats.trajectories += 1;
        stats.steps.push(built.steps);
        let id = l.id();
        if let Some(first) = ids.insert(id.clone(), l.line) {
            found(
                Severity::Warning,
                l.line,
                format!("id '{id}' is also on line {first}"),
            );
        }
        let task = normalized_task(&built.instances[0].task);
        if let Some(&first) = tasks.get(&task) {
            found(
                Severity::Warning,
                l.line,
                format!("the same task as line {first}"),
            );
        } else {
            tasks.insert(task, l.line);
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for inst in &built.instances {
            let step = normalized_task(&inst.target);
            if let Some(&first) = seen.get(&step) {
                found(
                    Severity::Warning,
                    l.line,
                    format!("step {} repeats step {first}", inst.step),
                );
            } else {
                seen.insert(step, inst.step);
            }
        }
        if let Some(answer) = &built.instances[0].answer {
            stats.with_answer += 1;
            let readable = match opts.answers {
                AnswerKind::Math => final_answer(answer).is_some(),
                AnswerKind::Exact => !answer.trim().is_empty(),
            };
            if !readable {
                found(
                    Severity::Warning,
                    l.line,
                    format!("the answer checker cannot read the answer '{answer}' (is --answers exact meant?)"),
                );
            }
        }
        if let (Some(lengths), Some(value)) = (lengths, &l.value) {
            if let Some(n) = lengths.sft(value) {
                stats.sft_tokens.push(n);
                if opts.max_len > 0 && n > opts.max_len {
                    stats.over_max_len += 1;
                    found(
                        Severity::Warning,
                        l.line,
                        format!("{n} tokens, over --max-len {}", opts.max_len),
                    );
                }
            }
            if let Some(n) = built.instances.last().and_then(|i| lengths.prompt(i)) {
                stats.prompt_tokens.push(n);
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("srl-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn each_kind_of_problem_is_found_at_its_line() {
        let train = write(
            "train.jsonl",
            concat!(
                "{\"id\":\"a\",\"task\":\"Add 2 and 2.\",\"steps\":[\"2+2=4\",\"So 4.\"],\"answer\":\"4\"}\n",
                "not json\n",
                "{\"id\":\"b\",\"task\":\"  add 2  and 2.\",\"steps\":[\"x\",\"y\"],\"answer\":\"4\"}\n",
                "{\"id\":\"c\",\"task\":\"T\",\"steps\":[\"same\",\"Same\"],\"answer\":\"blue\"}\n",
                "{\"id\":\"d\",\"task\":\"U\",\"steps\":[\"one\",\"  \"]}\n",
                "\n",
                "{\"id\":\"a\",\"task\":\"V\",\"steps\":[]}\n",
            ),
        );
        let valid = write(
            "valid.jsonl",
            "{\"id\":\"v\",\"task\":\"Other\",\"steps\":[\"s\"],\"answer\":\"1\"}\n\
             {\"id\":\"w\",\"task\":\"Add 2 and 2.\",\"steps\":[\"s\"],\"answer\":\"4\"}\n",
        );
        let opts = CheckOptions {
            max_len: 2048,
            answers: AnswerKind::Math,
        };
        let r = check(&train, Some(&valid), None, &opts).unwrap();
        let at = |file: &Path, line: usize| -> Vec<(Severity, String)> {
            r.findings
                .iter()
                .filter(|f| f.file == file && f.line == line)
                .map(|f| (f.severity, f.what.clone()))
                .collect()
        };
        assert!(at(&train, 1).is_empty());
        assert_eq!(at(&train, 2)[0].0, Severity::Error);
        assert!(at(&train, 2)[0].1.contains("not valid JSON"));
        assert_eq!(
            at(&train, 3),
            vec![(Severity::Warning, "the same task as line 1".into())]
        );
        let c = at(&train, 4);
        assert!(c.iter().any(|f| f.1 == "step 2 repeats step 1"), "{c:?}");
        assert!(c
            .iter()
            .any(|f| f.1.contains("cannot read the answer 'blue'")));
        assert_eq!(
            at(&train, 5),
            vec![(Severity::Error, "step 2 is blank".into())]
        );
        assert_eq!(at(&train, 7)[0], (Severity::Error, "no steps found".into()));
        assert_eq!(
            at(&valid, 2),
            vec![(
                Severity::Error,
                format!("the same task as {} line 1 (leakage)", train.display())
            )]
        );
        assert_eq!((r.leaked, r.count(Severity::Error)), (1, 4));
        assert_eq!(r.files[0].trajectories, 3);
        assert_eq!(r.files[0].steps, vec![2, 2, 2]);
        let text = r.describe(10);
        assert!(text.contains("leakage: 1 task shared"), "{text}");
        assert!(text.ends_with("4 errors, 3 warnings"), "{text}");
        // Label answers are readable by the exact checker.
        let exact = CheckOptions {
            answers: AnswerKind::Exact,
            ..opts
        };
        let r = check(&train, None, None, &exact).unwrap();
        assert!(!r.findings.iter().any(|f| f.what.contains("cannot read")));
        assert_eq!(r.leaked, 0);
    }
}

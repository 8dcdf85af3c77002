//! `srl data from-traces`: the turns `srl chat --trace` recorded, as
//! trajectories. The on-device loop: chat with the model, approve its good
//! solutions (`/approve` in the chat, or `srl data review` afterwards),
//! train on them with SRL, chat again.
//!
//! A turn becomes `{"id", "task", "steps", "answer", "trace"}`: the task is
//! the turn's last user message, the steps are the reply's numbered steps
//! (their "Step k:" labels removed, as `data build` removes them), the
//! answer is what the text after the last step states (`\boxed{}` or
//! "Answer: ..."), and `trace` says where it came from. The monologue is
//! not kept: SRL has the model reason in its own words. A reply without
//! numbered steps gives no trajectory (counted).
//!
//! The trace file is append-only and may end in a line cut short by a
//! killed chat: that line, like any malformed one, is reported and
//! skipped, never fatal.

use super::normalized_task;
use crate::answer::stated_answer;
use crate::steps::{plural, strip_step_label, StepsError};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FromTracesSummary {
    /// Non-blank lines read.
    pub lines: usize,
    /// Turn records among them.
    pub turns: usize,
    pub written: usize,
    /// Turns approved in the chat (`/approve`).
    pub approved: usize,
    /// Turns left out: a reply without numbered steps, no user message,
    /// not approved (with `approved_only`), a task already written.
    pub no_steps: usize,
    pub no_task: usize,
    pub not_approved: usize,
    pub repeated: usize,
    /// Malformed lines: (line, why).
    pub bad: Vec<(usize, String)>,
}

impl FromTracesSummary {
    pub fn describe(&self) -> String {
        let mut left = Vec::new();
        for (n, why) in [
            (self.no_steps, "without numbered steps"),
            (self.no_task, "without a user message"),
            (self.not_approved, "not approved"),
            (self.repeated, "with a task already taken"),
        ] {
            if n > 0 {
                left.push(format!("{n} {why}"));
            }
        }
        if !self.bad.is_empty() {
            left.push(plural(self.bad.len(), "malformed line", "malformed lines"));
        }
        format!(
            "{} read ({} approved in the chat): {}{}",
            plural(self.turns, "turn", "turns"),
            self.approved,
            plural(self.written, "trajectory", "trajectories"),
            if left.is_empty() {
                String::new()
            } else {
                format!("; left out: {}", left.join(", "))
            }
        )
    }
}

/// A turn's place: the chat session and its turn number.
type TurnKey = (String, u64);

fn turn_key(v: &Value) -> Option<TurnKey> {
    Some((
        v.get("session")?.as_str()?.to_string(),
        v.get("turn")?.as_u64()?,
    ))
}

/// What a turn lacks to be a trajectory.
enum Lacks {
    Task,
    Steps,
}

/// One turn's trajectory, or what it lacks.
fn trajectory(v: &Value, id: String, line: usize) -> Result<Value, Lacks> {
    let task = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content")?.as_str())
        .filter(|t| !t.trim().is_empty())
        .ok_or(Lacks::Task)?;
    let parts = v
        .get("steps")
        .and_then(Value::as_array)
        .ok_or(Lacks::Steps)?;
    let mut steps = Vec::new();
    let mut after_steps = String::new();
    for p in parts {
        let text = p.get("text").and_then(Value::as_str).unwrap_or_default();
        if p.get("step").is_some_and(|s| !s.is_null()) {
            steps.push(strip_step_label(text));
            after_steps.clear();
        } else if !steps.is_empty() {
            after_steps.push_str(text);
            after_steps.push('\n');
        }
    }
    steps.retain(|s| !s.trim().is_empty());
    if steps.is_empty() {
        return Err(Lacks::Steps);
    }
    let answer = stated_answer(&after_steps)
        .or_else(|| steps.last().and_then(|s| stated_answer(s)))
        .map(str::to_string);
    let mut out = json!({"id": id, "task": task.trim(), "steps": steps});
    if let Some(a) = answer {
        out["answer"] = a.into();
    }
    out["trace"] = json!({"line": line, "session": v.get("session"), "turn": v.get("turn")});
    Ok(out)
}

/// Reads `input` (a `--trace` file) and writes its trajectories to
/// `output`, atomically. Only approved turns with `approved_only`; a task
/// asked again (as [`normalized_task`] compares) is taken once, its
/// latest approved or else latest answer kept.
pub fn trajectories_from_traces(
    input: &Path,
    output: &Path,
    approved_only: bool,
) -> Result<FromTracesSummary, StepsError> {
    let mut summary = FromTracesSummary::default();
    let mut turns: Vec<(usize, Value)> = Vec::new();
    let mut approved: HashSet<TurnKey> = HashSet::new();
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    crate::steps::for_each_line(input, &mut |line, text| {
        summary.lines += 1;
        let value = text.and_then(|t| {
            serde_json::from_str::<Value>(t).map_err(|e| {
                if t.ends_with('\n') {
                    format!("not valid JSON: {e}")
                } else {
                    "the last line is cut short (was the chat killed while writing it?)".into()
                }
            })
        });
        match value {
            Ok(v) if v.get("approve").is_some() => {
                let key = v
                    .get("session")
                    .and_then(Value::as_str)
                    .zip(v.get("approve").and_then(Value::as_u64));
                match key {
                    Some((s, t)) => {
                        approved.insert((s.to_string(), t));
                    }
                    None => summary
                        .bad
                        .push((line, "an approval without session and turn".into())),
                }
            }
            Ok(v) if v.get("messages").is_some() => turns.push((line, v)),
            Ok(_) => summary.bad.push((
                line,
                "neither a turn ('messages') nor an approval ('approve')".into(),
            )),
            Err(m) => summary.bad.push((line, m)),
        }
        Ok(())
    })?;
    summary.turns = turns.len();
    // The latest approved turn of a task wins over a later unapproved one.
    let mut chosen: Vec<(bool, usize, Value)> = Vec::new();
    let mut by_task: std::collections::HashMap<String, usize> = Default::default();
    for (line, v) in &turns {
        let ok = turn_key(v).is_some_and(|k| approved.contains(&k));
        summary.approved += ok as usize;
        if approved_only && !ok {
            summary.not_approved += 1;
            continue;
        }
        let traj = match trajectory(v, format!("{stem}:{line}"), *line) {
            Ok(t) => t,
            Err(Lacks::Task) => {
                summary.no_task += 1;
                continue;
            }
            Err(Lacks::Steps) => {
                summary.no_steps += 1;
                continue;
            }
        };
        let task = normalized_task(traj["task"].as_str().unwrap_or_default());
        match by_task.get(&task) {
            Some(&i) => {
                summary.repeated += 1;
                if ok || !chosen[i].0 {
                    chosen[i] = (ok, *line, traj);
                }
            }
            None => {
                by_task.insert(task, chosen.len());
                chosen.push((ok, *line, traj));
            }
        }
    }
    chosen.sort_by_key(|c| c.1);
    let text: String = chosen.iter().map(|(_, _, t)| format!("{t}\n")).collect();
    summary.written = chosen.len();
    if summary.written == 0 {
        return Err(StepsError::NoInstances {
            path: input.to_path_buf(),
            summary: summary.describe(),
        });
    }
    crate::atomic_file::write_atomic(output, text.as_bytes()).map_err(|e| StepsError::Write {
        path: output.to_path_buf(),
        err: std::io::Error::other(e.to_string()),
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(session: &str, turn: u64, user: &str, parts: &[(Option<u64>, &str)]) -> String {
        let steps: Vec<Value> = parts
            .iter()
            .map(|(n, t)| json!({"step": n, "text": t, "tokens": 3, "ms": 1.0}))
            .collect();
        json!({"session": session, "turn": turn,
               "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": user}],
               "reply": "", "thought": "hm", "steps": steps})
        .to_string()
            + "\n"
    }

    #[test]
    fn turns_become_trajectories_and_bad_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("srl-traces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("turns.jsonl");
        let text = [
            turn(
                "a",
                1,
                "Convert 3 hours to minutes.",
                &[
                    (None, "Sure."),
                    (Some(1), "Step 1: 1 hour is 60 minutes."),
                    (Some(2), "**Step 2:** 3 × 60 = 180."),
                    (None, "Answer: 180 minutes"),
                ],
            ),
            turn("a", 2, "Hello", &[(None, "Hi! How can I help?")]),
            "{\"session\":\"a\",\"approve\":1}\n".into(),
            "[1, 2]\n".into(),
            turn(
                "b",
                1,
                "convert 3 hours  to minutes.",
                &[(Some(1), "1. Multiply by 60: \\boxed{180}")],
            ),
            turn("b", 2, "Add 2 and 2.", &[(Some(1), "2 + 2 = 4")]),
            "{\"session\":\"b\",\"turn\":3,\"messa".into(),
        ]
        .concat();
        std::fs::write(&input, text).unwrap();
        let out = dir.join("traj.jsonl");
        let s = trajectories_from_traces(&input, &out, false).unwrap();
        assert_eq!((s.turns, s.approved, s.written), (4, 1, 2), "{s:?}");
        assert_eq!((s.no_steps, s.repeated), (1, 1));
        assert_eq!(s.bad.len(), 2);
        assert_eq!(s.bad[0].0, 4);
        assert!(s.bad[1].1.contains("cut short"), "{:?}", s.bad);
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The approved answer of the repeated task is kept, at its place.
        assert_eq!(lines[0]["id"], "turns:1");
        assert_eq!(lines[0]["task"], "Convert 3 hours to minutes.");
        assert_eq!(
            lines[0]["steps"],
            json!(["1 hour is 60 minutes.", "3 × 60 = 180."])
        );
        assert_eq!(lines[0]["answer"], "180 minutes");
        assert_eq!(lines[1]["steps"], json!(["2 + 2 = 4"]));
        assert!(lines[1].get("answer").is_none());
        // Each written line is a trajectory that `data build` reads.
        for l in &lines {
            crate::steps::step_instances(l, 1, &Default::default()).unwrap();
        }
        let s = trajectories_from_traces(&input, &out, true).unwrap();
        assert_eq!((s.written, s.not_approved), (1, 3));
    }
}

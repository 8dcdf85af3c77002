//! The file side of `srl data review`: a person walks through a trajectory
//! file and keeps, drops or edits each trajectory.
//!
//! A decision is written back at once (the whole file, atomically), so a
//! review can stop at any point and go on later: kept and edited lines get
//! `"review": "kept"` / `"edited"` and are not shown again; dropped lines
//! leave the file and are appended to `<name>.dropped.jsonl` beside it, so
//! nothing is lost and training never sees them. Lines that are not JSON
//! objects stay as they are (`srl data check` reports them).
//!
//! Editing happens in the user's editor on a plain-text form of the
//! trajectory ([`to_editable`] / [`from_editable`]): the task, one
//! "Step N:" paragraph per step (with its "Observation:" lines for
//! agentic steps) and an "Answer:" line.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of the file under review.
#[derive(Debug, Clone)]
struct Entry {
    text: String,
    value: Option<Value>,
}

/// A trajectory file being reviewed.
pub struct Review {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// What a person decided about one trajectory.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Keep,
    Drop,
    /// Replace the trajectory's task, steps and answer.
    Edit(Edited),
}

/// A trajectory as edited.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    pub task: String,
    /// (action, observation)
    pub steps: Vec<(String, Option<String>)>,
    pub answer: Option<String>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

impl Review {
    pub fn open(path: &Path) -> std::io::Result<Review> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Entry {
                text: l.to_string(),
                value: serde_json::from_str::<Value>(l)
                    .ok()
                    .filter(Value::is_object),
            })
            .collect();
        Ok(Review {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Where dropped trajectories go.
    pub fn dropped_path(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!("{stem}.dropped.jsonl"))
    }

    /// Indices of the trajectories not reviewed yet, in file order.
    pub fn pending(&self) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| {
                self.entries[i]
                    .value
                    .as_ref()
                    .is_some_and(|v| v.get("review").is_none())
            })
            .collect()
    }

    /// (reviewed, all trajectories).
    pub fn progress(&self) -> (usize, usize) {
        let all = self.entries.iter().filter(|e| e.value.is_some()).count();
        (all - self.pending().len(), all)
    }

    /// The trajectory at `i` (an index from [`Review::pending`]).
    pub fn get(&self, i: usize) -> &Value {
        self.entries[i]
            .value
            .as_ref()
            .expect("a pending entry is an object")
    }

    /// Records `decision` for entry `i` and writes the file back. Indices
    /// from an earlier [`Review::pending`] stay valid after a drop only for
    /// entries before `i`: call `pending` again.
    pub fn decide(&mut self, i: usize, decision: Decision) -> std::io::Result<()> {
        match decision {
            Decision::Drop => {
                let e = self.entries.remove(i);
                let dropped = self.dropped_path();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&dropped)
                    .map_err(|e| io_error(&dropped, e))?;
                writeln!(f, "{}", e.text).map_err(|e| io_error(&dropped, e))?;
                f.sync_all().map_err(|e| io_error(&dropped, e))?;
            }
            Decision::Keep => self.mark(i, "kept", None),
            Decision::Edit(edited) => self.mark(i, "edited", Some(edited)),
        }
        self.save()
    }

    fn mark(&mut self, i: usize, how: &str, edited: Option<Edited>) {
        let e = &mut self.entries[i];
        let v = e.value.as_mut().expect("a pending entry is an object");
        if let Some(ed) = edited {
            v["task"] = ed.task.into();
            v["steps"] = ed
                .steps
                .into_iter()
                .map(|(a, o)| match o {
                    None => Value::String(a),
                    Some(o) => json!({"action": a, "observation": o}),
                })
                .collect();
            if let Some(obj) = v.as_object_mut() {
                obj.remove("solution");
                match ed.answer {
                    Some(a) => {
                        obj.insert("answer".into(), a.into());
                    }
                    None => {
                        obj.remove("answer");
                    }
                }
            }
        }
        v["review"] = how.into();
        e.text = v.to_string();
    }

    fn save(&self) -> std::io::Result<()> {
        let text: String = self
            .entries
            .iter()
            .map(|e| format!("{}\n", e.text))
            .collect();
        crate::atomic_file::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| io_error(&self.path, e))
    }
}

const EDIT_HELP: &str = "\
# Edit the task, the steps and the answer, then save and close the editor.
# Lines starting with # are ignored. Each step starts with \"Step N:\" on its
# own line start; \"Observation:\" lines belong to the step above them.
# Delete the Answer line if there is none.
";

/// The plain-text form of a trajectory for an editor.
pub fn to_editable(v: &Value) -> String {
    let mut s = String::from(EDIT_HELP);
    s += "Task:\n";
    s += v
        .get("task")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    s += "\n\n";
    let steps = v
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let steps: Vec<(String, Option<String>)> = if steps.is_empty() {
        // A raw solution: cut as `data build` cuts it.
        let text = v
            .get("solution")
            .and_then(Value::as_str)
            .unwrap_or_default();
        crate::steps::split_solution(text)
            .steps
            .into_iter()
            .map(|s| (s.text, None))
            .collect()
    } else {
        steps
            .iter()
            .map(|s| match s {
                Value::String(a) => (crate::steps::strip_step_label(a), None),
                o => (
                    crate::steps::strip_step_label(
                        o.get("action").and_then(Value::as_str).unwrap_or_default(),
                    ),
                    o.get("observation")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
            })
            .collect()
    };
    for (k, (a, o)) in steps.iter().enumerate() {
        s += &format!("Step {}: {}\n", k + 1, a.trim());
        if let Some(o) = o {
            s += &format!("Observation: {}\n", o.trim());
        }
        s += "\n";
    }
    if let Some(a) = v.get("answer") {
        let a = a
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| a.to_string());
        s += &format!("Answer: {a}\n");
    }
    s
}

/// Reads the editor's text back; the error says what is missing.
pub fn from_editable(text: &str) -> Result<Edited, String> {
    enum At {
        Start,
        Task,
        Step,
        Observation,
    }
    let mut at = At::Start;
    let (mut task, mut answer) = (String::new(), None);
    let mut steps: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let step_text = line.strip_prefix("Step ").and_then(|r| {
            let (n, rest) = r.split_once(':')?;
            n.trim().parse::<u32>().ok().map(|_| rest.trim())
        });
        if let Some(rest) = line.strip_prefix("Task:") {
            at = At::Task;
            task = rest.trim().to_string();
        } else if let Some(rest) = step_text {
            at = At::Step;
            steps.push((rest.to_string(), None));
        } else if let (Some(rest), Some(last)) =
            (line.strip_prefix("Observation:"), steps.last_mut())
        {
            at = At::Observation;
            last.1 = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Answer:") {
            at = At::Start;
            answer = Some(rest.trim().to_string()).filter(|a| !a.is_empty());
        } else {
            let target = match at {
                At::Start => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    return Err(format!("text before 'Task:': {line}"));
                }
                At::Task => &mut task,
                At::Step => &mut steps.last_mut().expect("in a step").0,
                At::Observation => steps
                    .last_mut()
                    .expect("in a step")
                    .1
                    .get_or_insert_default(),
            };
            target.push('\n');
            target.push_str(line);
        }
    }
    let tidy = |s: &str| s.trim().to_string();
    let task = tidy(&task);
    if task.is_empty() {
        return Err("the task is empty (write it after 'Task:')".into());
    }
    let steps: Vec<_> = steps
        .into_iter()
        .map(|(a, o)| (tidy(&a), o.map(|o| tidy(&o))))
        .collect();
    if let Some(k) = steps.iter().position(|(a, _)| a.is_empty()) {
        return Err(format!("step {} is empty", k + 1));
    }
    if steps.is_empty() {
        return Err("no steps (each step starts with 'Step N:')".into());
    }
    Ok(Edited {
        task,
        steps,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editable_text_round_trips_and_names_what_is_missing() {
        let v = json!({"id": "a", "task": "Convert 3 h.\nTo minutes.", "steps": [
            "Step 1: 1 hour is 60 minutes.", {"action": "ls", "observation": "a.txt"},
            "Multiply:\n3 × 60 = 180."], "answer": 180});
        let text = to_editable(&v);
        assert!(text.contains("Step 1: 1 hour is 60 minutes.\n"), "{text}");
        let e = from_editable(&text).unwrap();
        assert_eq!(e.task, "Convert 3 h.\nTo minutes.");
        assert_eq!(e.steps[1], ("ls".into(), Some("a.txt".into())));
        assert_eq!(e.steps[2].0, "Multiply:\n3 × 60 = 180.");
        assert_eq!(e.answer.as_deref(), Some("180"));
        assert_eq!(
            from_editable("Task:\n\nStep 1: x").unwrap_err(),
            "the task is empty (write it after 'Task:')"
        );
        assert_eq!(
            from_editable("Task: t\nStep 1:\nStep 2: y").unwrap_err(),
            "step 1 is empty"
        );
        assert!(from_editable("Task: t\n")
            .unwrap_err()
            .starts_with("no steps"));
    }

    #[test]
    fn decisions_are_written_back_and_a_review_resumes() {
        let dir = std::env::temp_dir().join(format!("srl-review-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("traj.jsonl");
        std::fs::write(
            &path,
            "{\"id\":1,\"task\":\"a\",\"steps\":[\"x\"]}\nnot json\n\
             {\"id\":2,\"task\":\"b\",\"steps\":[\"y\"]}\n{\"id\":3,\"task\":\"c\",\"solution\":\"1. z\\n2. w\"}\n",
        )
        .unwrap();
        let mut r = Review::open(&path).unwrap();
        assert_eq!(r.pending(), vec![0, 2, 3]);
        r.decide(0, Decision::Keep).unwrap();
        r.decide(2, Decision::Drop).unwrap();
        // A later session sees only what is left.
        let mut r = Review::open(&path).unwrap();
        assert_eq!(r.progress(), (1, 2));
        let i = r.pending()[0];
        let edited =
            from_editable(&to_editable(r.get(i)).replace("Step 2: w", "Step 2: w!")).unwrap();
        r.decide(i, Decision::Edit(edited)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "not json");
        let v: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(v["steps"], json!(["z", "w!"]));
        assert_eq!(v["review"], "edited");
        assert!(v.get("solution").is_none());
        let dropped = std::fs::read_to_string(r.dropped_path()).unwrap();
        assert_eq!(dropped, "{\"id\":2,\"task\":\"b\",\"steps\":[\"y\"]}\n");
        assert!(Review::open(&path).unwrap().pending().is_empty());
    }
}

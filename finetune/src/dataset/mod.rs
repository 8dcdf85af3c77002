//! The data commands around `srl data build`: where trajectories come from
//! (a teacher model, [`distill`] over [`teacher`]; the user's own chats,
//! [`from_traces`] and [`review`]), and what to do before training on them
//! ([`check`], [`split`]). Each reads trajectories the way `build` does
//! ([`crate::steps::step_instances`]), so a line they accept is a line
//! training accepts.

pub mod check;
pub mod distill;
pub mod export;
pub mod from_traces;
pub mod review;
pub mod split;
pub mod teacher;

use crate::steps::{step_instances, BuildOptions, Built, SkipReason};
use serde_json::Value;
use std::path::Path;

/// One non-blank line of a trajectory file, read.
pub struct TrajectoryLine {
    /// 1-based.
    pub line: usize,
    /// The line as written (no newline).
    pub text: String,
    /// Its JSON value, when it is JSON.
    pub value: Option<Value>,
    /// Its trajectory (one instance per step), or why it has none.
    pub read: Result<Built, SkipReason>,
}

impl TrajectoryLine {
    /// The trajectory's id as `build` names it (`line<N>` without one).
    pub fn id(&self) -> String {
        match &self.read {
            Ok(b) => b.instances[0].source.clone(),
            Err(_) => match self.value.as_ref().and_then(|v| v.get("id")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => format!("line{}", self.line),
            },
        }
    }

    /// The task, when the line has one.
    pub fn task(&self) -> Option<&str> {
        match &self.read {
            Ok(b) => Some(&b.instances[0].task),
            Err(_) => ["task", "problem", "question"]
                .iter()
                .find_map(|k| self.value.as_ref()?.get(*k)?.as_str()),
        }
    }
}

/// Every non-blank line of a trajectory file, in order.
pub fn read_trajectory_lines(path: &Path) -> Result<Vec<TrajectoryLine>, crate::steps::StepsError> {
    let mut lines = Vec::new();
    let opts = BuildOptions {
        skip_bad: true,
        ..BuildOptions::default()
    };
    crate::steps::for_each_line(path, &mut |line, text| {
        let (text, value, read) = match text {
            Err(message) => (String::new(), None, Err(SkipReason::Bad(message))),
            Ok(t) => {
                let t = t.trim_end_matches(['\n', '\r']).to_string();
                match serde_json::from_str::<Value>(&t) {
                    Ok(v) => {
                        let read = step_instances(&v, line, &opts);
                        (t, Some(v), read)
                    }
                    Err(e) => (
                        t,
                        None,
                        Err(SkipReason::Bad(format!("not valid JSON: {e}"))),
                    ),
                }
            }
        };
        lines.push(TrajectoryLine {
            line,
            text,
            value,
            read,
        });
        Ok(())
    })?;
    Ok(lines)
}

/// A task as compared for duplicates and leakage: lower case, runs of
/// whitespace as one space, trimmed.
pub fn normalized_task(task: &str) -> String {
    task.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

//! `srl data export`: trajectories as the datasets of the distributed
//! trainers people use when one machine is not enough, TRL and verl, with
//! a reward module that computes exactly srl's rewards (`srl_reward.py`).
//!
//! Two tables come out of a trajectory file:
//! - **SRL step rows**, one per step instance as `srl data build` makes
//!   them: the chat prompt `srl train srl` shows the model
//!   ([`render_prompt`]) and the expert's step as the reward's reference.
//! - **RLVR problems**, one per trajectory with an answer: the prompt of
//!   `srl train rlvr` and the answer.
//!
//! TRL reads JSONL ([`trl`]); verl reads parquet ([`verl`], written by
//! [`parquet_table`]). Each folder also gets `srl_reward.py` and a README
//! with the launch command. The folder is written beside its final name and
//! renamed into place, so it is whole or absent.

mod parquet_table;
pub mod trl;
pub mod verl;

use crate::data::Step;
use crate::rl::RLVR_SYSTEM_PROMPT;
use crate::steps::{render_prompt, step_instances, BuildOptions, StepInstance, StepsError};
use srl_runtime::Message;
use std::path::{Path, PathBuf};

/// The reward module every export carries.
pub const SRL_REWARD_PY: &str = include_str!("srl_reward.py");

/// One SRL step row.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// The instance id, `<trajectory>:<step>`.
    pub id: String,
    pub prompt: Vec<Message>,
    /// The expert's step: the reward's reference.
    pub expert_step: String,
    pub instance: StepInstance,
}

/// One RLVR problem row.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemRow {
    pub id: String,
    pub prompt: Vec<Message>,
    pub answer: String,
}

/// What one trajectory file exports to.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub steps: Vec<StepRow>,
    pub problems: Vec<ProblemRow>,
}

/// The export's tables of `path` (lines that are not trajectories are left
/// out: `srl data check` runs first and names them).
pub fn tables(path: &Path, opts: &BuildOptions) -> Result<Tables, StepsError> {
    let mut t = Tables::default();
    let lines = super::read_trajectory_lines(path)?;
    for l in &lines {
        let Some(value) = &l.value else { continue };
        let Ok(built) = step_instances(value, l.line, opts) else {
            continue;
        };
        if let Some(first) = built.instances.first() {
            if let Some(answer) = &first.answer {
                t.problems.push(ProblemRow {
                    id: first.source.clone(),
                    prompt: vec![
                        Message::new("system", RLVR_SYSTEM_PROMPT),
                        Message::new("user", &format!("Problem:\n{}", first.task.trim())),
                    ],
                    answer: answer.clone(),
                });
            }
        }
        for inst in built.instances {
            t.steps.push(StepRow {
                id: inst.id.clone(),
                prompt: render_prompt(&inst),
                expert_step: inst.target.clone(),
                instance: inst,
            });
        }
    }
    Ok(t)
}

/// The earlier steps of a row as plain strings, for the extra columns.
fn previous_actions(previous: &[Step]) -> Vec<String> {
    previous.iter().map(|s| s.action.clone()).collect()
}

/// The trainers an export is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    Trl,
    Verl,
}

/// What was exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Files written, relative to the folder.
    pub files: Vec<String>,
    pub train_steps: usize,
    pub train_problems: usize,
    pub valid_steps: usize,
    pub valid_problems: usize,
}

/// Writes the export of `train` (and `valid`) for `trainer` into the
/// folder `out`, whole or not at all. `out` must not exist unless
/// `overwrite`.
pub fn export(
    trainer: Trainer,
    train: &Path,
    valid: Option<&Path>,
    out: &Path,
    opts: &BuildOptions,
    overwrite: bool,
) -> Result<ExportSummary, ExportError> {
    if out.exists() && !overwrite {
        return Err(ExportError::Exists(out.to_path_buf()));
    }
    let train_t = tables(train, opts)?;
    if train_t.steps.is_empty() {
        return Err(ExportError::Empty(train.to_path_buf()));
    }
    let valid_t = valid.map(|v| tables(v, opts)).transpose()?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.part-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err: std::io::Error| ExportError::Write { path, err }
    };
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let written = (|| -> Result<Vec<String>, ExportError> {
        let mut files = match trainer {
            Trainer::Trl => trl::write(&tmp, &train_t, valid_t.as_ref())?,
            Trainer::Verl => verl::write(&tmp, &train_t, valid_t.as_ref())?,
        };
        std::fs::write(tmp.join("srl_reward.py"), SRL_REWARD_PY)
            .map_err(io(&tmp.join("srl_reward.py")))?;
        files.push("srl_reward.py".into());
        Ok(files)
    })();
    let files = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        let old = out.with_file_name(format!(".{name}.replaced-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(io(out))?;
        std::fs::rename(&tmp, out).map_err(io(out))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(io(out))?;
    }
    Ok(ExportSummary {
        files,
        train_steps: train_t.steps.len(),
        train_problems: train_t.problems.len(),
        valid_steps: valid_t.as_ref().map_or(0, |v| v.steps.len()),
        valid_problems: valid_t.as_ref().map_or(0, |v| v.problems.len()),
    })
}

#[derive(thiserror::Error, Debug)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] StepsError),
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("{} exists (pass --overwrite to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: no step instances to export", .0.display())]
    Empty(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_srl_own_prompts_and_steps() {
        let dir = std::env::temp_dir().join(format!("srl-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"task\":\"Add 2 and 3.\",\"steps\":[\"2 + 3 = 5.\",\"So 5.\"],\"answer\":\"5\"}\n\
             bad\n{\"id\":\"b\",\"task\":\"T\",\"steps\":[\"x\"]}\n",
        )
        .unwrap();
        let t = tables(&p, &BuildOptions::default()).unwrap();
        assert_eq!(t.steps.len(), 3);
        assert_eq!(t.problems.len(), 1);
        let row = &t.steps[1];
        assert_eq!(
            (row.id.as_str(), row.expert_step.as_str()),
            ("a:2", "So 5.")
        );
        // The prompt `srl train srl` shows the model, written out (not
        // recomputed): the export must not drift from the trainer's format.
        assert_eq!(row.prompt[0].content, crate::steps::MATH_SYSTEM_PROMPT);
        assert_eq!(
            row.prompt[1].content,
            "Problem:\nAdd 2 and 3.\n\nSolution so far:\nStep 1: 2 + 3 = 5.\n\n\
             Write step 2 only: think inside <think> </think> first, then write the step."
        );
        assert_eq!(t.problems[0].answer, "5");
        assert_eq!(t.problems[0].prompt[1].content, "Problem:\nAdd 2 and 3.");
        assert_eq!(previous_actions(&row.instance.previous), vec!["2 + 3 = 5."]);
    }
}

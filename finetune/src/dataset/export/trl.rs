//! The TRL export: JSONL datasets in TRL's conversational format (a
//! `prompt` column of chat messages; the other columns reach the reward
//! functions as keyword arguments), a GRPO launch script and a README.

use super::{previous_actions, ExportError, ProblemRow, StepRow, Tables};
use serde_json::{json, Value};
use srl_runtime::Message;
use std::path::Path;

fn messages(m: &[Message]) -> Value {
    m.iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect()
}

fn step_line(r: &StepRow) -> Value {
    let i = &r.instance;
    json!({
        "prompt": messages(&r.prompt),
        "expert_step": r.expert_step,
        "id": r.id,
        "source": i.source,
        "step": i.step,
        "total": i.total,
        "format": i.format.to_string(),
        "task": i.task,
        "previous": previous_actions(&i.previous),
    })
}

fn problem_line(r: &ProblemRow) -> Value {
    json!({"prompt": messages(&r.prompt), "answer": r.answer, "id": r.id})
}

fn jsonl(
    dir: &Path,
    name: &str,
    lines: impl Iterator<Item = Value>,
) -> Result<String, ExportError> {
    let text: String = lines.map(|l| format!("{l}\n")).collect();
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|err| ExportError::Write { path, err })?;
    Ok(name.to_string())
}

const TRAIN_GRPO_PY: &str = include_str!("train_grpo.py");

/// Writes the TRL files into `dir`; returns their names.
pub fn write(
    dir: &Path,
    train: &Tables,
    valid: Option<&Tables>,
) -> Result<Vec<String>, ExportError> {
    let mut files = vec![jsonl(
        dir,
        "srl_steps.jsonl",
        train.steps.iter().map(step_line),
    )?];
    if !train.problems.is_empty() {
        files.push(jsonl(
            dir,
            "rlvr.jsonl",
            train.problems.iter().map(problem_line),
        )?);
    }
    if let Some(v) = valid {
        files.push(jsonl(
            dir,
            "srl_steps_valid.jsonl",
            v.steps.iter().map(step_line),
        )?);
        if !v.problems.is_empty() {
            files.push(jsonl(
                dir,
                "rlvr_valid.jsonl",
                v.problems.iter().map(problem_line),
            )?);
        }
    }
    for (name, text) in [("train_grpo.py", TRAIN_GRPO_PY), ("README.md", README)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|err| ExportError::Write { path, err })?;
        files.push(name.into());
    }
    Ok(files)
}

const README: &str = "\
# SRL data for TRL

Written by `srl data export --format trl`.

| file | rows | columns |
|---|---|---|
| `srl_steps.jsonl` (`srl_steps_valid.jsonl`) | one per SRL step instance | `prompt` (the chat messages `srl train srl` shows the model), `expert_step` (the reward's reference), `id`, `source`, `step`, `total`, `format`, `task`, `previous` |
| `rlvr.jsonl` (`rlvr_valid.jsonl`) | one per trajectory with an answer | `prompt` (the messages of `srl train rlvr`), `answer`, `id` |
| `srl_reward.py` | | `srl_step_reward_trl` and `rlvr_reward_trl`: srl's rewards as TRL reward functions (standard library only) |
| `train_grpo.py` | | GRPO with a LoRA adapter on these files |

Launch, on a machine with `trl`, `peft` and `datasets` installed:

```sh
accelerate launch train_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --output-dir grpo-srl
accelerate launch train_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --rlvr --init-adapter grpo-srl --output-dir grpo-rlvr
```

The step reward is srl's bit for bit: -1 for a response that breaks the
`<think>...</think>` + action format, else difflib's ratio of the action to
the expert's step. srl also forces `</think>` after a think budget and stops
a rollout at the end of its step's line; here `max_completion_length` bounds
the response instead. The adapter GRPO writes (a PEFT folder) loads in srl:
`srl chat --lora grpo-srl`, `srl merge`.
";

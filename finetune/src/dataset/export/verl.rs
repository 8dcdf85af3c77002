//! The verl export: parquet files with the columns verl's `RLHFDataset`
//! and reward manager read (`data_source`, `prompt` as chat messages,
//! `ability`, `reward_model.ground_truth`, `extra_info`), and a README
//! with the launch command. `srl_reward.py`'s `compute_score` dispatches
//! on `data_source`: `srl/step` (the step reward against the expert's
//! step) or `srl/rlvr` (the answer reward).

use super::parquet_table::{self, Column, Values};
use super::{ExportError, Tables};
use srl_runtime::Message;
use std::path::Path;

/// The schema as pyarrow writes a pandas frame of these columns.
const SCHEMA: &str = "
message schema {
  optional binary data_source (STRING);
  optional group prompt (LIST) {
    repeated group list {
      optional group element {
        optional binary content (STRING);
        optional binary role (STRING);
      }
    }
  }
  optional binary ability (STRING);
  optional group reward_model {
    optional binary ground_truth (STRING);
    optional binary style (STRING);
  }
  optional group extra_info {
    optional binary id (STRING);
    optional int64 index;
    optional binary split (STRING);
  }
}";

/// One verl row.
struct Row<'a> {
    prompt: &'a [Message],
    ground_truth: &'a str,
    id: &'a str,
}

fn text(v: Vec<String>, def: i16) -> Column {
    Column::flat(Values::Text(v), def)
}

fn write_rows(
    path: &Path,
    source: &str,
    ability: &str,
    split: &str,
    rows: &[Row],
) -> Result<(), ExportError> {
    let n = rows.len();
    // prompt.list.element.{content,role}: a message per slot; the first of
    // each row starts it (repetition 0), the others continue its list.
    let (mut content, mut role, mut def, mut rep) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        for (k, m) in r.prompt.iter().enumerate() {
            content.push(m.content.clone());
            role.push(m.role.clone());
            def.push(4);
            rep.push(if k == 0 { 0 } else { 1 });
        }
    }
    let list = |values| Column {
        values: Values::Text(values),
        def: def.clone(),
        rep: Some(rep.clone()),
    };
    let columns = vec![
        text(vec![source.to_string(); n], 1),
        list(content),
        list(role),
        text(vec![ability.to_string(); n], 1),
        text(rows.iter().map(|r| r.ground_truth.to_string()).collect(), 2),
        text(vec!["rule".to_string(); n], 2),
        text(rows.iter().map(|r| r.id.to_string()).collect(), 2),
        Column::flat(Values::Int64((0..n as i64).collect()), 2),
        text(vec![split.to_string(); n], 2),
    ];
    parquet_table::write(path, SCHEMA, columns).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        err: std::io::Error::other(e),
    })
}

fn write_tables(
    dir: &Path,
    t: &Tables,
    split: &str,
    suffix: &str,
    files: &mut Vec<String>,
) -> Result<(), ExportError> {
    let steps: Vec<Row> = t
        .steps
        .iter()
        .map(|r| Row {
            prompt: &r.prompt,
            ground_truth: &r.expert_step,
            id: &r.id,
        })
        .collect();
    let name = format!("srl_steps{suffix}.parquet");
    write_rows(&dir.join(&name), "srl/step", "srl_step", split, &steps)?;
    files.push(name);
    if !t.problems.is_empty() {
        let problems: Vec<Row> = t
            .problems
            .iter()
            .map(|r| Row {
                prompt: &r.prompt,
                ground_truth: &r.answer,
                id: &r.id,
            })
            .collect();
        let name = format!("rlvr{suffix}.parquet");
        write_rows(&dir.join(&name), "srl/rlvr", "math", split, &problems)?;
        files.push(name);
    }
    Ok(())
}

/// Writes the verl files into `dir`; returns their names.
pub fn write(
    dir: &Path,
    train: &Tables,
    valid: Option<&Tables>,
) -> Result<Vec<String>, ExportError> {
    let mut files = Vec::new();
    write_tables(dir, train, "train", "", &mut files)?;
    if let Some(v) = valid {
        write_tables(dir, v, "valid", "_valid", &mut files)?;
    }
    let path = dir.join("README.md");
    std::fs::write(&path, README).map_err(|err| ExportError::Write { path, err })?;
    files.push("README.md".into());
    Ok(files)
}

const README: &str = "\
# SRL data for verl

Written by `srl data export --format verl`.

| file | rows | `data_source` | `reward_model.ground_truth` |
|---|---|---|---|
| `srl_steps.parquet` (`srl_steps_valid.parquet`) | one per SRL step instance; `prompt` is what `srl train srl` shows the model | `srl/step` | the expert's step |
| `rlvr.parquet` (`rlvr_valid.parquet`) | one per trajectory with an answer; `prompt` is `srl train rlvr`'s | `srl/rlvr` | the answer |

`extra_info` holds the row's `id` (`<trajectory>:<step>`), `index` and
`split`. `srl_reward.py` is the reward (`compute_score`): for `srl/step`,
-1 for a response that breaks the `<think>...</think>` + action format,
else difflib's ratio of the action to the expert's step, srl's reward bit
for bit; for `srl/rlvr`, 1 for a matching final answer.

Launch GRPO with a LoRA adapter (a starting point; set the batch sizes and
GPUs for your cluster):

```sh
python3 -m verl.trainer.main_ppo \\
    algorithm.adv_estimator=grpo \\
    data.train_files=$PWD/srl_steps.parquet \\
    data.val_files=$PWD/srl_steps_valid.parquet \\
    data.max_prompt_length=1024 data.max_response_length=256 \\
    actor_rollout_ref.model.path=Qwen/Qwen2.5-0.5B-Instruct \\
    actor_rollout_ref.model.lora_rank=16 actor_rollout_ref.model.lora_alpha=32 \\
    actor_rollout_ref.rollout.n=8 \\
    custom_reward_function.path=$PWD/srl_reward.py \\
    custom_reward_function.name=compute_score \\
    trainer.n_gpus_per_node=1 trainer.nnodes=1
```

(Without a valid file, point `data.val_files` at `srl_steps.parquet`.)
";

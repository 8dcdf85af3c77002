//! Checkpoints that resume exactly and survive a kill.
//!
//! A checkpoint is a folder `checkpoints/step-NNNNNN/` inside the run's
//! output folder holding the adapter (PEFT files, f32), the optimizer state
//! and `trainer_state.json`. It is written under a temporary name and renamed
//! into place only when complete, so a run killed mid-write leaves the
//! previous checkpoint as it was; resuming takes the newest complete one.
//! The data order and dropout masks are functions of (seed, step), so the
//! step count is the whole position of the run.
//!
//! [`CheckpointWriter`] is the one writer of every trainer: the checkpoint,
//! then its adapter, state, optimizer and plot at the top of the run folder.
//! Each run has an id, kept in its checkpoints; pruning removes only the
//! run's own old checkpoints, never another run's.

use crate::adapter_files::{read_peft, write_adapter_folder, write_peft};
use crate::atomic_file::write_atomic;
use crate::metrics::{metric_points, read_metrics};
use crate::optimizer::{AdamW, AdamWConfig};
use crate::plot::{write_svg_plot, Series};
use crate::train_config::TrainConfig;
use serde::{Deserialize, Serialize};
use srl_models::{LoraParams, Model, ModelError};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ModelError>;

/// `trainer_state.json`: where a run stands and everything needed to go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub step: u64,
    pub total_steps: u64,
    /// Epochs of the training data consumed (fractional).
    pub epoch: f64,
    /// The trainer that wrote it ("sft", "srl", "rlvr").
    pub trainer: String,
    /// Training loss of the last step and validation loss of the last
    /// evaluation, for a glance at the file.
    pub last_loss: Option<f64>,
    pub last_valid_loss: Option<f64>,
    /// The base model trained on: its path and architecture.
    pub base_model: String,
    pub base_arch: String,
    pub srl_version: String,
    /// The full settings of the run.
    pub config: TrainConfig,
    /// Examples (SFT) or instances (RL, which may skip some) consumed so
    /// far: where the data order resumes.
    #[serde(default)]
    pub data_position: u64,
    /// The run's id: checkpoints of other runs are never pruned as its own.
    #[serde(default)]
    pub run_id: String,
}

/// Where a run stands when it saves: the parts of [`TrainerState`] that
/// change from one checkpoint to the next.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub step: u64,
    pub total_steps: u64,
    pub epoch: f64,
    pub last_loss: Option<f64>,
    pub last_valid_loss: Option<f64>,
    pub data_position: u64,
}

/// The plot a trainer's checkpoints draw from `metrics.jsonl`.
struct PlotSpec {
    file: &'static str,
    title: &'static str,
    x: &'static str,
    y: &'static str,
    /// (legend, metrics key) per series.
    series: &'static [(&'static str, &'static str)],
}

impl PlotSpec {
    fn of(trainer: &str) -> PlotSpec {
        match trainer {
            "sft" => PlotSpec {
                file: "loss.svg",
                title: "SFT loss",
                x: "step",
                y: "loss",
                series: &[("train loss", "loss"), ("valid loss", "valid_loss")],
            },
            "srl" => PlotSpec {
                file: "reward.svg",
                title: "SRL rewards",
                x: "update",
                y: "reward",
                series: &[
                    ("reward (mean)", "reward_mean"),
                    ("similarity (mean, well-formed)", "similarity_mean"),
                ],
            },
            _ => PlotSpec {
                file: "reward.svg",
                title: "RLVR rewards",
                x: "update",
                y: "reward",
                series: &[("reward (mean)", "reward_mean")],
            },
        }
    }
}

/// Writes a run's checkpoints (see the module docs).
pub struct CheckpointWriter {
    out: PathBuf,
    trainer: String,
    run_id: String,
    keep: usize,
    /// The run this one replaces (`--overwrite`), moved aside until this
    /// run's first checkpoint is complete.
    replaced: Option<PathBuf>,
}

impl CheckpointWriter {
    pub fn new(
        out: &Path,
        trainer: &str,
        run_id: String,
        keep: usize,
        replaced: Option<PathBuf>,
    ) -> CheckpointWriter {
        CheckpointWriter {
            out: out.to_path_buf(),
            trainer: trainer.into(),
            run_id,
            keep,
            replaced,
        }
    }

    /// Saves a checkpoint of the run at `at`, then publishes it at the top
    /// of the run folder (PEFT files and adapter.gguf, state, optimizer,
    /// plot); the first one also removes the run this one replaces.
    pub fn write(
        &mut self,
        at: Progress,
        config: &TrainConfig,
        params: &LoraParams,
        opt: &AdamW,
        model: &Model,
    ) -> Result<PathBuf> {
        let state = TrainerState {
            step: at.step,
            total_steps: at.total_steps,
            epoch: at.epoch,
            trainer: self.trainer.clone(),
            last_loss: at.last_loss,
            last_valid_loss: at.last_valid_loss,
            base_model: model.files.path().display().to_string(),
            base_arch: model.config.arch.name().into(),
            srl_version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            data_position: at.data_position,
            run_id: self.run_id.clone(),
        };
        let out = &self.out;
        let dir = save_checkpoint(out, &state, params, opt, model, self.keep)?;
        write_adapter_folder(out, params, model)?;
        write_state(&out.join(STATE_FILE), &state)?;
        let bytes = std::fs::read(dir.join(OPTIMIZER_FILE)).map_err(|e| ModelError::io(&dir, e))?;
        write_atomic(&out.join(OPTIMIZER_FILE), &bytes)?;
        let records = read_metrics(&out.join("metrics.jsonl"))?;
        let plot = PlotSpec::of(&self.trainer);
        let series: Vec<Series> = plot
            .series
            .iter()
            .map(|(name, key)| Series::new(*name, metric_points(&records, key)))
            .collect();
        write_svg_plot(&out.join(plot.file), plot.title, &series, plot.x, plot.y)?;
        if let Some(old) = self.replaced.take() {
            std::fs::remove_dir_all(&old).map_err(|e| ModelError::io(&old, e))?;
        }
        Ok(dir)
    }
}

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The folder of the checkpoint after `step` steps.
pub fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:06}"))
}

/// Writes a complete checkpoint (temporary folder, then rename) and removes
/// the run's own oldest ones beyond `keep`. Returns its folder.
pub fn save_checkpoint(
    out: &Path,
    state: &TrainerState,
    params: &LoraParams,
    opt: &AdamW,
    model: &Model,
    keep: usize,
) -> Result<PathBuf> {
    let root = out.join("checkpoints");
    let final_dir = checkpoint_dir(out, state.step);
    let tmp = root.join(format!(".tmp-step-{:06}", state.step));
    let io = |p: &Path, e: std::io::Error| ModelError::io(p, e);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    write_peft(&tmp, params, model)?;
    opt.save(&tmp.join(OPTIMIZER_FILE))?;
    write_state(&tmp.join(STATE_FILE), state)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| io(&final_dir, e))?;
    let own: Vec<(u64, PathBuf)> = list_checkpoints(out)
        .into_iter()
        .filter(|(_, dir)| {
            read_state(&dir.join(STATE_FILE)).is_ok_and(|s| s.run_id == state.run_id)
        })
        .collect();
    for (_, dir) in own.iter().rev().skip(keep.max(1)) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(final_dir)
}

/// Reads a `trainer_state.json`.
pub fn read_state(path: &Path) -> Result<TrainerState> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ModelError::format(path, format!("invalid trainer state: {e}")))
}

pub fn write_state(path: &Path, state: &TrainerState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).expect("state serializes");
    write_atomic(path, text.as_bytes())
}

/// Complete checkpoints of a run, oldest first.
pub fn list_checkpoints(out: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(out.join("checkpoints")) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// A checkpoint read back: state, adapter and optimizer.
pub struct Resumed {
    pub dir: PathBuf,
    pub state: TrainerState,
    pub params: LoraParams,
    pub optimizer: AdamW,
}

/// Loads the newest complete checkpoint of the run in `out`.
pub fn load_latest(out: &Path, model: &Model) -> Result<Resumed> {
    let Some((_, dir)) = list_checkpoints(out).pop() else {
        return Err(ModelError::config(
            out,
            "no checkpoint to resume from (expected checkpoints/step-*/trainer_state.json)",
        ));
    };
    let state_path = dir.join(STATE_FILE);
    let state = read_state(&state_path)?;
    if state.base_arch != model.config.arch.name() {
        return Err(ModelError::config(
            &state_path,
            format!(
                "this run trained a '{}' model, the model given is '{}'",
                state.base_arch,
                model.config.arch.name()
            ),
        ));
    }
    let mut params = read_peft(&dir, model)?;
    // The adapter files do not carry every training setting (dropout may be
    // rounded); the saved config is authoritative.
    params.config.dropout = state.config.dropout;
    let c = &state.config;
    let opt_config = AdamWConfig {
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weight_decay: c.weight_decay,
    };
    let optimizer = AdamW::load(&dir.join(OPTIMIZER_FILE), opt_config, &params)?;
    // RL runs take `inner_updates` optimizer steps per update.
    let expected = state.step * state.config.rl.inner_updates.max(1) as u64;
    if optimizer.step != expected {
        return Err(ModelError::format(
            &dir,
            format!(
                "optimizer state is at step {} but trainer_state.json expects {expected}",
                optimizer.step
            ),
        ));
    }
    Ok(Resumed {
        dir,
        state,
        params,
        optimizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use srl_models::testing::{TinySpec, TinyWeights};
    use srl_models::{Arch, LoraConfig};

    /// Pruning keeps `keep` of the run's own checkpoints and never touches
    /// another run's, whatever their step numbers.
    #[test]
    fn pruning_removes_only_the_runs_own_checkpoints() {
        let dir = std::env::temp_dir().join(format!("srl-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.gguf");
        TinyWeights::random(&TinySpec::new(Arch::Llama))
            .write_gguf(&path, srl_quant::GgmlType::F32);
        let model = Model::open(&path).unwrap();
        let params = LoraParams::init(&model.config, LoraConfig::default(), 1);
        let opt = AdamW::new(AdamWConfig::default(), &params);
        let out = dir.join("run");
        let save = |run_id: &str, step: u64| {
            let state = TrainerState {
                step,
                total_steps: 20,
                epoch: 0.0,
                trainer: "sft".into(),
                last_loss: None,
                last_valid_loss: None,
                base_model: String::new(),
                base_arch: "llama".into(),
                srl_version: String::new(),
                config: TrainConfig::default(),
                data_position: step,
                run_id: run_id.into(),
            };
            save_checkpoint(&out, &state, &params, &opt, &model, 2).unwrap();
        };
        save("old", 8);
        save("old", 10);
        for step in 1..=3 {
            save("new", step);
        }
        let steps: Vec<u64> = list_checkpoints(&out).into_iter().map(|c| c.0).collect();
        assert_eq!(steps, [2, 3, 8, 10]);
        std::fs::remove_dir_all(&dir).ok();
    }
}

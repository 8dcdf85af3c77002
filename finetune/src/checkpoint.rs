//! Checkpoints that resume exactly and survive a kill.
//!
//! A checkpoint is a folder `checkpoints/step-NNNNNN/` inside the run's
//! output folder holding the adapter (PEFT files, f32), the optimizer state
//! and `trainer_state.json`. It is written under a temporary name and renamed
//! into place only when complete, so a run killed mid-write leaves the
//! previous checkpoint as it was; resuming takes the newest complete one.
//! The data order and dropout masks are functions of (seed, step), so the
//! step count is the whole position of the run.

use crate::adapter_files::{read_peft, write_peft};
use crate::atomic_file::write_atomic;
use crate::optimizer::{AdamW, AdamWConfig};
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
}

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The folder of the checkpoint after `step` steps.
pub fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:06}"))
}

/// Writes a complete checkpoint (temporary folder, then rename) and removes
/// the oldest ones beyond `keep`. Returns its folder.
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
    let all = list_checkpoints(out);
    for (_, dir) in all.iter().rev().skip(keep.max(1)) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(final_dir)
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
    let text = std::fs::read_to_string(&state_path).map_err(|e| ModelError::io(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(&state_path, format!("invalid trainer state: {e}")))?;
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

//! What every trainer does first: start a new run (settings checked, the
//! adapter initialised or read from `init_adapter`, a fresh optimizer) or
//! resume one (the newest checkpoint with its own settings; only the length
//! may change), then its learning-rate schedule and metrics log.
//!
//! A new run never writes into a folder that holds another run: it is
//! refused, unless the user asks to replace it (`--overwrite`); the old run
//! is then moved aside, beside the folder, and removed only once the new
//! run's first checkpoint is complete, so a kill before that leaves it
//! whole.

use crate::adapter_files::read_adapter;
use crate::checkpoint::{load_latest, CheckpointWriter, STATE_FILE};
use crate::metrics::MetricsWriter;
use crate::optimizer::{AdamW, AdamWConfig};
use crate::schedule::{Decay, Schedule};
use crate::train_config::TrainConfig;
use crate::train_error::TrainError;
use srl_models::lora_params::mix64;
use srl_models::{LoraParams, Model, ModelError};
use std::path::{Path, PathBuf};

/// How a trainer treats its output folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// A new run; the folder must not hold another one.
    New,
    /// Continue the run in the folder from its newest checkpoint.
    Resume,
    /// A new run that replaces the one in the folder (see the module docs).
    Overwrite,
}

/// A run ready to train.
pub struct RunStart {
    /// The settings in force (the resumed run's own, when resuming).
    pub config: TrainConfig,
    pub params: LoraParams,
    pub optimizer: AdamW,
    /// Steps (updates) already done.
    pub step: u64,
    /// Examples or instances already consumed.
    pub position: u64,
    /// Writes the run's checkpoints.
    pub checkpoints: CheckpointWriter,
}

/// The files that show a run in `out` (empty: none).
fn run_files(out: &Path) -> Vec<&'static str> {
    [
        STATE_FILE,
        "checkpoints",
        "metrics.jsonl",
        "adapter_model.safetensors",
        "adapter.gguf",
    ]
    .into_iter()
    .filter(|f| out.join(f).exists())
    .collect()
}

/// A fresh run id: the clock and the process, mixed.
fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}",
        mix64(nanos ^ (u64::from(std::process::id()) << 40))
    )
}

/// Moves the run in `out` aside (to a sibling folder named after the new
/// run) and returns where it went.
fn move_aside(out: &Path, run_id: &str) -> Result<PathBuf, TrainError> {
    let name = out.file_name().ok_or_else(|| {
        TrainError::Config(format!("{}: cannot replace this folder", out.display()))
    })?;
    let aside = out.with_file_name(format!("{}.replaced-{run_id}", name.to_string_lossy()));
    std::fs::rename(out, &aside).map_err(|e| TrainError::Model(ModelError::io(&aside, e)))?;
    Ok(aside)
}

/// Starts the run of `trainer` ("sft", "srl", "rlvr") in `config.out`, or
/// resumes it; a run of another trainer there is refused.
pub fn start_run(
    model: &Model,
    mut config: TrainConfig,
    mode: RunMode,
    trainer: &str,
) -> Result<RunStart, TrainError> {
    let out = config.out.clone();
    if mode == RunMode::Resume {
        let r = load_latest(&out, model)?;
        if r.state.trainer != trainer {
            return Err(TrainError::Config(format!(
                "{} holds a '{}' run; it cannot be resumed as '{trainer}'",
                out.display(),
                r.state.trainer
            )));
        }
        let (max_steps, epochs) = (config.max_steps, config.epochs);
        config = r.state.config.clone();
        if max_steps.is_some() || epochs.is_some() {
            config.max_steps = max_steps;
            config.epochs = epochs;
        }
        // The run keeps its id (empty for runs from before ids), so its
        // older checkpoints are still its own when pruning.
        let run_id = r.state.run_id.clone();
        let checkpoints =
            CheckpointWriter::new(&out, trainer, run_id, config.keep_checkpoints, None);
        return Ok(RunStart {
            config,
            params: r.params,
            optimizer: r.optimizer,
            step: r.state.step,
            position: r.state.data_position,
            checkpoints,
        });
    }
    // Everything that can fail on the settings fails before the folder is
    // touched.
    config
        .validate()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let lora = config
        .lora()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let params = match &config.init_adapter {
        Some(path) => {
            let mut p = read_adapter(path, model)?;
            p.config.dropout = lora.dropout;
            p
        }
        None => LoraParams::init(&model.config, lora, config.seed),
    };
    let run_id = new_run_id();
    let found = run_files(&out);
    let replaced = match mode {
        _ if found.is_empty() => None,
        RunMode::Overwrite => Some(move_aside(&out, &run_id)?),
        _ => {
            return Err(TrainError::RunExists {
                out,
                found: found.join(", "),
            })
        }
    };
    std::fs::create_dir_all(&out).map_err(|e| TrainError::Model(ModelError::io(&out, e)))?;
    let optimizer = AdamW::new(adamw_config(&config), &params);
    let checkpoints =
        CheckpointWriter::new(&out, trainer, run_id, config.keep_checkpoints, replaced);
    Ok(RunStart {
        config,
        params,
        optimizer,
        step: 0,
        position: 0,
        checkpoints,
    })
}

/// The run's learning rate over `total` steps.
pub fn schedule(config: &TrainConfig, total: u64) -> Schedule {
    Schedule {
        decay: Decay::parse(&config.schedule).unwrap_or(Decay::Cosine),
        lr: config.lr,
        min_lr: config.lr * config.min_lr_ratio,
        warmup: config.warmup_steps,
        total,
    }
}

/// `metrics.jsonl` in `out`: new, or cut back to step `start` when resuming.
pub fn open_metrics(out: &Path, mode: RunMode, start: u64) -> Result<MetricsWriter, ModelError> {
    let path = out.join("metrics.jsonl");
    if mode == RunMode::Resume {
        MetricsWriter::resume(&path, start)
    } else {
        MetricsWriter::create(&path)
    }
}

pub fn adamw_config(c: &TrainConfig) -> AdamWConfig {
    AdamWConfig {
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weight_decay: c.weight_decay,
    }
}

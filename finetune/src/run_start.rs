//! What every trainer does first: start a new run (settings checked, the
//! adapter initialised or read from `init_adapter`, a fresh optimizer) or
//! resume one (the newest checkpoint with its own settings; only the length
//! may change), then its learning-rate schedule and metrics log.

use crate::adapter_files::read_adapter;
use crate::checkpoint::load_latest;
use crate::metrics::MetricsWriter;
use crate::optimizer::{AdamW, AdamWConfig};
use crate::schedule::{Decay, Schedule};
use crate::sft::TrainError;
use crate::train_config::TrainConfig;
use srl_models::{LoraParams, Model, ModelError};
use std::path::Path;

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
}

/// Starts the run of `trainer` ("sft", "srl", "rlvr") in `config.out`, or
/// resumes it; a run of another trainer there is refused.
pub fn start_run(
    model: &Model,
    mut config: TrainConfig,
    resume: bool,
    trainer: &str,
) -> Result<RunStart, TrainError> {
    let out = config.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| TrainError::Model(ModelError::io(&out, e)))?;
    if resume {
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
        return Ok(RunStart {
            config,
            params: r.params,
            optimizer: r.optimizer,
            step: r.state.step,
            position: r.state.data_position,
        });
    }
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
    let optimizer = AdamW::new(adamw_config(&config), &params);
    Ok(RunStart {
        config,
        params,
        optimizer,
        step: 0,
        position: 0,
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
pub fn open_metrics(out: &Path, resume: bool, start: u64) -> Result<MetricsWriter, ModelError> {
    let path = out.join("metrics.jsonl");
    if resume {
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

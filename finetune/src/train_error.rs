//! The one error type of the trainers (SFT, SRL, RLVR): why a run could not
//! start or stopped, naming the folder, instance or step it is about.

use srl_models::ModelError;
use srl_runtime::RuntimeError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A model, adapter, checkpoint or output file could not be read or written.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Settings or data that cannot train.
    #[error("{0}")]
    Config(String),
    /// The output folder holds another run, and neither `--resume` nor
    /// `--overwrite` was given.
    #[error(
        "{} holds another run ({found}): continue it with --resume {}, or replace it with \
         --overwrite (the old run is kept until the new one's first checkpoint is complete)",
        out.display(),
        out.display()
    )]
    RunExists { out: PathBuf, found: String },
    /// An instance's prompt could not be built.
    #[error("{id}: cannot build the prompt: {source}")]
    Prompt {
        id: String,
        #[source]
        source: RuntimeError,
    },
    /// Sampling an instance's rollouts failed.
    #[error("{id}: rollouts failed: {source}")]
    Rollout {
        id: String,
        #[source]
        source: RuntimeError,
    },
    /// Update after update, every group sampled was dropped: the data gives
    /// the model no signal.
    #[error("{0}")]
    NoSignal(String),
    #[error("the loss became {loss} at step {step}; stopped (the last checkpoint{}) is kept)", .checkpoint.as_ref().map(|p| format!(", {}", p.display())).unwrap_or_default())]
    NonFinite {
        step: u64,
        loss: f64,
        checkpoint: Option<PathBuf>,
    },
}

impl TrainError {
    /// A non-finite step's error with the run's last checkpoint named (the
    /// step itself does not know it); other errors as they are.
    pub fn with_checkpoint(self, last: &Option<PathBuf>) -> TrainError {
        match self {
            TrainError::NonFinite { step, loss, .. } => TrainError::NonFinite {
                step,
                loss,
                checkpoint: last.clone(),
            },
            e => e,
        }
    }
}

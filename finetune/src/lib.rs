//! Everything needed to train an adapter: trajectory data, adapter files
//! (PEFT and GGUF), optimizers and schedules, checkpoints, metrics, and the
//! trainers. The forward and backward passes live in srl-models.

pub mod adapter_files;
pub mod answer;
pub mod atomic_file;
pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod eval;
pub mod grpo;
pub mod merge;
pub mod metrics;
pub mod optimizer;
pub mod plot;
pub mod rl;
pub mod run_start;
pub mod schedule;
pub mod seeds;
pub mod sft;
pub mod similarity;
pub mod steps;
pub mod train_config;
pub mod train_error;

pub use train_error::TrainError;

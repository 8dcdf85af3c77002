//! `srl train sft|srl|rlvr`: train a LoRA adapter on expert data, with a
//! progress bar, validation, checkpoints and `--resume`. The settings every
//! trainer shares are here; the RL trainers' own are in train_rl.rs.

use super::common::resolve_model;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use srl_finetune::checkpoint::{list_checkpoints, TrainerState, STATE_FILE};
use srl_finetune::data::{load_examples, Formatter, LoadOptions};
use srl_finetune::run_start::RunMode;
use srl_finetune::sft::{train_sft_until, Event};
use srl_finetune::train_config::TrainConfig;
use srl_runtime::Engine;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Supervised fine-tuning: next-token loss on the expert's tokens only
    Sft(Box<SftArgs>),
    /// Supervised RL: rollouts rewarded per step by similarity to the expert's step
    Srl(Box<super::train_rl::RlArgs>),
    /// RL with a verifiable reward: whole solutions rewarded for a correct final answer
    Rlvr(Box<super::train_rl::RlArgs>),
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Sft(a) => sft(*a),
        Command::Srl(a) => super::train_rl::run(*a, super::train_rl::Trainer::Srl),
        Command::Rlvr(a) => super::train_rl::run(*a, super::train_rl::Trainer::Rlvr),
    }
}

/// Every setting is optional here: given ones override the config file,
/// which overrides the defaults (see train_config.rs).
#[derive(clap::Args)]
pub struct SftArgs {
    /// A GGUF file or a safetensors folder [default: SmolLM2-135M-Instruct Q4_1]
    #[arg(short, long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Training data: JSONL of {task, steps[, answer]}, {messages} or {prompt, completion} (SFT); trajectories or step instances (SRL); {task, answer} problems (RLVR)
    #[arg(long, value_name = "JSONL")]
    data: Option<PathBuf>,
    /// Validation data (same formats; SFT only)
    #[arg(long, value_name = "JSONL")]
    valid: Option<PathBuf>,
    /// The adapter folder to write
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint, with its settings
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Replace the run already in --out (it is kept until the new run's first checkpoint is complete)
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Settings from a TOML or YAML file (keys as the long flags, with _)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(short, long)]
    threads: Option<usize>,

    /// LoRA rank [16]
    #[arg(long)]
    rank: Option<usize>,
    /// LoRA alpha; the update is scaled by alpha / rank [32]
    #[arg(long)]
    alpha: Option<f32>,
    /// Dropout on the LoRA input [0]
    #[arg(long)]
    dropout: Option<f32>,
    /// Target modules, comma-separated [q,k,v,o,gate,up,down]
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Adapt only the last N blocks [all]
    #[arg(long)]
    num_layers: Option<usize>,
    /// Start from an existing adapter (folder or GGUF)
    #[arg(long, value_name = "PATH")]
    init_adapter: Option<PathBuf>,

    /// Peak learning rate [2e-4]
    #[arg(long)]
    lr: Option<f64>,
    /// cosine, linear or constant [cosine]
    #[arg(long)]
    schedule: Option<String>,
    /// Linear warmup steps [0]
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// Final learning rate as a fraction of --lr [0]
    #[arg(long)]
    min_lr_ratio: Option<f64>,
    /// AdamW beta1 [0.9]
    #[arg(long)]
    beta1: Option<f64>,
    /// AdamW beta2 [0.999]
    #[arg(long)]
    beta2: Option<f64>,
    /// AdamW epsilon [1e-8]
    #[arg(long)]
    eps: Option<f64>,
    /// AdamW decoupled weight decay [0]
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Clip the gradient norm (0 = off) [1.0]
    #[arg(long)]
    max_grad_norm: Option<f32>,

    /// Examples per micro-batch; RL: groups per update [1]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per optimizer step (SFT only) [1]
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Epochs over the data [1]
    #[arg(long)]
    epochs: Option<f64>,
    /// Optimizer steps (instead of --epochs)
    #[arg(long)]
    max_steps: Option<u64>,
    /// Truncate examples to this many tokens (SFT only) [512]
    #[arg(long)]
    max_len: Option<usize>,
    /// Seed of the shuffle, initialisation and dropout [0]
    #[arg(long)]
    seed: Option<u64>,
    /// Validate every N steps (0 = at the end only) [50]
    #[arg(long)]
    eval_every: Option<u64>,
    /// Checkpoint every N steps (0 = at the end only) [100]
    #[arg(long)]
    save_every: Option<u64>,
    /// Checkpoints kept [2]
    #[arg(long)]
    keep_checkpoints: Option<usize>,
    /// MiB of intermediates kept for the backward; the rest is recomputed [1024]
    #[arg(long)]
    saved_activations_mib: Option<usize>,
    /// Skip (and count) malformed lines instead of stopping
    #[arg(long)]
    skip_bad: bool,
    /// prompt/completion as raw text, without the chat template (SFT only)
    #[arg(long)]
    raw: bool,
}

impl SftArgs {
    /// New, resumed or replacing (`--resume`, `--overwrite`).
    pub fn run_mode(&self) -> RunMode {
        match (&self.resume, self.overwrite) {
            (Some(_), _) => RunMode::Resume,
            (None, true) => RunMode::Overwrite,
            (None, false) => RunMode::New,
        }
    }

    /// The settings: defaults < config file (or the resumed run's) < flags.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let c = self.config_unchecked()?;
        c.validate()?;
        Ok(c)
    }

    /// [`SftArgs::config`] before validation (the RL flags come on top).
    pub fn config_unchecked(&self) -> anyhow::Result<TrainConfig> {
        let mut c = if let Some(dir) = &self.resume {
            let (_, ck) = list_checkpoints(dir)
                .pop()
                .with_context(|| format!("{}: no checkpoint to resume from", dir.display()))?;
            let path = ck.join(STATE_FILE);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let state: TrainerState = serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid trainer state", path.display()))?;
            state.config
        } else if let Some(path) = &self.config {
            TrainConfig::from_file(path)?
        } else {
            TrainConfig::default()
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        macro_rules! set_opt {
            ($($f:ident),*) => { $( if self.$f.is_some() { c.$f = self.$f.clone(); } )* };
        }
        set!(
            data,
            out,
            rank,
            alpha,
            dropout,
            targets,
            lr,
            schedule,
            warmup_steps
        );
        set!(
            min_lr_ratio,
            beta1,
            beta2,
            eps,
            weight_decay,
            max_grad_norm,
            batch_size
        );
        set!(
            grad_accum,
            max_len,
            seed,
            eval_every,
            save_every,
            keep_checkpoints,
            threads
        );
        set_opt!(valid, num_layers, init_adapter, epochs, max_steps);
        if self.epochs.is_some() && self.max_steps.is_none() {
            c.max_steps = None;
        }
        c.skip_bad |= self.skip_bad;
        c.raw |= self.raw;
        if let Some(dir) = &self.resume {
            c.out = dir.clone();
        }
        if c.out.as_os_str().is_empty() {
            anyhow::bail!("no output folder: give --out DIR (or out = ... in --config)");
        }
        if c.data.as_os_str().is_empty() {
            anyhow::bail!("no training data: give --data FILE.jsonl (or data = ... in --config)");
        }
        Ok(c)
    }
}

fn sft(a: SftArgs) -> anyhow::Result<()> {
    let config = a.config()?;
    let path = resolve_model(a.model.as_ref())?;
    let engine = Engine::load(&path, config.threads)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    let fmt = Formatter::from_engine(&engine);
    let opts = LoadOptions {
        max_len: config.max_len,
        skip_bad: config.skip_bad,
        raw: config.raw,
    };
    let (train, summary) = load_examples(&config.data, &fmt, &opts)?;
    eprintln!("train: {}: {}", config.data.display(), summary.describe());
    let valid = match &config.valid {
        Some(p) => {
            let (v, s) = load_examples(p, &fmt, &opts)?;
            eprintln!("valid: {}: {}", p.display(), s.describe());
            v
        }
        None => Vec::new(),
    };
    let out = config.out.clone();
    let (bar, tty) = progress_bar();
    // indicatif draws nothing (println included) when stderr is not a terminal.
    let say = |msg: String| {
        if tty {
            bar.println(msg)
        } else {
            eprintln!("{msg}")
        }
    };
    let mut every = 1;
    let stop = stop_on_ctrl_c("step")?;
    let outcome = train_sft_until(
        &engine.model,
        config,
        &train,
        &valid,
        a.run_mode(),
        &engine.pool,
        &stop,
        &mut |ev| match ev {
            Event::Start {
                step,
                total_steps,
                trainable,
            } => {
                bar.set_length(total_steps);
                bar.set_position(step);
                every = (total_steps / 50).max(1);
                let what = if step > 0 { "resuming" } else { "training" };
                say(format!(
                    "{what} at step {step} of {total_steps}: {trainable} trainable parameters"
                ));
            }
            Event::Step(r) => {
                bar.set_position(r.step);
                let msg = format!(
                    "loss {:.4} lr {:.2e} |g| {:.3} {:.0} tok/s",
                    r.loss, r.lr, r.grad_norm, r.tokens_per_s
                );
                if !tty && (r.step % every == 0 || r.step == r.total_steps) {
                    eprintln!(
                        "step {}/{} epoch {:.2} {msg}",
                        r.step, r.total_steps, r.epoch
                    );
                }
                bar.set_message(msg);
            }
            Event::Valid { step, loss } => say(format!("step {step}: valid loss {loss:.4}")),
            Event::Checkpoint { step, dir } => {
                say(format!("step {step}: checkpoint {}", dir.display()))
            }
        },
    );
    bar.finish_and_clear();
    let outcome = outcome?;
    eprintln!(
        "{}: {} steps, last loss {}, valid loss {} -> {}; adapter in {} (PEFT files and adapter.gguf; use it with --lora {})",
        if outcome.interrupted {
            "interrupted"
        } else {
            "done"
        },
        outcome.steps,
        fmt_loss(outcome.last_loss),
        fmt_loss(outcome.first_valid_loss),
        fmt_loss(outcome.last_valid_loss),
        out.display(),
        out.display()
    );
    Ok(())
}

/// A flag that Ctrl-C sets: the trainer finishes its current `unit` (an SFT
/// step, or an RL update already training; one still sampling is dropped and
/// replayed on resume), saves a checkpoint and stops. A second Ctrl-C quits
/// at once.
pub fn stop_on_ctrl_c(unit: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: saving a checkpoint after this {unit} (Ctrl-C again to quit now)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// The training progress bar on stderr, and whether stderr is a terminal
/// (indicatif draws nothing, println included, when it is not).
pub fn progress_bar() -> (ProgressBar, bool) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {msg} elapsed {elapsed} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    (bar, std::io::stderr().is_terminal())
}

fn fmt_loss(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

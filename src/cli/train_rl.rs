//! `srl train srl` and `srl train rlvr`: GRPO with dynamic sampling on step
//! instances (reward: similarity to the expert step) or problems (reward:
//! the final answer), with a progress bar, metrics, checkpoints, `--resume`
//! and a checkpoint on Ctrl-C.

use super::common::resolve_model;
use super::train::{progress_bar, stop_on_ctrl_c, SftArgs};
use anyhow::Context;
use srl_finetune::answer::MathAnswer;
use srl_finetune::eval::load_eval_data;
use srl_finetune::rl::{read_problems, train_rl, RlEvent, RlTask, RlvrTask, SrlTask};
use srl_finetune::train_config::TrainConfig;
use srl_runtime::Engine;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    Srl,
    Rlvr,
}

/// The shared training flags plus the RL ones (`[rl]` in a config file).
#[derive(clap::Args)]
pub struct RlArgs {
    #[command(flatten)]
    common: SftArgs,
    /// Rollouts per instance (G) [8]
    #[arg(long)]
    group_size: Option<usize>,
    /// Sampling temperature of rollouts [1.0]
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling of rollouts [1.0]
    #[arg(long)]
    top_p: Option<f32>,
    /// Tokens per rollout at most [256]
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Monologue tokens before </think> is written for the model (budget forcing) [none]
    #[arg(long)]
    think_budget: Option<usize>,
    /// PPO clip range below 1 [0.2]
    #[arg(long)]
    clip_low: Option<f64>,
    /// PPO clip range above 1 (DAPO's clip-higher: 0.28) [0.2]
    #[arg(long)]
    clip_high: Option<f64>,
    /// KL penalty to the base model (adapter off) [0]
    #[arg(long)]
    kl_beta: Option<f64>,
    /// Drop groups whose reward std is not above this [1e-6]
    #[arg(long)]
    std_epsilon: Option<f64>,
    /// Optimizer steps per batch of rollouts [1]
    #[arg(long)]
    inner_updates: Option<usize>,
    /// Truncated importance sampling's cap: each sampled token's term is weighted by
    /// min(p_train / p_rollout, CAP), correcting the sampling pass's small difference
    /// from the training pass [2]
    #[arg(long, value_name = "CAP")]
    tis_cap: Option<f64>,
    /// Turn truncated importance sampling off (every weight 1; --tis-cap 0 too)
    #[arg(long, conflicts_with = "tis_cap")]
    no_tis: bool,
    /// Sample at most this many times --batch-size groups per update [4]
    #[arg(long)]
    sampling_bound: Option<usize>,
    /// Rollouts written to metrics.jsonl per update [2]
    #[arg(long)]
    log_samples: Option<usize>,
    /// Turn off difflib's autojunk heuristic in the SRL reward
    #[arg(long)]
    no_autojunk: bool,
}

impl RlArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut c = self.common.config_unchecked()?;
        let rl = &mut c.rl;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { rl.$f = v; } )* };
        }
        set!(group_size, temperature, top_p, max_new_tokens, clip_low);
        set!(
            clip_high,
            kl_beta,
            std_epsilon,
            inner_updates,
            sampling_bound
        );
        set!(log_samples);
        if self.think_budget.is_some() {
            rl.think_budget = self.think_budget;
        }
        if let Some(c) = self.tis_cap {
            rl.tis_cap = c;
        }
        if self.no_tis {
            rl.tis_cap = 0.0;
        }
        rl.autojunk &= !self.no_autojunk;
        c.validate()?;
        Ok(c)
    }
}

pub fn run(a: RlArgs, trainer: Trainer) -> anyhow::Result<()> {
    let config = a.config()?;
    let path = resolve_model(a.common.model.as_ref())?;
    let mut engine = Engine::load(&path, config.threads)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    let task: Box<dyn RlTask> = match trainer {
        Trainer::Srl => {
            let data = load_eval_data(&config.data)?;
            eprintln!(
                "data: {}: {} step instances{}",
                config.data.display(),
                data.instances.len(),
                if data.skipped > 0 {
                    format!(", {} trajectories skipped (no steps, blank steps or no task; `srl data build` names them)", data.skipped)
                } else {
                    String::new()
                }
            );
            Box::new(SrlTask {
                instances: data.instances,
                autojunk: config.rl.autojunk,
            })
        }
        Trainer::Rlvr => {
            let (problems, no_answer, bad) = read_problems(&config.data, config.skip_bad)?;
            eprintln!(
                "data: {}: {} problems with answers ({no_answer} without an answer, {bad} malformed lines skipped)",
                config.data.display(),
                problems.len()
            );
            Box::new(RlvrTask {
                problems,
                checker: Box::new(MathAnswer),
            })
        }
    };
    let stop = stop_on_ctrl_c("update")?;
    let out = config.out.clone();
    let (bar, tty) = progress_bar();
    let say = |msg: String| {
        if tty {
            bar.println(msg)
        } else {
            eprintln!("{msg}")
        }
    };
    let outcome = train_rl(
        &mut engine,
        task.as_ref(),
        config,
        a.common.run_mode(),
        &stop,
        &mut |ev| {
            match ev {
            RlEvent::Start {
                step,
                total_steps,
                trainable,
                instances,
                too_long,
            } => {
                bar.set_length(total_steps);
                bar.set_position(step);
                let what = if step > 0 { "resuming" } else { "training" };
                say(format!(
                    "{what} at update {step} of {total_steps}: {trainable} trainable parameters, {instances} instances{}",
                    if too_long > 0 { format!(" ({too_long} longer than the context left out)") } else { String::new() }
                ));
            }
            RlEvent::Group {
                sampled,
                kept,
                needed,
            } => bar.set_message(format!("sampling: {kept}/{needed} groups kept of {sampled}")),
            RlEvent::Update(r) => {
                bar.set_position(r.step);
                let sim = r
                    .similarity_mean
                    .map(|s| format!(" sim {s:.3}"))
                    .unwrap_or_default();
                let msg = format!(
                    "reward {:.3}±{:.3}{sim} fail {:.0}% dropped {}/{} clip {:.2} mismatch {:.4} |g| {:.3} {:.0}+{:.0} tok/s",
                    r.reward_mean,
                    r.reward_std,
                    r.format_failure_rate * 100.0,
                    r.groups_dropped,
                    r.groups_sampled,
                    r.clip_fraction,
                    r.mismatch_mean,
                    r.grad_norm,
                    r.rollout_tokens_per_s,
                    r.train_tokens_per_s
                );
                if !tty {
                    eprintln!("update {}/{} {msg}", r.step, r.total_steps);
                }
                bar.set_message(msg);
            }
            RlEvent::Checkpoint { step, dir } => {
                say(format!("update {step}: checkpoint {}", dir.display()))
            }
            RlEvent::PartialBatch { step, kept, wanted } => say(format!(
                "update {step}: only {kept} of {wanted} groups had differing rewards within the sampling bound; training on those"
            )),
            RlEvent::EmptyBatch { step, sampled, attempt } => say(format!(
                "update {step}: none of {sampled} groups had differing rewards; sampling the update again from the next instances ({attempt} of {} tries)",
                srl_finetune::rl::EMPTY_UPDATES_BEFORE_STOP
            )),
        }
        },
    );
    bar.finish_and_clear();
    let outcome = outcome?;
    eprintln!(
        "{}: {} updates, last mean reward {}; adapter in {} (use it with --lora {}; metrics.jsonl and reward.svg there)",
        if outcome.interrupted { "interrupted" } else { "done" },
        outcome.steps,
        outcome
            .last_reward
            .map(|r| format!("{r:.4}"))
            .unwrap_or_else(|| "-".into()),
        out.display(),
        out.display()
    );
    Ok(())
}

//! The GRPO trainer shared by SRL and RLVR (SRL.md, "Policy optimisation"):
//! for each update, groups of rollouts are sampled from the current policy
//! (base + the adapter being trained), scored by the task's reward, filtered
//! (dynamic sampling: a group whose rewards do not differ is dropped and
//! another instance is sampled, up to a bound), and the clipped policy
//! gradient with token-level averaging ([`crate::grpo`]) is taken with AdamW
//! on the LoRA weights, `inner_updates` times per batch.
//!
//! What a task supplies ([`RlTask`]) is only its instances, their prompts
//! and the reward: [`SrlTask`] (the expert step's similarity) and
//! [`RlvrTask`] (the final answer) live in `rl/`.
//!
//! Every update writes one line to metrics.jsonl (reward mean/std, dropped
//! groups, format failures, similarity, response length, clip fraction, KL,
//! tokens/s, sample rollouts) and the reward plot is redrawn at each
//! checkpoint. Rollout seeds, the data order and dropout masks are functions
//! of (seed, position), so a resumed run continues as if never stopped.

mod rlvr_task;
mod srl_task;

pub use rlvr_task::{read_problems, whole_solution_messages, RlvrTask, RLVR_SYSTEM_PROMPT};
pub use srl_task::SrlTask;

use crate::checkpoint::{list_checkpoints, Progress};
use crate::grpo::{group_advantages, mean_std, token_term, truncated_importance_weight};
use crate::optimizer::{apply_gradients, AdamW};
use crate::run_start::{open_metrics, schedule, start_run, RunMode};
use crate::seeds::{seed_for, Purpose};
use crate::sft::DataOrder;
use crate::steps::prompt_ids;
use crate::train_config::TrainConfig;
use crate::train_error::TrainError;
use serde_json::json;
use srl_models::{ActiveLora, LoraAdapter, LoraParams, PassOptions, TokenWeights, TrainScratch};
use srl_runtime::{
    Engine, GenerateParams, Message, Rollout, RolloutRequest, SamplerConfig, StepFormat,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How one response scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub reward: f64,
    /// SRL: the action's similarity to the expert step (None on a format
    /// failure); RLVR: None.
    pub similarity: Option<f64>,
    /// SRL: no closed think block or no action. RLVR: no final answer found.
    pub format_failure: bool,
}

/// What an RL trainer trains on.
pub trait RlTask {
    /// "srl" or "rlvr" (written in trainer_state.json).
    fn name(&self) -> &'static str;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The instance's id, for sample logs.
    fn id(&self, i: usize) -> &str;
    /// The chat messages that ask for instance `i`'s response.
    fn messages(&self, i: usize) -> Vec<Message>;
    /// Whether a response is one step (it then ends with its line).
    fn one_step(&self) -> bool;
    fn score(&self, i: usize, response: &str) -> Score;
}

/// What the trainer reports as it goes.
pub enum RlEvent<'a> {
    Start {
        step: u64,
        total_steps: u64,
        trainable: usize,
        instances: usize,
        /// Instances left out because prompt + max_new_tokens exceed the
        /// model's context.
        too_long: usize,
    },
    /// A group was sampled (for a live progress line).
    Group {
        sampled: usize,
        kept: usize,
        needed: usize,
    },
    Update(&'a UpdateReport),
    Checkpoint {
        step: u64,
        dir: &'a Path,
    },
    /// The batch could not be filled within the sampling bound.
    PartialBatch {
        step: u64,
        kept: usize,
        wanted: usize,
    },
    /// No group within the sampling bound had differing rewards: the update
    /// is sampled again from the next instances (`attempt` of
    /// [`EMPTY_UPDATES_BEFORE_STOP`]).
    EmptyBatch {
        step: u64,
        sampled: usize,
        attempt: usize,
    },
}

/// Updates in a row whose every sampled group was dropped before a run
/// stops: one such update is bad luck on hard data (a small model rarely
/// gets a verifiable answer right), several in a row mean no signal, and
/// the run must not spin.
pub const EMPTY_UPDATES_BEFORE_STOP: usize = 3;

/// One update's numbers (each also in metrics.jsonl).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateReport {
    pub step: u64,
    pub total_steps: u64,
    /// Over every rollout sampled for this update (dropped groups included).
    pub reward_mean: f64,
    pub reward_std: f64,
    pub groups_sampled: usize,
    pub groups_dropped: usize,
    /// groups_dropped / groups_sampled.
    pub dropped_fraction: f64,
    pub format_failure_rate: f64,
    /// Over well-formed responses (SRL); None when there are none.
    pub similarity_mean: Option<f64>,
    /// Tokens per response (sampled and forced).
    pub response_len_mean: f64,
    /// Tokens per prompt of the sampled groups (with the response length,
    /// the shape to give `srl bench rollouts` for a comparison).
    pub prompt_len_mean: f64,
    /// Response tokens trained on whose ratio was clipped.
    pub clip_fraction: f64,
    /// Mean k3 KL to the base over trained tokens (only when kl_beta > 0).
    pub kl: Option<f64>,
    /// Mean and max of |log p_train - log p_rollout| over the trained
    /// tokens, both under the parameters that sampled them: how far the
    /// inference pass that sampled is from the training pass.
    pub mismatch_mean: f64,
    pub mismatch_max: f64,
    /// Estimated KL(rollout pass || training pass) per token.
    pub mismatch_kl: f64,
    /// Mean truncated importance weight (1 with the correction off) and
    /// the fraction of tokens whose weight the cap truncated.
    pub is_weight_mean: f64,
    pub is_truncated_fraction: f64,
    pub loss: f64,
    pub grad_norm: f32,
    pub lr: f32,
    pub rollout_tokens_per_s: f64,
    pub train_tokens_per_s: f64,
    pub samples: Vec<serde_json::Value>,
}

/// The end of an RL run.
#[derive(Debug, Clone)]
pub struct RlOutcome {
    /// Updates done.
    pub steps: u64,
    pub last_reward: Option<f64>,
    /// Stopped by the `stop` flag (Ctrl-C); a checkpoint was saved.
    pub interrupted: bool,
    pub out: PathBuf,
}

/// A scored group that the update trains on.
struct Group {
    prompt: Vec<u32>,
    samples: Vec<Rollout>,
    advantages: Vec<f64>,
}

/// What one update's sampling produced: the groups kept for training and
/// the numbers of everything sampled (dropped groups included).
#[derive(Default)]
struct Collected {
    kept: Vec<Group>,
    sampled: usize,
    dropped: usize,
    rewards: Vec<f64>,
    similarities: Vec<f64>,
    failures: usize,
    responses: usize,
    response_tokens: usize,
    prompt_tokens: usize,
    samples_log: Vec<serde_json::Value>,
}

/// What one update's training phase did.
#[derive(Default)]
struct Trained {
    loss: f64,
    clipped: usize,
    trained: usize,
    kl_sum: f64,
    grad_norm: f32,
    tokens: usize,
    mismatch: Mismatch,
}

/// How far the rollout pass's log-probabilities of the sampled tokens are
/// from the training pass's under the same parameters, and the importance
/// weights that correct for it.
#[derive(Default)]
struct Mismatch {
    tokens: usize,
    abs_sum: f64,
    abs_max: f64,
    /// k3 estimates of KL(rollout || train) (the tokens were drawn from the
    /// rollout pass).
    kl_sum: f64,
    weight_sum: f64,
    truncated: usize,
}

impl Mismatch {
    fn add(&mut self, train_lp: f64, rollout_lp: f64, cap: Option<f64>) {
        let d = train_lp - rollout_lp;
        self.tokens += 1;
        self.abs_sum += d.abs();
        self.abs_max = self.abs_max.max(d.abs());
        self.kl_sum += d.exp() - d - 1.0;
        let w = truncated_importance_weight(train_lp, rollout_lp, cap);
        self.weight_sum += w;
        self.truncated += cap.is_some_and(|c| d.exp() > c) as usize;
    }
}

/// Trains (or, with `resume`, continues) an RL run of `task`; the engine's
/// model is the base (its attached adapters are replaced by the policy).
/// `stop` (set by Ctrl-C) ends the run after the current update with a
/// checkpoint.
///
/// Each update runs in named phases: [`collect_rollouts`] (sample groups
/// from the current policy, score them, keep those whose rewards differ,
/// with their advantages), [`update_policy`] (the clipped policy-gradient
/// steps), then [`update_report`] (metrics and the log line); checkpoints
/// are written between updates.
pub fn train_rl(
    engine: &mut Engine,
    task: &dyn RlTask,
    config: TrainConfig,
    mode: RunMode,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(RlEvent),
) -> Result<RlOutcome, TrainError> {
    let run = start_run(&engine.model, config, mode, task.name())?;
    let (config, mut params, mut opt) = (run.config, run.params, run.optimizer);
    let mut checkpoints = run.checkpoints;
    let (start, mut position) = (run.step, run.position);
    let out = config.out.clone();
    let format = StepFormat {
        think_budget: config.rl.think_budget,
        stop_at_step_end: task.one_step(),
    };
    let (prompts, too_long) = prompts_that_fit(engine, task, &format, config.rl.max_new_tokens)?;
    let groups_per_update = config.batch_size.max(1);
    let total = match config.max_steps {
        Some(s) => s,
        None => ((config.epochs.unwrap_or(1.0) * prompts.len() as f64) / groups_per_update as f64)
            .ceil()
            .max(1.0) as u64,
    };
    let schedule = schedule(&config, total);
    let mut metrics = open_metrics(&out, mode, start)?;
    on_event(RlEvent::Start {
        step: start,
        total_steps: total,
        trainable: params.len(),
        instances: prompts.len(),
        too_long,
    });
    let mut order = DataOrder::new(prompts.len(), config.seed);
    let mut grads = params.zeros_like();
    // Buffers of the training passes, kept from one pass to the next.
    let mut scratch = TrainScratch::new();
    let mut last_reward = None;
    let mut last_checkpoint = list_checkpoints(&out).pop().map(|c| c.1);
    let mut step = start;
    let mut interrupted = false;
    let mut saved_at = None;
    let mut empty_in_a_row = 0usize;
    loop {
        interrupted |= stop.load(Ordering::Relaxed);
        let done = step == total || interrupted;
        // The one place a checkpoint is written: every `save_every` updates,
        // at the end, and when stopped (of the last complete update).
        let due = done || (config.save_every > 0 && step % config.save_every == 0);
        if due && step > start && saved_at != Some(step) {
            let at = Progress {
                step,
                total_steps: total,
                epoch: position as f64 / task.len().max(1) as f64,
                last_loss: last_reward.map(|r: f64| -r),
                last_valid_loss: None,
                data_position: position,
            };
            let dir = checkpoints.write(at, &config, &params, &opt, &engine.model)?;
            on_event(RlEvent::Checkpoint { step, dir: &dir });
            last_checkpoint = Some(dir);
            saved_at = Some(step);
        }
        if done {
            break;
        }

        // 1. Collect: groups sampled from the current policy, scored, kept
        // with their advantages when their rewards differ.
        let t0 = Instant::now();
        // Where this update starts reading: an update abandoned by the stop
        // flag leaves the position here, so a resume replays it exactly.
        let update_start = position;
        let policy = [ActiveLora {
            adapter: LoraAdapter::from_params(&params, &out),
            scale: 1.0,
        }];
        let c = collect_rollouts(
            engine,
            task,
            &config,
            &policy,
            &format,
            &prompts,
            &mut order,
            &mut position,
            stop,
            on_event,
        )?;
        if stop.load(Ordering::Relaxed) && c.kept.len() < groups_per_update {
            position = update_start;
            continue;
        }
        if c.kept.is_empty() {
            empty_in_a_row += 1;
            if empty_in_a_row < EMPTY_UPDATES_BEFORE_STOP {
                on_event(RlEvent::EmptyBatch {
                    step: step + 1,
                    sampled: c.sampled,
                    attempt: empty_in_a_row,
                });
                continue;
            }
            return Err(no_signal(step + 1, &c));
        }
        empty_in_a_row = 0;
        if c.kept.len() < groups_per_update {
            on_event(RlEvent::PartialBatch {
                step: step + 1,
                kept: c.kept.len(),
                wanted: groups_per_update,
            });
        }
        let rollout_secs = t0.elapsed().as_secs_f64();

        // 2. Update: the clipped policy-gradient steps on the kept groups.
        let t1 = Instant::now();
        let lr = schedule.lr_at(step);
        let trained = update_policy(
            engine,
            &config,
            &c.kept,
            step,
            lr,
            &mut params,
            &mut opt,
            &mut grads,
            &mut scratch,
        )
        .map_err(|e| e.with_checkpoint(&last_checkpoint))?;
        let train_secs = t1.elapsed().as_secs_f64();
        step += 1;

        // 3. Log.
        let report = update_report(
            &config,
            step,
            total,
            lr,
            c,
            &trained,
            rollout_secs,
            train_secs,
        );
        let mut record = serde_json::to_value(&report).expect("report serializes");
        if let Some(o) = record.as_object_mut() {
            o.remove("step");
            o.remove("total_steps");
            o.insert("position".into(), json!(position));
        }
        metrics.write(step, &record)?;
        on_event(RlEvent::Update(&report));
        last_reward = Some(report.reward_mean);
    }
    Ok(RlOutcome {
        steps: step,
        last_reward,
        interrupted,
        out,
    })
}

/// An instance's index and its prompt's token ids.
type Prompt = (usize, Vec<u32>);

/// Every instance's prompt, with its index; those whose prompt and
/// `max_new` tokens exceed the model's context are left out (and counted).
fn prompts_that_fit(
    engine: &Engine,
    task: &dyn RlTask,
    format: &StepFormat,
    max_new: usize,
) -> Result<(Vec<Prompt>, usize), TrainError> {
    let n_ctx = engine.model.config.context_length;
    let mut prompts = Vec::new();
    let mut too_long = 0;
    for i in 0..task.len() {
        let ids =
            prompt_ids(engine, &task.messages(i), format).map_err(|source| TrainError::Prompt {
                id: task.id(i).to_string(),
                source,
            })?;
        if ids.len() + max_new + 1 > n_ctx {
            too_long += 1;
        } else {
            prompts.push((i, ids));
        }
    }
    if prompts.is_empty() {
        return Err(TrainError::Config(format!(
            "no instance fits the context ({n_ctx} tokens) with max_new_tokens {max_new}"
        )));
    }
    Ok((prompts, too_long))
}

/// Samples groups of rollouts from `policy`, instances taken in the run's
/// data order from `position`, until an update's groups are kept or the
/// sampling bound is reached (or `stop` is set); scores each response and
/// keeps each group whose rewards differ, with its advantages.
///
/// The groups still needed are sampled together in one batch
/// ([`Engine::rollouts_batch`]: every sample of every group decodes in the
/// same forward passes), then, if dynamic sampling dropped some, as many
/// more as are still needed. That samples exactly the instances one group
/// at a time would (never more than are needed, in the same order, each
/// with its position's seed; batched decoding is bit-identical), so runs
/// and resumes are as deterministic as before.
#[allow(clippy::too_many_arguments)]
fn collect_rollouts(
    engine: &Engine,
    task: &dyn RlTask,
    config: &TrainConfig,
    policy: &[ActiveLora],
    format: &StepFormat,
    prompts: &[Prompt],
    order: &mut DataOrder,
    position: &mut u64,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(RlEvent),
) -> Result<Collected, TrainError> {
    let rl = &config.rl;
    let wanted = config.batch_size.max(1);
    let bound = wanted * rl.sampling_bound;
    let gen = GenerateParams {
        max_tokens: rl.max_new_tokens,
        sampler: SamplerConfig {
            temperature: rl.temperature,
            top_k: 0,
            top_p: rl.top_p,
            min_p: 0.0,
            ..SamplerConfig::default()
        },
        stop: Vec::new(),
        ignore_eog: false,
    };
    let mut c = Collected::default();
    while c.kept.len() < wanted && c.sampled < bound {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let round = (wanted - c.kept.len()).min(bound - c.sampled);
        let picked: Vec<&Prompt> = (0..round)
            .map(|k| &prompts[order.at(*position + k as u64)])
            .collect();
        let requests: Vec<RolloutRequest> = picked
            .iter()
            .enumerate()
            .map(|(k, (_, ids))| RolloutRequest {
                prompt_ids: ids,
                n: rl.group_size,
                seed: seed_for(
                    config.seed,
                    Purpose::Rollouts {
                        position: *position + k as u64,
                    },
                ),
            })
            .collect();
        *position += round as u64;
        let batch = engine
            .rollouts_batch(policy, &requests, None, &gen, format)
            .map_err(|source| TrainError::Rollout {
                id: picked
                    .iter()
                    .map(|(i, _)| task.id(*i))
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })?;
        for ((i, prompt), samples) in picked.into_iter().zip(batch.groups) {
            c.sampled += 1;
            c.prompt_tokens += prompt.len();
            let rewards = score_group(task, *i, &samples, rl.log_samples, &mut c);
            match group_advantages(&rewards, rl.grpo().std_epsilon) {
                Some(advantages) => c.kept.push(Group {
                    prompt: prompt.clone(),
                    samples,
                    advantages,
                }),
                None => c.dropped += 1,
            }
            on_event(RlEvent::Group {
                sampled: c.sampled,
                kept: c.kept.len(),
                needed: wanted,
            });
        }
    }
    Ok(c)
}

/// Scores a group's responses to instance `i`, adds them to the update's
/// numbers (and up to `log_limit` samples to its log), and returns the
/// rewards.
fn score_group(
    task: &dyn RlTask,
    i: usize,
    samples: &[Rollout],
    log_limit: usize,
    c: &mut Collected,
) -> Vec<f64> {
    samples
        .iter()
        .map(|s| {
            let sc = task.score(i, &s.text);
            c.rewards.push(sc.reward);
            c.similarities.extend(sc.similarity);
            c.failures += sc.format_failure as usize;
            c.responses += 1;
            c.response_tokens += s.ids.len();
            if c.samples_log.len() < log_limit {
                c.samples_log.push(json!({
                    "id": task.id(i), "response": s.text, "reward": sc.reward,
                }));
            }
            sc.reward
        })
        .collect()
}

/// Why a run stops when update after update no group had differing rewards.
fn no_signal(update: u64, c: &Collected) -> TrainError {
    TrainError::NoSignal(format!(
        "update {update}: {EMPTY_UPDATES_BEFORE_STOP} times in a row, all {} groups \
         sampled were dropped (their {} rollouts' rewards did not differ: mean reward \
         {:.3}, {} format failures); the model gets no signal from this data. {}",
        c.sampled,
        c.rewards.len(),
        mean_std(&c.rewards).0,
        c.failures,
        if c.failures == c.responses {
            "Every response failed the <think> format: try a think budget \
             (--think-budget N), a larger --max-new-tokens, or a model that follows it."
        } else {
            "Try a higher --temperature, a larger --group-size, or easier data."
        }
    ))
}

/// One response the update trains on.
struct Sequence<'a> {
    /// Prompt then response.
    tokens: Vec<u32>,
    prompt_len: usize,
    advantage: f64,
    rollout: &'a Rollout,
}

impl Sequence<'_> {
    /// Per predicted position: whether it is a sampled response token (the
    /// loss is on those only, not on the prompt or forced tokens).
    fn trained(&self) -> Vec<bool> {
        let mut t = vec![false; self.tokens.len() - 1];
        for (j, &forced) in self.rollout.forced.iter().enumerate() {
            t[self.prompt_len + j - 1] = !forced;
        }
        t
    }

    /// The rollout pass's log-probability of the token predicted at `pos`.
    fn rollout_logprob(&self, pos: usize) -> f32 {
        self.rollout.logprobs[pos + 1 - self.prompt_len]
    }
}

/// The update: `inner_updates` optimizer steps of the clipped
/// policy-gradient objective over the kept groups' sampled (not forced)
/// tokens, each pass through the f32 training forward and backward.
///
/// Each token's weight is computed from its log-probability inside the
/// pass ([`TokenWeights::OfLogprob`]): the first inner update's pass runs
/// on the parameters that sampled the rollouts, so its log-probabilities
/// are the old policy's (ratio 1), kept for the later inner updates and
/// compared with the rollout pass's for the importance weights and the
/// logged mismatch. No pass is spent on log-probabilities alone, except
/// the base model's when the KL penalty needs them. (With adapter dropout,
/// these log-probabilities carry each pass's dropout mask, as those of
/// PyTorch trainers that leave dropout on do.)
#[allow(clippy::too_many_arguments)]
fn update_policy(
    engine: &Engine,
    config: &TrainConfig,
    kept: &[Group],
    step: u64,
    lr: f32,
    params: &mut LoraParams,
    opt: &mut AdamW,
    grads: &mut LoraParams,
    scratch: &mut TrainScratch,
) -> Result<Trained, TrainError> {
    let (rl, grpo) = (&config.rl, config.rl.grpo());
    let cap = rl.tis();
    let model = &engine.model;
    let pool = &engine.pool;
    let n_tokens: usize = kept
        .iter()
        .flat_map(|g| &g.samples)
        .map(|s| s.forced.iter().filter(|&&f| !f).count())
        .sum();
    let seqs: Vec<Sequence> = kept
        .iter()
        .flat_map(|g| {
            g.samples
                .iter()
                .zip(&g.advantages)
                .map(move |(s, &advantage)| Sequence {
                    tokens: [g.prompt.clone(), s.ids.clone()].concat(),
                    prompt_len: g.prompt.len(),
                    advantage,
                    rollout: s,
                })
        })
        .filter(|q| !q.rollout.ids.is_empty())
        .collect();
    let mut refs = Vec::new();
    if grpo.kl_beta > 0.0 {
        for q in &seqs {
            refs.push(model.token_logprobs(&q.tokens, None, pool)?);
        }
    }
    // The training pass's log-probabilities under the rollouts' parameters
    // (filled by the first inner update).
    let mut old: Vec<Vec<f32>> = vec![Vec::new(); seqs.len()];
    let mut t = Trained::default();
    for it in 0..rl.inner_updates {
        grads.fill(0.0);
        let (first_it, last_it) = (it == 0, it + 1 == rl.inner_updates);
        for (k, q) in seqs.iter().enumerate() {
            let trained = q.trained();
            let n_trained = trained.iter().filter(|&&b| b).count();
            // A rollout at the group's mean reward (advantage 0, no KL) has
            // no gradient: skip its pass.
            if q.advantage == 0.0 && grpo.kl_beta == 0.0 {
                if last_it {
                    t.trained += n_trained;
                }
                continue;
            }
            let (old_k, ref_k) = (&old[k], refs.get(k));
            let term = |pos: usize, lp: f32| {
                let old_lp = if first_it { lp } else { old_k[pos] };
                let rollout_lp = q.rollout_logprob(pos) as f64;
                let is = truncated_importance_weight(old_lp as f64, rollout_lp, cap);
                let ref_lp = ref_k.map(|r| r[pos] as f64);
                token_term(
                    &grpo,
                    q.advantage,
                    lp as f64,
                    old_lp as f64,
                    ref_lp,
                    n_tokens,
                    is,
                )
            };
            let weight = |pos: usize, lp: f32| term(pos, lp).weight as f32;
            let pass = Purpose::RlDropout {
                update: step,
                inner: it as u64,
                rollout: k as u64,
            };
            let out = model.weighted_nll_by(
                &q.tokens,
                TokenWeights::OfLogprob {
                    trained: &trained,
                    weight: &weight,
                },
                Some(params),
                Some(grads),
                PassOptions {
                    dropout_seed: Some(seed_for(config.seed, pass)),
                    saved_activations_mib: config.saved_activations_mib,
                },
                scratch,
                pool,
            )?;
            t.tokens += q.tokens.len();
            let positions = || (0..trained.len()).filter(|&p| trained[p]);
            if first_it {
                for pos in positions() {
                    let (lp, rollout_lp) = (out.logprobs[pos] as f64, q.rollout_logprob(pos));
                    t.mismatch.add(lp, rollout_lp as f64, cap);
                }
            }
            if last_it {
                for pos in positions() {
                    let term = term(pos, out.logprobs[pos]);
                    t.loss += term.loss;
                    t.clipped += term.clipped as usize;
                    t.trained += 1;
                    t.kl_sum += term.kl;
                }
            }
            if first_it {
                old[k] = out.logprobs;
            }
        }
        t.grad_norm = apply_gradients(params, grads, opt, t.loss, config.max_grad_norm, lr, step)?;
    }
    Ok(t)
}

/// One update's numbers, as `metrics.jsonl` and the log show them.
#[allow(clippy::too_many_arguments)]
fn update_report(
    config: &TrainConfig,
    step: u64,
    total: u64,
    lr: f32,
    c: Collected,
    t: &Trained,
    rollout_secs: f64,
    train_secs: f64,
) -> UpdateReport {
    let (reward_mean, reward_std) = mean_std(&c.rewards);
    let kl_on = config.rl.grpo().kl_beta > 0.0;
    let m = &t.mismatch;
    let per_token = |x: f64| x / m.tokens.max(1) as f64;
    UpdateReport {
        step,
        total_steps: total,
        reward_mean,
        reward_std,
        groups_sampled: c.sampled,
        groups_dropped: c.dropped,
        dropped_fraction: c.dropped as f64 / c.sampled.max(1) as f64,
        format_failure_rate: c.failures as f64 / c.responses.max(1) as f64,
        similarity_mean: (!c.similarities.is_empty()).then(|| mean_std(&c.similarities).0),
        response_len_mean: c.response_tokens as f64 / c.responses.max(1) as f64,
        prompt_len_mean: c.prompt_tokens as f64 / c.sampled.max(1) as f64,
        clip_fraction: t.clipped as f64 / t.trained.max(1) as f64,
        kl: kl_on.then(|| t.kl_sum / t.trained.max(1) as f64),
        mismatch_mean: per_token(m.abs_sum),
        mismatch_max: m.abs_max,
        mismatch_kl: per_token(m.kl_sum),
        is_weight_mean: if m.tokens == 0 {
            1.0
        } else {
            per_token(m.weight_sum)
        },
        is_truncated_fraction: per_token(m.truncated as f64),
        loss: t.loss,
        grad_norm: t.grad_norm,
        lr,
        rollout_tokens_per_s: c.response_tokens as f64 / rollout_secs.max(1e-9),
        train_tokens_per_s: t.tokens as f64 / train_secs.max(1e-9),
        samples: c.samples_log,
    }
}

//! Supervised fine-tuning of a LoRA adapter: next-token loss on the target
//! tokens of each example (the expert's part), averaged over the target
//! tokens of an optimizer step, AdamW with warmup and decay, validation,
//! checkpoints, metrics and a loss plot.
//!
//! Examples are processed one sequence at a time (no padding): a step sums
//! the gradients of its `batch_size * grad_accum` examples, each token
//! weighted 1 / (target tokens in the step). The order of examples is a
//! seeded shuffle per epoch and dropout masks derive from (seed, step), so a
//! resumed run continues exactly as if it had never stopped.

use crate::checkpoint::Progress;
use crate::data::Example;
use crate::optimizer::apply_gradients;
use crate::run_start::{open_metrics, schedule, start_run, RunMode};
use crate::seeds::{seed_for, Purpose};
use crate::train_config::TrainConfig;
use serde_json::json;
use srl_models::lora_params::mix64;
use srl_models::{LoraParams, Model, ModelError, PassOptions, TrainScratch};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::train_error::TrainError;

/// What the trainer reports as it goes (the command line draws it).
pub enum Event<'a> {
    /// Training starts (or resumes) at `step` of `total_steps`.
    Start {
        step: u64,
        total_steps: u64,
        trainable: usize,
    },
    Step(&'a StepReport),
    Valid {
        step: u64,
        loss: f64,
    },
    Checkpoint {
        step: u64,
        dir: &'a Path,
    },
}

/// One optimizer step's numbers.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Steps done after this one (1-based).
    pub step: u64,
    pub total_steps: u64,
    pub epoch: f64,
    /// Mean next-token loss over the step's target tokens.
    pub loss: f64,
    pub lr: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    pub tokens: usize,
    pub target_tokens: usize,
    pub tokens_per_s: f64,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steps: u64,
    pub last_loss: Option<f64>,
    pub first_valid_loss: Option<f64>,
    pub last_valid_loss: Option<f64>,
    pub out: PathBuf,
    /// Stopped early by the stop flag (Ctrl-C); a checkpoint was saved.
    pub interrupted: bool,
}

/// The steps a run takes: `max_steps`, or `epochs` over `n` examples
/// (default one epoch).
pub fn total_steps(config: &TrainConfig, n: usize) -> u64 {
    if let Some(s) = config.max_steps {
        return s;
    }
    let per = config.examples_per_step() as f64;
    ((config.epochs.unwrap_or(1.0) * n as f64) / per)
        .ceil()
        .max(1.0) as u64
}

/// The order a run consumes examples (or RL instances) in: a seeded shuffle
/// per epoch, the current epoch's permutation kept.
pub(crate) struct DataOrder {
    n: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl DataOrder {
    pub(crate) fn new(n: usize, seed: u64) -> DataOrder {
        DataOrder {
            n,
            seed,
            epoch: None,
        }
    }

    /// The index into the examples of the k-th example the run consumes.
    pub(crate) fn at(&mut self, k: u64) -> usize {
        let epoch = k / self.n as u64;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let seed = seed_for(self.seed, Purpose::EpochOrder { epoch });
            self.epoch = Some((epoch, permutation(self.n, seed)));
        }
        let (_, perm) = self.epoch.as_ref().expect("just set");
        perm[(k % self.n as u64) as usize]
    }
}

/// A seeded Fisher-Yates shuffle of 0..n.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s = mix64(s.wrapping_add(i as u64));
        p.swap(i, (s % (i as u64 + 1)) as usize);
    }
    p
}

/// Per-position loss weights of one example: 1/`norm` on target positions.
fn weights_of(e: &Example, norm: f64) -> Vec<f32> {
    e.target[1..]
        .iter()
        .map(|&t| if t { (1.0 / norm) as f32 } else { 0.0 })
        .collect()
}

fn target_count(e: &Example) -> usize {
    e.target[1..].iter().filter(|&&t| t).count()
}

/// Mean next-token loss over the target tokens of `examples` (no dropout).
pub fn eval_loss(
    model: &Model,
    params: Option<&LoraParams>,
    examples: &[Example],
    pool: &rayon::ThreadPool,
) -> Result<f64, ModelError> {
    let (mut sum, mut count) = (0.0f64, 0usize);
    let mut scratch = TrainScratch::new();
    for e in examples {
        let n = target_count(e);
        if n == 0 {
            continue;
        }
        let w = weights_of(e, 1.0);
        let opts = PassOptions::default();
        sum += model
            .weighted_nll_with(&e.tokens, &w, params, None, opts, &mut scratch, pool)?
            .loss;
        count += n;
    }
    Ok(if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    })
}

/// Trains (or, with `resume`, continues) an SFT run on `train`, validating on
/// `valid`, writing everything into `config.out`.
pub fn train_sft(
    model: &Model,
    config: TrainConfig,
    train: &[Example],
    valid: &[Example],
    mode: RunMode,
    pool: &rayon::ThreadPool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, TrainError> {
    let never = AtomicBool::new(false);
    train_sft_until(model, config, train, valid, mode, pool, &never, on_event)
}

/// [`train_sft`] that also stops when `stop` is set (Ctrl-C), after the
/// current step, with a checkpoint of it.
#[allow(clippy::too_many_arguments)]
pub fn train_sft_until(
    model: &Model,
    config: TrainConfig,
    train: &[Example],
    valid: &[Example],
    mode: RunMode,
    pool: &rayon::ThreadPool,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, TrainError> {
    let train: Vec<&Example> = train.iter().filter(|e| target_count(e) > 0).collect();
    if train.is_empty() {
        return Err(TrainError::Config(
            "no training example has target tokens".into(),
        ));
    }
    let run = start_run(model, config, mode, "sft")?;
    let (config, mut params, mut opt, start) = (run.config, run.params, run.optimizer, run.step);
    let mut checkpoints = run.checkpoints;
    let out = config.out.clone();
    let total = total_steps(&config, train.len());
    let schedule = schedule(&config, total);
    let mut metrics = open_metrics(&out, mode, start)?;
    on_event(Event::Start {
        step: start,
        total_steps: total,
        trainable: params.len(),
    });

    let per_step = config.examples_per_step() as u64;
    let mut order = DataOrder {
        n: train.len(),
        seed: config.seed,
        epoch: None,
    };
    let mut grads = params.zeros_like();
    // Buffers of the training passes, kept from one pass to the next.
    let mut scratch = TrainScratch::new();
    let mut last_loss = None;
    let mut first_valid = None;
    let mut last_valid = None;
    let mut last_checkpoint = crate::checkpoint::list_checkpoints(&out).pop().map(|c| c.1);
    if mode != RunMode::Resume && !valid.is_empty() {
        let v = eval_loss(model, Some(&params), valid, pool)?;
        metrics.write(0, &json!({ "valid_loss": v }))?;
        on_event(Event::Valid { step: 0, loss: v });
        first_valid = Some(v);
        last_valid = Some(v);
    }
    let mut done_steps = start;
    let mut saved_at = None;
    let mut interrupted = false;
    let mut epoch = start as f64 * per_step as f64 / train.len() as f64;
    for step in start..total {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let t0 = Instant::now();
        let batch: Vec<&Example> = (step * per_step..(step + 1) * per_step)
            .map(|k| train[order.at(k)])
            .collect();
        let norm: usize = batch.iter().map(|e| target_count(e)).sum();
        grads.fill(0.0);
        let (loss, tokens) = batch_gradients(
            model,
            &config,
            step,
            &batch,
            &params,
            &mut grads,
            &mut scratch,
            pool,
        )?;
        let lr = schedule.lr_at(step);
        let max_norm = config.max_grad_norm;
        let gnorm = apply_gradients(&mut params, &mut grads, &mut opt, loss, max_norm, lr, step)
            .map_err(|e| e.with_checkpoint(&last_checkpoint))?;
        let done = step + 1;
        let secs = t0.elapsed().as_secs_f64();
        let report = StepReport {
            step: done,
            total_steps: total,
            epoch: (done * per_step) as f64 / train.len() as f64,
            loss,
            lr,
            grad_norm: gnorm,
            tokens,
            target_tokens: norm,
            tokens_per_s: tokens as f64 / secs.max(1e-9),
        };
        metrics.write(
            done,
            &json!({
                "epoch": report.epoch, "loss": loss, "lr": lr, "grad_norm": gnorm,
                "tokens": tokens, "target_tokens": norm, "tokens_per_s": report.tokens_per_s,
            }),
        )?;
        on_event(Event::Step(&report));
        last_loss = Some(loss);
        let last = done == total;
        if !valid.is_empty() && (last || (config.eval_every > 0 && done % config.eval_every == 0)) {
            let v = eval_loss(model, Some(&params), valid, pool)?;
            metrics.write(done, &json!({ "valid_loss": v }))?;
            on_event(Event::Valid {
                step: done,
                loss: v,
            });
            first_valid.get_or_insert(v);
            last_valid = Some(v);
        }
        done_steps = done;
        epoch = report.epoch;
        if last || (config.save_every > 0 && done % config.save_every == 0) {
            let at = progress(done, total, epoch, last_loss, last_valid, per_step);
            let dir = checkpoints.write(at, &config, &params, &opt, model)?;
            on_event(Event::Checkpoint {
                step: done,
                dir: &dir,
            });
            last_checkpoint = Some(dir);
            saved_at = Some(done);
        }
    }
    if interrupted && done_steps > start && saved_at != Some(done_steps) {
        let at = progress(done_steps, total, epoch, last_loss, last_valid, per_step);
        let dir = checkpoints.write(at, &config, &params, &opt, model)?;
        on_event(Event::Checkpoint {
            step: done_steps,
            dir: &dir,
        });
    }
    Ok(Outcome {
        steps: done_steps,
        interrupted,
        last_loss,
        first_valid_loss: first_valid,
        last_valid_loss: last_valid,
        out,
    })
}

/// The loss of a step's examples, its gradient added into `grads`, and the
/// tokens read: one weighted forward and backward per example, each loss
/// normalised by the batch's target tokens.
#[allow(clippy::too_many_arguments)]
fn batch_gradients(
    model: &Model,
    config: &TrainConfig,
    step: u64,
    batch: &[&Example],
    params: &LoraParams,
    grads: &mut LoraParams,
    scratch: &mut TrainScratch,
    pool: &rayon::ThreadPool,
) -> Result<(f64, usize), TrainError> {
    let norm: usize = batch.iter().map(|e| target_count(e)).sum();
    let (mut loss, mut tokens) = (0.0f64, 0usize);
    for (i, e) in batch.iter().enumerate() {
        let w = weights_of(e, norm as f64);
        let example = i as u64;
        let seed = seed_for(config.seed, Purpose::Dropout { step, example });
        let r = model.weighted_nll_with(
            &e.tokens,
            &w,
            Some(params),
            Some(grads),
            PassOptions {
                dropout_seed: Some(seed),
                saved_activations_mib: config.saved_activations_mib,
            },
            scratch,
            pool,
        )?;
        loss += r.loss;
        tokens += e.tokens.len();
    }
    Ok((loss, tokens))
}

/// Where the run stands after `step` steps of `per_step` examples.
fn progress(
    step: u64,
    total: u64,
    epoch: f64,
    last_loss: Option<f64>,
    last_valid: Option<f64>,
    per_step: u64,
) -> Progress {
    Progress {
        step,
        total_steps: total,
        epoch,
        last_loss,
        last_valid_loss: last_valid,
        data_position: step * per_step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_example_once_in_a_new_order() {
        let mut order = DataOrder {
            n: 37,
            seed: 5,
            epoch: None,
        };
        let epochs: Vec<Vec<usize>> = (0..3)
            .map(|e| (e * 37..(e + 1) * 37).map(|k| order.at(k)).collect())
            .collect();
        for ep in &epochs {
            let mut sorted = ep.clone();
            sorted.sort();
            assert_eq!(sorted, (0..37).collect::<Vec<_>>());
        }
        assert_ne!(epochs[0], epochs[1]);
        // The same k gives the same example however the run got there.
        let mut fresh = DataOrder {
            n: 37,
            seed: 5,
            epoch: None,
        };
        assert_eq!(fresh.at(2 * 37 + 5), epochs[2][5]);
    }
}

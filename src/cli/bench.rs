//! `srl bench`: prompt processing and generation speed, as llama-bench
//! measures them (pp: one batch of P tokens into an empty cache; tg: N
//! single-token steps from an empty cache), plus peak resident memory.

use super::common::ModelArgs;
use srl_models::{Logits, State};
use std::time::Instant;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Option<Kind>,
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt tokens (0 skips the prompt test)
    #[arg(short = 'p', long, default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens (0 skips the generation test)
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Repetitions of each test (the mean is reported)
    #[arg(short = 'r', long, default_value_t = 3)]
    reps: usize,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// LoRA training speed and peak memory (forward + backward + AdamW)
    Train(super::bench_train::Args),
    /// Rollout speed: G samples of one prompt batched vs one after another
    Rollouts(super::bench_rollouts::Args),
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.kind {
        Some(Kind::Train(t)) => return super::bench_train::run(t),
        Some(Kind::Rollouts(r)) => return super::bench_rollouts::run(r),
        None => {}
    }
    let engine = a.model.load()?;
    let model = &engine.model;
    let vocab = model.config.vocab_size as u64;
    // Deterministic pseudo-random tokens, like llama-bench's.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % vocab) as u32
    };
    let n_ctx = (a.n_prompt.max(a.n_gen) + 1).min(model.config.context_length);
    let mut kv = model.new_cache(n_ctx);
    let mut state = State::new();
    let reps = a.reps.max(1);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    // Warm-up: touch the weights once.
    model.forward(&[next()], &mut kv, &mut state, Logits::Last, &engine.pool)?;
    for _ in 0..reps {
        if a.n_prompt > 0 {
            let tokens: Vec<u32> = (0..a.n_prompt).map(|_| next()).collect();
            kv.clear();
            let t = Instant::now();
            for chunk in tokens.chunks(srl_runtime::generate::PROMPT_BATCH) {
                model.forward(chunk, &mut kv, &mut state, Logits::Last, &engine.pool)?;
            }
            pp.push(a.n_prompt as f64 / t.elapsed().as_secs_f64());
        }
        if a.n_gen > 0 {
            kv.clear();
            let t = Instant::now();
            for _ in 0..a.n_gen {
                model.forward(&[next()], &mut kv, &mut state, Logits::Last, &engine.pool)?;
            }
            tg.push(a.n_gen as f64 / t.elapsed().as_secs_f64());
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let std = |v: &[f64]| {
        let m = mean(v);
        if v.len() < 2 {
            0.0
        } else {
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        }
    };
    let rss = peak_rss_mib();
    let file_mib = model.files.size_bytes() as f64 / (1 << 20) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model.files.path(),
                "threads": engine.threads(),
                "n_prompt": a.n_prompt,
                "n_gen": a.n_gen,
                "reps": reps,
                "pp_tokens_per_s": mean(&pp),
                "pp_std": std(&pp),
                "tg_tokens_per_s": mean(&tg),
                "tg_std": std(&tg),
                "load_ms": engine.load_ms,
                "peak_rss_mib": rss,
                "file_mib": file_mib,
            })
        );
    } else {
        println!(
            "model: {} ({file_mib:.1} MiB), threads: {}",
            model.files.path().display(),
            engine.threads()
        );
        println!("| test | tokens/s |");
        println!("|---|---|");
        if a.n_prompt > 0 {
            println!("| pp{} | {:.1} ± {:.1} |", a.n_prompt, mean(&pp), std(&pp));
        }
        if a.n_gen > 0 {
            println!("| tg{} | {:.1} ± {:.1} |", a.n_gen, mean(&tg), std(&tg));
        }
        println!(
            "load: {:.1} ms, peak resident memory: {rss:.1} MiB",
            engine.load_ms
        );
    }
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

//! `srl bench rollouts`: tokens/s of G samples of one prompt generated as a
//! batch (prefill once, decode together) against the same G samples
//! generated one after another, as RL rollouts use them. Samples run to
//! their full length (end-of-generation tokens ignored), as llama-bench's tg.
//! In a build with `--features llama-cpp` the same G samples are also
//! generated one after another by llama.cpp in the same run: the reference
//! the batched figure is compared with. `--rounds N` alternates the engines
//! N times and reports medians: on a shared machine one run of each can be
//! 10-25% off.

use super::common::ModelArgs;
use srl_runtime::backend::LLAMA_CPP_BUILT;
use srl_runtime::generate::GenerateParams;
use srl_runtime::{BackendKind, Runner, RunnerOptions, SamplerConfig};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Samples per group
    #[arg(short = 'g', long, default_value_t = 8)]
    group: usize,
    /// Prompt tokens
    #[arg(short = 'p', long, default_value_t = 128)]
    n_prompt: usize,
    /// Tokens generated per sample
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Alternating rounds (batched, sequential, llama.cpp, batched, ...);
    /// the figures are medians over rounds
    #[arg(short = 'r', long, default_value_t = 1)]
    rounds: usize,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let engine = a.model.load()?;
    let vocab = engine.model.config.vocab_size as u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let prompt: Vec<u32> = (0..a.n_prompt.max(1))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % vocab) as u32
        })
        .collect();
    let params = GenerateParams {
        max_tokens: a.n_gen,
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1,
            ..SamplerConfig::default()
        },
        stop: Vec::new(),
        ignore_eog: true,
    };
    // Warm-up.
    engine.rollouts(
        &prompt[..1],
        1,
        &GenerateParams {
            max_tokens: 2,
            ..params.clone()
        },
    )?;
    // llama.cpp, one sample after another (the same prompt and settings).
    let runner = if LLAMA_CPP_BUILT {
        let opts = RunnerOptions {
            backend: BackendKind::LlamaCpp,
            threads: engine.threads(),
            loras: a.model.lora.clone(),
            lora_scale: a.model.lora_scale,
            gpu_layers: None,
        };
        let runner = Runner::load(&a.model.path()?, &opts)?;
        runner.session(prompt.len() + 4)?.generate(
            &prompt[..1],
            &GenerateParams {
                max_tokens: 2,
                ..params.clone()
            },
            |_| true,
        )?;
        Some(runner)
    } else {
        None
    };
    // Rounds alternate the engines, so that a noisy machine slows all of
    // them alike; each figure is the median over rounds.
    let (mut batched_r, mut sequential_r, mut llama_r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.rounds.max(1) {
        if a.rounds > 1 {
            eprintln!("[bench rollouts] round {}/{}", round + 1, a.rounds);
        }
        let t = Instant::now();
        let group = engine.rollouts(&prompt, a.group, &params)?;
        batched_r.push(group.generated_tokens as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut tokens = 0;
        for g in 0..a.group {
            let mut p = params.clone();
            p.sampler.seed += g as u64;
            let c = engine
                .session(prompt.len() + a.n_gen + 1)
                .generate(&prompt, &p, |_| true)?;
            tokens += c.ids.len();
        }
        sequential_r.push(tokens as f64 / t.elapsed().as_secs_f64());
        if let Some(runner) = &runner {
            let t = Instant::now();
            let mut tokens = 0;
            for g in 0..a.group {
                let mut p = params.clone();
                p.sampler.seed += g as u64;
                let c =
                    runner
                        .session(prompt.len() + a.n_gen + 1)?
                        .generate(&prompt, &p, |_| true)?;
                tokens += c.ids.len();
            }
            llama_r.push(tokens as f64 / t.elapsed().as_secs_f64());
        }
    }
    let batched = median(&batched_r);
    let sequential = median(&sequential_r);
    let llama = runner.as_ref().map(|_| median(&llama_r));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": engine.model.files.path(),
                "threads": engine.threads(),
                "group": a.group,
                "n_prompt": prompt.len(),
                "n_gen": a.n_gen,
                "rounds": batched_r.len(),
                "batched_tokens_per_s_rounds": batched_r,
                "sequential_tokens_per_s_rounds": sequential_r,
                "llamacpp_sequential_tokens_per_s_rounds": runner.as_ref().map(|_| &llama_r),
                "batched_tokens_per_s": batched,
                "sequential_tokens_per_s": sequential,
                "speedup": batched / sequential,
                "llamacpp_sequential_tokens_per_s": llama,
                "batched_vs_llamacpp": llama.map(|l| batched / l),
            })
        );
    } else {
        println!(
            "G = {} samples of {} tokens after a {}-token prompt, {} threads, median of {} round(s):",
            a.group,
            a.n_gen,
            prompt.len(),
            engine.threads(),
            batched_r.len()
        );
        println!("| mode | tokens/s |\n|---|---:|");
        println!("| batched (prefill once, decode together) | {batched:.1} |");
        println!("| sequential (one sample at a time) | {sequential:.1} |");
        if let Some(l) = llama {
            println!("| llama.cpp sequential (same run) | {l:.1} |");
        }
        println!("speedup: {:.2}x", batched / sequential);
        match llama {
            Some(l) => println!("batched / llama.cpp sequential: {:.2}x", batched / l),
            None => {
                println!("(build with --features llama-cpp to measure llama.cpp in the same run)")
            }
        }
    }
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

//! `srl bench rollouts`: tokens/s of G samples of one prompt generated as a
//! batch (prefill once, decode together) against the same G samples
//! generated one after another, as RL rollouts use them. Samples run to
//! their full length (end-of-generation tokens ignored), as llama-bench's tg.

use super::common::ModelArgs;
use srl_runtime::generate::GenerateParams;
use srl_runtime::SamplerConfig;
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
    let t = Instant::now();
    let group = engine.rollouts(&prompt, a.group, &params)?;
    let batched_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut sequential_tokens = 0;
    for g in 0..a.group {
        let mut p = params.clone();
        p.sampler.seed += g as u64;
        let c = engine
            .session(prompt.len() + a.n_gen + 1)
            .generate(&prompt, &p, |_| true)?;
        sequential_tokens += c.ids.len();
    }
    let sequential_s = t.elapsed().as_secs_f64();
    let batched = group.generated_tokens as f64 / batched_s;
    let sequential = sequential_tokens as f64 / sequential_s;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": engine.model.files.path(),
                "threads": engine.threads(),
                "group": a.group,
                "n_prompt": prompt.len(),
                "n_gen": a.n_gen,
                "batched_tokens_per_s": batched,
                "sequential_tokens_per_s": sequential,
                "speedup": batched / sequential,
            })
        );
    } else {
        println!(
            "G = {} samples of {} tokens after a {}-token prompt, {} threads:",
            a.group,
            a.n_gen,
            prompt.len(),
            engine.threads()
        );
        println!("| mode | tokens/s |\n|---|---:|");
        println!("| batched (prefill once, decode together) | {batched:.1} |");
        println!("| sequential (one sample at a time) | {sequential:.1} |");
        println!("speedup: {:.2}x", batched / sequential);
    }
    Ok(())
}

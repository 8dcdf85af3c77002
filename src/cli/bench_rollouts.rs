//! `srl bench rollouts`: tokens/s of G samples of one prompt generated as a
//! batch (prefill once, decode together) against the same G samples
//! generated one after another, as RL rollouts use them. Samples run to
//! their full length (end-of-generation tokens ignored), as llama-bench's tg.
//! In a build with `--features llama-cpp` the same G samples are also
//! generated one after another by llama.cpp in the same run: the reference
//! the batched figure is compared with.

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
    // llama.cpp, one sample after another (the same prompt and settings).
    let llama = if LLAMA_CPP_BUILT {
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
        let t = Instant::now();
        let mut tokens = 0;
        for g in 0..a.group {
            let mut p = params.clone();
            p.sampler.seed += g as u64;
            let c = runner
                .session(prompt.len() + a.n_gen + 1)?
                .generate(&prompt, &p, |_| true)?;
            tokens += c.ids.len();
        }
        Some(tokens as f64 / t.elapsed().as_secs_f64())
    } else {
        None
    };
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
                "llamacpp_sequential_tokens_per_s": llama,
                "batched_vs_llamacpp": llama.map(|l| batched / l),
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

//! `srl bench train`: LoRA training speed and memory, one optimizer step at a
//! time on a sequence of random tokens (forward, backward with activation
//! checkpointing, AdamW), as bench/compare_pytorch.sh measures PyTorch+PEFT.

use super::bench::peak_rss_mib;
use super::common::ModelArgs;
use srl_finetune::optimizer::{AdamW, AdamWConfig};
use srl_models::{LoraConfig, LoraParams, PassOptions, Target, TrainScratch};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Tokens per training sequence
    #[arg(long, default_value_t = 512)]
    seq: usize,
    /// LoRA rank
    #[arg(long, default_value_t = 16)]
    rank: usize,
    /// Target modules, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    targets: Vec<String>,
    /// Measured steps (after one warm-up step; the mean is reported)
    #[arg(short = 'r', long, default_value_t = 3)]
    reps: usize,
    /// MiB of intermediates kept for the backward (0 = recompute every block)
    #[arg(long, default_value_t = 1024)]
    saved_activations_mib: usize,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let engine = a.model.load()?;
    let model = &engine.model;
    let targets = a
        .targets
        .iter()
        .map(|t| Target::parse(t).ok_or_else(|| anyhow::anyhow!("unknown target module '{t}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = LoraConfig {
        rank: a.rank,
        alpha: 2.0 * a.rank as f32,
        targets,
        ..LoraConfig::default()
    };
    let seq = a.seq.clamp(2, model.config.context_length);
    let mut params = LoraParams::init(&model.config, config, 0);
    let mut grads = params.zeros_like();
    let mut opt = AdamW::new(AdamWConfig::default(), &params);
    let vocab = model.config.vocab_size as u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let tokens: Vec<u32> = (0..seq)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % vocab) as u32
        })
        .collect();
    let weights = vec![1.0 / (seq - 1) as f32; seq - 1];
    let mut times = Vec::new();
    // As the trainers do: the passes' buffers are kept from step to step.
    let mut scratch = TrainScratch::new();
    let mut loss = 0.0;
    for rep in 0..=a.reps.max(1) {
        let t = Instant::now();
        grads.fill(0.0);
        loss = model
            .weighted_nll_with(
                &tokens,
                &weights,
                Some(&params),
                Some(&mut grads),
                PassOptions {
                    dropout_seed: None,
                    saved_activations_mib: a.saved_activations_mib,
                },
                &mut scratch,
                &engine.pool,
            )?
            .loss;
        opt.step(&mut params, &grads, 1e-4);
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let tps = seq as f64 / mean;
    let rss = peak_rss_mib();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model.files.path(),
                "threads": engine.threads(),
                "seq": seq,
                "rank": a.rank,
                "targets": a.targets,
                "trainable": params.len(),
                "saved_activations_mib": a.saved_activations_mib,
                "step_s": mean,
                "last_loss": loss,
                "train_tokens_per_s": tps,
                "peak_rss_mib": rss,
            })
        );
    } else {
        println!(
            "model: {}, threads: {}, seq {seq}, rank {}, {} trainable parameters",
            model.files.path().display(),
            engine.threads(),
            a.rank,
            params.len()
        );
        println!("training: {tps:.1} tokens/s ({mean:.2} s per step), peak resident memory: {rss:.1} MiB, last loss {loss:.6}");
    }
    Ok(())
}

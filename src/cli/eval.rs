//! `srl eval`: held-out evaluation of an SRL model: mean greedy step
//! similarity, format-failure rate and mean reward, and final-answer
//! accuracy (greedy and avg@k) where answers exist; a table or one JSON
//! object.

use super::common::ModelArgs;
use srl_finetune::eval::{evaluate, load_eval_data, EvalOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Step instances (`srl data build` output) or trajectories (JSONL)
    #[arg(long, value_name = "JSONL")]
    data: PathBuf,
    /// Step instances scored, and problems solved (0 = all)
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Problems solved, if not --limit (0 = none)
    #[arg(long, value_name = "N")]
    problems: Option<usize>,
    /// Maximum tokens per generated step
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampled solutions per problem for avg@k (0 = greedy only)
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Temperature of the k samples
    #[arg(long = "temp", default_value_t = 1.0)]
    temperature: f32,
    /// Seed of the k samples
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps per solution before giving up
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// Turn off difflib's autojunk heuristic in the similarity
    #[arg(long)]
    no_autojunk: bool,
    /// Close the <think> block for the model after N tokens, as `srl train srl --think-budget` does
    #[arg(long, value_name = "N")]
    think_budget: Option<usize>,
    /// Also solve each problem in one go (the whole solution in one greedy generation, as
    /// RLVR samples it) with up to N tokens, and report that accuracy too
    #[arg(long, value_name = "N", default_value_t = 0)]
    whole: usize,
    /// Print one JSON object (summary, per-step and per-problem results)
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let data = load_eval_data(&a.data)?;
    if data.skipped > 0 {
        eprintln!(
            "{}: {} trajectories without steps skipped",
            a.data.display(),
            data.skipped
        );
    }
    let engine = a.model.load()?;
    let opts = EvalOptions {
        max_tokens: a.max_tokens,
        limit: a.limit,
        problems: a.problems,
        k: a.k,
        temperature: a.temperature,
        seed: a.seed,
        max_steps: a.max_steps,
        autojunk: !a.no_autojunk,
        think_budget: a.think_budget,
        whole_max_tokens: a.whole,
    };
    let report = evaluate(
        &engine,
        &data.instances,
        &data.problems,
        &opts,
        &mut |line| eprintln!("{line}"),
    )?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

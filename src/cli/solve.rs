//! `srl solve`: solve a problem the way an SRL model is used: the problem
//! and the steps so far in, the next step out, until a step states an
//! answer, a format failure, or the step limit. Each step's thought and
//! action are printed as they come.

use super::common::ModelArgs;
use srl_finetune::eval::{solve, SolveEnd};
use srl_finetune::steps::Format;
use srl_runtime::{GenerateParams, SamplerConfig};
use std::io::IsTerminal;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The problem
    problem: String,
    /// Steps before giving up
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// Maximum tokens per step
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Close the <think> block for the model after N tokens (budget forcing)
    #[arg(long, value_name = "N")]
    think_budget: Option<usize>,
    /// Use the agentic prompt (actions) instead of the math one (steps)
    #[arg(long)]
    agentic: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.problem.trim().is_empty() {
        anyhow::bail!("the problem is empty");
    }
    let engine = a.model.load()?;
    let params = GenerateParams {
        max_tokens: a.max_tokens,
        sampler: SamplerConfig::greedy(),
        ..Default::default()
    };
    let format = if a.agentic {
        Format::Agentic
    } else {
        Format::Math
    };
    let dim = std::io::stdout().is_terminal();
    let (_, end) = solve(
        &engine,
        &a.problem,
        format,
        a.max_steps,
        &params,
        a.think_budget,
        &mut |s| {
            println!("Step {}", s.step);
            match &s.parsed {
                Ok(p) => {
                    if dim {
                        println!("\x1b[2m{}\x1b[0m", p.thought);
                    } else {
                        println!("thought: {}", p.thought);
                    }
                    println!("{}", p.action);
                }
                Err(f) => {
                    println!("format failure ({f}); the response was:");
                    println!("{}", s.response.trim());
                }
            }
            println!();
        },
    )?;
    eprintln!(
        "[{}]",
        match end {
            SolveEnd::Answer => "stopped: the step states an answer".to_string(),
            SolveEnd::FormatFailure => "stopped: format failure".to_string(),
            SolveEnd::MaxSteps => format!("stopped: --max-steps {} reached", a.max_steps),
        }
    );
    Ok(())
}

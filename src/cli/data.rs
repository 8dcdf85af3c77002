//! `srl data build`: expert trajectories to SRL step instances, with a
//! summary of what was read, found, written and skipped.

use srl_finetune::steps::{build_instances, BuildOptions, Format};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Turn expert trajectories into step instances (context + steps so far -> next step)
    Build(BuildArgs),
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Build(a) => build(a),
    }
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum FormatArg {
    /// Every earlier step in the context
    Math,
    /// Actions and observations, the last --window rounds in the context
    Agentic,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Trajectories: JSONL of {id, task, steps | solution[, answer]}
    #[arg(long, value_name = "JSONL")]
    data: PathBuf,
    /// The step instances to write (JSONL)
    #[arg(long, value_name = "JSONL")]
    out: PathBuf,
    /// How the context is kept [default: agentic when steps have observations, else math]
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Agentic: action/observation rounds kept in the context (0 = all)
    #[arg(long, default_value_t = 2)]
    window: usize,
    /// Give each step's title (a heading or bold first line) as a hint
    #[arg(long)]
    title_hint: bool,
    /// No instance for each trajectory's last step (the answer line)
    #[arg(long)]
    drop_last: bool,
    /// Count and skip malformed lines instead of stopping at the first
    #[arg(long)]
    skip_bad: bool,
    /// Replace --out if it exists
    #[arg(long)]
    overwrite: bool,
}

/// Skipped lines printed one by one; the rest only counted.
const SHOW_SKIPPED: usize = 10;

fn build(a: BuildArgs) -> anyhow::Result<()> {
    super::common::check_overwrite(&a.out, a.overwrite)?;
    let opts = BuildOptions {
        format: a.format.map(|f| match f {
            FormatArg::Math => Format::Math,
            FormatArg::Agentic => Format::Agentic,
        }),
        window: a.window,
        title_hint: a.title_hint,
        drop_last: a.drop_last,
        skip_bad: a.skip_bad,
    };
    let mut shown = 0;
    let summary = build_instances(&a.data, &a.out, &opts, &mut |s| {
        if shown < SHOW_SKIPPED {
            eprintln!("skipped {}: {s}", a.data.display());
        }
        shown += 1;
    })?;
    if shown > SHOW_SKIPPED {
        eprintln!("... {} more skipped", shown - SHOW_SKIPPED);
    }
    println!("{}", summary.describe());
    println!("wrote {}", a.out.display());
    Ok(())
}

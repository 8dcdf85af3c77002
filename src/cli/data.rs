//! `srl data`: expert trajectories to SRL step instances (`build`), a
//! check of a trajectory file before training (`check`), a seeded
//! train/valid split (`split`), chat traces as trajectories (`from-traces`),
//! a person's review of them (`review`, in data_review.rs), a teacher's
//! solutions (`distill`, in data_distill.rs), and datasets for TRL and verl
//! (`export`).

use super::common::{check_overwrite, AnswersArg, ModelArgs};
use srl_finetune::dataset::check::{check, AnswerKind, CheckOptions, Severity};
use srl_finetune::dataset::export::{self, Trainer};
use srl_finetune::dataset::from_traces::trajectories_from_traces;
use srl_finetune::dataset::split::{split_file, Holdout};
use srl_finetune::steps::{build_instances, BuildOptions, Format};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Turn expert trajectories into step instances (context + steps so far -> next step)
    Build(BuildArgs),
    /// Check trajectories before training: counts, token lengths, empty or repeated steps, duplicate tasks, train/valid leakage
    Check(CheckArgs),
    /// Split trajectories into train and valid files (seeded; a task never on both sides)
    Split(SplitArgs),
    /// Ask a teacher model (any OpenAI-compatible server) for step-by-step solutions of tasks
    Distill(super::data_distill::Args),
    /// Turn the turns `srl chat --trace` recorded into trajectories (replies with numbered steps)
    FromTraces(FromTracesArgs),
    /// Export trajectories as TRL or verl datasets, with srl's rewards as a Python module
    Export(ExportArgs),
    /// Walk through trajectories in the terminal: keep, drop or edit each (resumable)
    Review(super::data_review::Args),
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Build(a) => build(a),
        Command::Check(a) => check_cmd(a),
        Command::Split(a) => split(a),
        Command::Distill(a) => super::data_distill::run(a),
        Command::FromTraces(a) => from_traces(a),
        Command::Review(a) => super::data_review::run(a),
        Command::Export(a) => export(a),
    }
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Trajectories: JSONL of {id, task, steps | solution[, answer]}
    #[arg(value_name = "JSONL")]
    data: PathBuf,
    /// Held-out trajectories, checked too and for tasks shared with DATA
    #[arg(long, value_name = "JSONL")]
    valid: Option<PathBuf>,
    /// The SFT sequence length training cuts to
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    /// How final answers are read
    #[arg(long, value_enum, default_value_t = AnswersArg::Math)]
    answers: AnswersArg,
    /// Errors and warnings listed one by one; the rest counted
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Exit non-zero on warnings too
    #[arg(long)]
    strict: bool,
    /// Skip token lengths (no model is loaded)
    #[arg(long)]
    no_tokens: bool,
    #[command(flatten)]
    model: ModelArgs,
}

fn check_cmd(a: CheckArgs) -> anyhow::Result<()> {
    let engine = if a.no_tokens {
        None
    } else {
        Some(a.model.load()?)
    };
    let opts = CheckOptions {
        max_len: a.max_len,
        answers: a.answers.into(),
    };
    let report = check(&a.data, a.valid.as_deref(), engine.as_ref(), &opts)?;
    println!("{}", report.describe(a.show));
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    if errors > 0 || (a.strict && warnings > 0) {
        anyhow::bail!(
            "{} does not pass the check ({errors} errors, {warnings} warnings)",
            a.data.display()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct SplitArgs {
    /// Trajectories: JSONL of {id, task, steps | solution[, answer]}
    #[arg(value_name = "JSONL")]
    data: PathBuf,
    /// The training part to write
    #[arg(long, value_name = "JSONL")]
    train_out: PathBuf,
    /// The held-out part to write
    #[arg(long, value_name = "JSONL")]
    valid_out: PathBuf,
    /// Share of the trajectories held out
    #[arg(long, default_value_t = 0.1, conflicts_with = "valid_count")]
    valid_fraction: f64,
    /// Number of trajectories held out (instead of --valid-fraction)
    #[arg(long, value_name = "N")]
    valid_count: Option<usize>,
    /// Seed of the split
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace the outputs if they exist
    #[arg(long)]
    overwrite: bool,
}

fn split(a: SplitArgs) -> anyhow::Result<()> {
    check_overwrite(&a.train_out, a.overwrite)?;
    check_overwrite(&a.valid_out, a.overwrite)?;
    let holdout = match a.valid_count {
        Some(0) => anyhow::bail!("--valid-count must be at least 1"),
        Some(n) => Holdout::Count(n),
        None if a.valid_fraction > 0.0 && a.valid_fraction < 1.0 => {
            Holdout::Fraction(a.valid_fraction)
        }
        None => anyhow::bail!(
            "--valid-fraction must be between 0 and 1, found {}",
            a.valid_fraction
        ),
    };
    let s = split_file(&a.data, &a.train_out, &a.valid_out, holdout, a.seed)?;
    println!(
        "{} trajectories: {} to {}, {} to {}",
        s.train + s.valid,
        s.train,
        a.train_out.display(),
        s.valid,
        a.valid_out.display()
    );
    if s.repeated_tasks > 0 {
        println!(
            "{} tasks appear on several lines; each kept on one side",
            s.repeated_tasks
        );
    }
    if s.skipped > 0 {
        println!(
            "{} lines are not trajectories and were left out (srl data check says why)",
            s.skipped
        );
    }
    Ok(())
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
    check_overwrite(&a.out, a.overwrite)?;
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

#[derive(clap::Args)]
pub struct FromTracesArgs {
    /// A trace file written by `srl chat --trace`
    #[arg(value_name = "JSONL")]
    traces: PathBuf,
    /// The trajectories to write (JSONL)
    #[arg(long, value_name = "JSONL")]
    out: PathBuf,
    /// Only the turns approved in the chat with /approve
    #[arg(long)]
    approved_only: bool,
    /// Replace --out if it exists
    #[arg(long)]
    overwrite: bool,
}

fn from_traces(a: FromTracesArgs) -> anyhow::Result<()> {
    check_overwrite(&a.out, a.overwrite)?;
    let s = trajectories_from_traces(&a.traces, &a.out, a.approved_only)?;
    for (line, why) in s.bad.iter().take(SHOW_SKIPPED) {
        eprintln!("skipped {}: line {line}: {why}", a.traces.display());
    }
    if s.bad.len() > SHOW_SKIPPED {
        eprintln!("... {} more skipped", s.bad.len() - SHOW_SKIPPED);
    }
    println!("{}", s.describe());
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum TrainerArg {
    /// TRL: JSONL in its conversational format, GRPO launch script
    Trl,
    /// verl: parquet with data_source, prompt, ability, reward_model, extra_info
    Verl,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Trajectories: JSONL of {id, task, steps | solution[, answer]}
    #[arg(value_name = "JSONL")]
    data: PathBuf,
    /// The trainer to export for
    #[arg(long, value_enum)]
    format: TrainerArg,
    /// The folder to write
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Held-out trajectories, exported beside the training ones
    #[arg(long, value_name = "JSONL")]
    valid: Option<PathBuf>,
    /// Agentic: action/observation rounds kept in the context (0 = all)
    #[arg(long, default_value_t = 2)]
    window: usize,
    /// Export even when `srl data check` finds errors
    #[arg(long)]
    force: bool,
    /// Replace --out if it exists
    #[arg(long)]
    overwrite: bool,
}

fn export(a: ExportArgs) -> anyhow::Result<()> {
    let opts = CheckOptions {
        max_len: 0,
        answers: AnswerKind::Math,
    };
    let report = check(&a.data, a.valid.as_deref(), None, &opts)?;
    let errors = report.count(Severity::Error);
    if errors > 0 {
        if !a.force {
            println!("{}", report.describe(SHOW_SKIPPED));
            anyhow::bail!(
                "srl data check finds {errors} errors in the data (above); fix them, or pass --force to export anyway"
            );
        }
        eprintln!("exporting despite {errors} errors (--force): lines that are not trajectories are left out");
    }
    let build = BuildOptions {
        window: a.window,
        ..BuildOptions::default()
    };
    let trainer = match a.format {
        TrainerArg::Trl => Trainer::Trl,
        TrainerArg::Verl => Trainer::Verl,
    };
    let s = export::export(
        trainer,
        &a.data,
        a.valid.as_deref(),
        &a.out,
        &build,
        a.overwrite,
    )?;
    println!(
        "{} SRL step rows and {} RLVR problems{}",
        s.train_steps,
        s.train_problems,
        if a.valid.is_some() {
            format!(" (valid: {} and {})", s.valid_steps, s.valid_problems)
        } else {
            String::new()
        }
    );
    println!("wrote {}: {}", a.out.display(), s.files.join(", "));
    println!(
        "the launch command is in {}",
        a.out.join("README.md").display()
    );
    Ok(())
}

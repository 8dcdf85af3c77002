//! `srl data distill`: expert trajectories from a teacher model behind any
//! OpenAI-compatible endpoint, with a progress bar (tasks done, samples
//! kept and rejected) and a summary. The work is
//! `srl_finetune::dataset::distill`.

use super::common::AnswersArg;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use srl_finetune::dataset::distill::{
    distill, read_tasks, rejected_path, DistillOptions, Event, DISTILL_SYSTEM_PROMPT,
};
use srl_finetune::dataset::teacher::{Teacher, TeacherConfig};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Tasks: JSONL with 'task' (or 'question', 'problem'), optional 'answer' and 'id'
    #[arg(long, value_name = "JSONL")]
    tasks: PathBuf,
    /// The teacher: an OpenAI-compatible server's URL (http://host:8080, .../v1, or its /chat/completions)
    #[arg(long, value_name = "URL")]
    teacher: String,
    /// The model name sent to the teacher [default: the first the server lists]
    #[arg(long, value_name = "NAME")]
    teacher_model: Option<String>,
    /// Environment variable holding the teacher's API key (sent as a Bearer token)
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// The trajectories to write (JSONL, appended line by line)
    #[arg(long, value_name = "JSONL")]
    out: PathBuf,
    /// Solutions asked per task
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Keep only solutions whose answer matches the task's (or, without one, the majority of --samples)
    #[arg(long)]
    verify: bool,
    /// How final answers are compared
    #[arg(long, value_enum, default_value_t = AnswersArg::Math)]
    answers: AnswersArg,
    /// Tokens per solution
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Sampling temperature [default: 0 with one sample, 0.7 with more]
    #[arg(long)]
    temperature: Option<f32>,
    /// Seconds to wait for one answer
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Retries of a request after a 429, 5xx, timeout or dropped connection
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Seconds before the first retry (doubling after each)
    #[arg(long, default_value_t = 1.0)]
    backoff: f64,
    /// The system prompt [default: asks for "Step N:" lines and an "Answer:" line]
    #[arg(long)]
    system: Option<String>,
    /// Seed of the samples (for servers that honour it)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Go on with an existing --out: tasks already there are skipped
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start again, replacing --out (and its .rejected.jsonl)
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.samples == 0 || a.concurrency == 0 {
        anyhow::bail!("--samples and --concurrency must be at least 1");
    }
    if !(a.timeout > 0.0 && a.backoff >= 0.0) {
        anyhow::bail!("--timeout must be above 0 and --backoff not below 0");
    }
    let tasks = read_tasks(&a.tasks)?;
    let api_key = match &a.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--api-key-env {var}: the environment variable {var} is not set")
        })?),
    };
    let teacher = Teacher::new(TeacherConfig {
        url: a.teacher.clone(),
        model: a.teacher_model.clone(),
        api_key,
        timeout: Duration::from_secs_f64(a.timeout),
        retries: a.retries,
        backoff: Duration::from_secs_f64(a.backoff),
        max_tokens: a.max_tokens,
        temperature: a
            .temperature
            .unwrap_or(if a.samples > 1 { 0.7 } else { 0.0 }),
    });
    let model = match &a.teacher_model {
        Some(m) => m.clone(),
        None => teacher.first_model().with_context(|| {
            format!(
                "cannot ask {} for its models (name one with --teacher-model)",
                a.teacher
            )
        })?,
    };
    eprintln!(
        "distilling {} tasks from {model} at {} ({} samples each, {} at once)",
        tasks.len(),
        teacher.chat_url(),
        a.samples,
        a.concurrency
    );
    // The old output goes only once the tasks read and the teacher answered.
    if a.overwrite {
        let _ = std::fs::remove_file(&a.out);
        let _ = std::fs::remove_file(rejected_path(&a.out));
    }
    let opts = DistillOptions {
        samples: a.samples,
        concurrency: a.concurrency,
        verify: a.verify,
        answers: a.answers.into(),
        system: a
            .system
            .clone()
            .unwrap_or_else(|| DISTILL_SYSTEM_PROMPT.into()),
        resume: a.resume,
        seed: a.seed,
    };
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} task {pos}/{len} [{bar:30}] {msg} elapsed {elapsed} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let terminal = std::io::stderr().is_terminal();
    let (mut kept, mut rejected) = (0, 0);
    let summary = distill(&tasks, &a.out, &teacher, &model, &opts, &mut |e| match e {
        Event::Start { todo, done } => {
            bar.set_length(todo as u64);
            if done > 0 {
                eprintln!(
                    "{done} {} done by an earlier run {} skipped",
                    if done == 1 { "task" } else { "tasks" },
                    if done == 1 { "is" } else { "are" }
                );
            }
        }
        Event::Task {
            kept: k,
            rejected: r,
        } => {
            kept += k;
            rejected += r;
            bar.inc(1);
            bar.set_message(format!("kept {kept}, rejected {rejected}"));
            if !terminal && bar.position().is_multiple_of(10) {
                eprintln!(
                    "task {}/{}: kept {kept}, rejected {rejected}",
                    bar.position(),
                    bar.length().unwrap_or(0)
                );
            }
        }
    });
    bar.finish_and_clear();
    let summary = summary?;
    println!("{}", summary.describe());
    println!("wrote {}", a.out.display());
    if summary.tasks_kept == 0 && summary.resumed == 0 {
        anyhow::bail!(
            "no trajectory was kept (the reasons are above and in {})",
            rejected_path(&a.out).display()
        );
    }
    Ok(())
}

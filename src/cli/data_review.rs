//! `srl data review`: a terminal walk through a trajectory file. Each
//! trajectory not reviewed yet is shown (task, steps, answer) and the
//! person keeps it, drops it, or edits it in `$VISUAL`/`$EDITOR`; every
//! decision is written back at once, so quitting (or a kill) loses nothing
//! and the next run goes on where this one stopped. The file side is
//! `srl_finetune::dataset::review`.

use serde_json::Value;
use srl_finetune::dataset::review::{from_editable, to_editable, Decision, Review};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Trajectories (JSONL), written back in place
    #[arg(value_name = "JSONL")]
    data: PathBuf,
}

const CHOICES: &str = "[k]eep, [d]rop, [e]dit, [s]kip for now, [q]uit";

fn show(v: &Value, n: usize, of: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let id = v.get("id").map(|i| i.to_string()).unwrap_or_default();
    writeln!(out, "\n[{n}/{of}] {id}")?;
    // The editable form is the plain view, less its help lines.
    for line in to_editable(v).lines().filter(|l| !l.starts_with('#')) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Runs the editor on the trajectory's text until it reads back (or the
/// person gives up with an empty file); None: left unchanged.
fn edit(v: &Value, out: &mut dyn Write) -> anyhow::Result<Option<Decision>> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let file = std::env::temp_dir().join(format!("srl-review-{}.txt", std::process::id()));
    std::fs::write(&file, to_editable(v))?;
    loop {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&file)
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run the editor '{editor}': {e}"))?;
        if !status.success() {
            writeln!(
                out,
                "the editor '{editor}' failed ({status}); the trajectory is unchanged"
            )?;
            return Ok(None);
        }
        let text = std::fs::read_to_string(&file)?;
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#'))
        {
            writeln!(out, "empty: the trajectory is unchanged")?;
            return Ok(None);
        }
        match from_editable(&text) {
            Ok(e) => {
                let _ = std::fs::remove_file(&file);
                return Ok(Some(Decision::Edit(e)));
            }
            Err(why) => {
                writeln!(
                    out,
                    "cannot read the edit: {why}; opening it again (empty it to give up)"
                )?;
                let mut f = std::fs::read_to_string(&file)?;
                if !f.starts_with("# ERROR") {
                    f = format!("# ERROR: {why}\n{f}");
                    std::fs::write(&file, f)?;
                }
            }
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut review = Review::open(&a.data)?;
    let (done, all) = review.progress();
    let mut out = std::io::stdout().lock();
    if all == 0 {
        anyhow::bail!(
            "{}: no trajectories (JSON objects) to review",
            a.data.display()
        );
    }
    writeln!(
        out,
        "{}: {done} of {all} reviewed. {CHOICES}",
        a.data.display()
    )?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock().lines();
    let (mut kept, mut dropped, mut edited, mut skipped) = (0, 0, 0, 0);
    // Skipped entries are passed over for the rest of this run.
    let mut skip = 0;
    loop {
        let pending = review.pending();
        let Some(&i) = pending.get(skip) else { break };
        let (done, all) = review.progress();
        show(review.get(i), done + skip + 1, all, &mut out)?;
        let decision = loop {
            write!(out, "{CHOICES}? ")?;
            out.flush()?;
            let Some(line) = input.next() else {
                return finish(&mut out, kept, dropped, edited, skipped, &review);
            };
            match line?.trim() {
                "k" | "keep" => break Some(Decision::Keep),
                "d" | "drop" => break Some(Decision::Drop),
                "e" | "edit" => {
                    if let Some(d) = edit(review.get(i), &mut out)? {
                        break Some(d);
                    }
                }
                "s" | "skip" => break None,
                "q" | "quit" => return finish(&mut out, kept, dropped, edited, skipped, &review),
                other => writeln!(out, "'{other}'? {CHOICES}")?,
            }
        };
        match decision {
            None => {
                skip += 1;
                skipped += 1;
            }
            Some(d) => {
                match d {
                    Decision::Keep => kept += 1,
                    Decision::Drop => dropped += 1,
                    Decision::Edit(_) => edited += 1,
                }
                review.decide(i, d)?;
            }
        }
    }
    finish(&mut out, kept, dropped, edited, skipped, &review)
}

fn finish(
    out: &mut dyn Write,
    kept: usize,
    dropped: usize,
    edited: usize,
    skipped: usize,
    review: &Review,
) -> anyhow::Result<()> {
    let (done, all) = review.progress();
    writeln!(
        out,
        "\nthis session: {kept} kept, {edited} edited, {dropped} dropped, {skipped} skipped; \
         {done} of {all} reviewed"
    )?;
    if dropped > 0 {
        writeln!(
            out,
            "dropped trajectories are in {}",
            review.dropped_path().display()
        )?;
    }
    Ok(())
}

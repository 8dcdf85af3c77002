//! `srl reward`: the SRL step similarity of JSONL pairs, to debug rewards.

use srl_finetune::similarity::{score_pairs, PairsError};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// JSONL pairs, one object a line with string fields "a" (the rollout's
    /// action) and "b" (the expert step); each is printed back with "ratio",
    /// difflib's SequenceMatcher(None, a, b).ratio(). With "response" (a
    /// whole rollout) instead of "a", "reward" is added: SRL's reward, -1 for
    /// a broken think format, else the ratio of the response's action
    #[arg(long, value_name = "PATH")]
    pairs: PathBuf,
    /// Turn off difflib's autojunk heuristic (on by default, as in difflib)
    #[arg(long)]
    no_autojunk: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match score_pairs(&a.pairs, !a.no_autojunk, &mut out) {
        // The reader stopped early (`srl reward ... | head`).
        Err(PairsError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map(|_| ()).map_err(Into::into),
    }
}

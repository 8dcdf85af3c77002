//! `srl data split`: a seeded train/valid split of a trajectory file.
//!
//! Lines with the same task (as [`normalized_task`] compares them) go to
//! the same side, so a split never leaks a task. Tasks are held out in the
//! order of a seeded hash of their text until the asked number of lines is
//! reached: the split depends only on the seed and the tasks, not on the
//! order of the lines or the machine. Lines are copied as written, in file
//! order; lines that are not trajectories are left out and counted.

use super::{normalized_task, read_trajectory_lines};
use crate::atomic_file::write_atomic;
use crate::steps::StepsError;
use srl_models::lora_params::mix64;
use std::collections::HashMap;
use std::path::Path;

/// How many lines to hold out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holdout {
    /// This share of the trajectories (0 < f < 1), rounded, at least one.
    Fraction(f64),
    /// This many trajectories.
    Count(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitSummary {
    pub train: usize,
    pub valid: usize,
    /// Lines left out: not trajectories (`srl data check` says why).
    pub skipped: usize,
    /// Tasks that appear on more than one line (kept on one side).
    pub repeated_tasks: usize,
}

/// FNV-1a: a stable hash of a task's text (std's hasher may change between
/// Rust versions, and the split must not).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Splits `input` into `train_out` and `valid_out` (each written atomically).
pub fn split_file(
    input: &Path,
    train_out: &Path,
    valid_out: &Path,
    holdout: Holdout,
    seed: u64,
) -> Result<SplitSummary, StepsError> {
    let lines = read_trajectory_lines(input)?;
    let usable: Vec<_> = lines.iter().filter(|l| l.read.is_ok()).collect();
    let mut summary = SplitSummary {
        skipped: lines.len() - usable.len(),
        ..SplitSummary::default()
    };
    // Tasks in order of their seeded hash; the first ones are held out.
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, l) in usable.iter().enumerate() {
        let task = normalized_task(l.task().unwrap_or_default());
        groups.entry(task).or_default().push(i);
    }
    summary.repeated_tasks = groups.values().filter(|g| g.len() > 1).count();
    let mut order: Vec<(u64, &String)> =
        groups.keys().map(|t| (mix64(seed ^ fnv1a(t)), t)).collect();
    order.sort();
    let want = match holdout {
        Holdout::Count(n) => n,
        Holdout::Fraction(f) => ((usable.len() as f64 * f).round() as usize).max(1),
    };
    if want >= usable.len() {
        return Err(StepsError::NoInstances {
            path: input.to_path_buf(),
            summary: format!(
                "holding out {want} of {} trajectories leaves none to train on",
                usable.len()
            ),
        });
    }
    let mut held = vec![false; usable.len()];
    let mut taken = 0;
    for (_, task) in order {
        if taken >= want {
            break;
        }
        for &i in &groups[task] {
            held[i] = true;
            taken += 1;
        }
    }
    let (mut train, mut valid) = (String::new(), String::new());
    for (l, h) in usable.iter().zip(&held) {
        let side = if *h { &mut valid } else { &mut train };
        side.push_str(&l.text);
        side.push('\n');
    }
    summary.train = usable.len() - taken;
    summary.valid = taken;
    for (path, text) in [(train_out, &train), (valid_out, &valid)] {
        write_atomic(path, text.as_bytes()).map_err(|e| StepsError::Write {
            path: path.to_path_buf(),
            err: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_and_keeps_tasks_together() {
        let dir = std::env::temp_dir().join(format!("srl-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |i: usize| {
            format!(
                "{{\"id\":{i},\"task\":\"Task {}\",\"steps\":[\"s\"]}}\n",
                i % 40
            )
        };
        let text: String = (0..50).map(line).collect::<String>() + "bad line\n";
        let input = dir.join("all.jsonl");
        std::fs::write(&input, &text).unwrap();
        let (tr, va) = (dir.join("train.jsonl"), dir.join("valid.jsonl"));
        let s = split_file(&input, &tr, &va, Holdout::Fraction(0.2), 7).unwrap();
        assert_eq!(
            (s.train + s.valid, s.skipped, s.repeated_tasks),
            (50, 1, 10)
        );
        assert!((10..=11).contains(&s.valid), "{s:?}");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let (t1, v1) = (read(&tr), read(&va));
        // Every task on one side only.
        for k in 0..40 {
            let task = format!("\"Task {k}\"");
            assert!(
                !(t1.contains(&task) && v1.contains(&task)),
                "task {k} leaked"
            );
        }
        // Same seed, same split; another seed, another.
        split_file(&input, &tr, &va, Holdout::Fraction(0.2), 7).unwrap();
        assert_eq!((read(&tr), read(&va)), (t1.clone(), v1.clone()));
        split_file(&input, &tr, &va, Holdout::Fraction(0.2), 8).unwrap();
        assert_ne!(read(&va), v1);
        // The order of the lines does not matter.
        let mut reversed: Vec<&str> = text.lines().collect();
        reversed.reverse();
        std::fs::write(&input, reversed.join("\n")).unwrap();
        split_file(&input, &tr, &va, Holdout::Fraction(0.2), 7).unwrap();
        let sorted = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&read(&va)), sorted(&v1));
        let e = split_file(&input, &tr, &va, Holdout::Count(50), 7).unwrap_err();
        assert!(e.to_string().contains("leaves none to train on"), "{e}");
    }
}

//! The step similarity against CPython's difflib: every pair of
//! `tests/data/similarity_pairs.jsonl` (written by
//! `scripts/reference/gen_similarity.py`) must give the same f64, bit for
//! bit, and the same matching blocks, with autojunk on and off.

use serde_json::Value;
use srl_finetune::similarity::{ratio, Scratch, Similarity};
use std::path::Path;

struct Pair {
    kind: String,
    a: String,
    b: String,
    record: Value,
}

fn pairs() -> Vec<Pair> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/similarity_pairs.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            Pair {
                kind: record["kind"].as_str().unwrap().to_string(),
                a: record["a"].as_str().unwrap().to_string(),
                b: record["b"].as_str().unwrap().to_string(),
                record,
            }
        })
        .collect()
}

/// The reference ratio, from its bit pattern: serde_json's default float
/// parser can be one ulp off on the decimal `ratio` (0.9230769230769232
/// reads as 0.9230769230769231 here), so the decimal is for people only.
fn expected(p: &Pair, autojunk: bool) -> f64 {
    let key = if autojunk {
        "ratio_bits"
    } else {
        "ratio_nojunk_bits"
    };
    f64::from_bits(u64::from_str_radix(p.record[key].as_str().unwrap(), 16).unwrap())
}

fn modes() -> [(bool, &'static str); 2] {
    [(true, ""), (false, "_nojunk")]
}

#[test]
fn pairs_cover_what_matters() {
    let pairs = pairs();
    assert!(pairs.len() >= 300, "{} pairs", pairs.len());
    let count = |f: &dyn Fn(&Pair) -> bool| pairs.iter().filter(|p| f(p)).count();
    assert!(count(&|p| p.a.is_empty() && p.b.is_empty()) >= 1);
    assert!(count(&|p| p.a.is_empty() != p.b.is_empty()) >= 2);
    assert!(count(&|p| p.b.chars().count() > 200) >= 30);
    assert!(count(&|p| p.a.chars().any(|c| c as u32 > 0xffff)) >= 5);
    assert!(count(&|p| p.b.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))) >= 10);
    // Pairs where autojunk changes the value.
    assert!(count(&|p| expected(p, true) != expected(p, false)) >= 20);
    for kind in [
        "steps",
        "math",
        "unicode",
        "cjk",
        "long",
        "threshold",
        "ties",
        "edits",
    ] {
        assert!(count(&|p| p.kind == kind) > 0, "no '{kind}' pairs");
    }
}

#[test]
fn ratio_equals_difflib_bit_for_bit() {
    let mut failures = Vec::new();
    for (n, p) in pairs().iter().enumerate() {
        for (autojunk, _) in modes() {
            let want = expected(p, autojunk);
            let got = ratio(&p.a, &p.b, autojunk);
            if got.to_bits() != want.to_bits() {
                failures.push(format!(
                    "pair {} ({}, autojunk {autojunk}): {got} != {want}",
                    n + 1,
                    p.kind
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn matching_blocks_equal_difflib() {
    for (n, p) in pairs().iter().enumerate() {
        for (autojunk, suffix) in modes() {
            let got: Vec<[u64; 3]> = Similarity::new(&p.b, autojunk)
                .matching_blocks(&p.a)
                .iter()
                .map(|m| [m.a as u64, m.b as u64, m.size as u64])
                .collect();
            let want: Vec<[u64; 3]> =
                serde_json::from_value(p.record[format!("blocks{suffix}")].clone()).unwrap();
            assert_eq!(
                got,
                want,
                "pair {} ({}), autojunk {autojunk}",
                n + 1,
                p.kind
            );
        }
    }
}

/// One index of b and one scratch serve many a's (a rollout group against
/// its expert step), with the same values as fresh ones.
#[test]
fn reused_index_and_scratch_give_the_same_values() {
    let pairs = pairs();
    let mut scratch = Scratch::default();
    for (autojunk, _) in modes() {
        for expert in pairs.iter().step_by(7) {
            let sim = Similarity::new(&expert.b, autojunk);
            for rollout in pairs.iter().step_by(11) {
                let fresh = ratio(&rollout.a, &expert.b, autojunk);
                assert_eq!(
                    sim.ratio_with(&rollout.a, &mut scratch).to_bits(),
                    fresh.to_bits()
                );
            }
            assert_eq!(
                sim.ratio(&expert.a).to_bits(),
                expected(expert, autojunk).to_bits()
            );
        }
    }
}

//! Fuzzes the readers of chat traces and of reviewed trajectories: any
//! bytes as a `srl chat --trace` file must give trajectories or an error
//! (`srl data from-traces`, malformed and cut-short lines skipped), and as a
//! trajectory file must open for `srl data review`, take a decision and
//! round-trip the editor's text, never panic.
#![no_main]

#[path = "../common/scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use srl_finetune::dataset::check::{check, AnswerKind, CheckOptions};
use srl_finetune::dataset::from_traces::trajectories_from_traces;
use srl_finetune::dataset::review::{from_editable, to_editable, Decision, Review};

fuzz_target!(|data: &[u8]| {
    let dir = scratch::folder_with("traces", "turns.jsonl", data);
    let input = dir.join("turns.jsonl");
    let out = dir.join("traj.jsonl");
    for approved_only in [false, true] {
        let _ = trajectories_from_traces(&input, &out, approved_only);
    }
    let opts = CheckOptions {
        max_len: 64,
        answers: AnswerKind::Math,
    };
    let _ = check(&input, Some(&out), None, &opts);
    if let Ok(mut review) = Review::open(&input) {
        if let Some(&i) = review.pending().first() {
            let text = to_editable(review.get(i));
            let decision = from_editable(&text).map_or(Decision::Keep, Decision::Edit);
            let _ = review.decide(i, decision);
        }
    }
    let _ = from_editable(&String::from_utf8_lossy(data));
});

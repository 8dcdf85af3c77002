//! Fuzzes the trajectory and step-instance readers: a JSONL file with any
//! bytes must read (`srl eval`'s reader) and build step instances
//! (`srl data build`, skipping bad lines) or give an error naming the line,
//! never panic.
#![no_main]

#[path = "../common/scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use srl_finetune::eval::load_eval_data;
use srl_finetune::steps::{build_instances, BuildOptions};

fuzz_target!(|data: &[u8]| {
    let dir = scratch::folder_with("traj", "data.jsonl", data);
    let input = dir.join("data.jsonl");
    let _ = load_eval_data(&input);
    let opts = BuildOptions {
        skip_bad: true,
        ..BuildOptions::default()
    };
    let _ = build_instances(&input, &dir.join("steps.jsonl"), &opts, &mut |_| {});
});

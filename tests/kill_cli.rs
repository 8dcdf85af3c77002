//! Every long writer killed with SIGKILL at several moments: afterwards each
//! output is complete and valid, or absent, or (a training run) resumable;
//! never a truncated file under its final name.

mod common;

use common::{model, ok, srl, temp};
use srl_finetune::checkpoint::{list_checkpoints, read_state};
use srl_models::formats::gguf::GgufFile;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `srl args` and kills it (SIGKILL) after `ms` milliseconds, unless
/// it ended first; returns whether it was killed.
fn kill_after(args: &[&str], ms: u64) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_srl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run srl");
    std::thread::sleep(Duration::from_millis(ms));
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// The moments to kill at: spread over a run of about `full_ms`.
fn moments(full_ms: u64) -> Vec<u64> {
    [0.1, 0.3, 0.5, 0.7, 0.9]
        .iter()
        .map(|f| (full_ms as f64 * f) as u64)
        .collect()
}

/// How long a complete run of `args` takes, in milliseconds.
fn timed(args: &[&str]) -> u64 {
    let t = std::time::Instant::now();
    ok(&srl(args));
    t.elapsed().as_millis() as u64
}

/// A GGUF output after a kill: absent, or byte for byte the complete one.
fn gguf_whole_or_absent(path: &Path, complete: &[u8]) {
    if path.exists() {
        GgufFile::open(path).unwrap_or_else(|e| panic!("{} is not whole: {e}", path.display()));
        assert!(
            std::fs::read(path).unwrap() == complete,
            "{} differs from a complete run's",
            path.display()
        );
    }
}

#[test]
fn quantize_and_merge_leave_a_whole_file_or_none() {
    let dir = temp("files");
    let m = model();
    let m = m.to_str().unwrap();
    // Complete outputs to compare with.
    let full = dir.join("full.gguf");
    let quantize = |out: &Path| -> Vec<String> {
        ["quantize", m, out.to_str().unwrap(), "--type", "q8_0"]
            .map(String::from)
            .to_vec()
    };
    let args = quantize(&full);
    let ms = timed(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let complete = std::fs::read(&full).unwrap();
    let mut killed = 0;
    for (k, at) in moments(ms).into_iter().enumerate() {
        let out = dir.join(format!("q{k}.gguf"));
        let args = quantize(&out);
        killed += kill_after(&args.iter().map(String::as_str).collect::<Vec<_>>(), at) as usize;
        gguf_whole_or_absent(&out, &complete);
    }
    assert!(
        killed >= 2,
        "only {killed} runs were killed before they ended"
    );

    // merge: an adapter trained here, merged whole or not at all.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unit-conversion/train.jsonl");
    let adapter = dir.join("adapter");
    ok(&srl(&[
        "train",
        "sft",
        "--model",
        m,
        "--data",
        data.to_str().unwrap(),
        "--out",
        adapter.to_str().unwrap(),
        "--max-steps",
        "1",
        "--rank",
        "2",
        "--num-layers",
        "1",
        "--max-len",
        "64",
        "-t",
        "2",
    ]));
    let merge = |out: &Path| -> Vec<String> {
        [
            "merge",
            "--model",
            m,
            "--lora",
            adapter.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let full = dir.join("merged.gguf");
    let ms = timed(&merge(&full).iter().map(String::as_str).collect::<Vec<_>>());
    let complete = std::fs::read(&full).unwrap();
    let mut killed = 0;
    for (k, at) in moments(ms).into_iter().enumerate() {
        let out = dir.join(format!("m{k}.gguf"));
        killed += kill_after(
            &merge(&out).iter().map(String::as_str).collect::<Vec<_>>(),
            at,
        ) as usize;
        gguf_whole_or_absent(&out, &complete);
    }
    assert!(
        killed >= 2,
        "only {killed} merges were killed before they ended"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A run folder after a kill: every published file parses, every checkpoint
/// is complete, and the run resumes to its end (or, killed before its first
/// checkpoint, holds no checkpoint to resume from).
fn check_run_folder(out: &Path, resume: &[&str], steps: u64) {
    if out.join("trainer_state.json").exists() {
        read_state(&out.join("trainer_state.json")).expect("trainer_state.json parses");
        for f in ["adapter_model.safetensors", "optimizer.safetensors"] {
            let bytes = std::fs::read(out.join(f)).unwrap();
            safetensors::SafeTensors::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("{f} is not whole: {e}"));
        }
        GgufFile::open(out.join("adapter.gguf")).expect("adapter.gguf is whole");
    }
    for (_, ck) in list_checkpoints(out) {
        read_state(&ck.join("trainer_state.json")).expect("checkpoint state parses");
        for f in ["adapter_model.safetensors", "optimizer.safetensors"] {
            let bytes = std::fs::read(ck.join(f)).unwrap();
            safetensors::SafeTensors::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("{}: {f} is not whole: {e}", ck.display()));
        }
    }
    if list_checkpoints(out).is_empty() {
        return;
    }
    ok(&srl(resume));
    let state = read_state(&out.join("trainer_state.json")).unwrap();
    assert_eq!(state.step, steps, "{}", out.display());
}

#[test]
fn training_runs_are_whole_or_resumable_after_a_kill() {
    let dir = temp("train");
    let m = model();
    let m = m.to_str().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sft_data = root.join("examples/unit-conversion/train.jsonl");
    let rl_data = root.join("examples/srl-math/train.jsonl");
    // Problems a 135M model gets right sometimes (as in train_rl_cli.rs).
    let problems = dir.join("problems.jsonl");
    std::fs::write(
        &problems,
        "{\"id\":\"p1\",\"task\":\"Write the number 7.\",\"answer\":\"7\"}\n\
         {\"id\":\"p2\",\"task\":\"What is 3 + 4? Answer with the number.\",\"answer\":7}\n\
         {\"id\":\"p3\",\"task\":\"Write the number 12.\",\"answer\":\"12\"}\n",
    )
    .unwrap();
    let tiny = [
        "--rank",
        "2",
        "--num-layers",
        "1",
        "-t",
        "2",
        "--save-every",
        "1",
    ];
    let runs: [(&str, &Path, &[&str], u64); 3] = [
        ("sft", &sft_data, &["--max-len", "64"], 6),
        (
            "srl",
            &rl_data,
            &[
                "--batch-size",
                "1",
                "--group-size",
                "2",
                "--max-new-tokens",
                "12",
                "--think-budget",
                "4",
            ],
            3,
        ),
        (
            "rlvr",
            &problems,
            &[
                "--batch-size",
                "1",
                "--group-size",
                "6",
                "--max-new-tokens",
                "16",
                "--think-budget",
                "4",
                "--sampling-bound",
                "8",
            ],
            2,
        ),
    ];
    for (kind, data, extra, steps) in runs {
        let steps_s = steps.to_string();
        let args_for = |out: &Path| -> Vec<String> {
            let mut a: Vec<String> = ["train", kind, "--model", m, "--data"]
                .map(String::from)
                .to_vec();
            a.push(data.to_str().unwrap().into());
            a.extend(["--out".into(), out.to_str().unwrap().into()]);
            a.extend(["--max-steps".into(), steps_s.clone()]);
            a.extend(tiny.iter().chain(extra.iter()).map(|s| s.to_string()));
            a
        };
        let full = dir.join(format!("{kind}-full"));
        let ms = timed(
            &args_for(&full)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let mut killed = 0;
        for (k, at) in moments(ms).into_iter().enumerate() {
            let out = dir.join(format!("{kind}-{k}"));
            let args = args_for(&out);
            killed += kill_after(&args.iter().map(String::as_str).collect::<Vec<_>>(), at) as usize;
            let o = out.to_str().unwrap();
            let resume = ["train", kind, "--resume", o, "--model", m, "-t", "2"];
            check_run_folder(&out, &resume, steps);
        }
        assert!(
            killed >= 2,
            "{kind}: only {killed} runs were killed before they ended"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

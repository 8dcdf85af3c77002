//! End-to-end tests of `srl train sft`, `srl merge` and adapters in use, on
//! the real default model (tiny settings: a few steps on the last blocks).

mod common;

use common::{fails_with, model, ok, srl, temp};
use std::path::{Path, PathBuf};

/// The first `n` lines of the example set.
fn sample(dir: &Path, name: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unit-conversion/train.jsonl"),
    )
    .unwrap();
    let path = dir.join(name);
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn metrics_steps(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"loss\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn train_resume_generate_and_merge() {
    let dir = temp("run");
    let m = model();
    let m = m.to_str().unwrap();
    let data = sample(&dir, "train.jsonl", 6);
    let valid = sample(&dir, "valid.jsonl", 2);
    let out = dir.join("adapter");
    let o = out.to_str().unwrap();
    let common = [
        "--model",
        m,
        "--rank",
        "2",
        "--num-layers",
        "2",
        "--max-len",
        "96",
        "--threads",
        "2",
        // High enough that 3 steps on 2 blocks change the greedy output.
        "--lr",
        "3e-2",
        "--seed",
        "3",
    ];
    let mut args = vec!["train", "sft", "--data", data.to_str().unwrap()];
    args.extend(["--valid", valid.to_str().unwrap(), "--out", o]);
    args.extend(["--max-steps", "2", "--save-every", "1", "--eval-every", "1"]);
    args.extend(common);
    let run = srl(&args);
    ok(&run);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("6 examples"), "{err}");
    assert!(err.contains("valid loss"), "{err}");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapter.gguf",
        "trainer_state.json",
        "optimizer.safetensors",
        "metrics.jsonl",
        "loss.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(metrics_steps(&out), vec![1, 2]);

    // Resume for one more step: it continues from step 2.
    let mut args = vec!["train", "sft", "--resume", o, "--max-steps", "3"];
    args.extend(["--model", m, "--threads", "2"]);
    let run = srl(&args);
    ok(&run);
    assert!(String::from_utf8_lossy(&run.stderr).contains("resuming at step 2 of 3"));
    assert_eq!(metrics_steps(&out), vec![1, 2, 3]);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 3);
    assert_eq!(state["config"]["rank"], 2);

    // The folder is an adapter for generate (PEFT files) and so is its GGUF.
    let gen = |lora: &str| {
        ok(&srl(&[
            "generate",
            "--model",
            m,
            "--lora",
            lora,
            "--chat",
            "-p",
            "Convert 2 weeks to days.",
            "--temp",
            "0",
            "-n",
            "12",
            "-t",
            "2",
        ]))
    };
    let gguf = out.join("adapter.gguf");
    let with_folder = gen(o);
    assert_eq!(with_folder, gen(gguf.to_str().unwrap()));
    // ... and the adapter is applied (equal outputs alone would also hold
    // if --lora were ignored).
    let base = ok(&srl(&[
        "generate",
        "--model",
        m,
        "--chat",
        "-p",
        "Convert 2 weeks to days.",
        "--temp",
        "0",
        "-n",
        "12",
        "-t",
        "2",
    ]));
    assert_ne!(
        with_folder, base,
        "the trained adapter must change the output"
    );

    // Merge into a standalone model that llama.cpp-style tools can load.
    let merged = dir.join("merged.gguf");
    ok(&srl(&[
        "merge",
        "--model",
        m,
        "--lora",
        o,
        "--out",
        merged.to_str().unwrap(),
        "--type",
        "q8_0",
    ]));
    let info = ok(&srl(&["info", merged.to_str().unwrap()]));
    assert!(info.contains("llama"), "{info}");
    // The merged model is not replaced unless asked.
    let again = [
        "merge",
        "--model",
        m,
        "--lora",
        o,
        "--out",
        merged.to_str().unwrap(),
    ];
    fails_with(&srl(&again), "merged.gguf exists: give --overwrite");
    ok(&srl(&[&again[..], &["--overwrite"]].concat()));
}

#[test]
fn bad_training_input_is_named() {
    let dir = temp("bad");
    let m = model();
    let m = m.to_str().unwrap();
    let data = sample(&dir, "train.jsonl", 3);
    let mut text = std::fs::read_to_string(&data).unwrap();
    text = text.replacen('\n', "\n{\"task\": 3\n", 1);
    std::fs::write(&data, text).unwrap();
    let d = data.to_str().unwrap();
    let out = dir.join("a");
    let o = out.to_str().unwrap();
    let base = [
        "train",
        "sft",
        "--model",
        m,
        "--data",
        d,
        "--out",
        o,
        "--max-steps",
        "1",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--num-layers",
        "1",
        "--rank",
        "1",
        "--max-len",
        "64",
        "-t",
        "2",
    ]);
    fails_with(&srl(&args), "train.jsonl: line 2");
    args.push("--skip-bad");
    let run = srl(&args);
    ok(&run);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("skipped"),
        "summary counts skipped lines"
    );

    // Settings out of range and unknown modules fail before any work.
    let mut bad = base.to_vec();
    bad.extend(["--targets", "q,lm_head"]);
    fails_with(&srl(&bad), "unknown target module 'lm_head'");
    let mut bad = base.to_vec();
    bad.extend(["--dropout", "1.5"]);
    fails_with(&srl(&bad), "dropout");
    fails_with(
        &srl(&["train", "sft", "--model", m, "--data", d]),
        "no output folder",
    );
    // Resuming a folder without checkpoints.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(
        &srl(&[
            "train",
            "sft",
            "--model",
            m,
            "--resume",
            empty.to_str().unwrap(),
        ]),
        "no checkpoint",
    );
    // An adapter for another base is refused by merge.
    let other = dir.join("other.gguf");
    let mut spec = srl_models::testing::TinySpec::new(srl_models::Arch::Llama);
    spec.n_embd = 64;
    srl_models::testing::TinyWeights::random(&spec).write_gguf(&other, srl_quant::GgmlType::F32);
    fails_with(
        &srl(&[
            "merge",
            "--model",
            other.to_str().unwrap(),
            "--lora",
            o,
            "--out",
            dir.join("x.gguf").to_str().unwrap(),
        ]),
        "wrong base",
    );
}

#[test]
fn an_error_cause_is_printed_once() {
    // Errors that carry their source in the message used to print it again
    // as the cause ("No such file ...: No such file ...").
    let m = model();
    let out = srl(&[
        "merge",
        "--model",
        m.to_str().unwrap(),
        "--lora",
        "/nonexistent/adapter",
        "--out",
        "/tmp/srl-never.gguf",
    ]);
    fails_with(&out, "/nonexistent/adapter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// Ctrl-C (SIGINT) during SFT finishes the step, saves a checkpoint of it
/// and exits cleanly.
#[test]
fn ctrl_c_saves_a_final_checkpoint() {
    let dir = temp("sigint");
    let data = sample(&dir, "train.jsonl", 6);
    let out = dir.join("adapter");
    let args: Vec<String> = [
        "train",
        "sft",
        "--model",
        model().to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-steps",
        "100000",
        "--save-every",
        "0",
        "--rank",
        "2",
        "--num-layers",
        "1",
        "--max-len",
        "64",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = common::interrupt_after_first_line(&args, &out.join("metrics.jsonl"));
    let done = *metrics_steps(&out).last().unwrap();
    assert!(done < 100000);
    common::assert_interrupted_at(&run, &out, done);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sequence of the bug report: a finished run, then a new run into the
/// same folder. It used to leave the new run's adapter beside the old run's
/// checkpoints, lose the finished adapter and fail. Now the second command is
/// refused and changes nothing; with --overwrite the folder holds only the
/// new run, and the old one is gone once the new checkpoint is complete.
#[test]
fn a_new_run_never_destroys_a_finished_one() {
    let dir = temp("rerun");
    let m = model();
    let m = m.to_str().unwrap();
    let data = sample(&dir, "train.jsonl", 4);
    let out = dir.join("runs/a");
    let o = out.to_str().unwrap();
    let d = data.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "sft", "--model", m, "--data", d, "--out", o];
        args.extend([
            "--rank",
            "2",
            "--num-layers",
            "1",
            "--max-len",
            "64",
            "-t",
            "2",
        ]);
        args.extend(extra);
        srl(&args)
    };
    let state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap()
    };
    let checkpoints = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    ok(&run(&["--max-steps", "10", "--save-every", "2"]));
    assert_eq!(state()["step"], 10);
    let before = checkpoints();
    assert_eq!(before, ["step-000008", "step-000010"]);
    let adapter = std::fs::read(out.join("adapter_model.safetensors")).unwrap();

    // Same folder, no --resume: refused, naming the folder and both ways out.
    let again = run(&["--max-steps", "1"]);
    fails_with(&again, "runs/a holds another run");
    fails_with(&again, "--resume");
    fails_with(&again, "--overwrite");
    assert_eq!(state()["step"], 10);
    assert_eq!(checkpoints(), before);
    assert_eq!(
        std::fs::read(out.join("adapter_model.safetensors")).unwrap(),
        adapter
    );

    // --overwrite: only the new run remains, the old one moved aside and then
    // removed with the new run's first checkpoint.
    ok(&run(&["--max-steps", "1", "--overwrite"]));
    assert_eq!(state()["step"], 1);
    assert_eq!(checkpoints(), ["step-000001"]);
    let left: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["a"]);
    std::fs::remove_dir_all(&dir).ok();
}

//! End-to-end tests of `srl train srl` and `srl train rlvr` on the real
//! default model (tiny settings: few short rollouts, the last two blocks).

mod common;

use common::{fails_with, model, ok, srl, temp};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The first `n` trajectories of the example set.
fn sample(dir: &Path, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unit-conversion/train.jsonl"),
    )
    .unwrap();
    let path = dir.join("traj.jsonl");
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn metrics(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A metrics line without its timings (which differ between runs).
fn untimed(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("rollout_tokens_per_s");
    o.remove("train_tokens_per_s");
    v
}

const TINY: &[&str] = &[
    "--batch-size",
    "1",
    "--max-new-tokens",
    "24",
    "--think-budget",
    "8",
    "--num-layers",
    "2",
    "--rank",
    "4",
    "--lr",
    "1e-3",
    "--seed",
    "3",
    "--save-every",
    "1",
    "--log-samples",
    "1",
];

fn train(kind: &str, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    train_on(&model(), kind, data, out, extra)
}

fn train_on(m: &Path, kind: &str, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        kind,
        "--model",
        m.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(TINY);
    if !extra.contains(&"--group-size") {
        args.extend_from_slice(&["--group-size", if kind == "rlvr" { "6" } else { "4" }]);
    }
    args.extend_from_slice(extra);
    srl(&args)
}

#[test]
fn srl_trains_logs_and_resumes_exactly() {
    let dir = temp("srl");
    let data = sample(&dir, 3);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let err = String::from_utf8(train("srl", &data, &a, &["--max-steps", "2"]).stderr).unwrap();
    assert!(err.contains("9 step instances"), "{err}");
    assert!(err.contains("done: 2 updates"), "{err}");

    let m = metrics(&a);
    assert_eq!(m.len(), 2);
    for key in [
        "reward_mean",
        "reward_std",
        "groups_sampled",
        "dropped_fraction",
        "format_failure_rate",
        "similarity_mean",
        "response_len_mean",
        "clip_fraction",
        "kl",
        "loss",
        "grad_norm",
        "lr",
        "rollout_tokens_per_s",
        "train_tokens_per_s",
        "samples",
        "position",
    ] {
        assert!(m[0].get(key).is_some(), "metrics lack {key}: {}", m[0]);
    }
    let sample = &m[0]["samples"][0];
    assert!(sample["response"].is_string() && sample["reward"].is_number());
    let r = m[0]["reward_mean"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&r), "{r}");
    // One update per group here, none dropped: the position moves by one.
    assert!(m[1]["position"].as_u64().unwrap() >= 2);
    for f in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "adapter.gguf",
        "optimizer.safetensors",
        "reward.svg",
        "trainer_state.json",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["trainer"], "srl");
    assert_eq!(state["config"]["rl"]["think_budget"], 8);
    assert_eq!(state["data_position"], m[1]["position"]);

    // One update, then resumed to two: the same rollouts, rewards, losses
    // and adapter as the uninterrupted run.
    ok(&train("srl", &data, &b, &["--max-steps", "1"]));
    let resume = srl(&[
        "train",
        "srl",
        "--model",
        model().to_str().unwrap(),
        "--resume",
        b.to_str().unwrap(),
        "--max-steps",
        "2",
    ]);
    let err = String::from_utf8_lossy(&resume.stderr).to_string();
    ok(&resume);
    assert!(err.contains("resuming at update 1 of 2"), "{err}");
    let mb = metrics(&b);
    assert_eq!(mb.len(), 2);
    for (x, y) in m.iter().zip(&mb) {
        assert_eq!(untimed(x), untimed(y));
    }
    assert_eq!(
        std::fs::read(a.join("adapter_model.safetensors")).unwrap(),
        std::fs::read(b.join("adapter_model.safetensors")).unwrap()
    );
    // A run of another trainer cannot be resumed as this one.
    fails_with(
        &srl(&[
            "train",
            "rlvr",
            "--model",
            model().to_str().unwrap(),
            "--resume",
            b.to_str().unwrap(),
        ]),
        "cannot be resumed as 'rlvr'",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several optimizer steps per batch and a KL penalty: the ratio moves off
/// 1 (so clipping can act), the KL is logged, and resuming accounts for the
/// extra optimizer steps.
#[test]
fn inner_updates_and_kl() {
    let dir = temp("inner");
    let data = sample(&dir, 2);
    let out = dir.join("run");
    let extra = [
        "--max-steps",
        "1",
        "--inner-updates",
        "3",
        "--kl-beta",
        "0.1",
        "--clip-high",
        "0.28",
    ];
    ok(&train("srl", &data, &out, &extra));
    let m = metrics(&out);
    let kl = m[0]["kl"].as_f64().expect("kl logged when beta > 0");
    assert!(kl > 0.0 && kl.is_finite(), "{kl}");
    let clip = m[0]["clip_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&clip));
    let out2 = srl(&[
        "train",
        "srl",
        "--model",
        model().to_str().unwrap(),
        "--resume",
        out.to_str().unwrap(),
        "--max-steps",
        "2",
    ]);
    ok(&out2);
    assert_eq!(metrics(&out).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The rollouts are sampled by the inference pass and trained on by the
/// f32 training pass: on the Q4_1 model their log-probabilities differ a
/// little (logged as the mismatch) and the truncated importance weights
/// stay near 1; on the same model in f32 (only the f16 KV cache differs)
/// the mismatch is far smaller and the correction all but the identity;
/// with `--no-tis` every weight is 1.
#[test]
fn importance_sampling_corrects_the_rollout_pass() {
    let dir = temp("tis");
    let data = sample(&dir, 2);
    let one = ["--max-steps", "1"];
    let field = |m: &Value, k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k}: {m}"));

    ok(&train("srl", &data, &dir.join("q4"), &one));
    let q4 = &metrics(&dir.join("q4"))[0];
    let mismatch_q4 = field(q4, "mismatch_mean");
    assert!(mismatch_q4 > 0.0 && mismatch_q4 < 0.2, "{q4}");
    assert!(field(q4, "mismatch_max") < 2.0, "{q4}");
    let w_q4 = field(q4, "is_weight_mean");
    assert!((w_q4 - 1.0).abs() < 0.05 && w_q4 != 1.0, "{q4}");
    assert!(field(q4, "is_truncated_fraction") < 0.05, "{q4}");
    assert!(field(q4, "mismatch_kl") >= 0.0, "{q4}");

    let f32_model = dir.join("f32.gguf");
    ok(&srl(&[
        "quantize",
        "--type",
        "f32",
        model().to_str().unwrap(),
        f32_model.to_str().unwrap(),
    ]));
    let (on, off) = (dir.join("f32-tis"), dir.join("f32-off"));
    ok(&train_on(&f32_model, "srl", &data, &on, &one));
    ok(&train_on(
        &f32_model,
        "srl",
        &data,
        &off,
        &[&one[..], &["--no-tis"]].concat(),
    ));
    let (on, off) = (&metrics(&on)[0], &metrics(&off)[0]);
    let mismatch_f32 = field(on, "mismatch_mean");
    assert!(
        mismatch_f32 < mismatch_q4 / 5.0,
        "{mismatch_f32} vs {mismatch_q4}"
    );
    assert!((field(on, "is_weight_mean") - 1.0).abs() < 0.005, "{on}");
    // The same rollouts; the weights reach the loss, which moves by about
    // their distance to 1.
    assert_eq!(on["samples"], off["samples"]);
    let (l_on, l_off) = (field(on, "loss"), field(off, "loss"));
    assert!(
        l_on != l_off && (l_on - l_off).abs() <= 0.01 * l_off.abs() + 1e-6,
        "{l_on} vs {l_off}"
    );
    assert_eq!(field(off, "is_weight_mean"), 1.0);
    assert_eq!(field(off, "is_truncated_fraction"), 0.0);
    assert_eq!(field(off, "mismatch_mean"), mismatch_f32);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rlvr_trains_on_final_answers() {
    let dir = temp("rlvr");
    let data = dir.join("problems.jsonl");
    std::fs::write(
        &data,
        "{\"id\":\"p1\",\"task\":\"Write the number 7.\",\"answer\":\"7\"}\n\
         {\"id\":\"p2\",\"task\":\"What is 3 + 4? Answer with the number.\",\"answer\":7}\n\
         {\"id\":\"p3\",\"task\":\"Write the number 12.\",\"answer\":\"12\"}\n\
         {\"id\":\"p4\",\"task\":\"A problem without an answer.\"}\n",
    )
    .unwrap();
    let out = dir.join("run");
    let run = train(
        "rlvr",
        &data,
        &out,
        &[
            "--max-steps",
            "1",
            "--group-size",
            "6",
            "--sampling-bound",
            "8",
        ],
    );
    let err = String::from_utf8_lossy(&run.stderr).to_string();
    ok(&run);
    assert!(
        err.contains("3 problems with answers (1 without an answer"),
        "{err}"
    );
    let m = metrics(&out);
    assert_eq!(m.len(), 1);
    let r = m[0]["reward_mean"].as_f64().unwrap();
    assert!(
        r > 0.0 && r < 1.0,
        "a kept group has right and wrong answers: {r}"
    );
    assert!(m[0]["similarity_mean"].is_null());

    // A malformed line is named.
    std::fs::write(&data, "{\"task\":\"ok\",\"answer\":\"1\"}\n{\"task\": 5}\n").unwrap();
    fails_with(
        &train("rlvr", &data, &dir.join("bad"), &["--max-steps", "1"]),
        "line 2",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The base model never closes its monologue by itself: with no think
/// budget every group is dropped, and the run stops with the reason after
/// the sampling bound instead of spinning.
#[test]
fn a_run_with_every_group_dropped_stops_and_says_why() {
    let dir = temp("dropped");
    let data = dir.join("traj.jsonl");
    std::fs::write(
        &data,
        "{\"id\":\"a\",\"task\":\"How many meters are in 3 kilometers?\",\"steps\":[\"1 kilometer is 1000 meters.\",\"So 3000 meters.\"]}\n\
         {\"id\":\"b\",\"task\":\"An empty trajectory.\",\"steps\":[]}\n",
    )
    .unwrap();
    let m = model();
    let out = dir.join("run");
    let run = srl(&[
        "train",
        "srl",
        "--model",
        m.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--group-size",
        "2",
        "--max-new-tokens",
        "12",
        "--sampling-bound",
        "2",
        "--num-layers",
        "1",
    ]);
    fails_with(&run, "3 times in a row, all 2 groups sampled were dropped");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("sampling the update again from the next instances (2 of 3 tries)"),
        "{err}"
    );
    fails_with(&run, "--think-budget");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("1 trajectories skipped"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C (SIGINT) during training finishes the update, saves a checkpoint
/// of it, and exits cleanly; the run can be resumed from there.
#[test]
fn ctrl_c_saves_a_final_checkpoint() {
    let dir = temp("sigint");
    let data = sample(&dir, 3);
    let out = dir.join("run");
    let m = model();
    let mut args: Vec<String> = [
        "train",
        "srl",
        "--model",
        m.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-steps",
        "100",
        "--group-size",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(TINY.iter().map(|s| s.to_string()));
    // Only the end-of-run checkpoint would be written without the signal.
    let i = args.iter().position(|a| a == "--save-every").unwrap();
    args[i + 1] = "0".into();
    let output = common::interrupt_after_first_line(&args, &out.join("metrics.jsonl"));
    let done = metrics(&out).len() as u64;
    assert!((1..100).contains(&done), "{done} updates");
    common::assert_interrupted_at(&output, &out, done);
    let _ = std::fs::remove_dir_all(&dir);
}

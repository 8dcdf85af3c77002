//! The SFT trainer on a tiny random model: a resumed run reproduces the
//! uninterrupted run's losses and adapter exactly, training lowers the loss,
//! and a non-finite loss stops the run keeping the last checkpoint.

use srl_finetune::data::Example;
use srl_finetune::metrics::read_metrics;
use srl_finetune::run_start::RunMode;
use srl_finetune::sft::{train_sft, Event};
use srl_finetune::train_config::TrainConfig;
use srl_finetune::TrainError;
use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{Arch, Model};
use srl_quant::GgmlType;
use std::path::{Path, PathBuf};

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("srl-sft-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_model(dir: &Path) -> Model {
    let mut spec = TinySpec::new(Arch::Llama);
    spec.n_embd = 64;
    spec.n_ff = 128;
    let path = dir.join("tiny.gguf");
    TinyWeights::random(&spec).write_gguf(&path, GgmlType::Q8_0);
    Model::open(&path).unwrap()
}

/// Sequences with a fixed "prompt" and a learnable "answer" pattern.
fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let a = (i * 7 % 50) as u32 + 10;
            let tokens = vec![1, a, a + 1, 2, a + 2, a + 3, a + 4, 3];
            let target = vec![false, false, false, false, true, true, true, true];
            Example {
                tokens,
                target,
                line: i + 1,
            }
        })
        .collect()
}

fn config(out: &Path) -> TrainConfig {
    TrainConfig {
        out: out.to_path_buf(),
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        lr: 1e-2,
        warmup_steps: 2,
        batch_size: 2,
        grad_accum: 2,
        max_steps: Some(6),
        save_every: 2,
        eval_every: 3,
        keep_checkpoints: 10,
        seed: 5,
        ..TrainConfig::default()
    }
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    read_metrics(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["step"].as_u64()?, r.get("loss")?.as_f64()?)))
        .collect()
}

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let dir = temp("resume");
    let model = tiny_model(&dir);
    let (train, valid) = (examples(10), examples(3));
    let pool = pool();
    let a = dir.join("a");
    train_sft(
        &model,
        config(&a),
        &train,
        &valid,
        RunMode::New,
        &pool,
        &mut |_| {},
    )
    .unwrap();
    let full = losses(&a);
    assert_eq!(full.len(), 6);
    assert!(full[5].1 < full[0].1, "training lowers the loss: {full:?}");

    // A run "killed" after its step-2 checkpoint: later checkpoints gone,
    // metrics of later steps still in the log (as after a crash).
    let b = dir.join("b");
    train_sft(
        &model,
        config(&b),
        &train,
        &valid,
        RunMode::New,
        &pool,
        &mut |_| {},
    )
    .unwrap();
    for step in [4, 6] {
        std::fs::remove_dir_all(srl_finetune::checkpoint::checkpoint_dir(&b, step)).unwrap();
    }
    let mut started = None;
    let mut cfg = config(&b);
    cfg.lr = 123.0; // ignored: a resumed run keeps its own settings
    train_sft(
        &model,
        cfg,
        &train,
        &valid,
        RunMode::Resume,
        &pool,
        &mut |e| {
            if let Event::Start { step, .. } = e {
                started = Some(step)
            }
        },
    )
    .unwrap();
    assert_eq!(started, Some(2));
    assert_eq!(
        losses(&b),
        full,
        "resumed losses equal the uninterrupted run's"
    );
    for f in ["adapter_model.safetensors", "adapter.gguf"] {
        let same = std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap();
        assert!(same, "{f} differs after resuming");
    }
    // The optimizer file's metadata order is not fixed: compare its contents.
    let ra = srl_finetune::checkpoint::load_latest(&a, &model).unwrap();
    let rb = srl_finetune::checkpoint::load_latest(&b, &model).unwrap();
    assert!(
        ra.optimizer == rb.optimizer,
        "optimizer state differs after resuming"
    );
    assert!(ra.params == rb.params);
    for f in [
        "adapter_config.json",
        "trainer_state.json",
        "loss.svg",
        "metrics.jsonl",
    ] {
        assert!(b.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn a_non_finite_loss_stops_and_keeps_the_checkpoint() {
    let dir = temp("nan");
    let model = tiny_model(&dir);
    let pool = pool();
    let out = dir.join("run");
    let mut cfg = config(&out);
    cfg.lr = 1e30; // diverges within a few steps
    cfg.max_grad_norm = 0.0;
    cfg.save_every = 1;
    cfg.valid = None;
    let err = train_sft(
        &model,
        cfg,
        &examples(10),
        &[],
        RunMode::New,
        &pool,
        &mut |_| {},
    )
    .unwrap_err();
    let TrainError::NonFinite {
        step, checkpoint, ..
    } = &err
    else {
        panic!("expected a non-finite loss, got {err}");
    };
    let kept = checkpoint.as_ref().expect("an earlier checkpoint");
    assert!(kept.ends_with(format!("step-{:06}", step - 1)), "{err}");
    assert!(kept.join("trainer_state.json").is_file());
    assert!(err.to_string().contains(&format!("step {step}")), "{err}");
}

/// A run from before checkpoints carried a run id, resumed: its old
/// checkpoints are still its own, so pruning keeps only the newest.
#[test]
fn resuming_a_run_without_ids_prunes_its_old_checkpoints() {
    let dir = temp("legacy");
    let model = tiny_model(&dir);
    let out = dir.join("run");
    let mut cfg = config(&out);
    cfg.max_steps = Some(4);
    let pool = pool();
    train_sft(
        &model,
        cfg,
        &examples(10),
        &[],
        RunMode::New,
        &pool,
        &mut |_| {},
    )
    .unwrap();
    // Strip the ids, as the files of older runs have none.
    for (_, ck) in srl_finetune::checkpoint::list_checkpoints(&out) {
        let path = ck.join("trainer_state.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("run_id");
        std::fs::write(&path, v.to_string()).unwrap();
    }
    let mut cfg = config(&out);
    cfg.max_steps = Some(6);
    // A resumed run keeps its own settings: keep one checkpoint, set in the
    // saved state.
    let path = srl_finetune::checkpoint::checkpoint_dir(&out, 4).join("trainer_state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["config"]["keep_checkpoints"] = 1.into();
    std::fs::write(&path, v.to_string()).unwrap();
    train_sft(
        &model,
        cfg,
        &examples(10),
        &[],
        RunMode::Resume,
        &pool,
        &mut |_| {},
    )
    .unwrap();
    let steps: Vec<u64> = srl_finetune::checkpoint::list_checkpoints(&out)
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, [6]);
    std::fs::remove_dir_all(&dir).ok();
}

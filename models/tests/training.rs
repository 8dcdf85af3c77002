//! Gradients of the training passes against central finite differences, on
//! tiny random models of both architectures, with f32 and quantized base
//! weights: every LoRA tensor along a random direction, and single elements.

use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{
    Arch, LoraConfig, LoraParams, Model, PassOptions, Target, TokenWeights, TrainScratch,
};
use srl_quant::GgmlType;

const TOKENS: [u32; 9] = [5, 77, 300, 12, 12, 200, 3, 150, 9];

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

fn tiny_model(arch: Arch, ty: GgmlType, dir: &std::path::Path) -> Model {
    let mut spec = TinySpec::new(arch);
    spec.n_embd = 64;
    spec.n_ff = 128;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    if ty.block_size() == 256 {
        spec.n_embd = 256;
        spec.n_ff = 256;
    }
    // SmolLM3's 4 layers with a tied head give logits of ~50, whose f32
    // rounding in the loss swamps finite differences of small gradients: a
    // separate head of smaller weights keeps the loss where they resolve.
    if spec.n_layer > 2 {
        spec.tied = false;
    }
    let w = TinyWeights::random(&spec);
    let path = dir.join(format!("{}-{}.gguf", arch.name(), ty.name()));
    w.write_gguf(&path, ty);
    Model::open(&path).unwrap()
}

/// An adapter with random A and B (B is zero after `init`, which would make
/// every A gradient zero and the check vacuous).
fn random_adapter(model: &Model, config: LoraConfig) -> LoraParams {
    let mut p = LoraParams::init(&model.config, config, 7);
    let other = LoraParams::init(&model.config, p.config.clone(), 8);
    for (t, o) in p.tensors.iter_mut().zip(&other.tensors) {
        // B from A-like values of another draw, rescaled to the B shape.
        for (i, v) in t.b.iter_mut().enumerate() {
            *v = o.a[i % o.a.len()] * 3.0;
        }
    }
    p
}

/// Weights of mixed sign, one zero (as advantages in GRPO can be).
fn weights() -> Vec<f32> {
    vec![0.7, -0.4, 1.0, 0.0, 0.25, -1.2, 0.9, 0.5]
}

struct Check {
    worst: f64,
}

fn check_gradients(model: &Model, lora: &LoraParams, opts: PassOptions, what: &str) -> f64 {
    let pool = pool();
    let w = weights();
    let loss = |p: &LoraParams| -> f64 {
        model
            .weighted_nll(&TOKENS, &w, Some(p), None, opts, &pool)
            .unwrap()
            .loss
    };
    let mut grads = lora.zeros_like();
    let out = model
        .weighted_nll(&TOKENS, &w, Some(lora), Some(&mut grads), opts, &pool)
        .unwrap();
    assert!((out.loss - loss(lora)).abs() < 1e-9 * (1.0 + out.loss.abs()));
    let mut c = Check { worst: 0.0 };
    let mut dir_seed = 11u64;
    for (ti, t) in lora.tensors.iter().enumerate() {
        for which in 0..2 {
            // Directional derivative along a random unit-ish direction u.
            let n = if which == 0 { t.a.len() } else { t.b.len() };
            let u: Vec<f32> = (0..n)
                .map(|_| {
                    dir_seed = srl_models::lora_params::mix64(dir_seed);
                    (dir_seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                })
                .collect();
            let g = &grads.tensors[ti];
            let gv = if which == 0 { &g.a } else { &g.b };
            let analytic: f64 = gv.iter().zip(&u).map(|(a, b)| *a as f64 * *b as f64).sum();
            let h = 4e-2f32 / (n as f32).sqrt();
            let shifted = |sign: f32| {
                let mut p = lora.clone();
                let m = &mut p.tensors[ti];
                let v = if which == 0 { &mut m.a } else { &mut m.b };
                for (x, d) in v.iter_mut().zip(&u) {
                    *x += sign * h * d;
                }
                loss(&p)
            };
            let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h as f64);
            let err = (fd - analytic).abs() / (fd.abs().max(analytic.abs()).max(1e-2));
            c.worst = c.worst.max(err);
            // Gemma's residual stream is scaled by sqrt(width): the f32
            // rounding of its loss moves finite differences by ~4e-4 (they
            // wander around the analytic value as the step changes, with no
            // trend), 2-3% of its smallest directional derivatives here. Its
            // new pieces (GELU, post-norms, the window) are held to 1e-4 and
            // 1e-3 alone (layers/mlp.rs, layers/attention/causal.rs).
            let tolerance = if model.config.arch == Arch::Gemma3 {
                3e-2
            } else {
                2e-2
            };
            assert!(
                err < tolerance,
                "{what}: {} {}: analytic {analytic:.6} vs finite differences {fd:.6} (rel {err:.2e})",
                t.base_name(),
                ["A", "B"][which]
            );
        }
    }
    c.worst
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dir = tempdir();
    let mut report = Vec::new();
    for arch in Arch::ALL {
        for ty in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_K] {
            let model = tiny_model(arch, ty, &dir);
            let lora = random_adapter(
                &model,
                LoraConfig {
                    rank: 4,
                    alpha: 8.0,
                    ..LoraConfig::default()
                },
            );
            let what = format!("{} {}", arch.name(), ty.name());
            // Intermediates kept, and every block recomputed from its input.
            for saved_activations_mib in [1024, 0] {
                let opts = PassOptions {
                    saved_activations_mib,
                    ..PassOptions::default()
                };
                let worst = check_gradients(&model, &lora, opts, &what);
                report.push(format!(
                    "{what} (saved {saved_activations_mib} MiB): worst rel. error {worst:.1e}"
                ));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn gradients_with_dropout_subset_and_last_layers() {
    let dir = tempdir();
    let model = tiny_model(Arch::Llama, GgmlType::Q8_0, &dir);
    let lora = random_adapter(
        &model,
        LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.3,
            targets: vec![Target::V, Target::Down, Target::Q],
            last_layers: Some(1),
        },
    );
    assert!(lora.tensors.iter().all(|t| t.layer == 1));
    assert_eq!(lora.tensors.len(), 3);
    check_gradients(
        &model,
        &lora,
        PassOptions {
            dropout_seed: Some(1234),
            saved_activations_mib: 0,
        },
        "dropout 0.3, last layer, q/v/down",
    );
}

#[test]
fn logprobs_agree_with_the_inference_forward() {
    // The training forward (f32 activations, exact attention) and the
    // inference forward (llama.cpp numerics) compute the same model, with
    // and without an adapter (given to the inference side as
    // `LoraAdapter::from_params`, as RL rollouts sample the current policy).
    let dir = tempdir();
    let pool = pool();
    for arch in Arch::ALL {
        let mut model = tiny_model(arch, GgmlType::F32, &dir);
        let lora = random_adapter(&model, LoraConfig::default());
        for with_lora in [false, true] {
            let lp = model
                .token_logprobs(&TOKENS, with_lora.then_some(&lora), &pool)
                .unwrap();
            model.adapters.clear();
            if with_lora {
                let adapter = srl_models::LoraAdapter::from_params(&lora, &dir);
                model.adapters.push(srl_models::ActiveLora {
                    adapter,
                    scale: 1.0,
                });
            }
            let mut kv = model.new_cache(32);
            let mut st = srl_models::State::new();
            model
                .forward(&TOKENS, &mut kv, &mut st, srl_models::Logits::All, &pool)
                .unwrap();
            model.adapters.clear();
            let v = model.config.vocab_size;
            for t in 0..TOKENS.len() - 1 {
                let z = &st.logits[t * v..(t + 1) * v];
                let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let lse = max + z.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
                let want = z[TOKENS[t + 1] as usize] - lse;
                assert!(
                    (lp[t] - want).abs() < 2e-2,
                    "{} (lora {with_lora}): t={t}: {} vs {want}",
                    arch.name(),
                    lp[t]
                );
            }
            if with_lora {
                let base = model.token_logprobs(&TOKENS, None, &pool).unwrap();
                assert!(
                    lp.iter().zip(&base).any(|(a, b)| (a - b).abs() > 0.05),
                    "the random adapter should change the log-probabilities"
                );
            }
        }
    }
}

#[test]
fn a_fresh_adapter_changes_nothing_and_bad_input_is_refused() {
    let dir = tempdir();
    let pool = pool();
    let model = tiny_model(Arch::Qwen2, GgmlType::F32, &dir);
    let fresh = LoraParams::init(&model.config, LoraConfig::default(), 1);
    let base = model.token_logprobs(&TOKENS, None, &pool).unwrap();
    let with = model.token_logprobs(&TOKENS, Some(&fresh), &pool).unwrap();
    assert_eq!(
        base, with,
        "B = 0 at init: the adapter starts as the identity"
    );
    let err = model
        .weighted_nll(
            &TOKENS,
            &[1.0; 3],
            None,
            None,
            PassOptions::default(),
            &pool,
        )
        .unwrap_err();
    assert!(err.to_string().contains("3 weights given for 8"), "{err}");
    let err = model
        .token_logprobs(&[1, 100_000], None, &pool)
        .unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

#[test]
fn a_reused_scratch_gives_the_fresh_results() {
    // A trainer keeps one scratch for every pass: whatever earlier passes
    // (longer, shorter, with or without gradients, other budgets) left in
    // it, a pass gives the loss, log-probabilities and gradients of a pass
    // with fresh buffers, bit for bit.
    let dir = tempdir();
    let pool = pool();
    let model = tiny_model(Arch::Llama, GgmlType::Q8_0, &dir);
    let lora = random_adapter(
        &model,
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.2,
            ..LoraConfig::default()
        },
    );
    let long: Vec<u32> = (0..23).map(|i| (i * 37 + 5) % 300).collect();
    let passes: [(&[u32], bool, usize); 5] = [
        (&long, true, 1024),
        (&TOKENS, true, 1024),
        (&long, false, 1024),
        (&TOKENS, true, 0),
        (&long, true, 1024),
    ];
    let mut scratch = TrainScratch::new();
    for (i, &(tokens, with_grads, saved_activations_mib)) in passes.iter().enumerate() {
        let w: Vec<f32> = (1..tokens.len())
            .map(|t| 0.1 * (t % 4) as f32 - 0.1)
            .collect();
        let opts = PassOptions {
            dropout_seed: Some(i as u64),
            saved_activations_mib,
        };
        let mut fresh_grads = lora.zeros_like();
        let fresh = model
            .weighted_nll(
                tokens,
                &w,
                Some(&lora),
                with_grads.then_some(&mut fresh_grads),
                opts,
                &pool,
            )
            .unwrap();
        let mut grads = lora.zeros_like();
        let reused = model
            .weighted_nll_with(
                tokens,
                &w,
                Some(&lora),
                with_grads.then_some(&mut grads),
                opts,
                &mut scratch,
                &pool,
            )
            .unwrap();
        assert_eq!(
            fresh.loss.to_bits(),
            reused.loss.to_bits(),
            "pass {i}: loss"
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fresh.logprobs), bits(&reused.logprobs), "pass {i}");
        for (a, b) in fresh_grads.slices().zip(grads.slices()) {
            assert_eq!(bits(a), bits(b), "pass {i}: gradients");
        }
    }
}

/// Weights computed inside the pass from each token's log-probability (RL's
/// ratio) give, bit for bit, the loss and gradients of fixed weights
/// computed from a separate pass's log-probabilities; untrained positions
/// are not computed.
#[test]
fn weights_of_the_pass_logprobs_equal_two_passes() {
    let dir = tempdir();
    let pool = pool();
    let model = tiny_model(Arch::Qwen3, GgmlType::Q8_0, &dir);
    let lora = random_adapter(&model, LoraConfig::default());
    let trained: Vec<bool> = (0..TOKENS.len() - 1).map(|t| t % 3 != 1).collect();
    let of = |t: usize, lp: f32| (0.3 - 0.1 * t as f32) * (lp + 2.0).exp();
    let lps = model.token_logprobs(&TOKENS, Some(&lora), &pool).unwrap();
    let fixed: Vec<f32> = (0..trained.len())
        .map(|t| if trained[t] { of(t, lps[t]) } else { 0.0 })
        .collect();
    let (mut g_fixed, mut g_of) = (lora.zeros_like(), lora.zeros_like());
    let opts = PassOptions::default();
    let mut scratch = TrainScratch::new();
    let a = model
        .weighted_nll_with(
            &TOKENS,
            &fixed,
            Some(&lora),
            Some(&mut g_fixed),
            opts,
            &mut scratch,
            &pool,
        )
        .unwrap();
    let weights = TokenWeights::OfLogprob {
        trained: &trained,
        weight: &of,
    };
    let b = model
        .weighted_nll_by(
            &TOKENS,
            weights,
            Some(&lora),
            Some(&mut g_of),
            opts,
            &mut scratch,
            &pool,
        )
        .unwrap();
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    for t in 0..trained.len() {
        assert_eq!(b.logprobs[t].is_nan(), !trained[t], "position {t}");
        if trained[t] {
            assert_eq!(b.logprobs[t].to_bits(), lps[t].to_bits(), "position {t}");
        }
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (x, y) in g_fixed.slices().zip(g_of.slices()) {
        assert_eq!(bits(x), bits(y));
    }
    assert!(g_of.slices().flatten().any(|&v| v != 0.0));
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "srl-training-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

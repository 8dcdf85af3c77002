//! Batched rollouts on the real model: every sample of a group is exactly
//! what a single-sequence generation with the same seed produces (batched
//! decoding is bit-identical), samples differ from each other, and each stops
//! on its own.

use srl_runtime::generate::GenerateParams;
use srl_runtime::{Engine, Message, SamplerConfig};

#[test]
fn each_rollout_equals_its_own_generation() {
    let engine = Engine::load(&srl_runtime::model_cache::test_model_path(), 2).unwrap();
    let msgs = [Message::new(
        "user",
        "Convert 3 hours to minutes. Think step by step.",
    )];
    let prompt = engine.tokenize_prompt(&engine.render_chat(&msgs, true).unwrap());
    let params = GenerateParams {
        max_tokens: 40,
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..SamplerConfig::default()
        },
        stop: vec!["\n\n".into()],
        ignore_eog: false,
    };
    let group = engine.rollouts(&prompt, 6, &params).unwrap();
    assert_eq!(group.samples.len(), 6);
    for (g, sample) in group.samples.iter().enumerate() {
        let mut p = params.clone();
        p.sampler.seed = 42 + g as u64;
        let alone = engine
            .session(1024)
            .generate(&prompt, &p, |_| true)
            .unwrap();
        assert_eq!(sample.ids, alone.ids, "sample {g}");
        assert_eq!(sample.text, alone.text, "sample {g}");
        assert_eq!(sample.stop_reason, alone.stop_reason, "sample {g}");
    }
    let distinct: std::collections::HashSet<_> = group.samples.iter().map(|s| &s.ids).collect();
    assert!(distinct.len() > 1, "temperature 1 samples should differ");
    assert_eq!(
        group.generated_tokens,
        group.samples.iter().map(|s| s.ids.len()).sum::<usize>()
    );
}

/// A think budget writes `</think>\n` for a sample that has not closed its
/// monologue after that many tokens, marks those tokens forced, and the step
/// stops at the end of its line. Samples forced at different times share a
/// batch (segments of 1 and several tokens) and still equal their own runs.
#[test]
fn a_think_budget_forces_the_close_and_the_step_ends_at_its_line() {
    use srl_runtime::StepFormat;
    let engine = Engine::load(&srl_runtime::model_cache::test_model_path(), 2).unwrap();
    let msgs = [Message::new(
        "user",
        "How many meters are in 3 kilometers? Think inside <think> </think>, then write one step.",
    )];
    let prompt = engine.render_chat(&msgs, true).unwrap() + "<think>\n";
    let prompt = engine.tokenize_prompt(&prompt);
    let params = GenerateParams {
        max_tokens: 40,
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..SamplerConfig::default()
        },
        stop: vec![],
        ignore_eog: false,
    };
    let format = StepFormat {
        think_budget: Some(6),
        stop_at_step_end: true,
    };
    let close = engine.tokenizer.encode("</think>\n", false, true);
    let group = engine.rollouts_with(&prompt, 4, &params, &format).unwrap();
    for (g, s) in group.samples.iter().enumerate() {
        assert_eq!(s.ids.len(), s.forced.len());
        let forced: Vec<usize> = (0..s.ids.len()).filter(|&i| s.forced[i]).collect();
        if !forced.is_empty() {
            // Forced right after the 6th sampled monologue token.
            assert_eq!(
                forced,
                (6..6 + close.len()).collect::<Vec<_>>(),
                "sample {g}"
            );
            assert_eq!(&s.ids[6..6 + close.len()], &close[..]);
        }
        if s.text.contains("</think>") {
            let step = s.text.split("</think>").nth(1).unwrap().trim();
            assert!(!step.contains('\n'), "sample {g}: {step:?}");
        }
        let mut p = params.clone();
        p.sampler.seed = 7 + g as u64;
        let alone = engine.rollouts_with(&prompt, 1, &p, &format).unwrap();
        assert_eq!(alone.samples[0].ids, s.ids, "sample {g}");
        assert_eq!(alone.samples[0].forced, s.forced, "sample {g}");
    }
    assert!(
        group.samples.iter().any(|s| s.forced.iter().any(|&f| f)),
        "the 135M model does not close its monologue in 6 tokens by itself"
    );
}

/// Several prompts in one batch (different lengths and sample counts, a
/// think budget forcing some samples): each group is exactly what its
/// prompt's rollouts give alone, logged log-probabilities included.
#[test]
fn a_batch_of_prompts_equals_each_prompt_alone() {
    use srl_runtime::{RolloutRequest, StepFormat};
    let engine = Engine::load(&srl_runtime::model_cache::test_model_path(), 2).unwrap();
    let tasks = [
        "How many meters are in 3 kilometers?",
        "Tom buys 4 apples at 3 dollars each. How much does he pay? Think first.",
        "Name a color.",
    ];
    let prompts: Vec<Vec<u32>> = tasks
        .iter()
        .map(|t| {
            let msgs = [Message::new("user", t)];
            engine.tokenize_prompt(&(engine.render_chat(&msgs, true).unwrap() + "<think>\n"))
        })
        .collect();
    let params = GenerateParams {
        max_tokens: 24,
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerConfig::default()
        },
        stop: vec![],
        ignore_eog: false,
    };
    let format = StepFormat {
        think_budget: Some(5),
        stop_at_step_end: true,
    };
    let requests: Vec<RolloutRequest> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| RolloutRequest {
            prompt_ids: p,
            n: 3 - i,
            seed: 100 * i as u64,
        })
        .collect();
    let batch = engine
        .rollouts_batch(&[], &requests, None, &params, &format)
        .unwrap();
    assert_eq!(batch.groups.len(), 3);
    for (i, (req, group)) in requests.iter().zip(&batch.groups).enumerate() {
        assert_eq!(group.len(), req.n);
        let mut p = params.clone();
        p.sampler.seed = req.seed;
        let alone = engine
            .rollouts_with(req.prompt_ids, req.n, &p, &format)
            .unwrap();
        for (g, (a, b)) in group.iter().zip(&alone.samples).enumerate() {
            assert_eq!(a.ids, b.ids, "prompt {i} sample {g}");
            assert_eq!(a.forced, b.forced, "prompt {i} sample {g}");
            assert_eq!(a.text, b.text, "prompt {i} sample {g}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&a.logprobs),
                bits(&b.logprobs),
                "prompt {i} sample {g}"
            );
            assert_eq!(a.logprobs.len(), a.ids.len());
            for (&lp, &forced) in a.logprobs.iter().zip(&a.forced) {
                if forced {
                    assert_eq!(lp, 0.0);
                } else {
                    assert!(lp <= 0.0 && lp.is_finite(), "{lp}");
                }
            }
        }
    }
    assert_eq!(
        batch.generated_tokens,
        batch
            .groups
            .iter()
            .flatten()
            .map(|s| s.ids.len())
            .sum::<usize>()
    );
}

/// A prompt cache keeps each prompt's KV cache; the next, longer prompt
/// that starts the same way reads only what it must, and its samples are
/// bit for bit those of an uncached read: for short prompts (read with the
/// f16 attention) and long ones (the tiled attention, whose chunks must
/// stay long enough).
#[test]
fn a_prompt_cache_is_kept_and_reused_with_fresh_numbers() {
    use srl_runtime::{PromptCache, RolloutRequest, StepFormat};
    let engine = Engine::load(&srl_runtime::model_cache::test_model_path(), 2).unwrap();
    let render = |t: &str| {
        let msgs = [Message::new("user", t)];
        engine.tokenize_prompt(&engine.render_chat(&msgs, true).unwrap())
    };
    let params = GenerateParams {
        max_tokens: 8,
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 5,
            ..SamplerConfig::default()
        },
        ..Default::default()
    };
    let format = StepFormat::default();
    fn one(ids: &[u32]) -> [RolloutRequest<'_>; 2] {
        let r = RolloutRequest {
            prompt_ids: ids,
            n: 2,
            seed: 5,
        };
        [r, RolloutRequest { seed: 9, ..r }]
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let long_task = "Problem: a train leaves at 9 and travels 60 km per hour for 3 hours, \
        then 40 km per hour for 2 hours. Another train leaves at 10 and travels 70 km per hour. \
        When does the second one catch up, and how far from the start are they then?";
    for task in ["Problem: 3 kilometers in meters.", long_task] {
        let first = render(task);
        let mut caches = vec![PromptCache::default(), PromptCache::default()];
        let a = engine
            .rollouts_batch(&[], &one(&first), Some(&mut caches), &params, &format)
            .unwrap();
        assert_eq!(caches[0].ids(), &first[..]);
        let mut longer = first.clone();
        longer.extend(&a.groups[0][0].ids);
        longer.extend(render("Go on."));
        let cached = engine
            .rollouts_batch(&[], &one(&longer), Some(&mut caches), &params, &format)
            .unwrap();
        assert_eq!(caches[1].ids(), &longer[..]);
        let fresh = engine
            .rollouts_batch(&[], &one(&longer), None, &params, &format)
            .unwrap();
        for (c, f) in cached
            .groups
            .iter()
            .flatten()
            .zip(fresh.groups.iter().flatten())
        {
            assert_eq!(c.ids, f.ids, "{task}");
            assert_eq!(bits(&c.logprobs), bits(&f.logprobs), "{task}");
        }
    }
}

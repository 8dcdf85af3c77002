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

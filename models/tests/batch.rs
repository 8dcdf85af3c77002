//! Batched decoding (`Model::forward_batch`): G sequences continuing one
//! shared prefix, decoded together, give the logits each gets alone.

use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{Arch, KvCache, Logits, Model, Segment, State};
use srl_quant::GgmlType;

/// A random tiny model of `arch` with `ty` weights, written to a folder
/// of the test's own.
fn tiny_model(test: &str, arch: Arch, ty: GgmlType) -> Model {
    let dir = std::env::temp_dir().join(format!("srl-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{}.gguf", arch.name(), ty.name()));
    TinyWeights::random(&TinySpec::new(arch)).write_gguf(&path, ty);
    Model::open(&path).unwrap()
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

#[test]
#[allow(clippy::needless_range_loop)] // (sequence, step) tables read best indexed
fn batched_decoding_equals_one_sequence_at_a_time() {
    let pool = pool();
    for (arch, ty) in [
        (Arch::Llama, GgmlType::Q4_1),
        (Arch::Llama, GgmlType::Q8_0),
        (Arch::Qwen2, GgmlType::Q4_0),
        (Arch::Qwen2, GgmlType::F16),
        (Arch::Qwen3, GgmlType::Q8_0),
        (Arch::SmolLm3, GgmlType::Q4_0),
        (Arch::Gemma3, GgmlType::Q8_0),
    ] {
        let model = tiny_model("batch", arch, ty);
        let v = model.config.vocab_size;
        let prompt = [3u32, 44, 91, 7, 250];
        let mut shared = model.new_cache(64);
        let mut st = State::new();
        model
            .forward(&prompt, &mut shared, &mut st, Logits::Last, &pool)
            .unwrap();
        const G: usize = 5;
        let next = |g: usize, step: usize| ((g * 37 + step * 11 + 5) % v) as u32;
        // Alone: each sequence from a copy of the prefix.
        let mut alone = Vec::new();
        for g in 0..G {
            let mut kv = model.new_cache(64);
            kv.copy_prefix(&shared, prompt.len());
            let mut rows = Vec::new();
            for step in 0..6 {
                model
                    .forward(&[next(g, step)], &mut kv, &mut st, Logits::Last, &pool)
                    .unwrap();
                rows.push(st.logits.clone());
            }
            alone.push(rows);
        }
        // Together.
        let mut caches: Vec<KvCache> = (0..G)
            .map(|_| {
                let mut kv = model.new_cache(64);
                kv.copy_prefix(&shared, prompt.len());
                kv
            })
            .collect();
        for step in 0..6 {
            let toks: Vec<[u32; 1]> = (0..G).map(|g| [next(g, step)]).collect();
            let mut segs: Vec<Segment> = caches
                .iter_mut()
                .zip(&toks)
                .map(|(kv, t)| Segment { tokens: t, kv })
                .collect();
            model
                .forward_batch(&mut segs, &mut st, Logits::Last, &pool)
                .unwrap();
            for g in 0..G {
                let got = &st.logits[g * v..(g + 1) * v];
                let want = &alone[g][step];
                let diff = got
                    .iter()
                    .zip(want)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff == 0.0,
                    "{} {}: sequence {g} step {step}: max |diff| {diff}",
                    arch.name(),
                    ty.name()
                );
            }
        }
    }
}

/// A step that mixes a prompt chunk of one sequence with decode tokens of
/// others (what the server's scheduler runs) gives every sequence the
/// logits it gets alone, for block and float weights alike (float products
/// take tinyBLAS's sums for several tokens of one sequence and the dot
/// product's for one, as llama.cpp computes them).
#[test]
fn mixed_prompt_and_decode_steps_equal_each_sequence_alone() {
    let pool = pool();
    for (arch, ty) in [
        (Arch::Llama, GgmlType::Q4_1),
        (Arch::Llama, GgmlType::F16),
        (Arch::Qwen2, GgmlType::BF16),
        (Arch::Llama, GgmlType::F32),
    ] {
        let model = tiny_model("mixed", arch, ty);
        let v = model.config.vocab_size;
        let mut st = State::new();
        // Sequence a: a 3-token prefix, then one token. Sequence b: a fresh
        // 8-token prompt. Sequence c: one token after a 2-token prefix.
        let (pa, ta, pb, pc, tc) = (
            [5u32, 9, 14],
            [21u32],
            [4u32, 8, 15, 16, 23, 42, 7, 3],
            [2u32, 6],
            [30u32],
        );
        let mut alone = Vec::new();
        for (prefix, tokens) in [(&pa[..], &ta[..]), (&[][..], &pb[..]), (&pc[..], &tc[..])] {
            let mut kv = model.new_cache(64);
            if !prefix.is_empty() {
                model
                    .forward(prefix, &mut kv, &mut st, Logits::None, &pool)
                    .unwrap();
            }
            model
                .forward(tokens, &mut kv, &mut st, Logits::Last, &pool)
                .unwrap();
            alone.push(st.logits.clone());
        }
        let (mut ka, mut kb, mut kc) = (
            model.new_cache(64),
            model.new_cache(64),
            model.new_cache(64),
        );
        model
            .forward(&pa, &mut ka, &mut st, Logits::None, &pool)
            .unwrap();
        model
            .forward(&pc, &mut kc, &mut st, Logits::None, &pool)
            .unwrap();
        let mut segs = vec![
            Segment {
                tokens: &ta,
                kv: &mut ka,
            },
            Segment {
                tokens: &pb,
                kv: &mut kb,
            },
            Segment {
                tokens: &tc,
                kv: &mut kc,
            },
        ];
        model
            .forward_batch(&mut segs, &mut st, Logits::Last, &pool)
            .unwrap();
        for (i, want) in alone.iter().enumerate() {
            let got = &st.logits[i * v..(i + 1) * v];
            let diff = got
                .iter()
                .zip(want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff == 0.0,
                "{} {}: sequence {i}: max |diff| {diff}",
                arch.name(),
                ty.name()
            );
        }
    }
}

//! Batched decoding (`Model::forward_batch`): G sequences continuing one
//! shared prefix, decoded together, give the logits each gets alone.

use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{Arch, KvCache, Logits, Model, Segment, State};
use srl_quant::GgmlType;

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

#[test]
#[allow(clippy::needless_range_loop)] // (sequence, step) tables read best indexed
fn batched_decoding_equals_one_sequence_at_a_time() {
    let dir = std::env::temp_dir().join(format!("srl-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = pool();
    for (arch, ty) in [
        (Arch::Llama, GgmlType::Q4_1),
        (Arch::Llama, GgmlType::Q8_0),
        (Arch::Qwen2, GgmlType::Q4_0),
        (Arch::Qwen2, GgmlType::F16),
    ] {
        let path = dir.join(format!("{}-{}.gguf", arch.name(), ty.name()));
        TinyWeights::random(&TinySpec::new(arch)).write_gguf(&path, ty);
        let model = Model::open(&path).unwrap();
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

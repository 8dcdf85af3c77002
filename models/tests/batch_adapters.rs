//! Adapters chosen per sequence (`Model::forward_batch_adapters`): one batch
//! mixing the base model and two adapters gives each sequence the logits of
//! a model that carries its adapter alone.

use srl_models::formats::gguf::{GgufValue, GgufWriter};
use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{ActiveLora, Arch, KvCache, Logits, LoraAdapter, Model, Segment, State};
use srl_quant::GgmlType;
use std::path::Path;

/// A random rank-2 adapter on attn_q, attn_v, ffn_down and the output head.
fn write_adapter(w: &TinyWeights, path: &Path, seed: u64) {
    let mut seed = seed;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.2
    };
    let mut gw = GgufWriter::new();
    let arch = w.spec.arch.name();
    gw.set("general.architecture", GgufValue::String(arch.into()));
    gw.set("general.type", GgufValue::String("adapter".into()));
    gw.set("adapter.type", GgufValue::String("lora".into()));
    gw.set("adapter.lora.alpha", GgufValue::F32(4.0));
    let r = 2;
    let mut names: Vec<String> = (0..w.spec.n_layer)
        .flat_map(|l| ["attn_q", "attn_v", "ffn_down"].map(|t| format!("blk.{l}.{t}.weight")))
        .collect();
    if w.tensors.contains_key("output.weight") {
        names.push("output.weight".into());
    }
    let bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for name in names {
        let (out, inp) = (w.tensors[&name].1[0], w.tensors[&name].1[1]);
        let a: Vec<f32> = (0..r * inp).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..out * r).map(|_| rnd()).collect();
        gw.add_tensor(
            &format!("{name}.lora_a"),
            GgmlType::F32,
            &[inp, r],
            bytes(a),
        )
        .unwrap();
        gw.add_tensor(
            &format!("{name}.lora_b"),
            GgmlType::F32,
            &[r, out],
            bytes(b),
        )
        .unwrap();
    }
    gw.write(path).unwrap();
}

#[test]
fn adapters_per_sequence_equal_each_alone() {
    let dir = std::env::temp_dir().join(format!("srl-batch-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let w = TinyWeights::random(&TinySpec::new(Arch::Llama));
    let base = dir.join("base.gguf");
    w.write_gguf(&base, GgmlType::Q8_0);
    let files = [dir.join("a.gguf"), dir.join("b.gguf")];
    write_adapter(&w, &files[0], 7);
    write_adapter(&w, &files[1], 99);

    let model = Model::open(&base).unwrap();
    let active: Vec<Vec<ActiveLora>> = files
        .iter()
        .map(|f| {
            let mut adapter = LoraAdapter::open(f).unwrap();
            adapter.fit(&model).unwrap();
            vec![ActiveLora {
                adapter,
                scale: 1.0,
            }]
        })
        .collect();
    // Sequence i: its adapter (None = base), prompt and the tokens it decodes.
    let seqs: [(Option<usize>, Vec<u32>); 5] = [
        (None, vec![3, 44, 91]),
        (Some(0), vec![5, 8]),
        (Some(0), vec![17, 2, 9, 100]),
        (None, vec![250]),
        (Some(1), vec![61, 62]),
    ];
    let steps = [[11u32, 12, 13, 14, 15], [21, 22, 23, 24, 25]];
    let v = model.config.vocab_size;

    // Alone: a model carrying the sequence's adapter, one forward per call.
    let mut want: Vec<Vec<Vec<f32>>> = Vec::new();
    for (i, (which, prompt)) in seqs.iter().enumerate() {
        let mut m = Model::open(&base).unwrap();
        if let Some(k) = which {
            m.add_lora(LoraAdapter::open(&files[*k]).unwrap(), 1.0)
                .unwrap();
        }
        let mut kv = m.new_cache(32);
        let mut st = State::new();
        m.forward(prompt, &mut kv, &mut st, Logits::Last, &pool)
            .unwrap();
        let mut rows = vec![st.logits.clone()];
        for step in steps {
            m.forward(&[step[i]], &mut kv, &mut st, Logits::Last, &pool)
                .unwrap();
            rows.push(st.logits.clone());
        }
        want.push(rows);
    }

    // Together: the prompts in one call, then one token each per step.
    let none: &[ActiveLora] = &[];
    let sets: Vec<&[ActiveLora]> = seqs
        .iter()
        .map(|(which, _)| which.map_or(none, |k| &active[k][..]))
        .collect();
    let mut caches: Vec<KvCache> = seqs.iter().map(|_| model.new_cache(32)).collect();
    let mut st = State::new();
    let inputs: Vec<Vec<Vec<u32>>> = std::iter::once(seqs.iter().map(|s| s.1.clone()).collect())
        .chain(steps.iter().map(|s| s.iter().map(|&t| vec![t]).collect()))
        .collect();
    for (call, toks) in inputs.iter().enumerate() {
        let mut segs: Vec<Segment> = caches
            .iter_mut()
            .zip(toks)
            .map(|(kv, t)| Segment { tokens: t, kv })
            .collect();
        model
            .forward_batch_adapters(&mut segs, &sets, &mut st, Logits::Last, &pool)
            .unwrap();
        for (i, rows) in want.iter().enumerate() {
            let got = &st.logits[i * v..(i + 1) * v];
            let diff = got
                .iter()
                .zip(&rows[call])
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-4, "call {call} sequence {i}: max |diff| {diff}");
        }
    }
    // The adapters do change the output (else the test proves nothing).
    let mut kv = model.new_cache(32);
    model
        .forward(&seqs[1].1, &mut kv, &mut st, Logits::Last, &pool)
        .unwrap();
    let d = st
        .logits
        .iter()
        .zip(&want[1][0])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d > 1e-2);
    let e = model
        .forward_batch_adapters(
            &mut [Segment {
                tokens: &[1],
                kv: &mut caches[0],
            }],
            &[],
            &mut st,
            Logits::Last,
            &pool,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("0 adapter sets for 1 sequences"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

//! The forward pass on tiny random models of both architectures and every
//! weight type, against a plain f32 reference; GGUF and safetensors files of
//! the same weights give the same logits.

use srl_models::testing::{TinySpec, TinyWeights};
use srl_models::{Arch, Logits, Model, State};
use srl_quant::GgmlType;

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

const TOKENS: [u32; 7] = [3, 17, 250, 9, 9, 111, 42];

fn srl_logits(path: &std::path::Path, tokens: &[u32], split: usize) -> Vec<f32> {
    let model = Model::open(path).unwrap();
    let mut kv = model.new_cache(tokens.len().max(64));
    let mut st = State::new();
    let p = pool();
    let mut out = Vec::new();
    // Feed in two calls to exercise the cache: a prompt batch, then the rest.
    model
        .forward(&tokens[..split], &mut kv, &mut st, Logits::All, &p)
        .unwrap();
    out.extend_from_slice(&st.logits);
    for &t in &tokens[split..] {
        model
            .forward(&[t], &mut kv, &mut st, Logits::Last, &p)
            .unwrap();
        out.extend_from_slice(&st.logits);
    }
    out
}

/// max |a - b| / max |b|
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Tolerances: activations are quantized to 8 bits per block (as llama.cpp
/// does) and K/V are stored in f16, so quantized types sit near 1e-2.
fn tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 5e-3,
        _ => 3e-2,
    }
}

#[test]
fn forward_matches_reference_for_every_type_and_arch() {
    let dir = std::env::temp_dir().join(format!("srl-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    let mut report = Vec::new();
    for arch in Arch::ALL {
        for ty in types {
            let spec = TinySpec::new(arch);
            let mut w = TinyWeights::random(&spec);
            let path = dir.join(format!("{}-{}.gguf", arch.name(), ty.name()));
            w.write_gguf(&path, ty);
            w.reload_from_gguf(&path);
            let got = srl_logits(&path, &TOKENS, 4);
            let want = w.reference_logits(&TOKENS);
            let err = rel_err(&got, &want);
            report.push(format!("{} {}: {err:.2e}", arch.name(), ty.name()));
            assert!(
                err < tolerance(ty),
                "{} {}: relative error {err}",
                arch.name(),
                ty.name()
            );
        }
    }
    eprintln!("{}", report.join("\n"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn safetensors_and_gguf_give_the_same_logits() {
    let dir = std::env::temp_dir().join(format!("srl-tiny-st-{}", std::process::id()));
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::SmolLm3] {
        let w = TinyWeights::random(&TinySpec::new(arch));
        let gguf = dir.join(format!("{}.gguf", arch.name()));
        let st = dir.join(format!("{}-hf", arch.name()));
        std::fs::create_dir_all(&dir).unwrap();
        w.write_gguf(&gguf, GgmlType::F32);
        w.write_safetensors(&st);
        let a = srl_logits(&gguf, &TOKENS, 7);
        let b = srl_logits(&st, &TOKENS, 7);
        let err = rel_err(&a, &b);
        // Only the element order inside q.k differs (the two Q/K layouts),
        // seen through attention's f16 accumulator; it grows with depth
        // (1.7e-4 measured with SmolLM3's 4 layers).
        assert!(
            err < 3e-4,
            "{}: gguf vs safetensors relative error {err}",
            arch.name()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Llama 3's RoPE scaling: its GGUF file (`rope_freqs.weight`) and its
/// Hugging Face folder (`rope_scaling` in config.json, the factors computed
/// by srl) give the plain f32 reference's logits, which the scaling changes.
#[test]
fn llama3_rope_scaling_in_both_formats() {
    let dir = std::env::temp_dir().join(format!("srl-tiny-rope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = TinySpec::new(Arch::Llama);
    spec.llama3_rope = true;
    let factors = spec.rope_factors().unwrap();
    assert!(factors.contains(&1.0) && factors.contains(&32.0));
    assert!(factors.iter().any(|&f| f > 1.0 && f < 32.0), "{factors:?}");
    let w = TinyWeights::random(&spec);
    let (gguf, st) = (dir.join("llama3.gguf"), dir.join("llama3-hf"));
    w.write_gguf(&gguf, GgmlType::F32);
    w.write_safetensors(&st);
    // Long enough for the slow pairs the scaling changes to turn.
    let tokens: Vec<u32> = (0..200).map(|i| (i * 37 % 311) as u32).collect();
    let want = w.reference_logits(&tokens);
    for path in [&gguf, &st] {
        let err = rel_err(&srl_logits(path, &tokens, 190), &want);
        // (f16 cache and attention accumulator over 200 positions)
        assert!(err < 2e-3, "{}: relative error {err}", path.display());
    }
    let mut plain = spec.clone();
    plain.llama3_rope = false;
    let unscaled = TinyWeights::random(&plain).reference_logits(&tokens);
    let change = rel_err(&unscaled, &want);
    eprintln!("the scaling changes the logits by {change:.2e}");
    assert!(
        change > 2e-2,
        "the scaling must change the logits ({change})"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A RoPE scaling srl does not run is refused, naming it, rather than run
/// as plain RoPE.
#[test]
fn unknown_rope_scaling_is_refused() {
    let dir = std::env::temp_dir().join(format!("srl-tiny-yarn-{}", std::process::id()));
    TinyWeights::random(&TinySpec::new(Arch::Qwen2)).write_safetensors(&dir);
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 4.0});
    std::fs::write(&path, config.to_string()).unwrap();
    let err = Model::open(&dir)
        .err()
        .expect("a yarn config must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("rope_scaling type 'yarn' is not supported"),
        "{msg}"
    );
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Files that parse but cannot run: clear errors naming the file and what is wrong.
#[test]
fn unknown_architecture_and_missing_tensors_are_refused() {
    use srl_models::formats::gguf::{GgufFile, GgufValue, GgufWriter};
    let dir = std::env::temp_dir().join(format!("srl-tiny-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.gguf");
    TinyWeights::random(&TinySpec::new(Arch::Llama)).write_gguf(&good, GgmlType::F32);
    let src = GgufFile::open(&good).unwrap();
    let rewrite = |name: &str, arch: &str, skip: &str| {
        let mut w = GgufWriter::new();
        for (k, v) in &src.metadata {
            w.set(k, v.clone());
        }
        w.set("general.architecture", GgufValue::String(arch.into()));
        for t in &src.tensors {
            if t.name != skip {
                w.add_tensor(&t.name, t.ty, &t.dims, src.tensor_data(t))
                    .unwrap();
            }
        }
        let p = dir.join(name);
        w.write(&p).unwrap();
        p
    };
    let err = |p: &std::path::Path| Model::open(p).err().expect("must be refused").to_string();
    let e = err(&rewrite("arch.gguf", "gpt5", ""));
    assert!(
        e.contains("arch.gguf") && e.contains("unsupported architecture 'gpt5'"),
        "{e}"
    );
    let e = err(&rewrite("missing.gguf", "llama", "blk.1.ffn_up.weight"));
    assert!(
        e.contains("missing.gguf") && e.contains("missing tensor 'blk.1.ffn_up.weight'"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A Hugging Face folder is read as transformers reads it: `model.safetensors`,
/// else the shards its index lists; any other `.safetensors` file in the folder
/// (an adapter, a dump with integer tensors) is not part of the model.
#[test]
fn hf_folder_reads_only_the_files_transformers_reads() {
    let dir = std::env::temp_dir().join(format!("srl-tiny-hf-{}", std::process::id()));
    let w = TinyWeights::random(&TinySpec::new(Arch::Qwen2));
    let want = {
        let single = dir.join("single");
        w.write_safetensors(&single);
        srl_logits(&single, &TOKENS, 7)
    };
    // A stray file whose tensor srl cannot read (I64, as a tokenizer dump has).
    let stray = |at: &std::path::Path| {
        let ids: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![3], &ids).unwrap();
        safetensors::serialize_to_file([("input_ids", view)], &None, at).unwrap();
    };

    // 1. model.safetensors beside an extra file.
    let single = dir.join("single");
    stray(&single.join("input_ids.safetensors"));
    assert_eq!(srl_logits(&single, &TOKENS, 7), want);

    // 2. Shards named by the index beside an extra file: the index decides.
    let sharded = dir.join("sharded");
    w.write_safetensors(&sharded);
    let st = std::fs::read(sharded.join("model.safetensors")).unwrap();
    let all = safetensors::SafeTensors::deserialize(&st).unwrap();
    let mut names: Vec<String> = all.names().into_iter().cloned().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let views: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|n| (n.clone(), all.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, &None, &sharded.join(shard)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), shard.into());
        }
    }
    std::fs::remove_file(sharded.join("model.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    stray(&sharded.join("consolidated.safetensors"));
    assert_eq!(srl_logits(&sharded, &TOKENS, 7), want);

    // 3. Neither model.safetensors nor an index: a clear error naming both.
    std::fs::remove_file(sharded.join("model.safetensors.index.json")).unwrap();
    let e = Model::open(&sharded)
        .err()
        .expect("must be refused")
        .to_string();
    assert!(
        e.contains("sharded") && e.contains("no model.safetensors or model.safetensors.index.json"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

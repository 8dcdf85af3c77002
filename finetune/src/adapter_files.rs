//! Adapter files: writing a trained [`LoraParams`] as a Hugging Face PEFT
//! folder and as a llama.cpp GGUF LoRA, and reading either back (`--resume`,
//! `--init-adapter`).
//!
//! - PEFT: `adapter_config.json` (PEFT 0.13's LoraConfig keys) and
//!   `adapter_model.safetensors` with `base_model.model.model.layers.{L}.
//!   self_attn.q_proj.lora_A.weight` [r, in] and `.lora_B.weight` [out, r], F32,
//!   rows in Hugging Face order.
//! - GGUF (what llama.cpp's `llama_adapter_lora_init` loads, the layout of its
//!   convert_lora_to_gguf.py): `general.architecture`, `general.type =
//!   adapter`, `adapter.type = lora`, `adapter.lora.alpha` (f32), tensors
//!   `blk.{L}.attn_q.weight.lora_a` with ggml dims [in, r] and `.lora_b`
//!   [r, out], F32, rows in GGUF order (llama-arch Q/K rows permuted, as the
//!   converter permutes lora_B with the base's Q/K).
//!
//! [`LoraParams`] hold rows in the model's own layout; the one decision of
//! this file is whether a file's Q/K `b` rows differ from it
//! ([`qk_rows_differ`]); rope.rs does the permutation.

use crate::atomic_file::write_atomic;
use serde_json::{json, Value};
use srl_models::formats::gguf::{GgufFile, GgufValue, GgufWriter};
use srl_models::layers::rope::{gguf_rows_to_hf, hf_rows_to_gguf};
use srl_models::{
    LoraConfig, LoraParams, LoraTensor, Model, ModelConfig, ModelError, RopeStyle, Target,
};
use srl_quant::GgmlType;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// The PEFT folder's files.
pub const PEFT_CONFIG: &str = "adapter_config.json";
pub const PEFT_WEIGHTS: &str = "adapter_model.safetensors";
/// GGUF key for the training dropout (not part of llama.cpp's format, which
/// ignores it; it lets a GGUF adapter resume with its config intact).
pub const GGUF_DROPOUT_KEY: &str = "srl.lora.dropout";

fn config_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn format_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a file's Q/K rows are in another order than the model's.
/// PEFT files are in Hugging Face order; GGUF adapters in GGUF order, which
/// for llama-arch means permuted (llama.cpp only ever sees GGUF bases). The
/// model is interleaved when it was opened from a llama-arch GGUF file.
fn qk_rows_differ(c: &ModelConfig, gguf_file: bool) -> bool {
    let file_interleaved = gguf_file && c.arch.family().gguf_permutes_qk;
    file_interleaved != (c.rope_style == RopeStyle::Interleaved)
}

fn is_qk(t: Target) -> bool {
    matches!(t, Target::Q | Target::K)
}

/// `b` ([rows, rank]) as the file stores it.
fn b_to_file(t: &LoraTensor, rank: usize, c: &ModelConfig, gguf_file: bool) -> Vec<f32> {
    if !is_qk(t.target) || !qk_rows_differ(c, gguf_file) {
        t.b.clone()
    } else if c.rope_style == RopeStyle::Interleaved {
        gguf_rows_to_hf(&t.b, rank, c.head_dim)
    } else {
        hf_rows_to_gguf(&t.b, rank, c.head_dim)
    }
}

/// Inverse of [`b_to_file`].
fn b_from_file(
    b: Vec<f32>,
    target: Target,
    rank: usize,
    c: &ModelConfig,
    gguf_file: bool,
) -> Vec<f32> {
    if !is_qk(target) || !qk_rows_differ(c, gguf_file) {
        b
    } else if c.rope_style == RopeStyle::Interleaved {
        hf_rows_to_gguf(&b, rank, c.head_dim)
    } else {
        gguf_rows_to_hf(&b, rank, c.head_dim)
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An f32 as the JSON float its decimal form reads as (0.05, not
/// 0.05000000074505806).
fn json_float(x: f32) -> Value {
    json!(x.to_string().parse::<f64>().unwrap_or(x as f64))
}

/// Integral values as integers (PEFT's `lora_alpha` is an int), others as
/// [`json_float`].
fn json_number(x: f32) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        json!(x as i64)
    } else {
        json_float(x)
    }
}

/// What PEFT's `base_model_name_or_path` should say about `model`.
fn base_model_name(model: &Model) -> String {
    let g = model.files.gguf();
    g.and_then(|g| g.get_str("general.source.huggingface.repository"))
        .or_else(|| g.and_then(|g| g.get_str("general.name")))
        .map(str::to_string)
        .unwrap_or_else(|| model.files.path().display().to_string())
}

/// PEFT's LoraConfig for `params` (the keys PEFT 0.13 writes, sorted).
pub fn peft_config(params: &LoraParams, model: &Model) -> Value {
    let cfg = &params.config;
    let n_layer = model.config.n_layer;
    let mut targets: Vec<Target> = cfg.targets.clone();
    targets.sort();
    targets.dedup();
    let target_modules: Vec<&str> = targets.iter().map(|t| t.peft_name()).collect();
    let layers = cfg.layers(n_layer);
    let (layers_to_transform, layers_pattern) = if layers.len() == n_layer {
        (Value::Null, Value::Null)
    } else {
        (json!(layers.collect::<Vec<_>>()), json!("layers"))
    };
    json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model_name(model),
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": layers_pattern,
        "layers_to_transform": layers_to_transform,
        "loftq_config": {},
        "lora_alpha": json_number(cfg.alpha),
        "lora_dropout": json_float(cfg.dropout),
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": cfg.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": target_modules,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false,
    })
}

/// The PEFT tensor name stem of an adapted layer.
fn peft_stem(layer: usize, target: Target) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}",
        target.hf_module()
    )
}

/// Writes `params` as a PEFT folder (created if needed; each file atomically).
pub fn write_peft(dir: &Path, params: &LoraParams, model: &Model) -> Result<()> {
    params.check_fits(&model.config, dir)?;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let r = params.config.rank;
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in &params.tensors {
        let stem = peft_stem(t.layer, t.target);
        blobs.push((
            format!("{stem}.lora_A.weight"),
            vec![r, t.cols],
            le_bytes(&t.a),
        ));
        let b = b_to_file(t, r, &model.config, false);
        blobs.push((
            format!("{stem}.lora_B.weight"),
            vec![t.rows, r],
            le_bytes(&b),
        ));
    }
    let mut views = Vec::with_capacity(blobs.len());
    for (name, shape, bytes) in &blobs {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map_err(|e| format_err(dir, format!("tensor '{name}': {e}")))?;
        views.push((name.as_str(), view));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::serialize(views, &Some(meta))
        .map_err(|e| format_err(dir, format!("cannot serialize the adapter: {e}")))?;
    write_atomic(&dir.join(PEFT_WEIGHTS), &st)?;
    let cfg = serde_json::to_string_pretty(&peft_config(params, model)).expect("JSON value");
    write_atomic(&dir.join(PEFT_CONFIG), format!("{cfg}\n").as_bytes())
}

/// Writes `params` as a llama.cpp GGUF LoRA adapter (atomically).
pub fn write_gguf_adapter(path: &Path, params: &LoraParams, model: &Model) -> Result<()> {
    params.check_fits(&model.config, path)?;
    let cfg = &params.config;
    if cfg.alpha == 0.0 {
        // llama.cpp reads alpha 0 as "scale 1", not as "no update".
        return Err(config_err(
            path,
            "lora alpha 0 cannot be written: llama.cpp reads it as scale 1",
        ));
    }
    let r = cfg.rank;
    let mut w = GgufWriter::new();
    let s = |v: &str| GgufValue::String(v.to_string());
    w.set("general.architecture", s(model.config.arch.name()));
    w.set("general.type", s("adapter"));
    w.set(
        "general.name",
        s(&format!("{} LoRA", base_model_name(model))),
    );
    w.set("general.quantization_version", GgufValue::U32(2));
    w.set("adapter.type", s("lora"));
    w.set("adapter.lora.alpha", GgufValue::F32(cfg.alpha));
    w.set(GGUF_DROPOUT_KEY, GgufValue::F32(cfg.dropout));
    for t in &params.tensors {
        let base = t.base_name();
        let b = b_to_file(t, r, &model.config, true);
        w.add_tensor(
            &format!("{base}.lora_a"),
            GgmlType::F32,
            &[t.cols, r],
            le_bytes(&t.a),
        )
        .map_err(|e| format_err(path, e))?;
        w.add_tensor(
            &format!("{base}.lora_b"),
            GgmlType::F32,
            &[r, t.rows],
            le_bytes(&b),
        )
        .map_err(|e| format_err(path, e))?;
    }
    w.write(path)
}

/// Reads a PEFT folder (or its `adapter_model.safetensors` /
/// `adapter_config.json`) or a GGUF LoRA file into f32 [`LoraParams`] in the
/// model's layout, refusing an adapter made for another base.
pub fn read_adapter(path: &Path, model: &Model) -> Result<LoraParams> {
    let peft_file = path
        .extension()
        .is_some_and(|e| e == "safetensors" || e == "json");
    if path.is_dir() {
        read_peft(path, model)
    } else if peft_file {
        read_peft(path.parent().unwrap_or(Path::new(".")), model)
    } else {
        read_gguf_adapter(path, model)
    }
}

/// One tensor of an adapter file before pairing: (layer, target, is_a).
type Key = (usize, Target, bool);

/// Pairs A and B matrices into tensors and recovers the LoraConfig: the rank
/// from the shapes, the targets and the adapted layers from the names.
fn assemble(
    path: &Path,
    model: &Model,
    mats: HashMap<Key, (Vec<usize>, Vec<f32>)>,
    alpha: f32,
    dropout: f32,
    gguf_file: bool,
) -> Result<LoraParams> {
    let c = &model.config;
    let mut rank = None;
    let mut tensors = Vec::new();
    for (&(layer, target, is_a), (shape, a)) in &mats {
        if !is_a {
            continue;
        }
        let name = format!("layer {layer} {target}");
        let Some((b_shape, b)) = mats.get(&(layer, target, false)) else {
            return Err(format_err(path, format!("{name}: lora A without lora B")));
        };
        // shape is [r, cols] for A and [rows, r] for B (row-major).
        let (r, cols, rows) = (shape[0], shape[1], b_shape[0]);
        if b_shape[1] != r {
            return Err(format_err(
                path,
                format!("{name}: lora A {shape:?} and lora B {b_shape:?} do not share a rank"),
            ));
        }
        if *rank.get_or_insert(r) != r {
            return Err(format_err(
                path,
                format!(
                    "{name} has rank {r}, others {}: srl adapters have one rank",
                    rank.unwrap_or(0)
                ),
            ));
        }
        tensors.push(LoraTensor {
            layer,
            target,
            rows,
            cols,
            a: a.clone(),
            b: b_from_file(b.clone(), target, r, c, gguf_file),
        });
    }
    if let Some(&(layer, target, _)) = mats
        .keys()
        .find(|k| !k.2 && !mats.contains_key(&(k.0, k.1, true)))
    {
        return Err(format_err(
            path,
            format!("layer {layer} {target}: lora B without lora A"),
        ));
    }
    let Some(rank) = rank else {
        return Err(format_err(path, "the adapter holds no LoRA tensors"));
    };
    let targets: BTreeSet<Target> = tensors.iter().map(|t| t.target).collect();
    let first = tensors.iter().map(|t| t.layer).min().unwrap_or(0);
    let config = LoraConfig {
        rank,
        // llama.cpp applies no alpha/r factor when alpha is 0: scale 1.
        alpha: if alpha == 0.0 { rank as f32 } else { alpha },
        dropout,
        targets: targets.into_iter().collect(),
        last_layers: (first > 0).then(|| c.n_layer.saturating_sub(first)),
    };
    let params = LoraParams::from_tensors(config, tensors);
    params.check_fits(c, path)?;
    Ok(params)
}

/// Reads a PEFT folder. Refuses what srl cannot represent (DoRA, per-module
/// ranks or alphas, fan-in-fan-out layers, extra trained tensors); rsLoRA's
/// scale alpha/sqrt(r) is kept by storing alpha * sqrt(r).
pub fn read_peft(dir: &Path, model: &Model) -> Result<LoraParams> {
    let cfg_path = dir.join(PEFT_CONFIG);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| io_err(&cfg_path, e))?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| format_err(&cfg_path, format!("invalid JSON: {e}")))?;
    let get = |k: &str| cfg.get(k).filter(|v| !v.is_null());
    if let Some(t) = get("peft_type").and_then(Value::as_str) {
        if t != "LORA" {
            return Err(config_err(
                &cfg_path,
                format!("peft_type is '{t}', not LORA"),
            ));
        }
    }
    for key in ["use_dora", "fan_in_fan_out"] {
        if get(key).and_then(Value::as_bool) == Some(true) {
            return Err(config_err(
                &cfg_path,
                format!("{key} adapters are not supported"),
            ));
        }
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if get(key)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(config_err(
                &cfg_path,
                format!("{key} is not supported: srl adapters have one rank and one alpha"),
            ));
        }
    }
    let num = |k: &str, default: f64| get(k).and_then(Value::as_f64).unwrap_or(default);
    // PEFT's defaults: r 8, lora_alpha 8, lora_dropout 0.
    let r = num("r", 8.0);
    let mut alpha = num("lora_alpha", 8.0);
    if get("use_rslora").and_then(Value::as_bool) == Some(true) {
        alpha *= r.sqrt();
    }
    let dropout = num("lora_dropout", 0.0) as f32;

    let st_path = dir.join(PEFT_WEIGHTS);
    let bytes = std::fs::read(&st_path).map_err(|e| io_err(&st_path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format_err(&st_path, format!("not a valid safetensors file: {e}")))?;
    let mut mats = HashMap::new();
    for (name, view) in st.tensors() {
        let Some((layer, target, is_a)) = parse_peft_name(&name) else {
            return Err(format_err(
                &st_path,
                format!(
                    "tensor '{name}' is not a lora_A/lora_B of a q/k/v/o/gate/up/down projection; srl cannot use this adapter"
                ),
            ));
        };
        let shape = view.shape().to_vec();
        if shape.len() != 2 {
            return Err(format_err(
                &st_path,
                format!("'{name}' is not a matrix: {shape:?}"),
            ));
        }
        let data = floats_of_safetensor(view.dtype(), view.data()).ok_or_else(|| {
            format_err(&st_path, format!("'{name}' has dtype {:?}", view.dtype()))
        })?;
        if r as usize != if is_a { shape[0] } else { shape[1] } {
            return Err(config_err(
                &st_path,
                format!("'{name}' {shape:?} is not of rank r = {r} (adapter_config.json)"),
            ));
        }
        mats.insert((layer, target, is_a), (shape, data));
    }
    assemble(dir, model, mats, alpha as f32, dropout, false)
}

/// `base_model.model.model.layers.{L}.{module}.lora_{A,B}.weight`.
fn parse_peft_name(name: &str) -> Option<(usize, Target, bool)> {
    let (stem, is_a) = if let Some(s) = name.strip_suffix(".lora_A.weight") {
        (s, true)
    } else {
        (name.strip_suffix(".lora_B.weight")?, false)
    };
    let stem = stem.strip_prefix("base_model.model.").unwrap_or(stem);
    let (layer, module) = stem.strip_prefix("model.layers.")?.split_once('.')?;
    let target = Target::ALL.into_iter().find(|t| t.hf_module() == module)?;
    Some((layer.parse().ok()?, target, is_a))
}

fn floats_of_safetensor(dtype: safetensors::Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let pairs = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    Some(match dtype {
        safetensors::Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => pairs.map(|b| half::f16::from_bits(b).to_f32()).collect(),
        safetensors::Dtype::BF16 => pairs.map(|b| half::bf16::from_bits(b).to_f32()).collect(),
        _ => return None,
    })
}

/// Reads a GGUF LoRA adapter (any element type srl can dequantize).
pub fn read_gguf_adapter(path: &Path, model: &Model) -> Result<LoraParams> {
    let file = GgufFile::open(path)?;
    if file.get_str("general.type") != Some("adapter")
        || file.get_str("adapter.type") != Some("lora")
    {
        return Err(config_err(
            path,
            "not a LoRA adapter (general.type must be 'adapter' and adapter.type 'lora')",
        ));
    }
    let arch = file.architecture().unwrap_or("");
    if arch != model.config.arch.name() {
        return Err(config_err(
            path,
            format!(
                "this adapter is for architecture '{arch}', the model is '{}'",
                model.config.arch.name()
            ),
        ));
    }
    let alpha = file.get_f32("adapter.lora.alpha").unwrap_or(0.0);
    let dropout = file.get_f32(GGUF_DROPOUT_KEY).unwrap_or(0.0);
    let mut mats = HashMap::new();
    for t in &file.tensors {
        let Some((layer, target, is_a)) = parse_gguf_name(&t.name) else {
            return Err(format_err(
                path,
                format!(
                    "tensor '{}' is not a lora_a/lora_b of a q/k/v/o/gate/up/down weight; srl cannot use this adapter",
                    t.name
                ),
            ));
        };
        if t.dims.len() != 2 {
            return Err(format_err(
                path,
                format!("'{}' is not a matrix: {:?}", t.name, t.dims),
            ));
        }
        let mut data = vec![0.0f32; t.n_elements()];
        srl_quant::dequantize_row(t.ty, file.tensor_data(t), &mut data)?;
        mats.insert((layer, target, is_a), (vec![t.dims[1], t.dims[0]], data));
    }
    assemble(path, model, mats, alpha, dropout, true)
}

/// `blk.{L}.{stem}.weight.lora_{a,b}`.
fn parse_gguf_name(name: &str) -> Option<(usize, Target, bool)> {
    let (base, is_a) = if let Some(s) = name.strip_suffix(".lora_a") {
        (s, true)
    } else {
        (name.strip_suffix(".lora_b")?, false)
    };
    let (layer, stem) = base
        .strip_prefix("blk.")?
        .strip_suffix(".weight")?
        .split_once('.')?;
    let target = Target::ALL.into_iter().find(|t| t.gguf_stem() == stem)?;
    Some((layer.parse().ok()?, target, is_a))
}

/// Where `write_adapter_folder` puts the GGUF form inside a folder.
pub const GGUF_IN_FOLDER: &str = "adapter.gguf";

/// Writes both forms into `dir`: the PEFT files and `adapter.gguf`.
pub fn write_adapter_folder(dir: &Path, params: &LoraParams, model: &Model) -> Result<PathBuf> {
    write_peft(dir, params, model)?;
    let gguf = dir.join(GGUF_IN_FOLDER);
    write_gguf_adapter(&gguf, params, model)?;
    Ok(gguf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use srl_models::lora_params::SplitMix64;
    use srl_models::testing::{TinySpec, TinyWeights};
    use srl_models::{Arch, Logits, LoraAdapter, State};

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("srl-adapter-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A random adapter (B non-zero, so it changes the model).
    pub(crate) fn random_params(c: &ModelConfig, config: LoraConfig, seed: u64) -> LoraParams {
        let mut p = LoraParams::init(c, config, seed);
        let mut rng = SplitMix64(seed + 7);
        for t in &mut p.tensors {
            for v in &mut t.b {
                *v = (rng.next_f32() * 2.0 - 1.0) * 0.05;
            }
        }
        p
    }

    pub(crate) fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut kv = model.new_cache(32);
        let mut st = State::new();
        model
            .forward(tokens, &mut kv, &mut st, Logits::All, &pool)
            .unwrap();
        st.logits.clone()
    }

    fn configs() -> [LoraConfig; 2] {
        [
            LoraConfig {
                rank: 4,
                alpha: 8.0,
                dropout: 0.05,
                ..LoraConfig::default()
            },
            LoraConfig {
                rank: 2,
                alpha: 3.5,
                dropout: 0.0,
                targets: vec![Target::Q, Target::K, Target::Down],
                last_layers: Some(1),
            },
        ]
    }

    /// The three layouts: llama GGUF (interleaved Q/K), qwen2 GGUF, and a
    /// llama Hugging Face folder (HF order).
    fn bases(dir: &Path) -> Vec<(String, Model)> {
        let mut out = Vec::new();
        for arch in Arch::ALL {
            let w = TinyWeights::random(&TinySpec::new(arch));
            let p = dir.join(format!("{}.gguf", arch.name()));
            w.write_gguf(&p, GgmlType::F32);
            out.push((arch.name().to_string(), Model::open(&p).unwrap()));
        }
        let w = TinyWeights::random(&TinySpec::new(Arch::Llama));
        let p = dir.join("llama-hf");
        w.write_safetensors(&p);
        out.push(("llama-hf".to_string(), Model::open(&p).unwrap()));
        out
    }

    #[test]
    fn round_trip_both_formats_all_layouts() {
        let dir = temp_dir("rt");
        for (name, model) in bases(&dir) {
            for (i, cfg) in configs().into_iter().enumerate() {
                let p = random_params(&model.config, cfg, 3 + i as u64);
                let peft = dir.join(format!("{name}-{i}-peft"));
                write_peft(&peft, &p, &model).unwrap();
                assert_eq!(read_adapter(&peft, &model).unwrap(), p, "{name} {i} peft");
                let gguf = dir.join(format!("{name}-{i}.gguf"));
                write_gguf_adapter(&gguf, &p, &model).unwrap();
                assert_eq!(read_adapter(&gguf, &model).unwrap(), p, "{name} {i} gguf");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The files load in srl's inference path, and the GGUF and PEFT forms of
    /// one adapter give identical logits (and differ from the base).
    #[test]
    fn written_adapters_load_and_agree() {
        let dir = temp_dir("logits");
        let tokens = [5u32, 77, 300, 12, 12, 200];
        for arch in Arch::ALL {
            let w = TinyWeights::random(&TinySpec::new(arch));
            let base = dir.join(format!("{}.gguf", arch.name()));
            w.write_gguf(&base, GgmlType::F32);
            let mut a = Model::open(&base).unwrap();
            let plain = logits(&a, &tokens);
            let p = random_params(&a.config, LoraConfig::default(), 11);
            let (peft, gguf) = (
                dir.join(format!("{}-peft", arch.name())),
                dir.join("a.gguf"),
            );
            write_peft(&peft, &p, &a).unwrap();
            write_gguf_adapter(&gguf, &p, &a).unwrap();
            a.add_lora(LoraAdapter::open(&gguf).unwrap(), 1.0).unwrap();
            let mut b = Model::open(&base).unwrap();
            b.add_lora(LoraAdapter::open(&peft).unwrap(), 1.0).unwrap();
            let (la, lb) = (logits(&a, &tokens), logits(&b, &tokens));
            assert_eq!(la, lb, "{}", arch.name());
            let moved = la
                .iter()
                .zip(&plain)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                moved > 1e-2,
                "{}: the adapter must change logits",
                arch.name()
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// One adapter trained on a llama GGUF base and on the same weights as a
    /// Hugging Face folder gives byte-identical files: GGUF adapters always
    /// carry GGUF's Q/K order, PEFT folders HF's.
    #[test]
    fn files_do_not_depend_on_the_base_layout() {
        let dir = temp_dir("layout");
        let w = TinyWeights::random(&TinySpec::new(Arch::Llama));
        w.write_gguf(&dir.join("base.gguf"), GgmlType::F32);
        w.write_safetensors(&dir.join("hf"));
        let gg = Model::open(&dir.join("base.gguf")).unwrap();
        let hf = Model::open(&dir.join("hf")).unwrap();
        assert_eq!(gg.config.rope_style, RopeStyle::Interleaved);
        assert_eq!(hf.config.rope_style, RopeStyle::Halves);
        let p_hf = random_params(&hf.config, LoraConfig::default(), 5);
        let mut p_gg = p_hf.clone();
        for t in &mut p_gg.tensors {
            if is_qk(t.target) {
                t.b = hf_rows_to_gguf(&t.b, p_hf.config.rank, gg.config.head_dim);
            }
        }
        for (m, p, tag) in [(&gg, &p_gg, "gg"), (&hf, &p_hf, "hf")] {
            write_peft(&dir.join(format!("peft-{tag}")), p, m).unwrap();
            write_gguf_adapter(&dir.join(format!("{tag}.gguf")), p, m).unwrap();
        }
        let read = |p: PathBuf| std::fs::read(p).unwrap();
        assert!(
            read(dir.join("peft-gg").join(PEFT_WEIGHTS))
                == read(dir.join("peft-hf").join(PEFT_WEIGHTS))
        );
        let (a, b) = (
            GgufFile::open(dir.join("gg.gguf")).unwrap(),
            GgufFile::open(dir.join("hf.gguf")).unwrap(),
        );
        for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
            assert_eq!(ta.name, tb.name);
            assert!(a.tensor_data(ta) == b.tensor_data(tb), "{}", ta.name);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn adapters_for_another_base_are_refused() {
        let dir = temp_dir("bad");
        let w = TinyWeights::random(&TinySpec::new(Arch::Qwen2));
        w.write_gguf(&dir.join("qwen.gguf"), GgmlType::F32);
        let qwen = Model::open(&dir.join("qwen.gguf")).unwrap();
        let p = random_params(&qwen.config, LoraConfig::default(), 1);
        write_peft(&dir.join("peft"), &p, &qwen).unwrap();
        write_gguf_adapter(&dir.join("a.gguf"), &p, &qwen).unwrap();

        let mut spec = TinySpec::new(Arch::Qwen2);
        spec.n_ff = 768;
        TinyWeights::random(&spec).write_gguf(&dir.join("wide.gguf"), GgmlType::F32);
        let wide = Model::open(&dir.join("wide.gguf")).unwrap();
        for a in ["peft", "a.gguf"] {
            let e = read_adapter(&dir.join(a), &wide).unwrap_err().to_string();
            assert!(e.contains("adapter for the wrong base"), "{e}");
            assert!(e.contains(a), "{e}");
        }
        let llama = dir.join("llama.gguf");
        TinyWeights::random(&TinySpec::new(Arch::Llama)).write_gguf(&llama, GgmlType::F32);
        let llama = Model::open(&llama).unwrap();
        let e = read_adapter(&dir.join("a.gguf"), &llama)
            .unwrap_err()
            .to_string();
        assert!(e.contains("for architecture 'qwen2'"), "{e}");
        let e = read_adapter(&dir.join("llama.gguf"), &llama)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a LoRA adapter"), "{e}");

        // What srl cannot represent is refused, not dropped.
        let cfg_path = dir.join("peft").join(PEFT_CONFIG);
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg["use_dora"] = json!(true);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let e = read_adapter(&dir.join("peft"), &qwen)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use_dora"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn peft_config_keys() {
        let dir = temp_dir("cfg");
        let w = TinyWeights::random(&TinySpec::new(Arch::Llama));
        w.write_gguf(&dir.join("m.gguf"), GgmlType::F32);
        let m = Model::open(&dir.join("m.gguf")).unwrap();
        let [all, last] = configs();
        let c = peft_config(&LoraParams::zeros(&m.config, all), &m);
        assert_eq!(c["layers_to_transform"], Value::Null);
        assert_eq!(c["lora_dropout"], json!(0.05));
        assert_eq!(c["lora_alpha"], json!(8));
        assert_eq!(c["base_model_name_or_path"], json!("tiny"));
        assert_eq!(c["target_modules"].as_array().unwrap().len(), 7);
        let c = peft_config(&LoraParams::zeros(&m.config, last), &m);
        assert_eq!(c["layers_to_transform"], json!([1]));
        assert_eq!(
            c["target_modules"],
            json!(["q_proj", "k_proj", "down_proj"])
        );
        assert_eq!(c["lora_alpha"], json!(3.5));
        assert!(c["lora_dropout"].is_f64());
        std::fs::remove_dir_all(&dir).ok();
    }
}

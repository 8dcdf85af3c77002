//! Tiny random models for fast tests: written to disk as GGUF (any family's
//! layout, any weight type) or as a Hugging Face safetensors folder,
//! together with the f32 weights they hold, so a test can compare srl's
//! forward pass with a plain reference.

use crate::families::Arch;
use crate::formats::gguf::{GgufValue, GgufWriter};
use crate::layers::rope::hf_rows_to_gguf;
use srl_quant::GgmlType;
use std::collections::BTreeMap;
use std::path::Path;

/// Sizes of a tiny model (multiples of 256 where k-quants need them).
#[derive(Debug, Clone)]
pub struct TinySpec {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    /// None: n_embd / n_head. Set apart for Qwen3, as its real models do.
    pub head_dim: Option<usize>,
    pub vocab: usize,
    pub tied: bool,
    /// Llama 3's RoPE scaling (factor 32, low 1, high 4, original context
    /// 8192): `rope_freqs.weight` in GGUF, `rope_scaling` in config.json.
    pub llama3_rope: bool,
    /// The sliding window of the families that have one (Gemma 3).
    pub sliding_window: Option<usize>,
    pub seed: u64,
}

impl TinySpec {
    pub fn new(arch: Arch) -> TinySpec {
        TinySpec {
            arch,
            // Enough layers for a NoPE one.
            n_layer: arch.family().no_rope_every.unwrap_or(2),
            n_embd: 256,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            head_dim: arch.family().qk_norm.then_some(128),
            vocab: 320,
            tied: matches!(arch, Arch::Llama | Arch::SmolLm3),
            llama3_rope: false,
            sliding_window: arch.family().global_every.map(|_| 4),
            seed: 1,
        }
    }

    /// The RoPE factors of `llama3_rope`, [D/2].
    pub fn rope_factors(&self) -> Option<Vec<f32>> {
        self.llama3_rope.then(|| {
            crate::layers::rope::llama3_rope_factors(
                10000.0,
                self.head_dim(),
                32.0,
                1.0,
                4.0,
                8192.0,
            )
        })
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.n_embd / self.n_head)
    }
}

/// f32 weights in Hugging Face layout, keyed by GGUF name; each value is
/// (row-major data, [rows, cols]) with rows = output features.
pub struct TinyWeights {
    pub spec: TinySpec,
    pub tensors: BTreeMap<String, (Vec<f32>, Vec<usize>)>,
}

/// A small xorshift generator: tests must not depend on a crate's RNG stream.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

impl TinyWeights {
    pub fn random(spec: &TinySpec) -> TinyWeights {
        let mut rng = Rng(spec.seed.wrapping_mul(0x9e3779b97f4a7c15) | 1);
        let mut tensors = BTreeMap::new();
        let mut add = |name: String, rows: usize, cols: usize, scale: f32, offset: f32| {
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| offset + scale * rng.next_f32())
                .collect();
            let shape = if cols == 1 {
                vec![rows]
            } else {
                vec![rows, cols]
            };
            tensors.insert(name, (data, shape));
        };
        let (c, f) = (spec.n_embd, spec.n_ff);
        let hd = spec.head_dim();
        let (qd, kvd) = (spec.n_head * hd, spec.n_head_kv * hd);
        add("token_embd.weight".into(), spec.vocab, c, 1.0, 0.0);
        for l in 0..spec.n_layer {
            let p = format!("blk.{l}");
            add(format!("{p}.attn_norm.weight"), c, 1, 0.2, 1.0);
            add(format!("{p}.attn_q.weight"), qd, c, 0.15, 0.0);
            add(format!("{p}.attn_k.weight"), kvd, c, 0.15, 0.0);
            add(format!("{p}.attn_v.weight"), kvd, c, 0.15, 0.0);
            add(format!("{p}.attn_output.weight"), c, qd, 0.1, 0.0);
            if spec.arch.family().qk_norm {
                add(format!("{p}.attn_q_norm.weight"), hd, 1, 0.3, 1.0);
                add(format!("{p}.attn_k_norm.weight"), hd, 1, 0.3, 1.0);
            }
            if spec.arch.family().post_norms {
                add(format!("{p}.post_attention_norm.weight"), c, 1, 0.2, 1.0);
                add(format!("{p}.post_ffw_norm.weight"), c, 1, 0.2, 1.0);
            }
            if spec.arch.has_qkv_bias() {
                add(format!("{p}.attn_q.bias"), qd, 1, 0.5, 0.0);
                add(format!("{p}.attn_k.bias"), kvd, 1, 0.5, 0.0);
                add(format!("{p}.attn_v.bias"), kvd, 1, 0.5, 0.0);
            }
            add(format!("{p}.ffn_norm.weight"), c, 1, 0.2, 1.0);
            add(format!("{p}.ffn_gate.weight"), f, c, 0.1, 0.0);
            add(format!("{p}.ffn_up.weight"), f, c, 0.1, 0.0);
            add(format!("{p}.ffn_down.weight"), c, f, 0.07, 0.0);
        }
        add("output_norm.weight".into(), c, 1, 0.2, 1.0);
        if !spec.tied {
            add("output.weight".into(), spec.vocab, c, 0.2, 0.0);
        }
        TinyWeights {
            spec: spec.clone(),
            tensors,
        }
    }

    fn is_matrix(name: &str) -> bool {
        name.ends_with(".weight") && !name.contains("norm")
    }

    /// Replaces every tensor with what the GGUF file at `path` holds
    /// (dequantized, Hugging Face row order), so the f32 reference sees
    /// exactly the weights srl runs. (Re-quantizing dequantized k-quants is
    /// not idempotent, so a round trip in memory would not do.)
    pub fn reload_from_gguf(&mut self, path: &Path) {
        let g = crate::formats::gguf::GgufFile::open(path).unwrap();
        let head_dim = self.spec.head_dim();
        let arch = self.spec.arch;
        for (name, (data, shape)) in self.tensors.iter_mut() {
            let t = g.tensor_info(name).unwrap();
            let mut x = vec![0.0f32; t.n_elements()];
            srl_quant::dequantize_row(t.ty, g.tensor_data(t), &mut x).unwrap();
            let permuted = arch.family().gguf_permutes_qk;
            if permuted && (name.contains("attn_q.") || name.contains("attn_k.")) {
                let row_len = if shape.len() == 2 { shape[1] } else { 1 };
                x = crate::layers::rope::gguf_rows_to_hf(&x, row_len, head_dim);
            }
            *data = x;
        }
    }

    /// Writes a GGUF file with matrices in `ty` (norms and biases in F32),
    /// llama-arch Q/K rows permuted as llama.cpp's converter does.
    pub fn write_gguf(&self, path: &Path, ty: GgmlType) {
        let s = &self.spec;
        let arch = s.arch.name();
        let mut w = GgufWriter::new();
        w.set("general.architecture", GgufValue::String(arch.into()));
        w.set("general.name", GgufValue::String("tiny".into()));
        let u = |v: usize| GgufValue::U32(v as u32);
        w.set(&format!("{arch}.block_count"), u(s.n_layer));
        w.set(&format!("{arch}.context_length"), u(256));
        w.set(&format!("{arch}.embedding_length"), u(s.n_embd));
        w.set(&format!("{arch}.feed_forward_length"), u(s.n_ff));
        w.set(&format!("{arch}.attention.head_count"), u(s.n_head));
        w.set(&format!("{arch}.attention.head_count_kv"), u(s.n_head_kv));
        if let Some(win) = s.sliding_window {
            w.set(&format!("{arch}.attention.sliding_window"), u(win));
        }
        if let Some(d) = s.head_dim {
            w.set(&format!("{arch}.attention.key_length"), u(d));
            w.set(&format!("{arch}.attention.value_length"), u(d));
        }
        w.set(&format!("{arch}.rope.freq_base"), GgufValue::F32(10000.0));
        w.set(
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            GgufValue::F32(1e-5),
        );
        w.set(&format!("{arch}.vocab_size"), u(s.vocab));
        if let Some(f) = s.rope_factors() {
            let bytes: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.add_tensor("rope_freqs.weight", GgmlType::F32, &[f.len()], bytes)
                .unwrap();
        }
        for (name, (data, shape)) in &self.tensors {
            let mut data = data.clone();
            let permute = s.arch.family().gguf_permutes_qk
                && (name.contains("attn_q.") || name.contains("attn_k."));
            if permute {
                let row_len = if shape.len() == 2 { shape[1] } else { 1 };
                data = hf_rows_to_gguf(&data, row_len, s.head_dim());
            }
            let dims: Vec<usize> = shape.iter().rev().copied().collect();
            let t = if Self::is_matrix(name) {
                ty
            } else {
                GgmlType::F32
            };
            let rb = t.row_bytes(dims[0]).unwrap();
            let mut bytes = vec![0u8; rb * data.len() / dims[0]];
            for (r, row) in data.chunks(dims[0]).enumerate() {
                srl_quant::quantize_row(t, row, &mut bytes[r * rb..(r + 1) * rb]).unwrap();
            }
            w.add_tensor(name, t, &dims, bytes).unwrap();
        }
        w.write(path).unwrap();
    }

    /// Writes a Hugging Face folder (config.json + model.safetensors, f32).
    pub fn write_safetensors(&self, dir: &Path) {
        let s = &self.spec;
        std::fs::create_dir_all(dir).unwrap();
        let config = serde_json::json!({
            "model_type": s.arch.name(),
            "hidden_size": s.n_embd,
            "intermediate_size": s.n_ff,
            "num_hidden_layers": s.n_layer,
            "num_attention_heads": s.n_head,
            "num_key_value_heads": s.n_head_kv,
            "head_dim": s.head_dim(),
            "vocab_size": s.vocab,
            "max_position_embeddings": 256,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": s.tied,
        });
        let mut config = config;
        if s.llama3_rope {
            config["rope_scaling"] = serde_json::json!({
                "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
            });
        }
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, (data, shape))| {
                let hf = crate::formats::safetensors::hf_name_of_gguf(name).unwrap();
                let b: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (hf, b, shape.clone())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();
    }

    /// Plain f32 forward pass (HF layout, f32 everything): logits [T, V] of
    /// `tokens` starting at position 0.
    pub fn reference_logits(&self, tokens: &[u32]) -> Vec<f32> {
        let s = &self.spec;
        let (c, hd) = (s.n_embd, s.head_dim());
        let w = |n: &str| &self.tensors[n].0;
        let matvec = |m: &[f32], x: &[f32], rows: usize| -> Vec<f32> {
            let cols = x.len();
            (0..rows)
                .map(|r| {
                    m[r * cols..(r + 1) * cols]
                        .iter()
                        .zip(x)
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect()
        };
        let norm = |x: &[f32], g: &[f32]| -> Vec<f32> {
            debug_assert_eq!(x.len(), g.len());
            let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
            let sc = 1.0 / (ms + 1e-5).sqrt();
            x.iter().zip(g).map(|(v, g)| v * sc * g).collect()
        };
        let factors = s.rope_factors();
        let rope = |x: &mut [f32], pos: usize| {
            for head in x.chunks_mut(hd) {
                for i in 0..hd / 2 {
                    let f = factors.as_ref().map_or(1.0, |f| f[i]);
                    let theta = pos as f32 * 10000f32.powf(-2.0 * i as f32 / hd as f32) / f;
                    let (a, b) = (head[i], head[i + hd / 2]);
                    head[i] = a * theta.cos() - b * theta.sin();
                    head[i + hd / 2] = a * theta.sin() + b * theta.cos();
                }
            }
        };
        let family = s.arch.family();
        let embed_scale = if family.embed_scale {
            (c as f32).sqrt()
        } else {
            1.0
        };
        let mut xs: Vec<Vec<f32>> = tokens
            .iter()
            .map(|&t| {
                let row = &w("token_embd.weight")[t as usize * c..(t as usize + 1) * c];
                row.iter().map(|v| v * embed_scale).collect()
            })
            .collect();
        // Layers within the window: all but every `global_every`-th.
        let window = |l: usize| -> Option<usize> {
            let every = family.global_every?;
            let win = s.sliding_window?;
            (!(l + 1).is_multiple_of(every)).then_some(win)
        };
        let group = s.n_head / s.n_head_kv;
        for l in 0..s.n_layer {
            let p = format!("blk.{l}");
            let mut ks = Vec::new();
            let mut vs = Vec::new();
            let mut qs = Vec::new();
            for (pos, x) in xs.iter().enumerate() {
                let h = norm(x, w(&format!("{p}.attn_norm.weight")));
                let mut q = matvec(w(&format!("{p}.attn_q.weight")), &h, s.n_head * hd);
                let mut k = matvec(w(&format!("{p}.attn_k.weight")), &h, s.n_head_kv * hd);
                let mut v = matvec(w(&format!("{p}.attn_v.weight")), &h, s.n_head_kv * hd);
                if s.arch.has_qkv_bias() {
                    for (t, n) in [(&mut q, "attn_q"), (&mut k, "attn_k"), (&mut v, "attn_v")] {
                        for (a, b) in t.iter_mut().zip(w(&format!("{p}.{n}.bias"))) {
                            *a += b;
                        }
                    }
                }
                if s.arch.family().qk_norm {
                    for (t, n) in [(&mut q, "attn_q_norm"), (&mut k, "attn_k_norm")] {
                        let g = w(&format!("{p}.{n}.weight"));
                        let normed: Vec<f32> = t.chunks(hd).flat_map(|h| norm(h, g)).collect();
                        *t = normed;
                    }
                }
                if s.arch.rope_in_layer(l) {
                    rope(&mut q, pos);
                    rope(&mut k, pos);
                }
                qs.push(q);
                ks.push(k);
                vs.push(v);
            }
            for (pos, x) in xs.iter_mut().enumerate() {
                let mut att = vec![0.0f32; s.n_head * hd];
                for h in 0..s.n_head {
                    let kh = h / group;
                    let q = &qs[pos][h * hd..(h + 1) * hd];
                    let lo = window(l).map_or(0, |w| (pos + 1).saturating_sub(w));
                    let scores: Vec<f32> = (lo..=pos)
                        .map(|j| {
                            q.iter()
                                .zip(&ks[j][kh * hd..(kh + 1) * hd])
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                                / (hd as f32).sqrt()
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
                    let z: f32 = e.iter().sum();
                    for (j, ej) in e.iter().enumerate() {
                        for d in 0..hd {
                            att[h * hd + d] += ej / z * vs[lo + j][kh * hd + d];
                        }
                    }
                }
                let mut o = matvec(w(&format!("{p}.attn_output.weight")), &att, c);
                if family.post_norms {
                    o = norm(&o, w(&format!("{p}.post_attention_norm.weight")));
                }
                for (a, b) in x.iter_mut().zip(&o) {
                    *a += b;
                }
                let h = norm(x, w(&format!("{p}.ffn_norm.weight")));
                let g = matvec(w(&format!("{p}.ffn_gate.weight")), &h, s.n_ff);
                let u = matvec(w(&format!("{p}.ffn_up.weight")), &h, s.n_ff);
                let a: Vec<f32> = g
                    .iter()
                    .zip(&u)
                    .map(|(g, u)| match family.feed_forward {
                        crate::families::FeedForward::SwiGlu => g / (1.0 + (-g).exp()) * u,
                        crate::families::FeedForward::GeGlu => {
                            crate::layers::mlp::gelu_tanh(*g) * u
                        }
                    })
                    .collect();
                let mut d = matvec(w(&format!("{p}.ffn_down.weight")), &a, c);
                if family.post_norms {
                    d = norm(&d, w(&format!("{p}.post_ffw_norm.weight")));
                }
                for (a, b) in x.iter_mut().zip(&d) {
                    *a += b;
                }
            }
        }
        let head = if s.tied {
            w("token_embd.weight")
        } else {
            w("output.weight")
        };
        xs.iter()
            .flat_map(|x| matvec(head, &norm(x, w("output_norm.weight")), s.vocab))
            .collect()
    }
}

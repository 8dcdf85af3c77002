//! The decoder-only transformer shared by the families (families/): weights (views into
//! the model files), per-call scratch state, and the forward pass.
//!
//! Shapes use the crate letters: T tokens in this call, C channels, H heads,
//! D head dim, F feed-forward width, V vocab.

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::formats::files::{ModelFiles, TensorRef};
use crate::kv_cache::KvCache;
use crate::layers::attention::decode::{attention_segments, Heads, SeqRows};
use crate::layers::embedding::embed;
use crate::layers::linear::{
    check_quantizable, linear_slot, lora_rows, output_slot, Linear, LinearScratch, LoraRows,
};
use crate::layers::rope::rope_table;
use crate::lora::{ActiveLora, LoraAdapter};
use crate::lora_params::Target;
use crate::parallel::{add_par, gated_par, rms_norm_in_place_par, rms_norm_par, rope_par};
use half::f16;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// Per-head RMSNorm weights [D] of queries and keys (Qwen3, Gemma 3).
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// RMSNorm of the attention's output before its residual sum (Gemma 3).
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    /// RMSNorm of the feed-forward's output before its residual sum.
    pub post_ffn_norm: Option<Vec<f32>>,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

#[derive(Debug, Clone)]
pub struct Weights {
    /// [V, C] rows looked up by token id.
    pub token_embd: TensorRef,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// The output head: `output.weight`, or the token embedding when tied.
    pub output: Linear,
}

impl Weights {
    /// Every linear layer, block by block, then the output head.
    pub fn linears(&self) -> impl Iterator<Item = &Linear> + Clone {
        let blocks = self
            .layers
            .iter()
            .flat_map(|w| [&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down]);
        blocks.chain(std::iter::once(&self.output))
    }
}

/// A loaded model: its files (mapped), resolved config and weight views.
pub struct Model {
    pub config: ModelConfig,
    pub files: ModelFiles,
    pub weights: Weights,
    /// LoRA adapters applied on top of the base weights, in order.
    pub adapters: Vec<ActiveLora>,
}

/// Which positions of a forward call produce logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token (generation).
    Last,
    /// Every token (scoring, training).
    All,
    /// None (prefilling a prefix).
    None,
}

/// Scratch buffers of the forward pass, reused across calls so decoding
/// allocates nothing per token.
#[derive(Default)]
pub struct State {
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    rope: Vec<(f32, f32)>,
    /// The same for the sliding-window layers' RoPE base (Gemma 3).
    rope_swa: Vec<(f32, f32)>,
    rope_seg: Vec<(f32, f32)>,
    lin: LinearScratch,
    /// Rows of `x` that get logits.
    out_rows: Vec<usize>,
    /// How many of them each sequence has (the head's product groups).
    out_groups: Vec<usize>,
    embd_row: Vec<f32>,
    /// [T', V] logits of the last call (T' = 1 for `Logits::Last`).
    pub logits: Vec<f32>,
}

impl State {
    pub fn new() -> State {
        State::default()
    }
}

fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.resize(n, 0.0);
    }
}

impl Model {
    /// Opens a GGUF file or a safetensors folder and resolves its weights.
    pub fn open(path: &Path) -> Result<Model> {
        let files = ModelFiles::open(path)?;
        let config = match &files {
            ModelFiles::Gguf(g) => ModelConfig::from_gguf(g)?,
            ModelFiles::Safetensors(s) => {
                let has_head = s.tensors.contains_key("output.weight");
                ModelConfig::from_hf_config(&s.dir.join("config.json"), has_head)?
            }
        };
        let weights = Self::load_weights(&files, &config)?;
        Ok(Model {
            config,
            files,
            weights,
            adapters: Vec::new(),
        })
    }

    /// Applies a LoRA adapter (after checking it fits this model) with a
    /// user scale (1.0 = as trained).
    pub fn add_lora(&mut self, mut adapter: LoraAdapter, scale: f32) -> Result<()> {
        adapter.fit(self)?;
        self.adapters.push(ActiveLora { adapter, scale });
        Ok(())
    }

    fn load_weights(files: &ModelFiles, c: &ModelConfig) -> Result<Weights> {
        let norm_of = |name: &str, len: usize| -> Result<Vec<f32>> {
            let t = files.require(name, &[len])?;
            files.read_f32(&t)
        };
        let norm = |name: &str| norm_of(name, c.n_embd);
        let family = c.arch.family();
        let head_norm = |l: usize, which: &str| -> Result<Option<Vec<f32>>> {
            family
                .qk_norm
                .then(|| norm_of(&format!("blk.{l}.attn_{which}_norm.weight"), c.head_dim))
                .transpose()
        };
        let post_norm = |l: usize, which: &str| -> Result<Option<Vec<f32>>> {
            family
                .post_norms
                .then(|| norm(&format!("blk.{l}.{which}.weight")))
                .transpose()
        };
        let bias = family.qkv_bias;
        let (ce, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let mut layers = Vec::with_capacity(c.n_layer);
        for l in 0..c.n_layer {
            // (input, output) features and bias of a projection.
            let lin = |t: Target, cols, rows, bias| {
                let name = format!("blk.{l}.{}", t.gguf_stem());
                Linear::load(files, &name, cols, rows, bias, linear_slot(l, t))
            };
            layers.push(LayerWeights {
                attn_norm: norm(&format!("blk.{l}.attn_norm.weight"))?,
                q: lin(Target::Q, ce, qd, bias)?,
                k: lin(Target::K, ce, kvd, bias)?,
                v: lin(Target::V, ce, kvd, bias)?,
                o: lin(Target::O, qd, ce, false)?,
                q_norm: head_norm(l, "q")?,
                k_norm: head_norm(l, "k")?,
                post_attn_norm: post_norm(l, "post_attention_norm")?,
                ffn_norm: norm(&format!("blk.{l}.ffn_norm.weight"))?,
                post_ffn_norm: post_norm(l, "post_ffw_norm")?,
                gate: lin(Target::Gate, ce, ff, false)?,
                up: lin(Target::Up, ce, ff, false)?,
                down: lin(Target::Down, ff, ce, false)?,
            });
        }
        let token_embd = files.require("token_embd.weight", &[c.n_embd, c.vocab_size])?;
        check_quantizable(files, &token_embd)?;
        let output = if c.tied_embeddings {
            Linear {
                weight: token_embd.clone(),
                rows: c.vocab_size,
                cols: c.n_embd,
                bias: None,
                slot: output_slot(c.n_layer),
            }
        } else {
            Linear::load(
                files,
                "output",
                ce,
                c.vocab_size,
                false,
                output_slot(c.n_layer),
            )?
        };
        Ok(Weights {
            token_embd,
            layers,
            output_norm: norm("output_norm.weight")?,
            output,
        })
    }

    /// A KV cache for up to `n_ctx` positions (at most the trained context).
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        KvCache::new(&self.config, n_ctx.clamp(1, self.config.context_length))
    }

    /// Runs `tokens` (T) through the model at positions `kv.len()..kv.len()+T`,
    /// appending their keys and values to `kv`. Logits land in `state.logits`
    /// ([T', V], see [`Logits`]). Errors (and changes nothing) if a token id is
    /// out of range or the cache would overflow.
    pub fn forward(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        state: &mut State,
        logits: Logits,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        self.forward_batch(&mut [Segment { tokens, kv }], state, logits, pool)
    }

    /// Runs several sequences at once, each continuing its own cache: the
    /// linear layers see all their tokens as one matrix (the tiled kernels),
    /// rope, the cache and attention work per sequence. With one token per
    /// sequence this is batched decoding (G rollouts of one prompt, after
    /// `KvCache::copy_prefix` shared its prefill). Logits land in
    /// `state.logits` in sequence order ([`Logits::Last`]: one row per
    /// sequence). Each sequence's numbers equal its own [`Model::forward`]
    /// call when the kernels' results do not depend on the batch (they are
    /// tested to). Errors (and changes nothing) on a bad token or a full cache.
    pub fn forward_batch(
        &self,
        segments: &mut [Segment],
        state: &mut State,
        logits: Logits,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        self.forward_segments(segments, None, state, logits, pool)
    }

    /// [`Model::forward_batch`] with the adapters chosen per sequence:
    /// `adapters[i]` apply to `segments[i]`, in place of the model's own
    /// `adapters` (an empty slice: the base model). One batch can so serve
    /// requests for different adapters: the base weights are read once for
    /// all rows, each adapter's term only for its rows (consecutive sequences
    /// with the same adapters share one product). Each sequence's numbers
    /// equal a [`Model::forward`] of a model carrying its adapters.
    pub fn forward_batch_adapters(
        &self,
        segments: &mut [Segment],
        adapters: &[&[ActiveLora]],
        state: &mut State,
        logits: Logits,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        if adapters.len() != segments.len() {
            return Err(ModelError::config(
                self.files.path(),
                format!(
                    "{} adapter sets for {} sequences",
                    adapters.len(),
                    segments.len()
                ),
            ));
        }
        self.forward_segments(segments, Some(adapters), state, logits, pool)
    }

    /// Runs the pass on a worker of `pool`: its matrix products then fork
    /// with `rayon::join` onto the pool's threads only. Called from another
    /// thread, each product would spawn helpers while the caller computed
    /// too, one thread more than the pool has cores for (an idle worker
    /// spinning against the caller cost rollouts a fifth of their speed).
    fn forward_segments(
        &self,
        segments: &mut [Segment],
        per_segment: Option<&[&[ActiveLora]]>,
        state: &mut State,
        logits: Logits,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        if pool.current_thread_index().is_none() {
            return pool
                .install(|| self.forward_segments(segments, per_segment, state, logits, pool));
        }
        let c = &self.config;
        let t_n: usize = segments.iter().map(|s| s.tokens.len()).sum();
        if t_n == 0 {
            return Ok(());
        }
        for seg in segments.iter() {
            if let Some(&bad) = seg.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
                return Err(ModelError::TokenOutsideVocabulary {
                    path: self.files.path().to_path_buf(),
                    token: bad,
                    vocab: c.vocab_size,
                });
            }
            if seg.kv.len() + seg.tokens.len() > seg.kv.capacity() {
                return Err(ModelError::ContextFull {
                    path: self.files.path().to_path_buf(),
                    cached: seg.kv.len(),
                    new: seg.tokens.len(),
                    capacity: seg.kv.capacity(),
                });
            }
        }
        let (ce, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let q_scaled = c.arch.family().scale_q_first;
        let heads = Heads {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            q_scaled,
        };
        // Which rows each adapter applies to: all rows for the model's own.
        let whole = [(0..t_n, &self.adapters[..])];
        let split;
        let lora: &[LoraRows] = match per_segment {
            None => &whole,
            Some(per) => {
                split = lora_rows(segments.iter().map(|s| s.tokens.len()), per);
                &split
            }
        };
        let s = state;
        // Each sequence's rows get the values they get alone.
        s.lin.groups.clear();
        s.lin.groups.extend(segments.iter().map(|g| g.tokens.len()));
        resize(&mut s.x, t_n * ce);
        resize(&mut s.xb, t_n * ce);
        resize(&mut s.q, t_n * qd);
        resize(&mut s.k, t_n * kvd);
        resize(&mut s.v, t_n * kvd);
        resize(&mut s.att, t_n * qd);
        resize(&mut s.gate, t_n * ff);
        resize(&mut s.up, t_n * ff);

        let all = segments.iter().flat_map(|seg| seg.tokens.iter());
        embed(&self.files, &self.weights.token_embd, ce, all, &mut s.x)?;
        if c.arch.family().embed_scale {
            // ggml_scale by sqrtf(width), as llama.cpp's Gemma graph.
            let scale = (ce as f32).sqrt();
            s.x.iter_mut().for_each(|v| *v *= scale);
        }

        // Rope angles of every token at its own sequence's position (and
        // at the sliding-window layers' base, where there are some).
        let bases = [
            (c.rope_theta, &mut s.rope),
            (c.rope_theta_swa, &mut s.rope_swa),
        ];
        for (i, (theta, table)) in bases.into_iter().enumerate() {
            table.clear();
            if i == 1 && c.sliding_window.is_none() {
                continue;
            }
            for seg in segments.iter() {
                let (pos0, n) = (seg.kv.len(), seg.tokens.len());
                let f = c.rope_factors.as_deref();
                rope_table(pos0, n, c.head_dim, theta, f, &mut s.rope_seg);
                table.extend_from_slice(&s.rope_seg);
            }
        }
        // The rows that need logits: the last layer's feed-forward runs on
        // them alone, as llama.cpp's graph does (`inp_out_ids`), which also
        // gives a float model's last token llama.cpp's one-token products.
        s.out_rows.clear();
        let mut t0 = 0;
        for seg in segments.iter() {
            let n = seg.tokens.len();
            match logits {
                Logits::None => {}
                Logits::Last if n > 0 => s.out_rows.push(t0 + n - 1),
                Logits::Last => {}
                Logits::All => s.out_rows.extend(t0..t0 + n),
            }
            t0 += n;
        }
        let n_out = s.out_rows.len();
        let rows_of = |n: usize| match logits {
            Logits::None => 0,
            Logits::Last => n.min(1),
            Logits::All => n,
        };
        let whole_out = [(0..n_out, &self.adapters[..])];
        let split_out;
        let lora_out: &[LoraRows] = match per_segment {
            None => &whole_out,
            Some(per) => {
                split_out = lora_rows(segments.iter().map(|s| rows_of(s.tokens.len())), per);
                &split_out
            }
        };
        s.out_groups.clear();
        let out_groups = segments.iter().map(|g| rows_of(g.tokens.len()));
        s.out_groups.extend(out_groups.filter(|&n| n > 0));
        let n_layers = self.weights.layers.len();
        for (l, w) in self.weights.layers.iter().enumerate() {
            // Attention block.
            rms_norm_par(&s.x, &w.attn_norm, c.rms_eps, &mut s.xb, pool);
            s.lin.new_input();
            self.linear(&w.q, &s.xb, t_n, &mut s.q, &mut s.lin, lora, pool);
            self.linear(&w.k, &s.xb, t_n, &mut s.k, &mut s.lin, lora, pool);
            self.linear(&w.v, &s.xb, t_n, &mut s.v, &mut s.lin, lora, pool);
            if let (Some(qn), Some(kn)) = (&w.q_norm, &w.k_norm) {
                rms_norm_in_place_par(&mut s.q, qn, c.rms_eps, pool);
                rms_norm_in_place_par(&mut s.k, kn, c.rms_eps, pool);
            }
            let window = c.layer_window(l);
            if c.arch.rope_in_layer(l) {
                let table = if window.is_some() {
                    &s.rope_swa
                } else {
                    &s.rope
                };
                let style = c.rope_style;
                rope_par(&mut s.q, c.n_head, c.head_dim, table, style, pool);
                rope_par(&mut s.k, c.n_head_kv, c.head_dim, table, style, pool);
            }
            let mut t0 = 0;
            for seg in segments.iter_mut() {
                let (n, pos0) = (seg.tokens.len(), seg.kv.len());
                let kv = &mut *seg.kv;
                let kc = &mut kv.k[l][pos0 * kvd..(pos0 + n) * kvd];
                for (dst, &src) in kc.iter_mut().zip(&s.k[t0 * kvd..(t0 + n) * kvd]) {
                    *dst = f16::from_f32(src);
                }
                let vc = &mut kv.v[l][pos0 * kvd..(pos0 + n) * kvd];
                for (dst, &src) in vc.iter_mut().zip(&s.v[t0 * kvd..(t0 + n) * kvd]) {
                    *dst = f16::from_f32(src);
                }
                t0 += n;
            }
            if q_scaled {
                // ggml_scale of the queries, as Gemma's graph does.
                let scale = 1.0 / (c.head_dim as f32).sqrt();
                s.q.iter_mut().for_each(|v| *v *= scale);
            }
            // All sequences' attention in one call (one dispatch per layer).
            let seq = |i: usize| {
                let g = &segments[i];
                let (n, pos0) = (g.tokens.len(), g.kv.len());
                let (k, v) = g.kv.layer(l, pos0 + n);
                SeqRows { pos0, n, k, v }
            };
            let (q, att) = (&s.q[..t_n * qd], &mut s.att[..t_n * qd]);
            attention_segments(&heads, segments.len(), &seq, q, att, window, pool);
            s.lin.new_input();
            self.linear(&w.o, &s.att, t_n, &mut s.xb, &mut s.lin, lora, pool);
            if let Some(g) = &w.post_attn_norm {
                rms_norm_in_place_par(&mut s.xb, g, c.rms_eps, pool);
            }
            add_par(&mut s.x, &s.xb, pool);

            // Feed-forward block; in the last layer only on the rows that
            // need logits (moved to the front, in order).
            let (rows, lora) = if l + 1 == n_layers && n_out < t_n {
                for (i, &t) in s.out_rows.iter().enumerate() {
                    s.x.copy_within(t * ce..(t + 1) * ce, i * ce);
                }
                s.lin.groups.clone_from(&s.out_groups);
                (n_out, lora_out)
            } else {
                (t_n, lora)
            };
            if rows == 0 {
                break;
            }
            let (x, xb) = (&mut s.x[..rows * ce], &mut s.xb[..rows * ce]);
            let (gate, up) = (&mut s.gate[..rows * ff], &mut s.up[..rows * ff]);
            rms_norm_par(x, &w.ffn_norm, c.rms_eps, xb, pool);
            s.lin.new_input();
            self.linear(&w.gate, xb, rows, gate, &mut s.lin, lora, pool);
            self.linear(&w.up, xb, rows, up, &mut s.lin, lora, pool);
            gated_par(gate, up, c.arch.family().feed_forward, pool);
            s.lin.new_input();
            self.linear(&w.down, gate, rows, xb, &mut s.lin, lora, pool);
            if let Some(g) = &w.post_ffn_norm {
                rms_norm_in_place_par(xb, g, c.rms_eps, pool);
            }
            add_par(x, xb, pool);
        }
        for seg in segments.iter_mut() {
            seg.kv.advance(seg.tokens.len());
        }
        if n_out == 0 {
            return Ok(());
        }
        s.lin.groups.clone_from(&s.out_groups);

        // The rows with logits are now the first n_out of x: every row when
        // all have logits, else the ones the last layer moved to the front.
        let (x, normed) = (&s.x, &mut s.embd_row);
        self.head_logits(x, n_out, normed, &mut s.logits, &mut s.lin, lora_out, pool);
        Ok(())
    }
}

/// One sequence of a [`Model::forward_batch`] call: its new tokens and the
/// cache they continue.
pub struct Segment<'a> {
    pub tokens: &'a [u32],
    pub kv: &'a mut KvCache,
}

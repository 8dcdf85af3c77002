//! Training passes over the same model the runtime serves: per-token
//! log-probabilities of given sequences, and the per-token weighted negative
//! log-likelihood with its gradient with respect to a LoRA adapter.
//!
//! The forward pass is built from the inference blocks (embedding rows,
//! rms_norm, rope, swiglu, the file's weights read in place) with two
//! training choices: activations stay f32 against dequantized weight rows
//! (linear.rs), and attention is exact f32 (layers/attention/causal.rs), so the loss
//! is a smooth function whose gradient this module computes by hand, layer by
//! layer (the backward of each block sits next to its forward).
//!
//! Memory: each differentiated block keeps its input; the blocks nearest the
//! loss also keep their intermediates (the attention's probabilities
//! included, so its backward need not recompute them) while they fit
//! [`PassOptions::saved_activations_mib`], and the others recompute theirs
//! when the backward reaches them (activation checkpointing), so memory
//! grows with T * C * L plus that budget. Blocks below the lowest adapted
//! one are never differentiated.

pub(crate) mod scratch;

use crate::error::{ModelError, Result};
use crate::families::FeedForward;
use crate::layers::attention::causal::{
    causal_attention_backward_with, causal_attention_with, probs_len, Heads, QUERY_BLOCK,
};
use crate::layers::embedding::embed;
use crate::layers::head::head_loss;
use crate::layers::linear::{linear_forward, linears_backward, LayerGrad, LoraPass};
use crate::layers::mlp::{geglu_backward, swiglu_backward};
use crate::layers::rope::rope_table;
use crate::lora_params::{LoraParams, Target};
use crate::parallel::{
    add_par, geglu_into_par, rms_norm_backward_par, rms_norm_par, rope_backward_par, rope_par,
    swiglu_into_par, zeroed_par,
};
use crate::transformer::Model;
pub use scratch::TrainScratch;
use scratch::{sized, zeroed, BackwardBufs, BlockActs, LayerBufs};
use std::path::Path;

/// What [`Model::weighted_nll`] returns.
#[derive(Debug, Clone)]
pub struct WeightedNll {
    /// sum over t of weights[t] * -log p(tokens[t+1] | tokens[..=t]), in f64.
    pub loss: f64,
    /// log p(tokens[t+1] | tokens[..=t]) for t in 0..T-1; NaN where the
    /// weight is 0 (those positions are not computed).
    pub logprobs: Vec<f32>,
}

/// How the predicted tokens of a training pass are weighted in its loss.
#[derive(Clone, Copy)]
pub enum TokenWeights<'a> {
    /// One weight per predicted token; a position whose weight is 0 is not
    /// computed (prompt tokens in SFT).
    Fixed(&'a [f32]),
    /// The positions where `trained` is set get the weight `weight(t, lp)`
    /// of their log-probability `lp` in this very pass, the others are not
    /// computed: RL's clipped ratio to the old policy needs the current
    /// log-probability, and reading it here saves the forward pass a
    /// separate [`Model::token_logprobs`] would cost (the weight is a
    /// constant of the backward, as a detached tensor is in PyTorch).
    OfLogprob {
        trained: &'a [bool],
        weight: &'a (dyn Fn(usize, f32) -> f32 + Sync),
    },
}

impl TokenWeights<'_> {
    fn len(&self) -> usize {
        match self {
            TokenWeights::Fixed(w) => w.len(),
            TokenWeights::OfLogprob { trained, .. } => trained.len(),
        }
    }

    /// Whether position `t` is computed.
    pub(crate) fn trains(&self, t: usize) -> bool {
        match self {
            TokenWeights::Fixed(w) => w[t] != 0.0,
            TokenWeights::OfLogprob { trained, .. } => trained[t],
        }
    }

    /// The weight of position `t`, whose log-probability is `lp`.
    pub(crate) fn at(&self, t: usize, lp: f32) -> f32 {
        match self {
            TokenWeights::Fixed(w) => w[t],
            TokenWeights::OfLogprob { weight, .. } => weight(t, lp),
        }
    }
}

/// Settings of one training pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassOptions {
    /// Turns on the adapter's dropout (if its rate is above 0) with masks
    /// derived from this seed: the same seed gives the same masks.
    pub dropout_seed: Option<u64>,
    /// Keep the intermediates of the last blocks for the backward while they
    /// fit in this many MiB; the blocks below keep only their input and are
    /// recomputed (activation checkpointing). 0 recomputes every block, so
    /// memory is T * C * L floats plus one block's intermediates.
    pub saved_activations_mib: usize,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            dropout_seed: None,
            saved_activations_mib: 1024,
        }
    }
}

impl Model {
    /// log p(tokens[t+1] | tokens[..=t]) for t in 0..T-1 under the base model
    /// plus `lora` (None: the base alone, e.g. the reference policy of RL).
    pub fn token_logprobs(
        &self,
        tokens: &[u32],
        lora: Option<&LoraParams>,
        pool: &rayon::ThreadPool,
    ) -> Result<Vec<f32>> {
        let weights = vec![1.0f32; tokens.len().saturating_sub(1)];
        Ok(self
            .weighted_nll(tokens, &weights, lora, None, PassOptions::default(), pool)?
            .logprobs)
    }

    /// The per-token weighted negative log-likelihood
    /// `L = sum_t weights[t] * -log p(tokens[t+1] | tokens[..=t])` (weights may
    /// be negative: the policy-gradient loss -sum A log p / N is this with
    /// weights = A / N, see finetune/src/grpo.rs). With `grads`, adds dL/d(each A and B of
    /// `lora`) into it (same shapes as `lora`). `opts` sets dropout and how
    /// many intermediates are kept rather than recomputed ([`PassOptions`]).
    ///
    /// The training passes use `lora` only: adapters attached to the model
    /// for inference (`Model::adapters`) are not applied here.
    pub fn weighted_nll(
        &self,
        tokens: &[u32],
        weights: &[f32],
        lora: Option<&LoraParams>,
        grads: Option<&mut LoraParams>,
        opts: PassOptions,
        pool: &rayon::ThreadPool,
    ) -> Result<WeightedNll> {
        let mut scratch = TrainScratch::new();
        self.weighted_nll_with(tokens, weights, lora, grads, opts, &mut scratch, pool)
    }

    /// [`Model::weighted_nll`] with buffers kept in `scratch` between calls
    /// (what a trainer calls once per sequence: after the first, a pass
    /// allocates nothing). The result does not depend on `scratch`'s past.
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_nll_with(
        &self,
        tokens: &[u32],
        weights: &[f32],
        lora: Option<&LoraParams>,
        grads: Option<&mut LoraParams>,
        opts: PassOptions,
        scratch: &mut TrainScratch,
        pool: &rayon::ThreadPool,
    ) -> Result<WeightedNll> {
        let weights = TokenWeights::Fixed(weights);
        self.weighted_nll_by(tokens, weights, lora, grads, opts, scratch, pool)
    }

    /// [`Model::weighted_nll_with`] with the weights given as
    /// [`TokenWeights`] (those of RL are functions of the pass's own
    /// log-probabilities).
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_nll_by(
        &self,
        tokens: &[u32],
        weights: TokenWeights,
        lora: Option<&LoraParams>,
        grads: Option<&mut LoraParams>,
        opts: PassOptions,
        scratch: &mut TrainScratch,
        pool: &rayon::ThreadPool,
    ) -> Result<WeightedNll> {
        // On a worker of `pool`, as inference does (see `forward_segments`):
        // products fork onto the pool's threads only, none spinning against
        // the caller.
        if pool.current_thread_index().is_none() {
            return pool.install(|| {
                self.weighted_nll_by(tokens, weights, lora, grads, opts, scratch, pool)
            });
        }
        self.check_training_input(tokens, weights.len(), lora, grads.as_deref())?;
        let c = &self.config;
        let (n, ce) = (tokens.len(), c.n_embd);
        let pass = LoraPass {
            params: lora,
            dropout_seed: opts.dropout_seed,
        };
        let TrainScratch {
            x,
            next,
            dx,
            inputs,
            saved,
            acts,
            bwd,
            layer: lbufs,
            head,
        } = scratch;
        self.embed(tokens, sized(x, n * ce))?;
        sized(next, n * ce);
        if c.arch.family().embed_scale {
            let scale = (ce as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        // RoPE angles at the full-context layers' base, and at the
        // sliding-window layers' (Gemma 3).
        let (mut table, mut table_swa) = (Vec::new(), Vec::new());
        let factors = c.rope_factors.as_deref();
        rope_table(0, n, c.head_dim, c.rope_theta, factors, &mut table);
        if c.sliding_window.is_some() {
            rope_table(0, n, c.head_dim, c.rope_theta_swa, factors, &mut table_swa);
        }
        let table_of = |l: usize| match c.layer_window(l) {
            Some(_) => &table_swa[..],
            None => &table[..],
        };

        // Blocks from `first_grad` on are differentiated: keep their inputs.
        let first_grad = match (&grads, lora) {
            (Some(_), Some(p)) => p.tensors.iter().map(|t| t.layer).min(),
            _ => None,
        };
        // Differentiated blocks keep their input, and the last ones (nearest
        // the loss, the first the backward reaches) their intermediates while
        // they fit the budget.
        let n_grad = first_grad.map_or(0, |f| c.n_layer - f);
        let rank = lora.map_or(0, |p| p.config.rank);
        let keep = (opts.saved_activations_mib << 20)
            .checked_div(self.block_acts_bytes(n, rank))
            .unwrap_or(0)
            .min(n_grad);
        // Buffers beyond this pass's needs are released (a smaller budget or
        // fewer blocks than the last pass).
        inputs.truncate(n_grad);
        inputs.resize_with(n_grad, Vec::new);
        saved.truncate(keep);
        saved.resize_with(keep, BlockActs::default);
        let first_kept = c.n_layer - keep;
        for l in 0..c.n_layer {
            if let Some(f) = first_grad.filter(|&f| l >= f) {
                sized(&mut inputs[l - f], n * ce).copy_from_slice(x);
            }
            let a = if first_grad.is_some() && l >= first_kept {
                &mut saved[l - first_kept]
            } else {
                &mut *acts
            };
            let keep_probs = first_grad.is_some_and(|f| l >= f);
            let t = table_of(l);
            self.block_forward(l, x, next, a, keep_probs, lbufs, t, pass, pool);
            std::mem::swap(x, next);
        }

        let targets = &tokens[1..];
        let want_grad = grads.is_some() && first_grad.is_some();
        let dx = zeroed(dx, if want_grad { n * ce } else { 0 });
        let out = head_loss(
            self,
            x,
            targets,
            &weights,
            want_grad.then_some(&mut *dx),
            head,
            pool,
        );
        if let (Some(grads), Some(first)) = (grads, first_grad) {
            for l in (first..c.n_layer).rev() {
                let input = &inputs[l - first];
                let a = if l >= first_kept {
                    &saved[l - first_kept]
                } else {
                    let t = table_of(l);
                    self.block_forward(l, input, next, acts, true, lbufs, t, pass, pool);
                    &*acts
                };
                self.block_backward(
                    l,
                    input,
                    a,
                    dx,
                    l > first,
                    table_of(l),
                    pass,
                    grads,
                    bwd,
                    lbufs,
                    pool,
                );
            }
        }
        Ok(out)
    }

    fn check_training_input(
        &self,
        tokens: &[u32],
        n_weights: usize,
        lora: Option<&LoraParams>,
        grads: Option<&LoraParams>,
    ) -> Result<()> {
        let c = &self.config;
        let path = self.files.path();
        if tokens.len() < 2 {
            return Err(ModelError::config(
                path,
                "a training sequence needs at least 2 tokens",
            ));
        }
        if n_weights != tokens.len() - 1 {
            return Err(ModelError::config(
                path,
                format!(
                    "{} weights given for {} predicted tokens",
                    n_weights,
                    tokens.len() - 1
                ),
            ));
        }
        if tokens.len() > c.context_length {
            return Err(ModelError::ContextFull {
                path: path.to_path_buf(),
                cached: 0,
                new: tokens.len(),
                capacity: c.context_length,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(ModelError::TokenOutsideVocabulary {
                path: path.to_path_buf(),
                token: bad,
                vocab: c.vocab_size,
            });
        }
        if let Some(p) = lora {
            p.check_fits(c, Path::new("the adapter"))?;
        }
        if let (Some(p), Some(g)) = (lora, grads) {
            if p.tensors.len() != g.tensors.len()
                || p.tensors
                    .iter()
                    .zip(&g.tensors)
                    .any(|(a, b)| a.a.len() != b.a.len() || a.b.len() != b.b.len())
            {
                return Err(ModelError::config(
                    path,
                    "the gradient adapter does not have the trained adapter's shapes",
                ));
            }
        }
        Ok(())
    }

    /// x[t] = the embedding row of tokens[t].
    fn embed(&self, tokens: &[u32], x: &mut [f32]) -> Result<()> {
        let (embd, ce) = (&self.weights.token_embd, self.config.n_embd);
        embed(&self.files, embd, ce, tokens, x)
    }

    /// One transformer block: `out = block(x)`, intermediates into `a`
    /// (with the attention's probabilities when `keep_probs`: a backward
    /// will read them).
    #[allow(clippy::too_many_arguments)]
    fn block_forward(
        &self,
        l: usize,
        x: &[f32],
        out: &mut [f32],
        a: &mut BlockActs,
        keep_probs: bool,
        bufs: &mut LayerBufs,
        table: &[(f32, f32)],
        pass: LoraPass,
        pool: &rayon::ThreadPool,
    ) {
        let c = &self.config;
        let w = &self.weights.layers[l];
        let n = x.len() / c.n_embd;
        let (ce, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        for (buf, len) in [
            (&mut a.h1, n * ce),
            (&mut a.q, n * qd),
            (&mut a.k, n * kvd),
            (&mut a.v, n * kvd),
            (&mut a.att, n * qd),
            (&mut a.x2, n * ce),
            (&mut a.h2, n * ce),
            (&mut a.gate, n * ff),
            (&mut a.up, n * ff),
            (&mut a.act, n * ff),
            (&mut a.lse, n * c.n_head),
        ] {
            buf.resize(len, 0.0);
        }
        let [mq, mk, mv, mo, mgate, mup, mdown] = &mut a.mid;
        let LayerBufs { lora: lb, attn } = bufs;
        rms_norm_par(x, &w.attn_norm, c.rms_eps, &mut a.h1, pool);
        let h1 = &a.h1;
        let lin = |wt, t, xin: &[f32], y: &mut [f32], mid: &mut Vec<f32>, d: &mut Vec<f32>| {
            linear_forward(self, wt, l, t, xin, n, y, mid, d, pass, pool)
        };
        let [dq, dk, dv, d_o, dgate, dup, ddown] = &mut lb.dropped;
        // q, k and v (then gate and up) read the same input: side by side,
        // so that the threads share their products without waiting at the
        // end of each.
        pool.join(
            || lin(&w.q, Target::Q, h1, &mut a.q, mq, dq),
            || {
                pool.join(
                    || lin(&w.k, Target::K, h1, &mut a.k, mk, dk),
                    || lin(&w.v, Target::V, h1, &mut a.v, mv, dv),
                )
            },
        );
        if let (Some(qn), Some(kn)) = (&w.q_norm, &w.k_norm) {
            // The per-head norms: keep their inputs for the backward.
            for (t, t_pre, g, len) in [
                (&mut a.q, &mut a.q_pre, qn, n * qd),
                (&mut a.k, &mut a.k_pre, kn, n * kvd),
            ] {
                std::mem::swap(t, t_pre);
                rms_norm_par(t_pre, g, c.rms_eps, sized(t, len), pool);
            }
        }
        if c.arch.rope_in_layer(l) {
            rope_par(&mut a.q, c.n_head, c.head_dim, table, c.rope_style, pool);
            rope_par(&mut a.k, c.n_head_kv, c.head_dim, table, c.rope_style, pool);
        }
        let (heads, qb) = (self.layer_heads(l), QUERY_BLOCK);
        let (q, k, v) = (&a.q, &a.k, &a.v);
        let probs = keep_probs.then(|| sized(&mut a.probs, probs_len(&heads, n, qb)));
        causal_attention_with(
            &heads, q, k, v, &mut a.att, &mut a.lse, probs, attn, qb, pool,
        );
        match &w.post_attn_norm {
            Some(g) => {
                lin(
                    &w.o,
                    Target::O,
                    &a.att,
                    sized(&mut a.o_pre, n * ce),
                    mo,
                    d_o,
                );
                rms_norm_par(&a.o_pre, g, c.rms_eps, &mut a.x2, pool);
            }
            None => lin(&w.o, Target::O, &a.att, &mut a.x2, mo, d_o),
        }
        add_par(&mut a.x2, x, pool);
        rms_norm_par(&a.x2, &w.ffn_norm, c.rms_eps, &mut a.h2, pool);
        let h2 = &a.h2;
        pool.join(
            || lin(&w.gate, Target::Gate, h2, &mut a.gate, mgate, dgate),
            || lin(&w.up, Target::Up, h2, &mut a.up, mup, dup),
        );
        match c.arch.family().feed_forward {
            FeedForward::SwiGlu => swiglu_into_par(&a.gate, &a.up, &mut a.act, pool),
            FeedForward::GeGlu => geglu_into_par(&a.gate, &a.up, &mut a.act, pool),
        }
        match &w.post_ffn_norm {
            Some(g) => {
                let pre = sized(&mut a.down_pre, n * ce);
                lin(&w.down, Target::Down, &a.act, pre, mdown, ddown);
                rms_norm_par(&a.down_pre, g, c.rms_eps, out, pool);
            }
            None => lin(&w.down, Target::Down, &a.act, out, mdown, ddown),
        }
        add_par(out, &a.x2, pool);
    }

    /// Backward of one block: `dx` holds d(out) on entry and d(x) on return
    /// (when `need_dx`; otherwise only the adapter's gradients are computed).
    #[allow(clippy::too_many_arguments)]
    fn block_backward(
        &self,
        l: usize,
        x: &[f32],
        a: &BlockActs,
        dx: &mut [f32],
        need_dx: bool,
        table: &[(f32, f32)],
        pass: LoraPass,
        grads: &mut LoraParams,
        b: &mut BackwardBufs,
        bufs: &mut LayerBufs,
        pool: &rayon::ThreadPool,
    ) {
        let c = &self.config;
        let w = &self.weights.layers[l];
        let n = x.len() / c.n_embd;
        let (ce, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let [mq, mk, mv, mo, mgate, mup, mdown] = &a.mid;
        let LayerBufs { lora: lb, attn } = bufs;
        // Feed-forward: out = x2 + down(swiglu(gate(h2), up(h2))).
        let mut linears = |x: &[f32], parts: &[LayerGrad], dxo: Option<&mut [f32]>| {
            linears_backward(self, l, x, n, parts, dxo, pass, grads, lb, pool)
        };
        let dact = zeroed_par(&mut b.dact, n * ff, pool);
        // Through the post-norm (Gemma 3) to the down projection's output.
        let d_down: &[f32] = match &w.post_ffn_norm {
            Some(g) => {
                let d = zeroed_par(&mut b.d_post, n * ce, pool);
                rms_norm_backward_par(&a.down_pre, g, c.rms_eps, dx, d, pool);
                d
            }
            None => dx,
        };
        linears(
            &a.act,
            &[(&w.down, Target::Down, d_down, mdown)],
            Some(dact),
        );
        let (dgate, dup) = (sized(&mut b.dgate, n * ff), sized(&mut b.dup, n * ff));
        match c.arch.family().feed_forward {
            FeedForward::SwiGlu => swiglu_backward(&a.gate, &a.up, &b.dact, dgate, dup, pool),
            FeedForward::GeGlu => geglu_backward(&a.gate, &a.up, &b.dact, dgate, dup, pool),
        }
        // Gate and up read the same h2: one product for their input
        // gradient.
        let dh = zeroed_par(&mut b.dh, n * ce, pool);
        let ffn = [
            (&w.gate, Target::Gate, &*dgate, &mgate[..]),
            (&w.up, Target::Up, &*dup, &mup[..]),
        ];
        linears(&a.h2, &ffn, Some(&mut *dh));
        rms_norm_backward_par(&a.x2, &w.ffn_norm, c.rms_eps, dh, dx, pool);

        // Attention: x2 = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))).
        let datt = zeroed_par(&mut b.datt, n * qd, pool);
        let d_o: &[f32] = match &w.post_attn_norm {
            Some(g) => {
                let d = zeroed_par(&mut b.d_post, n * ce, pool);
                rms_norm_backward_par(&a.o_pre, g, c.rms_eps, dx, d, pool);
                d
            }
            None => dx,
        };
        linears(&a.att, &[(&w.o, Target::O, d_o, mo)], Some(&mut *datt));
        let (dq, dk, dv) = (
            zeroed_par(&mut b.dq, n * qd, pool),
            zeroed_par(&mut b.dk, n * kvd, pool),
            zeroed_par(&mut b.dv, n * kvd, pool),
        );
        causal_attention_backward_with(
            &self.layer_heads(l),
            &a.q,
            &a.k,
            &a.v,
            &a.att,
            &a.lse,
            Some(&a.probs),
            datt,
            [&mut *dq, &mut *dk, &mut *dv],
            attn,
            QUERY_BLOCK,
            pool,
        );
        if c.arch.rope_in_layer(l) {
            rope_backward_par(dq, c.n_head, c.head_dim, table, c.rope_style, pool);
            rope_backward_par(dk, c.n_head_kv, c.head_dim, table, c.rope_style, pool);
        }
        // Through the per-head norms, to the projections' outputs.
        let (dq, dk): (&[f32], &[f32]) = match (&w.q_norm, &w.k_norm) {
            (Some(qn), Some(kn)) => {
                let dq_pre = zeroed_par(&mut b.dq_pre, n * qd, pool);
                rms_norm_backward_par(&a.q_pre, qn, c.rms_eps, dq, dq_pre, pool);
                let dk_pre = zeroed_par(&mut b.dk_pre, n * kvd, pool);
                rms_norm_backward_par(&a.k_pre, kn, c.rms_eps, dk, dk_pre, pool);
                (dq_pre, dk_pre)
            }
            _ => (dq, dk),
        };
        // q, k and v read the same h1: one product for their input gradient,
        // needed unless this is the lowest differentiated block; the
        // adapter's gradients always are.
        let qkv = [
            (&w.q, Target::Q, dq, &mq[..]),
            (&w.k, Target::K, dk, &mk[..]),
            (&w.v, Target::V, &*dv, &mv[..]),
        ];
        let dh = zeroed_par(&mut b.dh, if need_dx { n * ce } else { 0 }, pool);
        linears(&a.h1, &qkv, need_dx.then_some(&mut *dh));
        if need_dx {
            rms_norm_backward_par(x, &w.attn_norm, c.rms_eps, dh, dx, pool);
        }
    }

    /// Bytes of one block's intermediates for `n` tokens (with an adapter of
    /// rank `rank` on every target).
    fn block_acts_bytes(&self, n: usize, rank: usize) -> usize {
        let c = &self.config;
        let f = c.arch.family();
        let qk_pre = if f.qk_norm { c.q_dim() + c.kv_dim() } else { 0 };
        let post = if f.post_norms { 2 * c.n_embd } else { 0 };
        let floats = 3 * c.n_embd
            + 2 * c.q_dim()
            + 2 * c.kv_dim()
            + qk_pre
            + post
            + 3 * c.n_ff
            + c.n_head
            + Target::ALL.len() * rank;
        (n * floats + probs_len(&self.heads(), n, QUERY_BLOCK)) * 4
    }

    fn heads(&self) -> Heads {
        Heads {
            n_head: self.config.n_head,
            n_head_kv: self.config.n_head_kv,
            head_dim: self.config.head_dim,
            window: None,
        }
    }

    /// Layer `l`'s attention shape, with its sliding window if it has one.
    fn layer_heads(&self, l: usize) -> Heads {
        Heads {
            window: self.config.layer_window(l),
            ..self.heads()
        }
    }
}

//! Training passes over the same model the runtime serves: per-token
//! log-probabilities of given sequences, and the per-token weighted negative
//! log-likelihood with its gradient with respect to a LoRA adapter.
//!
//! The forward pass is built from the inference blocks (embedding rows,
//! rms_norm, rope, swiglu, the file's weights read in place) with two
//! training choices: activations stay f32 against dequantized weight rows
//! (linear.rs), and attention is exact f32 (causal_attention.rs), so the loss
//! is a smooth function whose gradient this module computes by hand, layer by
//! layer (the backward of each block sits next to its forward).
//!
//! Memory: only each block's input is kept (activation checkpointing); a
//! block's intermediates are recomputed when the backward reaches it, so
//! memory grows with T * C * L, not with the block's internals. Blocks below
//! the lowest adapted one are never differentiated.

mod linear;
mod loss;

use crate::causal_attention::{causal_attention, causal_attention_backward, Heads};
use crate::error::{ModelError, Result};
use crate::lora_params::{LoraParams, Target};
use crate::mlp::{swiglu, swiglu_backward};
use crate::norm::{rms_norm, rms_norm_backward};
use crate::rope::{apply_rope, apply_rope_backward, rope_table};
use crate::transformer::Model;
use linear::{linear_backward, linear_forward, LoraPass};
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

/// One block's intermediates, recomputed from its input for the backward.
#[derive(Default)]
struct BlockActs {
    h1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    lse: Vec<f32>,
    x2: Vec<f32>,
    h2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
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
        self.check_training_input(tokens, weights, lora, grads.as_deref())?;
        let c = &self.config;
        let (n, ce) = (tokens.len(), c.n_embd);
        let pass = LoraPass {
            params: lora,
            dropout_seed: opts.dropout_seed,
        };
        let mut x = vec![0.0f32; n * ce];
        self.embed(tokens, &mut x)?;
        let mut table = Vec::new();
        rope_table(0, n, c.head_dim, c.rope_theta, &mut table);

        // Blocks from `first_grad` on are differentiated: keep their inputs.
        let first_grad = match (&grads, lora) {
            (Some(_), Some(p)) => p.tensors.iter().map(|t| t.layer).min(),
            _ => None,
        };
        // Differentiated blocks keep their input, and the last ones (nearest
        // the loss, the first the backward reaches) their intermediates while
        // they fit the budget.
        let n_grad = first_grad.map_or(0, |f| c.n_layer - f);
        let keep = (opts.saved_activations_mib << 20)
            .checked_div(self.block_acts_bytes(n))
            .unwrap_or(0)
            .min(n_grad);
        let mut inputs: Vec<Vec<f32>> = Vec::new();
        let mut saved: Vec<BlockActs> = Vec::new();
        let mut acts = BlockActs::default();
        let mut next = vec![0.0f32; n * ce];
        for l in 0..c.n_layer {
            let differentiated = first_grad.is_some_and(|f| l >= f);
            if differentiated {
                inputs.push(x.clone());
            }
            self.block_forward(l, &x, &mut next, &mut acts, &table, pass, pool);
            if differentiated && l >= c.n_layer - keep {
                saved.push(std::mem::take(&mut acts));
            }
            std::mem::swap(&mut x, &mut next);
        }

        let targets = &tokens[1..];
        let want_grad = grads.is_some() && first_grad.is_some();
        let mut dx = if want_grad {
            vec![0.0f32; n * ce]
        } else {
            Vec::new()
        };
        let out = loss::head_loss(
            self,
            &x,
            targets,
            weights,
            want_grad.then_some(dx.as_mut_slice()),
            pool,
        );
        if let (Some(grads), Some(first)) = (grads, first_grad) {
            for l in (first..c.n_layer).rev() {
                let input = &inputs[l - first];
                let a = if l >= c.n_layer - keep {
                    saved.pop().expect("saved for this block")
                } else {
                    self.block_forward(l, input, &mut next, &mut acts, &table, pass, pool);
                    std::mem::take(&mut acts)
                };
                self.block_backward(l, input, &a, &mut dx, l > first, &table, pass, grads, pool);
                acts = a;
            }
        }
        Ok(out)
    }

    fn check_training_input(
        &self,
        tokens: &[u32],
        weights: &[f32],
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
        if weights.len() != tokens.len() - 1 {
            return Err(ModelError::config(
                path,
                format!(
                    "{} weights given for {} predicted tokens",
                    weights.len(),
                    tokens.len() - 1
                ),
            ));
        }
        if tokens.len() > c.context_length {
            return Err(ModelError::config(
                path,
                format!(
                    "sequence of {} tokens exceeds the context size {}",
                    tokens.len(),
                    c.context_length
                ),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(ModelError::config(
                path,
                format!(
                    "token id {bad} is outside the vocabulary ({} tokens)",
                    c.vocab_size
                ),
            ));
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
        let ce = self.config.n_embd;
        let embd = &self.weights.token_embd;
        let row_bytes = embd.ty.row_bytes(ce).expect("checked at load");
        let data = self.files.bytes(embd);
        for (t, &tok) in tokens.iter().enumerate() {
            let off = tok as usize * row_bytes;
            srl_quant::dequantize_row(
                embd.ty,
                &data[off..off + row_bytes],
                &mut x[t * ce..(t + 1) * ce],
            )?;
        }
        Ok(())
    }

    /// One transformer block: `out = block(x)`, intermediates into `a`.
    #[allow(clippy::too_many_arguments)]
    fn block_forward(
        &self,
        l: usize,
        x: &[f32],
        out: &mut [f32],
        a: &mut BlockActs,
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
        ] {
            buf.resize(len, 0.0);
        }
        rms_norm(x, &w.attn_norm, c.rms_eps, &mut a.h1);
        linear_forward(self, &w.q, l, Target::Q, &a.h1, n, &mut a.q, pass, pool);
        linear_forward(self, &w.k, l, Target::K, &a.h1, n, &mut a.k, pass, pool);
        linear_forward(self, &w.v, l, Target::V, &a.h1, n, &mut a.v, pass, pool);
        apply_rope(&mut a.q, c.n_head, c.head_dim, table, c.rope_style);
        apply_rope(&mut a.k, c.n_head_kv, c.head_dim, table, c.rope_style);
        a.lse = causal_attention(&self.heads(), &a.q, &a.k, &a.v, &mut a.att, pool);
        linear_forward(self, &w.o, l, Target::O, &a.att, n, &mut a.x2, pass, pool);
        for (s, &xi) in a.x2.iter_mut().zip(x) {
            *s += xi;
        }
        rms_norm(&a.x2, &w.ffn_norm, c.rms_eps, &mut a.h2);
        linear_forward(
            self,
            &w.gate,
            l,
            Target::Gate,
            &a.h2,
            n,
            &mut a.gate,
            pass,
            pool,
        );
        linear_forward(self, &w.up, l, Target::Up, &a.h2, n, &mut a.up, pass, pool);
        a.act.copy_from_slice(&a.gate);
        swiglu(&mut a.act, &a.up);
        linear_forward(self, &w.down, l, Target::Down, &a.act, n, out, pass, pool);
        for (o, &s) in out.iter_mut().zip(&a.x2) {
            *o += s;
        }
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
        pool: &rayon::ThreadPool,
    ) {
        let c = &self.config;
        let w = &self.weights.layers[l];
        let n = x.len() / c.n_embd;
        let (ce, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);

        // Feed-forward: out = x2 + down(swiglu(gate(h2), up(h2))).
        let mut dact = vec![0.0f32; n * ff];
        linear_backward(
            self,
            &w.down,
            l,
            Target::Down,
            &a.act,
            n,
            dx,
            Some(&mut dact),
            pass,
            grads,
            pool,
        );
        let (mut dgate, mut dup) = (vec![0.0f32; n * ff], vec![0.0f32; n * ff]);
        swiglu_backward(&a.gate, &a.up, &dact, &mut dgate, &mut dup, pool);
        drop(dact);
        let mut dh = vec![0.0f32; n * ce];
        linear_backward(
            self,
            &w.gate,
            l,
            Target::Gate,
            &a.h2,
            n,
            &dgate,
            Some(&mut dh),
            pass,
            grads,
            pool,
        );
        linear_backward(
            self,
            &w.up,
            l,
            Target::Up,
            &a.h2,
            n,
            &dup,
            Some(&mut dh),
            pass,
            grads,
            pool,
        );
        rms_norm_backward(&a.x2, &w.ffn_norm, c.rms_eps, &dh, dx);

        // Attention: x2 = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))).
        let mut datt = vec![0.0f32; n * qd];
        linear_backward(
            self,
            &w.o,
            l,
            Target::O,
            &a.att,
            n,
            dx,
            Some(&mut datt),
            pass,
            grads,
            pool,
        );
        let (mut dq, mut dk, mut dv) = (
            vec![0.0f32; n * qd],
            vec![0.0f32; n * kvd],
            vec![0.0f32; n * kvd],
        );
        causal_attention_backward(
            &self.heads(),
            &a.q,
            &a.k,
            &a.v,
            &a.att,
            &a.lse,
            &datt,
            &mut dq,
            &mut dk,
            &mut dv,
            pool,
        );
        apply_rope_backward(&mut dq, c.n_head, c.head_dim, table, c.rope_style);
        apply_rope_backward(&mut dk, c.n_head_kv, c.head_dim, table, c.rope_style);
        // The block's input gradient is needed unless this is the lowest
        // differentiated block; the adapter's gradients always are.
        dh.fill(0.0);
        for (lin, target, d) in [
            (&w.q, Target::Q, &dq),
            (&w.k, Target::K, &dk),
            (&w.v, Target::V, &dv),
        ] {
            let out = if need_dx {
                Some(dh.as_mut_slice())
            } else {
                None
            };
            linear_backward(self, lin, l, target, &a.h1, n, d, out, pass, grads, pool);
        }
        if need_dx {
            rms_norm_backward(x, &w.attn_norm, c.rms_eps, &dh, dx);
        }
    }

    /// Bytes of one block's intermediates for `n` tokens.
    fn block_acts_bytes(&self, n: usize) -> usize {
        let c = &self.config;
        let floats = 3 * c.n_embd + 2 * c.q_dim() + 2 * c.kv_dim() + 3 * c.n_ff + c.n_head;
        n * floats * 4
    }

    fn heads(&self) -> Heads {
        Heads {
            n_head: self.config.n_head,
            n_head_kv: self.config.n_head_kv,
            head_dim: self.config.head_dim,
        }
    }
}

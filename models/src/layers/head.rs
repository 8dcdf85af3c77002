//! The output head: the final norm, then the product with the (possibly
//! tied) head matrix read in place, in the two passes' forms side by side:
//!
//! - inference ([`Model::head_logits`]): logits [T', V] of the rows that
//!   need them, through the quantized product (and the adapters);
//! - training ([`head_loss`]): the weighted cross-entropy, log-softmax with
//!   f32 exps (softmax.rs) summed in f64, and its gradient back to the last
//!   hidden states. Positions are processed in chunks so the [T, V] logits
//!   never exist at once, and positions whose weight is 0 are skipped
//!   entirely (prompt tokens in SFT).

use crate::buffers::{sized, zeroed};
use crate::layers::linear::{base_product, LinearScratch, LoraRows};
use crate::layers::norm::{rms_norm, rms_norm_backward};
use crate::layers::softmax::exp_shifted;
use crate::training::scratch::HeadBufs;
use crate::training::{TokenWeights, WeightedNll};
use crate::transformer::Model;
use rayon::prelude::*;

impl Model {
    /// Logits of the first `n_out` rows of `x` ([T, C]) into `logits`
    /// ([n_out, V]), through the final norm (into `normed`) and the head.
    #[allow(clippy::too_many_arguments)] // the pass's scratch and row map
    pub(crate) fn head_logits(
        &self,
        x: &[f32],
        n_out: usize,
        normed: &mut Vec<f32>,
        logits: &mut Vec<f32>,
        lin: &mut LinearScratch,
        lora: &[LoraRows],
        pool: &rayon::ThreadPool,
    ) {
        let c = &self.config;
        let ce = c.n_embd;
        let normed = sized(normed, n_out * ce);
        rms_norm(
            &x[..n_out * ce],
            &self.weights.output_norm,
            c.rms_eps,
            normed,
        );
        let logits = sized(logits, n_out * c.vocab_size);
        lin.new_input();
        self.linear(&self.weights.output, normed, n_out, logits, lin, lora, pool);
    }
}

/// Positions per chunk of the head: each chunk reads (and dequantizes) the
/// whole head twice, so more positions per chunk cost less, while the
/// chunk's logits ([CHUNK, V], 25 MiB for a 49152-token vocabulary) stay in
/// a server's last-level cache.
const CHUNK: usize = 128;

/// Loss and log-probabilities of `targets[t]` after position t of `x`
/// ([T, C] final hidden states, T = targets.len() + 1), and with `dx` its
/// gradient with respect to `x` (added).
pub(crate) fn head_loss(
    model: &Model,
    x: &[f32],
    targets: &[u32],
    weights: &TokenWeights,
    mut dx: Option<&mut [f32]>,
    bufs: &mut HeadBufs,
    pool: &rayon::ThreadPool,
) -> WeightedNll {
    let c = &model.config;
    let (ce, vocab) = (c.n_embd, c.vocab_size);
    let head = &model.weights.output;
    let norm = &model.weights.output_norm;
    let positions: Vec<usize> = (0..targets.len()).filter(|&t| weights.trains(t)).collect();
    let mut logprobs = vec![f32::NAN; targets.len()];
    let mut loss = 0.0f64;
    let HeadBufs {
        xs,
        hn,
        logits,
        dhn,
        dxs,
    } = bufs;
    for chunk in positions.chunks(CHUNK) {
        let m = chunk.len();
        xs.clear();
        for &t in chunk {
            xs.extend_from_slice(&x[t * ce..(t + 1) * ce]);
        }
        let hn = sized(hn, m * ce);
        rms_norm(xs, norm, c.rms_eps, hn);
        let logits = sized(logits, m * vocab);
        base_product(model, head, hn, m, logits, pool);
        // Rows in parallel: log-softmax, and its gradient in place of the
        // logits: d(-w log softmax(z)_y)/dz = w (softmax(z) - onehot(y)).
        let grad = dx.is_some();
        let lps: Vec<(f64, f32)> = pool.install(|| {
            logits
                .par_chunks_mut(vocab)
                .zip(chunk.par_iter())
                .map(|(z, &t)| {
                    let y = targets[t] as usize;
                    let zy = z[y];
                    let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                    let sum = exp_shifted(z, 1.0, max);
                    let lp = (zy - max) as f64 - sum.ln();
                    let w = weights.at(t, lp as f32);
                    if grad {
                        let k = (w as f64 / sum) as f32;
                        z.iter_mut().for_each(|v| *v *= k);
                        z[y] -= w;
                    }
                    (lp, w)
                })
                .collect()
        });
        for (&t, &(lp, w)) in chunk.iter().zip(&lps) {
            logprobs[t] = lp as f32;
            loss -= w as f64 * lp;
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dhn = zeroed(dhn, m * ce);
            srl_quant::matmul_transposed(&head.matrix(&model.files), logits, m, dhn, pool);
            let dxs = zeroed(dxs, m * ce);
            rms_norm_backward(xs, norm, c.rms_eps, dhn, dxs);
            for (i, &t) in chunk.iter().enumerate() {
                for (d, &g) in dx[t * ce..(t + 1) * ce]
                    .iter_mut()
                    .zip(&dxs[i * ce..(i + 1) * ce])
                {
                    *d += g;
                }
            }
        }
    }
    WeightedNll { loss, logprobs }
}

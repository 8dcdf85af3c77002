//! The buffers of a training pass, kept between passes so that a training
//! step allocates (and page-faults in) nothing once the first step has
//! sized them: block inputs, the intermediates kept for the backward, and
//! the backward's temporaries. A trainer holds one [`TrainScratch`] and
//! passes it to [`crate::Model::weighted_nll_with`]; buffers grow to the
//! longest sequence seen and are overwritten by each pass, so results never
//! depend on what a previous pass left in them.

use crate::layers::attention::causal::AttentionScratch;
use crate::lora_params::Target;

/// One block's intermediates, recomputed from its input for the backward
/// unless kept. `mid_*` hold `drop(x) A^T` of each adapted projection (so
/// the backward does not recompute them), empty for the others.
#[derive(Default)]
pub(crate) struct BlockActs {
    pub h1: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    /// q and k before their per-head norms (families with `qk_norm`;
    /// empty otherwise).
    pub q_pre: Vec<f32>,
    pub k_pre: Vec<f32>,
    pub v: Vec<f32>,
    pub att: Vec<f32>,
    /// The attention's and the feed-forward's outputs before their
    /// post-norms (families with `post_norms`; empty otherwise).
    pub o_pre: Vec<f32>,
    pub down_pre: Vec<f32>,
    pub lse: Vec<f32>,
    /// The attention's softmax probabilities (`probs_len` floats), kept
    /// for the backward; empty in passes without one.
    pub probs: Vec<f32>,
    pub x2: Vec<f32>,
    pub h2: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    pub act: Vec<f32>,
    /// [T, r] per target, in `Target::ALL` order.
    pub mid: [Vec<f32>; 7],
}

/// Temporaries of one block's backward ([T, ...] gradients).
#[derive(Default)]
pub(crate) struct BackwardBufs {
    pub dact: Vec<f32>,
    pub dgate: Vec<f32>,
    pub dup: Vec<f32>,
    pub dh: Vec<f32>,
    pub datt: Vec<f32>,
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
    /// Gradients of q and k before their per-head norms.
    pub dq_pre: Vec<f32>,
    pub dk_pre: Vec<f32>,
    /// Gradient through a post-norm.
    pub d_post: Vec<f32>,
}

/// Temporaries of the LoRA branch of a linear layer.
#[derive(Default)]
pub(crate) struct LoraBufs {
    /// [T, r] per target: `s dy B`, the branch's gradient before A, kept
    /// for the input gradient and dA of the layers sharing its input.
    pub dmid: [Vec<f32>; Target::ALL.len()],
    /// [T, cols]: `drop'(dmid A)` in the backward, when dropout is on.
    pub out: Vec<f32>,
    pub weight: WeightGradBufs,
    /// drop(x) per target in the forward (whose layers sharing an input
    /// run side by side), when dropout is on.
    pub dropped: [Vec<f32>; Target::ALL.len()],
}

/// Temporaries of the A/B gradients.
#[derive(Default)]
pub(crate) struct WeightGradBufs {
    /// [r, T] transposes of mid and dmid.
    pub midt: Vec<f32>,
    pub dmidt: Vec<f32>,
    /// [r, rows]: dB^T.
    pub dbt: Vec<f32>,
    /// drop(x) when dropout is on.
    pub dropped: Vec<f32>,
}

/// Temporaries of a block's layers, forward and backward.
#[derive(Default)]
pub(crate) struct LayerBufs {
    pub lora: LoraBufs,
    pub attn: AttentionScratch,
}

/// Temporaries of the output head and loss (one chunk of positions).
#[derive(Default)]
pub(crate) struct HeadBufs {
    pub xs: Vec<f32>,
    pub hn: Vec<f32>,
    pub logits: Vec<f32>,
    pub dhn: Vec<f32>,
    pub dxs: Vec<f32>,
}

/// Reusable buffers for [`crate::Model::weighted_nll_with`]. Holds about
/// what one pass needs at its peak (the kept intermediates, up to
/// `PassOptions::saved_activations_mib`, and each block's input).
#[derive(Default)]
pub struct TrainScratch {
    pub(crate) x: Vec<f32>,
    pub(crate) next: Vec<f32>,
    pub(crate) dx: Vec<f32>,
    /// Inputs of the differentiated blocks.
    pub(crate) inputs: Vec<Vec<f32>>,
    /// Intermediates of the blocks kept for the backward (the last ones).
    pub(crate) saved: Vec<BlockActs>,
    /// Intermediates of a block being computed or recomputed.
    pub(crate) acts: BlockActs,
    pub(crate) bwd: BackwardBufs,
    pub(crate) layer: LayerBufs,
    pub(crate) head: HeadBufs,
}

impl TrainScratch {
    pub fn new() -> TrainScratch {
        TrainScratch::default()
    }
}

pub(crate) use crate::buffers::{sized, zeroed};

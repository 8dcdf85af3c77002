//! Attention micro-benchmark: microseconds per call of `attention` for
//! SmolLM2-135M's heads (9 query heads, 3 kv heads, D = 64): a 512-token
//! prompt (the tiled f32 path) and decode steps at a few cache lengths (the
//! f16 path); and training's exact f32 causal attention, forward and
//! backward, over a 512-token sequence.
//!
//! `cargo bench -p srl-models --bench attention [-- training|inference]`. Environment:
//! `SRL_THREADS` (default 1), `SRL_BENCH_SECS` per case (default 0.5).
//! Each case reports the best of 10 rounds: the machine may be shared.

use half::f16;
use srl_models::layers::attention::causal::{
    causal_attention_backward_with, causal_attention_with, probs_len, AttentionScratch, Heads,
    QUERY_BLOCK,
};
use srl_models::layers::attention::decode::{attention, AttentionShape};
use std::time::{Duration, Instant};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn time(secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < Duration::from_secs_f64(secs / 10.0) || calls < 2 {
            f();
            calls += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    best
}

fn main() {
    let threads: usize = std::env::var("SRL_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let secs: f64 = std::env::var("SRL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    // `-- training` runs the training cases only, `-- inference` the others.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let runs = |name: &str| filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    let (n_head, n_head_kv, d) = (9usize, 3usize, 64usize);
    println!("srl-models attention bench: {threads} threads, {n_head} heads, {n_head_kv} kv heads, D {d}");
    println!("{:>6} {:>6} {:>12}", "T", "pos0", "us/call");
    for (n_tokens, pos0) in [(512usize, 0usize), (64, 0), (1, 128), (1, 512), (8, 512)] {
        if !runs("inference") {
            break;
        }
        let n_total = pos0 + n_tokens;
        let kvdim = n_head_kv * d;
        let q = random(n_tokens * n_head * d, 1);
        let k: Vec<f16> = random(n_total * kvdim, 2)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let v: Vec<f16> = random(n_total * kvdim, 3)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let mut out = vec![0.0f32; n_tokens * n_head * d];
        let shape = AttentionShape {
            n_head,
            n_head_kv,
            head_dim: d,
            pos0,
        };
        let s = time(secs, || attention(&shape, &q, &k, &v, &mut out, &pool));
        println!("{n_tokens:>6} {pos0:>6} {:>12.1}", s * 1e6);
    }

    // Training: forward, then backward, as one step runs them per layer.
    if !runs("training") {
        return;
    }
    let heads = Heads {
        n_head,
        n_head_kv,
        head_dim: d,
        window: None,
    };
    let n = 512usize;
    let (q, k, v) = (
        random(n * n_head * d, 4),
        random(n * n_head_kv * d, 5),
        random(n * n_head_kv * d, 6),
    );
    let dout = random(n * n_head * d, 7);
    let mut out = vec![0.0f32; n * n_head * d];
    let mut lse = vec![0.0f32; n * n_head];
    let mut scratch = AttentionScratch::default();
    // The probabilities kept for the backward, as training keeps them.
    let mut probs = vec![0.0f32; probs_len(&heads, n, QUERY_BLOCK)];
    let (mut dq, mut dk, mut dv) = (
        vec![0.0f32; q.len()],
        vec![0.0f32; k.len()],
        vec![0.0f32; v.len()],
    );
    // Multiply-adds of the blocks' products: forward 2, backward 4 per
    // (query, visible key, dimension) (P is kept, not recomputed).
    let visible: usize = (0..n.div_ceil(QUERY_BLOCK))
        .map(|b| QUERY_BLOCK.min(n - b * QUERY_BLOCK) * ((b + 1) * QUERY_BLOCK).min(n))
        .sum();
    let macs = (visible * d * n_head) as f64;
    let fwd = time(secs, || {
        causal_attention_with(
            &heads,
            &q,
            &k,
            &v,
            &mut out,
            &mut lse,
            Some(&mut probs),
            &mut scratch,
            QUERY_BLOCK,
            &pool,
        )
    });
    let bwd = time(secs, || {
        causal_attention_backward_with(
            &heads,
            &q,
            &k,
            &v,
            &out,
            &lse,
            Some(&probs),
            &dout,
            [&mut dq, &mut dk, &mut dv],
            &mut scratch,
            QUERY_BLOCK,
            &pool,
        )
    });
    for (name, s, products) in [
        ("training forward", fwd, 2.0),
        ("training backward", bwd, 5.0),
    ] {
        println!(
            "{n:>6} {:>6} {:>12.1}  {name} ({:.1} GFLOP/s)",
            0,
            s * 1e6,
            2.0 * products * macs / s / 1e9
        );
    }
}

//! Matmul micro-benchmark: GFLOP/s of `matmul` for SmolLM2-135M's shapes
//! (T = 1: decoding; 8: a decode step of 8 sequences, as rollouts run; 512:
//! a prompt; the k-quants on shapes of whole super-blocks),
//! of `matmul_dequantized` (f32 activations, as training runs them) and of
//! `matmul_transposed` (training's input gradients).
//!
//! `cargo bench -p srl-quant --bench matmul [-- filter]`. Environment:
//! `SRL_THREADS` (default: all cores), `SRL_BENCH_SECS` per case (default
//! 0.5), `SRL_SIMD=scalar` to time the scalar kernels.
//!
//! Each product runs from inside `pool.install`, as srl's runtime calls it.
//! The "model" lines time one token of SmolLM2-135M's matrix products (30
//! layers of q, k, v, o, gate, up, down in Q4_1 plus the Q8_0 output head),
//! the part of a forward pass this crate owns. The "sweep" line times the
//! products of a LoRA training step over 8 blocks with their own operands.

use srl_quant::{
    matmul_at, matmul_dequantized_at, matmul_transposed_at, GgmlType, QuantizedActivations,
    SimdLevel, WeightMatrix,
};
use std::time::{Duration, Instant};

/// The (rows, cols) of SmolLM2-135M's seven projections in a block: q, k,
/// v, o, gate, up, down.
const LAYER_SHAPES: [(usize, usize); 7] = [
    (576, 576),
    (192, 576),
    (192, 576),
    (576, 576),
    (1536, 576),
    (1536, 576),
    (576, 1536),
];

/// `len` floats of v starting `offset` bytes past a cache line (v holds 32
/// floats more than the largest `len`).
fn placed(v: &mut [f32], len: usize, offset: usize) -> &mut [f32] {
    let start = ((v.as_ptr() as usize).wrapping_neg() % 64 + offset % 64) / 4;
    &mut v[start..start + len]
}

/// One product of the training sweep: weights, rows, cols, x, y, dx.
type SweepCase = (Vec<u8>, usize, usize, Vec<f32>, Vec<f32>, Vec<f32>);

fn random(n: usize, seed: u64) -> Vec<f32> {
    // xorshift: no dependency, deterministic.
    let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let x = random(rows * cols, (rows * 31 + cols) as u64);
    let mut q = vec![0u8; ty.row_bytes(cols).unwrap() * rows];
    for (src, dst) in x
        .chunks(cols)
        .zip(q.chunks_mut(ty.row_bytes(cols).unwrap()))
    {
        srl_quant::quantize_row(ty, src, dst).unwrap();
    }
    q
}

/// Runs `f` repeatedly for about `secs`; returns seconds per call, the best
/// of 10 rounds (the machine may be shared: the minimum is the least noisy).
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
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let threads: usize = std::env::var("SRL_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let secs: f64 = std::env::var("SRL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let level = match std::env::var("SRL_SIMD").as_deref() {
        Ok("scalar") => SimdLevel::Scalar,
        _ => SimdLevel::detect(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    println!("srl-quant matmul bench: {threads} threads, kernels {level:?}");
    println!(
        "{:<6} {:>6} {:>5} {:>5} {:>12} {:>9}",
        "type", "rows", "cols", "T", "us/call", "GFLOP/s"
    );

    // The k-quants need rows of whole 256-element super-blocks: SmolLM2's
    // down projection, and a 1536-wide model's square projection.
    let shapes: &[(usize, usize)] = &[(576, 576), (1536, 576), (49152, 576)];
    let k_shapes: &[(usize, usize)] = &[(576, 1536), (1536, 1536)];
    let types = [
        (GgmlType::Q4_1, shapes),
        (GgmlType::Q8_0, shapes),
        (GgmlType::F16, shapes),
        (GgmlType::Q2_K, k_shapes),
        (GgmlType::Q3_K, k_shapes),
        (GgmlType::Q4_K, k_shapes),
        (GgmlType::Q5_K, k_shapes),
        (GgmlType::Q6_K, k_shapes),
    ];
    for (ty, shapes) in types {
        for &(rows, cols) in shapes {
            for n_tokens in [1usize, 8, 512] {
                let name = format!("{} {rows}x{cols} T={n_tokens}", ty.name());
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let data = weights(ty, rows, cols);
                let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
                let x = random(n_tokens * cols, 7);
                let mut acts = QuantizedActivations::new();
                acts.quantize(ty.vec_dot_type(), &x, n_tokens, cols, &pool);
                let mut y = vec![0.0f32; rows * n_tokens];
                let s = pool.install(|| time(secs, || matmul_at(level, &w, &acts, &mut y, &pool)));
                let gflops = 2.0 * (rows * cols * n_tokens) as f64 / s / 1e9;
                println!(
                    "{:<6} {rows:>6} {cols:>5} {n_tokens:>5} {:>12.1} {gflops:>9.1}",
                    ty.name(),
                    s * 1e6
                );
                if n_tokens == 1 && rows == 576 {
                    // The same call from a thread outside the pool.
                    let s = time(secs, || matmul_at(level, &w, &acts, &mut y, &pool));
                    println!("{:<6} {rows:>6} {cols:>5} {n_tokens:>5} {:>12.1} {:>9.1}  (called outside the pool)",
                        ty.name(), s * 1e6, 2.0 * (rows * cols) as f64 / s / 1e9);
                }
            }
        }
    }

    // f32 activations times dequantized weights (training's forward); the
    // 49152-row output head runs on fewer tokens to keep the case short.
    let cases: [(usize, usize, &[usize]); 4] = [
        (576, 576, &[1, 512]),
        (1536, 576, &[1, 512]),
        (576, 1536, &[1, 512]),
        (49152, 576, &[64]),
    ];
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0] {
        for &(rows, cols, tokens) in &cases {
            for &n_tokens in tokens {
                let name = format!("{} {rows}x{cols} T={n_tokens} dequantized", ty.name());
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let data = weights(ty, rows, cols);
                let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
                let x = random(n_tokens * cols, 7);
                let mut y = vec![0.0f32; rows * n_tokens];
                let s = pool.install(|| {
                    time(secs, || {
                        matmul_dequantized_at(level, &w, &x, n_tokens, &mut y, &pool)
                    })
                });
                let gflops = 2.0 * (rows * cols * n_tokens) as f64 / s / 1e9;
                println!(
                    "{:<6} {rows:>6} {cols:>5} {n_tokens:>5} {:>12.1} {gflops:>9.1}  (f32 x, dequantized)",
                    ty.name(),
                    s * 1e6
                );
            }
        }
    }

    // The transposed product backward needs, dx[T, cols] += dy[T, rows] · W,
    // on the shapes LoRA training of SmolLM2-135M runs (the head on a chunk
    // of 64 tokens).
    let cases: [(usize, usize, &[usize]); 3] = [
        (576, 1536, &[128, 512]),
        (1536, 576, &[128, 512]),
        (49152, 576, &[64]),
    ];
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0] {
        for &(rows, cols, tokens) in &cases {
            for &n_tokens in tokens {
                let name = format!("{} {rows}x{cols} T={n_tokens} transposed", ty.name());
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let data = weights(ty, rows, cols);
                let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
                let dy = random(n_tokens * rows, 7);
                let mut dx = vec![0.0f32; n_tokens * cols];
                let s = pool.install(|| {
                    time(secs, || {
                        matmul_transposed_at(level, &w, &dy, n_tokens, &mut dx, &pool)
                    })
                });
                let gflops = 2.0 * (rows * cols * n_tokens) as f64 / s / 1e9;
                println!(
                    "{:<6} {rows:>6} {cols:>5} {n_tokens:>5} {:>12.1} {gflops:>9.1}  (transposed, dy · W)",
                    ty.name(),
                    s * 1e6
                );
            }
        }
    }

    // Training's sweep: the seven projections of 8 SmolLM2-135M blocks over
    // 512 tokens, forward (f32 x, dequantized) then backward (transposed),
    // each block with its own weights and activations, so that operands
    // come from memory as in a training step rather than from the caches.
    // The outputs start on a cache line, as srl's allocator places them;
    // SRL_SWEEP_OFFSET=16 starts them 16 bytes past one (malloc's
    // alignment), where threads splitting a product share boundary lines.
    if filter.as_ref().is_none_or(|f| "sweep".contains(f.as_str())) {
        let (n_tokens, blocks) = (512usize, 8usize);
        let offset: usize = std::env::var("SRL_SWEEP_OFFSET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);

        let mut seed = 100;
        let mut sweep: Vec<SweepCase> = Vec::new();
        for _ in 0..blocks {
            for &(rows, cols) in &LAYER_SHAPES {
                seed += 1;
                let x = random(n_tokens * cols, seed);
                let (y, dx) = (
                    vec![0.0f32; n_tokens * rows + 32],
                    vec![0.0f32; n_tokens * cols + 32],
                );
                sweep.push((weights(GgmlType::Q4_1, rows, cols), rows, cols, x, y, dx));
            }
        }
        let macs: usize = sweep.iter().map(|s| s.1 * s.2 * n_tokens).sum();
        let forward = |sweep: &mut [SweepCase]| {
            for (data, rows, cols, x, y, _) in sweep.iter_mut() {
                let w = WeightMatrix::new(GgmlType::Q4_1, *rows, *cols, data).unwrap();
                let y = placed(y, n_tokens * *rows, offset);
                matmul_dequantized_at(level, &w, x, n_tokens, y, &pool);
            }
        };
        let backward = |sweep: &mut [SweepCase]| {
            for (data, rows, cols, _, y, dx) in sweep.iter_mut().rev() {
                let w = WeightMatrix::new(GgmlType::Q4_1, *rows, *cols, data).unwrap();
                let dy = &*placed(y, n_tokens * *rows, offset);
                let dx = placed(dx, n_tokens * *cols, offset);
                matmul_transposed_at(level, &w, dy, n_tokens, dx, &pool);
            }
        };
        let s_fwd = pool.install(|| time(secs * 2.0, || forward(&mut sweep)));
        let s_bwd = pool.install(|| time(secs * 2.0, || backward(&mut sweep)));
        for (s, what) in [
            (s_fwd, "forward, dequantized"),
            (s_bwd, "backward, transposed"),
        ] {
            println!(
                "q4_1   sweep of {blocks} blocks, T={n_tokens} {:>12.1} {:>9.1}  (training's {what})",
                s * 1e6,
                2.0 * macs as f64 / s / 1e9
            );
        }
    }

    // One token (and a 512-token prompt) through SmolLM2-135M's matrices.
    if filter
        .as_ref()
        .is_some_and(|f| !"model".contains(f.as_str()))
    {
        return;
    }
    let layer: Vec<(Vec<u8>, usize, usize)> = LAYER_SHAPES
        .iter()
        .map(|&(r, c)| (weights(GgmlType::Q4_1, r, c), r, c))
        .collect();
    let head = weights(GgmlType::Q8_0, 49152, 576);
    for n_tokens in [1usize, 512] {
        let x576 = random(n_tokens * 576, 1);
        let x1536 = random(n_tokens * 1536, 2);
        let mut a576 = QuantizedActivations::new();
        let mut a1536 = QuantizedActivations::new();
        let mut a_head = QuantizedActivations::new();
        let mut y = vec![0.0f32; 1536 * n_tokens];
        let mut logits = vec![0.0f32; 49152];
        let s = pool.install(|| {
            time(secs * 4.0, || {
                for _ in 0..30 {
                    // Activations are quantized once per distinct input.
                    a576.quantize(GgmlType::Q8_1, &x576, n_tokens, 576, &pool);
                    a1536.quantize(GgmlType::Q8_1, &x1536, n_tokens, 1536, &pool);
                    for (data, rows, cols) in &layer {
                        let w = WeightMatrix::new(GgmlType::Q4_1, *rows, *cols, data).unwrap();
                        let a = if *cols == 576 { &a576 } else { &a1536 };
                        matmul_at(level, &w, a, &mut y[..rows * n_tokens], &pool);
                    }
                }
                // The output head runs on the last token only.
                a_head.quantize(GgmlType::Q8_0, &x576[..576], 1, 576, &pool);
                let w = WeightMatrix::new(GgmlType::Q8_0, 49152, 576, &head).unwrap();
                matmul_at(level, &w, &a_head, &mut logits, &pool);
            })
        });
        println!(
            "model  SmolLM2-135M matmuls, T={n_tokens:>3}: {:>8.2} ms, {:>7.1} tok/s",
            s * 1e3,
            n_tokens as f64 / s
        );
    }
}

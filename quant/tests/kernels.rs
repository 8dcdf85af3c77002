//! Property tests of every kernel: round trips, SIMD paths against the scalar
//! reference, matrix products against a naive f32 product.

mod common;

use common::{pool, random_f32, rng};
use srl_quant::{
    dequantize_row, matmul, matmul_at, matmul_grouped, matmul_reference, matmul_transposed,
    quantize_row, GgmlType, QuantError, QuantizedActivations, SimdLevel, WeightMatrix,
};

/// Worst allowed RMS round-trip error, relative to the RMS of the input, per
/// type (random normal-ish data with 1% outliers).
fn round_trip_tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 1e-3,
        GgmlType::BF16 => 8e-3,
        GgmlType::Q8_0 | GgmlType::Q8_1 => 0.01,
        GgmlType::Q8_K => 0.025, // one scale per 256: outliers dominate
        GgmlType::Q6_K => 0.03,
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 0.07,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K => 0.14,
        GgmlType::Q3_K => 0.3,
        GgmlType::Q2_K => 0.6,
    }
}

/// How far a quantized matmul may be from the exact product of the
/// dequantized weights with the f32 input, relative to `|w_row| * |x|`;
/// the error comes from rounding the activations to the vec_dot type.
fn activation_tolerance(vec_dot_type: GgmlType) -> f32 {
    match vec_dot_type {
        GgmlType::F32 => 1e-6,
        GgmlType::F16 => 2e-3,
        GgmlType::BF16 => 1e-2,
        _ => 2e-2,
    }
}

/// How far a SIMD dot product may be from the scalar one, relative to
/// `sum |w_i x_i|`: both sum the same exact integer block products, only
/// the f32 accumulation order (and FMA) differ.
const SIMD_VS_SCALAR: f32 = 1e-5;

fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    quantize_row(ty, x, &mut q).unwrap();
    q
}

fn dequantized(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; n];
    dequantize_row(ty, q, &mut y).unwrap();
    y
}

fn rms(v: impl Iterator<Item = f32>) -> f32 {
    let (mut s, mut n) = (0.0f64, 0usize);
    for x in v {
        s += (x as f64) * (x as f64);
        n += 1;
    }
    (s / n.max(1) as f64).sqrt() as f32
}

#[test]
fn round_trip_error_is_bounded() {
    let mut r = rng(1);
    for ty in GgmlType::all() {
        let n = 16 * 256;
        let x = random_f32(&mut r, n, 1.0);
        let y = dequantized(ty, &quantized(ty, &x), n);
        let err = rms(x.iter().zip(&y).map(|(a, b)| a - b)) / rms(x.iter().copied());
        let tol = round_trip_tolerance(ty);
        assert!(err <= tol, "{ty}: relative RMS error {err} > {tol}");
        // Quantizing the dequantized values again changes little.
        let z = dequantized(ty, &quantized(ty, &y), n);
        let err2 = rms(y.iter().zip(&z).map(|(a, b)| a - b)) / rms(y.iter().copied());
        assert!(err2 <= tol, "{ty}: second round trip error {err2} > {tol}");
    }
}

#[test]
fn zeros_stay_zero() {
    for ty in GgmlType::all() {
        let n = 512;
        let y = dequantized(ty, &quantized(ty, &vec![0.0; n]), n);
        assert!(y.iter().all(|&v| v == 0.0), "{ty}");
    }
}

#[test]
fn errors_name_type_and_sizes() {
    let mut buf = vec![0u8; 100];
    let e = quantize_row(GgmlType::Q4_1, &[0.0; 33], &mut buf).unwrap_err();
    assert!(matches!(
        e,
        QuantError::NotBlockMultiple {
            n: 33,
            block: 32,
            ..
        }
    ));
    assert!(e.to_string().contains("q4_1"), "{e}");
    let e = quantize_row(GgmlType::Q4_1, &[0.0; 64], &mut buf).unwrap_err();
    assert_eq!(
        e,
        QuantError::ByteLength {
            ty: GgmlType::Q4_1,
            n: 64,
            expected: 40,
            actual: 100
        }
    );
    assert!(
        e.to_string().contains("40") && e.to_string().contains("100"),
        "{e}"
    );
    let mut out = vec![0.0f32; 32];
    assert!(dequantize_row(GgmlType::Q8_0, &buf[..33], &mut out).is_err());
    assert!(WeightMatrix::new(GgmlType::Q8_0, 2, 32, &buf[..67]).is_err());
    assert!(WeightMatrix::new(GgmlType::Q8_0, 2, 32, &buf[..68]).is_ok());
    assert_eq!(GgmlType::from_name("Q4_K"), Some(GgmlType::Q4_K));
    assert_eq!("bf16".parse::<GgmlType>().unwrap(), GgmlType::BF16);
    assert!("q9_9".parse::<GgmlType>().is_err());
}

/// Every type with a dot product, as a weight.
fn weight_types() -> Vec<GgmlType> {
    GgmlType::all().filter(|t| t.can_matmul()).collect()
}

#[test]
fn activation_quantizers_simd_equal_scalar() {
    let mut r = rng(2);
    for ty in GgmlType::all() {
        let Some(k) = ty.traits().from_float else {
            continue;
        };
        for level in SimdLevel::ALL {
            let Some(f) = k.at(level) else { continue };
            for &n in &[256usize, 512, 1536] {
                // Unaligned input slice; output starts at an odd offset too.
                let x_all = random_f32(&mut r, n + 1, 3.0);
                let x = &x_all[1..];
                let bytes = ty.row_bytes(n).unwrap();
                let mut want = vec![0u8; bytes];
                (k.scalar)(x, &mut want);
                let mut got_all = vec![0u8; bytes + 1];
                f(x, &mut got_all[1..]);
                assert_eq!(&got_all[1..], &want[..], "{ty} from_float {level:?} n={n}");
            }
        }
    }
}

#[test]
fn vec_dot_simd_matches_scalar() {
    let mut r = rng(3);
    for ty in weight_types() {
        let vt = ty.vec_dot_type();
        let k = ty.traits().vec_dot.unwrap();
        for level in SimdLevel::ALL {
            let Some(f) = k.at(level) else { continue };
            // Odd sizes reach the leftover loops of the float types.
            let sizes = [100usize, 257, 256, 512, 768, 2816];
            for n in sizes
                .into_iter()
                .filter(|n| ty.row_bytes(*n).is_some() && vt.row_bytes(*n).is_some())
            {
                let w = quantized(ty, &random_f32(&mut r, n, 0.5));
                let xf = random_f32(&mut r, n, 2.0);
                let mut x = vec![0u8; vt.row_bytes(n).unwrap() + 3];
                (vt.traits().from_float.unwrap().scalar)(&xf, &mut x[3..]);
                // Unaligned copies of both rows.
                let mut w_un = vec![0u8; w.len() + 1];
                w_un[1..].copy_from_slice(&w);
                let (w_un, x_un) = (&w_un[1..], &x[3..]);
                let want = (k.scalar)(n, &w, x_un);
                let got = f(n, w_un, x_un);
                let wd = dequantized(ty, &w, n);
                let xd = dequantized(vt, x_un, n);
                let scale: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
                let tol = SIMD_VS_SCALAR * scale.max(1e-30);
                assert!(
                    (got - want).abs() <= tol,
                    "{ty} vec_dot {level:?} n={n}: {got} vs scalar {want} (tol {tol})"
                );
            }
        }
    }
}

/// A weight matrix of `ty` with random values; returns the bytes.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    quantized(ty, &random_f32(&mut r, rows * cols, 0.05))
}

/// Every tiled kernel of a block type gives, for each (row, token) pair,
/// the bits of its level's dot product, over tile edges (rows and tokens not
/// multiples of the tile) and several block counts. (The float types' tiles
/// follow llamafile's sgemm, whose sums are ordered differently, as in ggml.)
#[test]
fn tiled_kernels_equal_vec_dot_per_pair() {
    let pool = pool(1);
    for ty in weight_types() {
        let traits = ty.traits();
        let Some(gemm) = traits.gemm.filter(|_| traits.block_size > 1) else {
            continue;
        };
        let vec_dot = traits.vec_dot.unwrap();
        for level in SimdLevel::ALL.into_iter().filter(|l| l.available()) {
            let (Some(gemm), Some(dot)) = (gemm.at(level), vec_dot.at(level)) else {
                continue;
            };
            for (blocks, rows, n_tokens) in [(1, 1, 1), (2, 5, 9), (3, 7, 4), (6, 3, 13)] {
                let cols = blocks * ty.block_size().max(256);
                let data = random_matrix(ty, rows, cols, 11 + blocks as u64);
                let ws = ty.row_bytes(cols).unwrap();
                let x = random_f32(&mut rng(12), n_tokens * cols, 1.0);
                let mut acts = QuantizedActivations::new();
                acts.quantize(ty.vec_dot_type(), &x, n_tokens, cols, &pool);
                let (xd, xs) = (acts.data(), acts.row_bytes());
                let mut y = vec![f32::NAN; n_tokens * rows];
                // SAFETY: y holds [n_tokens, rows]; this thread alone writes it.
                unsafe {
                    gemm(
                        cols,
                        &data,
                        ws,
                        rows,
                        xd,
                        xs,
                        n_tokens,
                        y.as_mut_ptr(),
                        rows,
                    )
                };
                for t in 0..n_tokens {
                    for r in 0..rows {
                        let want =
                            dot(cols, &data[r * ws..(r + 1) * ws], &xd[t * xs..(t + 1) * xs]);
                        let got = y[t * rows + r];
                        assert!(
                            got.to_bits() == want.to_bits(),
                            "{ty} {level:?} {blocks} blocks r={r} t={t}: tiled {got} vs vec_dot {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_matches_naive_product() {
    let pool = pool(2);
    let mut scratch = QuantizedActivations::new();
    for ty in weight_types() {
        let mut shapes = vec![(7usize, 256usize, 1usize), (33, 512, 3), (64, 768, 9)];
        if !ty.is_quantized() {
            shapes.push((9, 100, 5));
        }
        for &(rows, cols, n_tokens) in &shapes {
            let data = random_matrix(ty, rows, cols, rows as u64);
            let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
            let x = random_f32(&mut rng(11), n_tokens * cols, 1.0);
            let mut want = vec![0.0f32; rows * n_tokens];
            matmul_reference(&w, &x, n_tokens, &mut want);
            scratch.quantize(ty.vec_dot_type(), &x, n_tokens, cols, &pool);
            for level in SimdLevel::ALL.into_iter().filter(|l| l.available()) {
                let mut got = vec![0.0f32; rows * n_tokens];
                matmul_at(level, &w, &scratch, &mut got, &pool);
                let tol = activation_tolerance(ty.vec_dot_type());
                let mut row = vec![0.0f32; cols];
                for r in 0..rows {
                    w.dequantize_row(r, &mut row);
                    let wn = rms(row.iter().copied()) * (cols as f32).sqrt();
                    for t in 0..n_tokens {
                        let xn =
                            rms(x[t * cols..(t + 1) * cols].iter().copied()) * (cols as f32).sqrt();
                        let (g, e) = (got[t * rows + r], want[t * rows + r]);
                        assert!(
                            (g - e).abs() <= tol * wn * xn,
                            "{ty} {level:?} {rows}x{cols} T={n_tokens} r={r} t={t}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}

/// The tiled (T > 1) path gives exactly what the T = 1 path gives for each
/// token, at each SIMD level; and threads do not change results. 67 tokens
/// run as row x token chunks (a prompt); 8 tokens as row ranges of the whole
/// matrix (a decode step of 8 sequences).
#[test]
fn tiled_and_single_token_paths_agree() {
    let pool1 = pool(1);
    let pool2 = pool(2);
    for (ty, n_tokens) in weight_types()
        .into_iter()
        .flat_map(|ty| [(ty, 67usize), (ty, 8)])
    {
        let (rows, cols) = (70usize, 512usize);
        let data = random_matrix(ty, rows, cols, 5);
        let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
        let x = random_f32(&mut rng(6), n_tokens * cols, 1.0);
        let mut acts = QuantizedActivations::new();
        acts.quantize(ty.vec_dot_type(), &x, n_tokens, cols, &pool2);
        for level in SimdLevel::ALL.into_iter().filter(|l| l.available()) {
            let mut batched = vec![0.0f32; rows * n_tokens];
            matmul_at(level, &w, &acts, &mut batched, &pool2);
            let mut batched1 = vec![0.0f32; rows * n_tokens];
            matmul_at(level, &w, &acts, &mut batched1, &pool1);
            assert_eq!(
                batched, batched1,
                "{ty} {level:?}: thread count changed results"
            );
            let mut one = QuantizedActivations::new();
            for t in 0..n_tokens {
                one.quantize(
                    ty.vec_dot_type(),
                    &x[t * cols..(t + 1) * cols],
                    1,
                    cols,
                    &pool1,
                );
                let mut y = vec![0.0f32; rows];
                matmul_at(level, &w, &one, &mut y, &pool2);
                for r in 0..rows {
                    let (a, b) = (batched[t * rows + r], y[r]);
                    assert!(
                        a.to_bits() == b.to_bits(),
                        "{ty} {level:?} r={r} t={t}: tiled {a} vs single {b}"
                    );
                }
            }
        }
    }
}

/// A batch of sequences (runs of one-token groups, as in a decode step, and
/// groups of several, as prompt chunks beside them): each group's outputs
/// are, bit for bit, those of a product of that group alone, for float
/// weights (whose one- and several-token paths sum differently) and block
/// weights.
#[test]
fn grouped_products_equal_each_group_alone() {
    let pool = pool(2);
    let (rows, cols) = (64, 256);
    let groups = [1usize, 1, 1, 3, 1, 2, 1, 1, 5];
    let n: usize = groups.iter().sum();
    let x = random_f32(&mut rng(5), n * cols, 1.0);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
        let data = random_matrix(ty, rows, cols, 3);
        let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
        let mut acts = QuantizedActivations::new();
        acts.quantize(ty.vec_dot_type(), &x, n, cols, &pool);
        let mut got = vec![0.0f32; n * rows];
        matmul_grouped(&w, &acts, &mut got, &groups, &pool);
        let mut t0 = 0;
        for &g in &groups {
            let mut alone = QuantizedActivations::new();
            alone.quantize(
                ty.vec_dot_type(),
                &x[t0 * cols..(t0 + g) * cols],
                g,
                cols,
                &pool,
            );
            let mut want = vec![0.0f32; g * rows];
            matmul(&w, &alone, &mut want, &pool);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got[t0 * rows..(t0 + g) * rows]),
                bits(&want),
                "{ty}: group at {t0} of {g}"
            );
            t0 += g;
        }
    }
}

#[test]
fn matmul_f32_convenience_and_scratch_reuse() {
    let pool = pool(2);
    let mut scratch = QuantizedActivations::new();
    let (rows, cols) = (48, 576);
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F32] {
        let data = random_matrix(ty, rows, cols, 9);
        let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
        for n_tokens in [5usize, 1, 3] {
            let x = random_f32(&mut rng(n_tokens as u64), n_tokens * cols, 1.0);
            let mut got = vec![0.0f32; rows * n_tokens];
            srl_quant::matmul_f32(&w, &x, n_tokens, &mut got, &mut scratch, &pool);
            let mut acts = QuantizedActivations::new();
            acts.quantize(ty.vec_dot_type(), &x, n_tokens, cols, &pool);
            let mut want = vec![0.0f32; rows * n_tokens];
            matmul(&w, &acts, &mut want, &pool);
            assert_eq!(got, want, "{ty} T={n_tokens}");
        }
    }
}

#[test]
fn large_activation_batches_quantize_in_parallel_identically() {
    let pool2 = pool(2);
    let pool1 = pool(1);
    let (n_tokens, cols) = (300, 576);
    let x = random_f32(&mut rng(8), n_tokens * cols, 1.0);
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::F16] {
        let mut a = QuantizedActivations::new();
        let mut b = QuantizedActivations::new();
        a.quantize(ty, &x, n_tokens, cols, &pool2);
        b.quantize(ty, &x, n_tokens, cols, &pool1);
        assert_eq!(a.data(), b.data(), "{ty}");
        // Inside the pool, too (the join path).
        pool2.install(|| b.quantize(ty, &x, n_tokens, cols, &pool2));
        assert_eq!(a.data(), b.data(), "{ty} from inside the pool");
    }
}

#[test]
fn empty_shapes_are_fine() {
    let pool = pool(2);
    let mut acts = QuantizedActivations::new();
    for ty in [GgmlType::Q4_1, GgmlType::F32] {
        let w = WeightMatrix::new(ty, 0, 64, &[]).unwrap();
        acts.quantize(ty.vec_dot_type(), &[], 0, 64, &pool);
        matmul(&w, &acts, &mut [], &pool);
        let data = random_matrix(ty, 3, 64, 1);
        let w = WeightMatrix::new(ty, 3, 64, &data).unwrap();
        matmul(&w, &acts, &mut [], &pool);
    }
}

/// How far the transposed product may be from an f64 one, relative to
/// `sum |dy * w|` per output: f32 accumulation over the rows.
const TRANSPOSED_TOLERANCE: f32 = 1e-5;

#[test]
fn transposed_product_matches_naive() {
    let pool = pool(2);
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::F16,
        GgmlType::F32,
    ] {
        for &(rows, cols, n_tokens) in &[(5usize, 256usize, 1usize), (70, 1536, 3), (300, 768, 2)] {
            let data = random_matrix(ty, rows, cols, 21);
            let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
            let dy = random_f32(&mut rng(22), n_tokens * rows, 1.0);
            let mut dx = vec![0.5f32; n_tokens * cols];
            matmul_transposed(&w, &dy, n_tokens, &mut dx, &pool);
            let mut wf = vec![0.0f32; rows * cols];
            for r in 0..rows {
                w.dequantize_row(r, &mut wf[r * cols..(r + 1) * cols]);
            }
            for t in 0..n_tokens {
                for c in 0..cols {
                    let (mut want, mut mag) = (0.5f64, 0.5f64);
                    for r in 0..rows {
                        let p = dy[t * rows + r] as f64 * wf[r * cols + c] as f64;
                        want += p;
                        mag += p.abs();
                    }
                    let got = dx[t * cols + c];
                    let tol = TRANSPOSED_TOLERANCE * mag as f32;
                    assert!(
                        (got as f64 - want).abs() <= tol as f64,
                        "{ty} {rows}x{cols} T={n_tokens} t={t} c={c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// Non-finite and extreme inputs quantize without panicking (the bytes are
/// whatever the reference arithmetic gives; only finite data is specified).
#[test]
fn hostile_inputs_do_not_panic() {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        1e-45,
        -0.0,
        0.0,
    ];
    let mut r = rng(31);
    for ty in GgmlType::all() {
        let n = 512;
        let mut x = random_f32(&mut r, n, 1.0);
        for (i, v) in x.iter_mut().enumerate() {
            if i % 7 == 0 {
                *v = specials[(i / 7) % specials.len()];
            }
        }
        let q = quantized(ty, &x);
        let _ = dequantized(ty, &q, n);
        if let Some(k) = ty.traits().from_float {
            for level in SimdLevel::ALL {
                if let Some(f) = k.at(level) {
                    let mut out = vec![0u8; q.len()];
                    f(&x, &mut out);
                }
            }
        }
        // Random bytes dequantize without panicking too.
        let bytes: Vec<u8> = (0..q.len()).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = dequantized(ty, &bytes, n);
    }
}

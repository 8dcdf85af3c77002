//! Matrix products with f32 activations: `y[T, rows] = x[T, cols] · W^T`
//! with the weights dequantized to f32 and `x` used as it is.
//!
//! Training uses this product: [`crate::matmul`] first rounds `x` to the
//! weight's `vec_dot_type`, a step function of `x`; here the loss stays a
//! smooth function of the activations, so gradients and finite differences
//! agree. The weights are still read in place.
//!
//! Work is split into chunks of [`CHUNK_ROWS`] rows (times a range of
//! tokens when there are too few row chunks to keep every thread busy) that
//! threads claim from a shared counter, as in [`crate::matmul`]. A chunk is
//! computed [`KC`] columns at a time: its rows are dequantized once into a
//! buffer on the stack, packed in panels of [`NR`] rows stored column by
//! column (`panel[k * NR + j]` is row j, column k), then a register-blocked
//! kernel computes [`MT`] tokens by NR rows: per column, one broadcast of
//! `x[t, k]` per token times the panel's NR values (two 8-lane vectors), into
//! MT x NR accumulators. Column slices after the first add to `y`.
//! Dequantizing costs O(rows · cols) per call against the product's
//! O(T · rows · cols), so for large T the kernel runs near the FMA peak.
//!
//! Each output is one f32 chain of multiply-adds in column order (fused on
//! AVX2 and aarch64), so its error is at most about `cols · ε · Σ|w x|`.

use crate::chunks::Chunks;
use crate::f32_tile::{tiles_at, TileFn, MT, NR};
use crate::matmul::{fork, SendPtr, WeightMatrix};
use crate::simd::SimdLevel;
use crate::thread_buffer::{with_buffer, Slot};
use rayon::ThreadPool;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Columns per slice: a multiple of every block size (QK_K = 256).
const KC: usize = 256;
/// Rows per chunk (a multiple of NR); its packed slice (32 KiB) and a tile
/// of `x` (6 KiB) stay in L1/L2 while all of the chunk's tokens pass.
const CHUNK_ROWS: usize = 32;
/// Fewest tokens per chunk when tokens are split between threads: fewer
/// would spend more time dequantizing than multiplying.
const MIN_SPLIT_TOKENS: usize = 64;
/// Products smaller than this many multiply-adds run on the calling thread
/// (as in [`crate::matmul`]).
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// `y[T, rows] = x[T, cols] · W^T` with f32 activations: each weight row
/// block is dequantized to f32 and multiplied without quantizing x (what
/// training uses, so the loss is a smooth function of its inputs).
/// Overwrites y.
///
/// Works for every type in the table (all have a dequantizer). Panics
/// (programmer errors) if `x.len() != T * w.cols`, `y.len() != T * w.rows`
/// or `w.data` is shorter than its shape.
pub fn matmul_dequantized(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) {
    matmul_dequantized_at(SimdLevel::detect(), w, x, n_tokens, y, pool)
}

/// [`matmul_dequantized`] with the kernel of one SIMD level: AVX2+FMA where
/// `level` is [`SimdLevel::Avx2`] and this CPU has it, else the portable one
/// (which the compiler vectorizes for the target's baseline, NEON on
/// aarch64). Tests use it to hold both to the reference.
pub fn matmul_dequantized_at(
    level: SimdLevel,
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    pool: &ThreadPool,
) {
    dequantized_on(level, w, x, n_tokens, y, None, Some(pool))
}

/// A low-rank term that a training product computes inside its own sums,
/// as `rank` more terms of each output's chain: a LoRA branch then costs no
/// pass of its own over the output.
#[derive(Debug, Clone, Copy)]
pub struct LowRank<'a> {
    /// [T, rank]: the term's inputs per token.
    pub left: &'a [f32],
    /// Its weights: [rows, rank] in [`matmul_dequantized_plus`] (LoRA's B),
    /// [rank, cols] in [`LowRank::transposed`] (LoRA's A).
    pub right: &'a [f32],
    pub rank: usize,
}

/// `y[T, rows] = x[T, cols] · W^T + left[T, r] · right[rows, r]^T`: each
/// output is one chain of multiply-adds over W's columns, then over the r
/// terms (the chain [`matmul_dequantized`] computes for `[x | left]` times
/// `[W | right]`). Overwrites y.
pub fn matmul_dequantized_plus(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    term: LowRank,
    pool: &ThreadPool,
) {
    assert_eq!(term.left.len(), n_tokens * term.rank, "left is not [T, r]");
    assert_eq!(
        term.right.len(),
        w.rows * term.rank,
        "right is not [rows, r]"
    );
    let level = SimdLevel::detect();
    dequantized_on(level, w, x, n_tokens, y, Some(term), Some(pool))
}

/// [`matmul_dequantized_at`] on `pool`, or on the calling thread alone,
/// with an optional low-rank term.
fn dequantized_on(
    level: SimdLevel,
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    term: Option<LowRank>,
    pool: Option<&ThreadPool>,
) {
    assert_eq!(x.len(), n_tokens * w.cols, "x is not [T, cols]");
    assert_eq!(y.len(), n_tokens * w.rows, "y is not [T, rows]");
    let ws = w.row_bytes();
    assert!(
        w.data.len() >= ws * w.rows,
        "weight data shorter than its shape"
    );
    if w.rows == 0 || n_tokens == 0 {
        return;
    }
    if w.cols == 0 && term.is_none() {
        y.fill(0.0);
        return;
    }
    // Each output's chain runs over W's columns, then over the term's.
    let term_matrix = term.map(|t| f32_matrix(t.right, w.rows, t.rank));
    let sources = [Some((w, x)), term_matrix.as_ref().zip(term.map(|t| t.left))];
    let kernels = kernels_at(level);
    let macs = w.rows * (w.cols + term.map_or(0, |t| t.rank)) * n_tokens;
    let pool = pool.filter(|_| macs >= PARALLEL_MIN_MACS);
    let threads = pool.map_or(1, |p| p.current_num_threads());
    let row_chunks = w.rows.div_ceil(CHUNK_ROWS);
    // Few row chunks for many threads (e.g. a 192-row projection on 16
    // cores): split the tokens too, each chunk dequantizing its rows again.
    let token_splits = if threads > 1 {
        (4 * threads)
            .div_ceil(row_chunks)
            .min(n_tokens / MIN_SPLIT_TOKENS)
            .max(1)
    } else {
        1
    };
    let chunk_tokens = n_tokens.div_ceil(token_splits).next_multiple_of(MT);
    let chunks = Chunks::new(row_chunks, n_tokens, chunk_tokens, threads);
    let next = AtomicUsize::new(0);
    let out = SendPtr(y.as_mut_ptr());
    let work = || {
        with_buffer(&PACK_BUFFER, new_pack_buffer, |buf| {
            let PackBuffer { packed, rows } = buf;
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks.len() {
                    break;
                }
                let (rc, t0, t1) = chunks.get(c);
                let r0 = rc * CHUNK_ROWS;
                let nr = CHUNK_ROWS.min(w.rows - r0);
                let slices = sources
                    .iter()
                    .flatten()
                    .flat_map(|&(m, xs)| (0..m.cols).step_by(KC).map(move |k0| (m, xs, k0)));
                for (i, (m, xs, k0)) in slices.enumerate() {
                    let kc = KC.min(m.cols - k0);
                    pack(m, r0, nr, k0, kc, &mut packed.0, rows, kernels.transpose);
                    let mut t = t0;
                    while t < t1 {
                        let mt = MT.min(t1 - t);
                        for p in 0..nr.div_ceil(NR) {
                            // SAFETY: the panel holds kc columns of NR rows;
                            // xs rows t..t+mt hold columns k0..k0+kc; outputs
                            // (tokens t..t+mt, rows r0 + p*NR + ..nr) lie
                            // inside y ([T, rows], checked above) and belong
                            // to this chunk only; `kernels_at` checked the CPU.
                            unsafe {
                                (kernels.tiles[mt - 1])(
                                    packed.0.as_ptr().add(p * NR * KC),
                                    NR,
                                    kc,
                                    xs.as_ptr().add(t * m.cols + k0),
                                    m.cols,
                                    out.get().add(t * w.rows + r0 + p * NR),
                                    w.rows,
                                    NR.min(nr - p * NR),
                                    i > 0,
                                )
                            };
                        }
                        t += mt;
                    }
                }
            }
        })
    };
    match pool {
        Some(pool) if threads > 1 && chunks.len() > 1 => fork(pool, &work),
        _ => work(),
    }
}

/// A chunk's packed slice: `CHUNK_ROWS / NR` panels of `KC * NR` floats,
/// aligned for vector loads.
#[repr(C, align(32))]
struct Packed([f32; CHUNK_ROWS * KC]);

/// A thread's buffers for [`pack`]: the packed slice and the 8 rows
/// dequantized on the way.
struct PackBuffer {
    packed: Packed,
    rows: [[f32; KC]; 8],
}

thread_local! {
    static PACK_BUFFER: Slot<PackBuffer> = const { RefCell::new(None) };
}

fn new_pack_buffer() -> Box<PackBuffer> {
    // SAFETY: all zero bits are valid f32s.
    unsafe { Box::new_zeroed().assume_init() }
}

/// Dequantizes rows `r0..r0 + nr`, columns `k0..k0 + kc` (whole blocks) of
/// `w`, 8 rows at a time into `rows`, and packs them column by column in
/// panels of NR rows. Lanes of rows past `nr` keep stale values: the tile
/// kernels never store them, and lanes do not mix.
#[allow(clippy::too_many_arguments)]
fn pack(
    w: &WeightMatrix,
    r0: usize,
    nr: usize,
    k0: usize,
    kc: usize,
    packed: &mut [f32; CHUNK_ROWS * KC],
    rows: &mut [[f32; KC]; 8],
    transpose: TransposeFn,
) {
    let dequantize = w.ty.traits().dequantize;
    let (bs, bb, ws) = (w.ty.block_size(), w.ty.block_bytes(), w.row_bytes());
    let (b0, b1) = (k0 / bs * bb, (k0 + kc) / bs * bb);
    for g in 0..nr.div_ceil(8) {
        for (i, row) in rows.iter_mut().enumerate().take(nr - g * 8) {
            let start = (r0 + g * 8 + i) * ws;
            dequantize(&w.data[start + b0..start + b1], &mut row[..kc]);
        }
        // SAFETY: the slice holds the half panel's kc columns; `kernels_at`
        // checked the CPU.
        unsafe { transpose(rows, kc, &mut packed[g / 2 * NR * KC + g % 2 * 8..]) };
    }
}

/// `fn(rows, kc, panel)`: `panel[k * NR + i] = rows[i][k]` for `i < 8`,
/// `k < kc` (half a panel).
///
/// # Safety
/// The CPU supports the entry's instructions.
type TransposeFn = unsafe fn(&[[f32; KC]; 8], usize, &mut [f32]);

/// Portable [`TransposeFn`].
fn transpose(rows: &[[f32; KC]; 8], kc: usize, panel: &mut [f32]) {
    for (k, dst) in panel.chunks_mut(NR).take(kc).enumerate() {
        for i in 0..8 {
            dst[i] = rows[i][k];
        }
    }
}

/// `fn(panel, kc, x, x_stride, y, y_stride, nr, accumulate)`: for the tile's
/// tokens t and rows j < nr, `y[t * y_stride + j] (+)= Σ_k x[t * x_stride + k]
/// * panel[k * NR + j]` over `k < kc`; one entry per token count 1..=MT.
///
/// The kernels of one level.
struct Kernels {
    /// Entry `m - 1` computes m tokens.
    tiles: [TileFn; MT],
    transpose: TransposeFn,
}

/// The kernels for `level` (portable where it has none, or where this CPU
/// cannot run it).
fn kernels_at(level: SimdLevel) -> Kernels {
    let tiles = tiles_at(level);
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 && level.available() {
        return Kernels {
            tiles,
            transpose: avx2::transpose,
        };
    }
    Kernels { tiles, transpose }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{KC, NR};
    use std::arch::x86_64::*;

    /// AVX2 [`super::TransposeFn`]: 8x8 blocks through registers.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose(rows: &[[f32; KC]; 8], kc: usize, panel: &mut [f32]) {
        assert!(kc <= KC && panel.len() >= kc.saturating_sub(1) * NR + 8);
        let (src, dst) = (rows.as_ptr() as *const f32, panel.as_mut_ptr());
        let mut k = 0;
        while k + 8 <= kc {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * KC + k)));
            // Pairs, then quads, then halves: column c of rows 0..8.
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            // u[4q + c] holds columns c and c + 4 of rows 4q..4q + 4.
            let u: [__m256; 8] = std::array::from_fn(|i| {
                let (q, c) = (i / 4, i % 4);
                let (a, b) = (t[4 * q + c / 2], t[4 * q + c / 2 + 2]);
                if c % 2 == 0 {
                    _mm256_shuffle_ps::<0x44>(a, b)
                } else {
                    _mm256_shuffle_ps::<0xee>(a, b)
                }
            });
            for c in 0..4 {
                let lo = _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]);
                let hi = _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]);
                _mm256_storeu_ps(dst.add((k + c) * NR), lo);
                _mm256_storeu_ps(dst.add((k + c + 4) * NR), hi);
            }
            k += 8;
        }
        for k in k..kc {
            for i in 0..8 {
                *dst.add(k * NR + i) = rows[i][k];
            }
        }
    }
}

/// A plain f32 matrix `b: [rows, cols]` seen as F32 weights, for the
/// products below.
pub(crate) fn f32_matrix(b: &[f32], rows: usize, cols: usize) -> WeightMatrix<'_> {
    // SAFETY: the bytes of an f32 slice, read as bytes (alignment 1).
    let data = unsafe { std::slice::from_raw_parts(b.as_ptr() as *const u8, b.len() * 4) };
    WeightMatrix {
        ty: crate::GgmlType::F32,
        rows,
        cols,
        data,
    }
}

/// `c[m, n] = a[m, k] · b^T` for plain f32 matrices (`b` is [n, k]), with
/// the same kernels: the products of attention and LoRA in training.
pub fn gemm_f32_nt(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    pool: &ThreadPool,
) {
    assert_eq!(b.len(), n * k, "b is not [n, k]");
    let w = f32_matrix(b, n, k);
    matmul_dequantized(&w, a, m, c, pool);
}

/// [`gemm_f32_nt`] on the calling thread alone (for products inside tasks
/// that already run in parallel, such as attention's heads).
pub fn gemm_f32_nt_serial(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, c: &mut [f32]) {
    assert_eq!(b.len(), n * k, "b is not [n, k]");
    let w = f32_matrix(b, n, k);
    dequantized_on(SimdLevel::detect(), &w, a, m, c, None, None);
}

/// `c[m, n] += a[m, k] · b` for plain f32 matrices (`b` is [k, n],
/// row-major), through the transposed-product kernel: the products of
/// attention and LoRA whose right operand is stored by rows.
pub fn gemm_f32_nn(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    pool: &ThreadPool,
) {
    assert_eq!(b.len(), k * n, "b is not [k, n]");
    let w = f32_matrix(b, k, n);
    crate::matmul_transposed(&w, a, m, c, pool);
}

/// [`gemm_f32_nn`] on the calling thread alone.
pub fn gemm_f32_nn_serial(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, c: &mut [f32]) {
    assert_eq!(b.len(), k * n, "b is not [k, n]");
    let w = f32_matrix(b, k, n);
    let term = crate::TransposedTerm { w, dy: a };
    crate::transposed_matmul::transposed_on(SimdLevel::detect(), &[term], m, c, None);
}

/// `out[c, r] = x[r, c]` for x [rows, cols], in cache-friendly tiles.
pub fn transpose_f32(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols);
    assert_eq!(out.len(), rows * cols);
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = x[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::matmul_reference;
    use crate::{quantize_row, GgmlType};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// How far an output may be from the f64 reference, relative to
    /// `cols · ε · Σ_k |w_k x_k|`: both use the same dequantized weights,
    /// only the f32 accumulation differs, and a chain of `cols` multiply-adds
    /// errs by at most about `cols · ε` of the sum of absolute terms.
    const ACCUMULATION_BOUND: f32 = 1.0;

    fn pool(threads: usize) -> ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn random(r: &mut StdRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| r.gen_range(-1.0f32..1.0)).collect()
    }

    fn weights(ty: GgmlType, rows: usize, cols: usize, r: &mut StdRng) -> Vec<u8> {
        let rb = ty.row_bytes(cols).unwrap();
        let mut data = vec![0u8; rb * rows];
        for (dst, src) in data.chunks_mut(rb).zip(random(r, rows * cols).chunks(cols)) {
            quantize_row(ty, src, dst).unwrap();
        }
        data
    }

    /// Columns for `ty`: not a multiple of KC (a partial last slice), and
    /// not a multiple of 8 where the block size allows.
    fn cols_for(ty: GgmlType) -> usize {
        match ty.block_size() {
            1 => 300,
            32 => 288,
            _ => 512,
        }
    }

    /// Checks `matmul_dequantized_at(level, ..)` against `matmul_reference`.
    fn check(
        level: SimdLevel,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n_tokens: usize,
        pool: &ThreadPool,
    ) {
        let mut r = StdRng::seed_from_u64((rows * 1000 + cols + n_tokens) as u64);
        let data = weights(ty, rows, cols, &mut r);
        let w = WeightMatrix::new(ty, rows, cols, &data).unwrap();
        let x = random(&mut r, n_tokens * cols);
        let mut want = vec![0.0f32; n_tokens * rows];
        matmul_reference(&w, &x, n_tokens, &mut want);
        let mut got = vec![f32::NAN; n_tokens * rows]; // overwritten
        matmul_dequantized_at(level, &w, &x, n_tokens, &mut got, pool);
        let mut row = vec![0.0f32; cols];
        for i in 0..rows {
            w.dequantize_row(i, &mut row);
            for t in 0..n_tokens {
                let abs: f32 = row
                    .iter()
                    .zip(&x[t * cols..(t + 1) * cols])
                    .map(|(a, b)| (a * b).abs())
                    .sum();
                let tol = ACCUMULATION_BOUND * cols as f32 * f32::EPSILON * abs;
                let (g, e) = (got[t * rows + i], want[t * rows + i]);
                assert!(
                    (g - e).abs() <= tol,
                    "{ty} {level:?} rows={rows} cols={cols} T={n_tokens}: y[{t}, {i}] = {g}, reference {e} (tolerance {tol})"
                );
            }
        }
    }

    fn levels() -> Vec<SimdLevel> {
        SimdLevel::ALL
            .into_iter()
            .filter(|l| l.available())
            .collect()
    }

    #[test]
    fn every_type_matches_reference() {
        let pool = pool(2);
        for level in levels() {
            for ty in GgmlType::all() {
                for n_tokens in [1, 3, 17, 64, 130] {
                    // 37 rows: a partial chunk and a partial panel.
                    check(level, ty, 37, cols_for(ty), n_tokens, &pool);
                }
            }
        }
    }

    #[test]
    fn shapes_match_reference() {
        let pool = pool(2);
        for level in levels() {
            for (ty, rows, cols, n_tokens) in [
                (GgmlType::Q8_0, 1, 32, 1),
                (GgmlType::Q8_0, 16, 32, 6),
                (GgmlType::Q4_1, 33, 96, 7),
                (GgmlType::Q4_1, 70, 576, 130), // several chunks, split tokens
                (GgmlType::Q8_0, 200, 64, 1000),
                (GgmlType::F16, 5, 1, 3),
                (GgmlType::F32, 3, 7, 2),
            ] {
                check(level, ty, rows, cols, n_tokens, &pool);
            }
        }
    }

    #[test]
    fn single_thread_matches_pool() {
        let (one, two) = (pool(1), pool(2));
        let mut r = StdRng::seed_from_u64(9);
        let (rows, cols, n_tokens) = (100, 576, 200);
        let data = weights(GgmlType::Q4_1, rows, cols, &mut r);
        let w = WeightMatrix::new(GgmlType::Q4_1, rows, cols, &data).unwrap();
        let x = random(&mut r, n_tokens * cols);
        let mut a = vec![0.0f32; n_tokens * rows];
        let mut b = vec![0.0f32; n_tokens * rows];
        matmul_dequantized(&w, &x, n_tokens, &mut a, &one);
        matmul_dequantized(&w, &x, n_tokens, &mut b, &two);
        // Each output is the same chain of multiply-adds whoever computes it.
        assert_eq!(a, b);
        // From inside the pool, as the runtime calls it.
        two.install(|| matmul_dequantized(&w, &x, n_tokens, &mut b, &two));
        assert_eq!(a, b);
    }

    #[test]
    fn serial_products_match_the_pool() {
        let pool = pool(2);
        let mut r = StdRng::seed_from_u64(3);
        let (m, n, k) = (130, 70, 96);
        let (a, b) = (random(&mut r, m * k), random(&mut r, n * k));
        let (mut c1, mut c2) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
        gemm_f32_nt(&a, &b, m, n, k, &mut c1, &pool);
        gemm_f32_nt_serial(&a, &b, m, n, k, &mut c2);
        assert_eq!(c1, c2);
        // b as [k, n]: c (+)= a b.
        let (mut c1, mut c2) = (vec![1.0f32; m * n], vec![1.0f32; m * n]);
        gemm_f32_nn(&a, &b, m, n, k, &mut c1, &pool);
        gemm_f32_nn_serial(&a, &b, m, n, k, &mut c2);
        assert_eq!(c1, c2);
    }

    /// `[W | right]` as f32 rows (W dequantized) and `[x | left]` per token.
    fn concatenated(
        w: &WeightMatrix,
        right: &[f32],
        x: &[f32],
        left: &[f32],
        rank: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut wr = Vec::new();
        let mut row = vec![0.0f32; w.cols];
        for i in 0..w.rows {
            w.dequantize_row(i, &mut row);
            wr.extend_from_slice(&row);
            wr.extend_from_slice(&right[i * rank..(i + 1) * rank]);
        }
        let xl = x
            .chunks_exact(w.cols)
            .zip(left.chunks_exact(rank))
            .flat_map(|(x, l)| x.iter().chain(l).copied())
            .collect();
        (wr, xl)
    }

    #[test]
    fn low_rank_term_continues_each_chain() {
        let pool = pool(2);
        let mut r = StdRng::seed_from_u64(5);
        for (rows, cols, n, rank) in [(70, 96, 130, 5), (16, 288, 7, 16), (33, 32, 64, 300)] {
            let data = weights(GgmlType::Q4_1, rows, cols, &mut r);
            let w = WeightMatrix::new(GgmlType::Q4_1, rows, cols, &data).unwrap();
            let (x, left, b) = (
                random(&mut r, n * cols),
                random(&mut r, n * rank),
                random(&mut r, rows * rank),
            );
            let (wb, xl) = concatenated(&w, &b, &x, &left, rank);
            let mut want = vec![0.0f32; n * rows];
            gemm_f32_nt(&xl, &wb, n, rows, cols + rank, &mut want, &pool);
            let mut got = vec![f32::NAN; n * rows]; // overwritten
            let term = LowRank {
                left: &left,
                right: &b,
                rank,
            };
            matmul_dequantized_plus(&w, &x, n, &mut got, term, &pool);
            // The same chain of multiply-adds as [x | left] [W | b]^T.
            assert_eq!(got, want, "{rows}x{cols} T={n} r={rank}");
        }
    }

    #[test]
    fn empty_shapes() {
        let pool = pool(2);
        let w = WeightMatrix::new(GgmlType::F32, 0, 4, &[]).unwrap();
        matmul_dequantized(&w, &[0.0; 8], 2, &mut [], &pool);
        let w = WeightMatrix::new(GgmlType::F32, 3, 0, &[]).unwrap();
        let mut y = [f32::NAN; 6];
        matmul_dequantized(&w, &[], 2, &mut y, &pool);
        assert_eq!(y, [0.0; 6]);
    }
}

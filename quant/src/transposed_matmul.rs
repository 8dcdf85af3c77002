//! The transposed product backward needs: `dx[T, cols] += dy[T, rows] · W`,
//! the gradient of `y = x · W^T` with respect to `x`, with `W [rows, cols]`
//! read in place.
//!
//! This is a GEMM whose right operand is W itself, row-major: the reduction
//! runs over W's rows, so a block of rows dequantized as it is stored is
//! already the operand's layout. Columns are split into chunks of whole
//! blocks and whole [`NR`]-column tiles (times a range of tokens when there
//! are too few column chunks to keep every thread busy) that threads claim
//! from a shared counter, as in [`mod@crate::matmul`]. A chunk is computed a
//! slice of rows at a time: the slice's part of each row is dequantized
//! into a buffer on the stack ([`SLICE_FLOATS`], kept in L2), then for each
//! tile of [`MT`] tokens, for each NR-column panel of the buffer, a
//! register-blocked kernel adds `Σ_k dy[t, k] · W[k, j]` over the slice's
//! rows: per row, one broadcast of `dy[t, k]` per token times the panel's
//! NR values (two 8-lane vectors), into MT x NR accumulators loaded from and
//! stored back to dx. Each weight is dequantized once per token range and
//! used for all of its tokens; each chunk reads all of its tokens' dy, so
//! where dy outgrows the caches (the vocabulary head) chunks are wider.
//!
//! Each output is one f32 chain of multiply-adds over the rows in order,
//! starting from the value in dx (fused on AVX2 and aarch64): the same chain
//! whatever the chunking, so the result does not depend on the number of
//! threads or on which thread computes what. Its error is at most about
//! `rows · ε · (|dx| + Σ_k |dy w|)`.

use crate::chunks::Chunks;
use crate::dequantized_matmul::{f32_matrix, LowRank};
use crate::f32_tile::{tiles_at, MT, NR};
use crate::matmul::{fork, SendPtr, WeightMatrix};
use crate::simd::SimdLevel;
use crate::thread_buffer::{with_buffer, Slot};
use rayon::ThreadPool;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Floats of dequantized weights per slice (128 KiB: stays in L2 while all
/// of a chunk's tokens pass, and fits a worker thread's stack).
const SLICE_FLOATS: usize = 32 * 1024;
/// Most columns per chunk (unless one block is wider, as for the k-quants):
/// a slice then holds at least 256 rows, and 576 columns make 6 chunks, so
/// that threads slowed by other work share the load.
const MAX_CHUNK_COLS: usize = 128;
/// Most columns per chunk where dy does not fit in the caches ([`DY_CACHED`]
/// bytes): each column chunk reads all of its tokens' dy, so fewer, wider
/// chunks (the vocabulary head's dy, T x 49152, is as big as its weights).
const MAX_WIDE_CHUNK_COLS: usize = 288;
/// Largest dy (bytes) taken to stay in the caches between column chunks.
const DY_CACHED: usize = 4 << 20;
/// Fewest tokens per chunk when tokens are split between threads: fewer
/// would spend more time dequantizing than multiplying.
const MIN_SPLIT_TOKENS: usize = 48;
/// Products smaller than this many multiply-adds run on the calling thread
/// (as in [`mod@crate::matmul`]).
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// `dx[T, cols] += dy[T, rows] · W`: the gradient of [`crate::matmul()`] (and
/// of [`crate::matmul_dequantized`]) with respect to its input, W read in
/// place and dequantized to f32. Accumulates into dx (zero it first for a
/// plain product). The result does not depend on the thread count.
///
/// Works for every type in the table (all have a dequantizer). Panics
/// (programmer errors) if `dy.len() != T * w.rows`, `dx.len() != T * w.cols`
/// or `w.data` is shorter than its shape.
pub fn matmul_transposed(
    w: &WeightMatrix,
    dy: &[f32],
    n_tokens: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) {
    matmul_transposed_at(SimdLevel::detect(), w, dy, n_tokens, dx, pool)
}

/// [`matmul_transposed`] with the kernel of one SIMD level: AVX2+FMA where
/// `level` is [`SimdLevel::Avx2`] and this CPU has it, else the portable one
/// (which the compiler vectorizes for the target's baseline, NEON on
/// aarch64). Tests use it to hold both to the reference.
pub fn matmul_transposed_at(
    level: SimdLevel,
    w: &WeightMatrix,
    dy: &[f32],
    n_tokens: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) {
    let term = TransposedTerm { w: *w, dy };
    transposed_on(level, &[term], n_tokens, dx, Some(pool))
}

/// One term of [`matmul_transposed_sum`]: `dy [T, w.rows] · W`.
#[derive(Debug, Clone, Copy)]
pub struct TransposedTerm<'a> {
    pub w: WeightMatrix<'a>,
    pub dy: &'a [f32],
}

impl<'a> LowRank<'a> {
    /// This term as `left [T, r] · right [r, cols]` (right is LoRA's A) in
    /// a [`matmul_transposed_sum`].
    pub fn transposed(&self, cols: usize) -> TransposedTerm<'a> {
        assert_eq!(self.right.len(), self.rank * cols, "right is not [r, cols]");
        TransposedTerm {
            w: f32_matrix(self.right, self.rank, cols),
            dy: self.left,
        }
    }
}

/// `dx[T, cols] += Σ_i dy_i[T, rows_i] · W_i`, every W with `cols` columns:
/// each output's chain runs over the first term's rows, then the next
/// term's, and so on (the chain [`matmul_transposed`] computes for the
/// terms' dy side by side times their W stacked), in one pass over dx. The
/// backward of a block's projections that share an input (q, k, v; gate,
/// up) with their LoRA branches, as one product.
pub fn matmul_transposed_sum(
    terms: &[TransposedTerm],
    n_tokens: usize,
    dx: &mut [f32],
    pool: &ThreadPool,
) {
    transposed_on(SimdLevel::detect(), terms, n_tokens, dx, Some(pool))
}

/// [`matmul_transposed_sum`] on `pool`, or on the calling thread alone.
pub(crate) fn transposed_on(
    level: SimdLevel,
    terms: &[TransposedTerm],
    n_tokens: usize,
    dx: &mut [f32],
    pool: Option<&ThreadPool>,
) {
    let Some(cols) = terms.first().map(|t| t.w.cols) else {
        return;
    };
    for t in terms {
        assert_eq!(t.w.cols, cols, "terms of different widths");
        assert_eq!(t.dy.len(), n_tokens * t.w.rows, "dy is not [T, rows]");
        assert!(
            t.w.data.len() >= t.w.row_bytes() * t.w.rows,
            "weight data shorter than its shape"
        );
    }
    assert_eq!(dx.len(), n_tokens * cols, "dx is not [T, cols]");
    let rows: usize = terms.iter().map(|t| t.w.rows).sum();
    if rows == 0 || cols == 0 || n_tokens == 0 {
        return;
    }
    let tiles = tiles_at(level);
    let macs = rows * cols * n_tokens;
    let pool = pool.filter(|_| macs >= PARALLEL_MIN_MACS);
    let threads = pool.map_or(1, |p| p.current_num_threads());
    let plan = Plan::new(terms, rows, n_tokens, threads);
    let next = AtomicUsize::new(0);
    let out = SendPtr(dx.as_mut_ptr());
    let work = || {
        with_buffer(&SLICE_BUFFER, new_slice, |slice| {
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= plan.chunks.len() {
                    break;
                }
                let (cc, t0, t1) = plan.chunks.get(c);
                let c0 = cc * plan.chunk_cols;
                let nc = plan.chunk_cols.min(cols - c0);
                let slices = terms.iter().flat_map(|t| {
                    (0..t.w.rows)
                        .step_by(plan.slice_rows)
                        .map(move |k0| (&t.w, t.dy, k0))
                });
                for (m, ds, k0) in slices {
                    let kc = plan.slice_rows.min(m.rows - k0);
                    dequantize_slice(m, k0, kc, c0, nc, plan.ld, &mut slice.0);
                    let mut t = t0;
                    while t < t1 {
                        let mt = MT.min(t1 - t);
                        for p in 0..nc.div_ceil(NR) {
                            // SAFETY: the slice holds kc rows of ld >= nc
                            // floats (64-byte aligned, ld a multiple of NR);
                            // ds rows t..t+mt hold rows k0..k0+kc; outputs
                            // (tokens t..t+mt, columns c0 + p*NR + ..nr) lie
                            // inside dx ([T, cols], checked above) and belong
                            // to this chunk only; `tiles_at` checked the CPU.
                            unsafe {
                                (tiles[mt - 1])(
                                    slice.0.as_ptr().add(p * NR),
                                    plan.ld,
                                    kc,
                                    ds.as_ptr().add(t * m.rows + k0),
                                    m.rows,
                                    out.get().add(t * cols + c0 + p * NR),
                                    cols,
                                    NR.min(nc - p * NR),
                                    true,
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
        Some(pool) if threads > 1 && plan.chunks.len() > 1 => fork(pool, &work),
        _ => work(),
    }
}

/// The naive product [`matmul_transposed`] is tested against: W dequantized
/// to f32, each output's sum taken in f64 and added to dx.
pub fn matmul_transposed_reference(w: &WeightMatrix, dy: &[f32], n_tokens: usize, dx: &mut [f32]) {
    assert_eq!(dy.len(), n_tokens * w.rows, "dy is not [T, rows]");
    assert_eq!(dx.len(), n_tokens * w.cols, "dx is not [T, cols]");
    let mut wf = vec![0.0f32; w.rows * w.cols];
    for (r, row) in wf.chunks_exact_mut(w.cols.max(1)).enumerate() {
        w.dequantize_row(r, row);
    }
    for t in 0..n_tokens {
        for c in 0..w.cols {
            let sum: f64 = (0..w.rows)
                .map(|r| dy[t * w.rows + r] as f64 * wf[r * w.cols + c] as f64)
                .sum();
            let d = &mut dx[t * w.cols + c];
            *d = (*d as f64 + sum) as f32;
        }
    }
}

/// How a product is cut into chunks (columns times tokens) and slices.
struct Plan {
    /// Columns per chunk: whole blocks and whole tiles (the last may be
    /// narrower).
    chunk_cols: usize,
    /// Column chunks times token ranges.
    chunks: Chunks,
    /// Floats per dequantized row in the slice buffer (a multiple of NR).
    ld: usize,
    /// Weight rows per slice.
    slice_rows: usize,
}

impl Plan {
    /// For `terms` of `rows` rows in all.
    fn new(terms: &[TransposedTerm], rows: usize, n_tokens: usize, threads: usize) -> Plan {
        // Chunks start on a block of every term and a tile boundary.
        let unit = terms.iter().fold(NR, |u, t| lcm(u, t.w.ty.block_size()));
        let cols = terms[0].w.cols;
        let units = cols.div_ceil(unit);
        let max_cols = if n_tokens * rows * size_of::<f32>() <= DY_CACHED {
            MAX_CHUNK_COLS
        } else {
            MAX_WIDE_CHUNK_COLS
        };
        let chunk_units = chunk_units(units, (max_cols / unit).max(1), threads);
        let chunk_cols = chunk_units * unit;
        let col_chunks = units.div_ceil(chunk_units);
        // Fewer column chunks than threads (e.g. 64 columns on 16 cores):
        // split the tokens too, each chunk dequantizing its columns again.
        let token_splits = threads
            .div_ceil(col_chunks)
            .min(n_tokens / MIN_SPLIT_TOKENS)
            .max(1);
        let chunk_tokens = n_tokens.div_ceil(token_splits).next_multiple_of(MT);
        let ld = chunk_cols.min(cols).next_multiple_of(NR);
        assert!(ld <= SLICE_FLOATS, "a block wider than the slice buffer");
        Plan {
            chunk_cols,
            chunks: Chunks::new(col_chunks, n_tokens, chunk_tokens, threads),
            ld,
            slice_rows: SLICE_FLOATS / ld,
        }
    }
}

/// Units (of whole blocks and tiles) per column chunk, at most `max`: the
/// size whose chunks, dealt to `threads` threads, leave the busiest thread
/// the least work (the widest of equals). E.g. 18 units (576 columns of
/// 32-element blocks), at most 4, on 2 threads: 6 chunks of 3, not 5 of 4.
fn chunk_units(units: usize, max: usize, threads: usize) -> usize {
    (1..=max.min(units))
        .min_by_key(|&c| (units.div_ceil(c).div_ceil(threads) * c, usize::MAX - c))
        .unwrap_or(1)
}

fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// A slice of dequantized weights, aligned for vector loads.
#[repr(C, align(64))]
struct Slice([f32; SLICE_FLOATS]);

thread_local! {
    static SLICE_BUFFER: Slot<Slice> = const { RefCell::new(None) };
}

fn new_slice() -> Box<Slice> {
    // SAFETY: all zero bits are valid f32s.
    unsafe { Box::new_zeroed().assume_init() }
}

/// Dequantizes rows `k0..k0 + kc`, columns `c0..c0 + nc` (whole blocks) of
/// `w` into `slice`, row i at `slice[i * ld..]`. Floats `nc..ld` of a row
/// keep stale values: the tile kernels never store their lanes, and lanes do
/// not mix.
fn dequantize_slice(
    w: &WeightMatrix,
    k0: usize,
    kc: usize,
    c0: usize,
    nc: usize,
    ld: usize,
    slice: &mut [f32; SLICE_FLOATS],
) {
    let dequantize = w.ty.traits().dequantize;
    let (bs, bb, ws) = (w.ty.block_size(), w.ty.block_bytes(), w.row_bytes());
    let (b0, b1) = (c0 / bs * bb, (c0 + nc) / bs * bb);
    for (i, row) in slice.chunks_exact_mut(ld).take(kc).enumerate() {
        let start = (k0 + i) * ws;
        dequantize(&w.data[start + b0..start + b1], &mut row[..nc]);
    }
}

/// `fn(b, ldb, kc, a, lda, c, ldc, nr)`: for the tile's tokens t and columns
/// j < nr, `c[t * ldc + j] += Σ_k a[t * lda + k] * b[k * ldb + j]` over
/// `k < kc`, as one chain of multiply-adds in k order; one entry per token
/// count 1..=MT.
///
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{quantize_row, GgmlType};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// How far an output may be from the f64 reference, relative to
    /// `(rows + 1) · ε · (|dx| + Σ_k |dy_k w_k|)`: both use the same
    /// dequantized weights, only the f32 accumulation differs, and a chain
    /// of `rows` multiply-adds (plus the final rounding) errs by at most
    /// about `(rows + 1) · ε` of the sum of absolute terms.
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

    /// Columns for `ty`: not a multiple of the chunk width (a partial last
    /// chunk), and not a multiple of NR where the block size allows.
    fn cols_for(ty: GgmlType) -> usize {
        match ty.block_size() {
            1 => 300,
            32 => 288,
            _ => 512,
        }
    }

    /// A product's inputs: weights, dy and the dx it accumulates into.
    struct Case {
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n_tokens: usize,
        data: Vec<u8>,
        dy: Vec<f32>,
        dx: Vec<f32>,
    }

    impl Case {
        fn new(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize) -> Case {
            let mut r = StdRng::seed_from_u64((rows * 1000 + cols * 7 + n_tokens) as u64);
            Case {
                ty,
                rows,
                cols,
                n_tokens,
                data: weights(ty, rows, cols, &mut r),
                dy: random(&mut r, n_tokens * rows),
                dx: random(&mut r, n_tokens * cols),
            }
        }

        fn w(&self) -> WeightMatrix<'_> {
            WeightMatrix::new(self.ty, self.rows, self.cols, &self.data).unwrap()
        }

        /// dx after `matmul_transposed_at(level, ..)` on `pool`.
        fn run(&self, level: SimdLevel, pool: &ThreadPool) -> Vec<f32> {
            let mut dx = self.dx.clone();
            matmul_transposed_at(level, &self.w(), &self.dy, self.n_tokens, &mut dx, pool);
            dx
        }

        /// The tolerance of output (t, c): see [`ACCUMULATION_BOUND`].
        fn tolerances(&self) -> Vec<f32> {
            let (rows, cols) = (self.rows, self.cols);
            let mut wf = vec![0.0f32; rows * cols];
            for (r, row) in wf.chunks_exact_mut(cols.max(1)).enumerate() {
                self.w().dequantize_row(r, row);
            }
            let mut tol = vec![0.0f32; self.n_tokens * cols];
            for t in 0..self.n_tokens {
                for c in 0..cols {
                    let abs: f32 = (0..rows)
                        .map(|r| (self.dy[t * rows + r] * wf[r * cols + c]).abs())
                        .sum::<f32>()
                        + self.dx[t * cols + c].abs();
                    tol[t * cols + c] = ACCUMULATION_BOUND * (rows + 1) as f32 * f32::EPSILON * abs;
                }
            }
            tol
        }

        /// Checks `got` against `want`, each output within `scale` times its
        /// tolerance.
        fn assert_close(&self, what: &str, got: &[f32], want: &[f32], scale: f32) {
            let (ty, rows, cols, n_tokens) = (self.ty, self.rows, self.cols, self.n_tokens);
            for (i, ((&g, &e), &tol)) in got.iter().zip(want).zip(&self.tolerances()).enumerate() {
                assert!(
                    (g - e).abs() <= scale * tol,
                    "{ty} rows={rows} cols={cols} T={n_tokens} {what}: dx[{}, {}] = {g}, expected {e} (tolerance {})",
                    i / cols,
                    i % cols,
                    scale * tol
                );
            }
        }

        /// Checks every available level against the reference on `pool`.
        fn check(&self, pool: &ThreadPool) {
            let mut want = self.dx.clone();
            matmul_transposed_reference(&self.w(), &self.dy, self.n_tokens, &mut want);
            for level in levels() {
                let got = self.run(level, pool);
                self.assert_close(&format!("{level:?}"), &got, &want, 1.0);
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
    fn terms_continue_each_chain() {
        let pool = pool(2);
        let mut r = StdRng::seed_from_u64(6);
        for (rows, cols, n, rank) in [(70, 96, 130, 5), (16, 288, 7, 16), (600, 64, 50, 3)] {
            let data = weights(GgmlType::Q4_1, rows, cols, &mut r);
            let w = WeightMatrix::new(GgmlType::Q4_1, rows, cols, &data).unwrap();
            let data2 = weights(GgmlType::Q8_0, 9, cols, &mut r);
            let w2 = WeightMatrix::new(GgmlType::Q8_0, 9, cols, &data2).unwrap();
            let (dy, left, a, dy2) = (
                random(&mut r, n * rows),
                random(&mut r, n * rank),
                random(&mut r, rank * cols),
                random(&mut r, n * 9),
            );
            // [W; a; W2] as f32 rows, [dy | left | dy2] per token.
            let mut stacked = vec![0.0f32; (rows + 9) * cols];
            for (i, row) in stacked.chunks_exact_mut(cols).enumerate() {
                if i < rows {
                    w.dequantize_row(i, row);
                } else {
                    w2.dequantize_row(i - rows, row);
                }
            }
            let tail = stacked.split_off(rows * cols);
            stacked.extend_from_slice(&a);
            stacked.extend_from_slice(&tail);
            let side_by_side: Vec<f32> = (0..n)
                .flat_map(|t| {
                    let d = &dy[t * rows..(t + 1) * rows];
                    let l = &left[t * rank..(t + 1) * rank];
                    d.iter().chain(l).chain(&dy2[t * 9..(t + 1) * 9]).copied()
                })
                .collect();
            let start = random(&mut r, n * cols);
            let mut want = start.clone();
            let k = rows + rank + 9;
            crate::gemm_f32_nn(&side_by_side, &stacked, n, cols, k, &mut want, &pool);
            let mut got = start;
            let term = LowRank {
                left: &left,
                right: &a,
                rank,
            };
            let terms = [
                TransposedTerm { w, dy: &dy },
                term.transposed(cols),
                TransposedTerm { w: w2, dy: &dy2 },
            ];
            matmul_transposed_sum(&terms, n, &mut got, &pool);
            // The same chain of multiply-adds as the stacked product.
            assert_eq!(got, want, "{rows}x{cols} T={n} r={rank}");
        }
    }

    #[test]
    fn every_type_matches_reference() {
        let pool = pool(2);
        for ty in GgmlType::all() {
            for n_tokens in [1, 3, 17, 130] {
                // 37 rows: no multiple of anything.
                Case::new(ty, 37, cols_for(ty), n_tokens).check(&pool);
            }
        }
    }

    #[test]
    fn shapes_match_reference() {
        let pool = pool(2);
        for (ty, rows, cols, n_tokens) in [
            (GgmlType::Q8_0, 1, 32, 1),
            (GgmlType::Q4_1, 33, 96, 7),
            (GgmlType::Q4_1, 301, 576, 130),  // 6 column chunks
            (GgmlType::Q8_0, 1000, 64, 100),  // several slices of rows
            (GgmlType::Q8_0, 70, 32, 200),    // one column chunk: tokens split
            (GgmlType::Q4_K, 1100, 256, 5),   // several slices of 128 rows
            (GgmlType::Q4_1, 16411, 320, 64), // dy uncached: 288 + 32 columns
            (GgmlType::F16, 5, 1, 3),
            (GgmlType::F32, 3, 7, 2),
            (GgmlType::F32, 2, 300, 1),
        ] {
            Case::new(ty, rows, cols, n_tokens).check(&pool);
        }
    }

    /// The AVX2 kernel against the portable one, directly (each is also
    /// held to the reference above).
    #[test]
    fn simd_matches_portable() {
        let pool = pool(2);
        for (ty, rows, cols, n_tokens) in [
            (GgmlType::Q4_1, 301, 576, 130),
            (GgmlType::Q8_0, 192, 576, 17),
            (GgmlType::F32, 40, 300, 3),
        ] {
            let case = Case::new(ty, rows, cols, n_tokens);
            let portable = case.run(SimdLevel::Scalar, &pool);
            for level in levels() {
                // Both err by at most one tolerance from the exact value.
                case.assert_close(
                    &format!("{level:?}"),
                    &case.run(level, &pool),
                    &portable,
                    2.0,
                );
            }
        }
    }

    /// Each output is the same chain of multiply-adds however the work is
    /// cut: the bits do not depend on the thread count, or on being called
    /// from inside the pool.
    #[test]
    fn result_independent_of_thread_count() {
        let pools: Vec<ThreadPool> = [1, 2, 3, 4].into_iter().map(pool).collect();
        for (ty, rows, cols, n_tokens) in [
            (GgmlType::Q4_1, 301, 576, 130),
            (GgmlType::Q8_0, 70, 32, 200),
            (GgmlType::Q4_1, 16411, 320, 64),
            (GgmlType::Q4_K, 300, 768, 50),
        ] {
            let case = Case::new(ty, rows, cols, n_tokens);
            for level in levels() {
                let one = case.run(level, &pools[0]);
                for pool in &pools[1..] {
                    let n = pool.current_num_threads();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert!(
                        bits(&case.run(level, pool)) == bits(&one),
                        "{ty} {level:?}: {n} threads differ from 1"
                    );
                    let inside = pool.install(|| case.run(level, pool));
                    assert!(
                        bits(&inside) == bits(&one),
                        "{ty} {level:?}: {n} threads, from inside the pool, differ from 1"
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_share_columns_evenly() {
        // 576 columns of 32-element blocks on 2 threads: 6 chunks of 96.
        assert_eq!(chunk_units(18, 4, 2), 3);
        assert_eq!(chunk_units(18, 4, 1), 3);
        // 1536 columns: 12 chunks of 128.
        assert_eq!(chunk_units(48, 4, 2), 4);
        // The head's 576 columns, wide: one chunk per thread.
        assert_eq!(chunk_units(18, 9, 2), 9);
        assert_eq!(chunk_units(18, 9, 3), 6);
        assert_eq!(chunk_units(1, 4, 2), 1);
        assert_eq!(lcm(NR, 32), 32);
        assert_eq!(lcm(NR, 1), NR);
        assert_eq!(lcm(NR, 256), 256);
    }

    #[test]
    fn empty_shapes_leave_dx() {
        let pool = pool(2);
        let w = WeightMatrix::new(GgmlType::F32, 0, 4, &[]).unwrap();
        let mut dx = [1.5f32; 8];
        matmul_transposed(&w, &[], 2, &mut dx, &pool);
        assert_eq!(dx, [1.5; 8]);
        let w = WeightMatrix::new(GgmlType::F32, 3, 0, &[]).unwrap();
        matmul_transposed(&w, &[0.0; 6], 2, &mut [], &pool);
        let data = [0u8; 3 * 4 * 4];
        let w = WeightMatrix::new(GgmlType::F32, 3, 4, &data).unwrap();
        matmul_transposed(&w, &[], 0, &mut [], &pool);
    }
}

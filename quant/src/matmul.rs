//! Matrix products with quantized weights read in place.
//!
//! `y[T, rows] = x[T, cols] · W^T`. The activations are quantized once to the
//! weight type's `vec_dot_type` ([`QuantizedActivations`]); each output is a
//! block-by-block integer dot product scaled in f32, as ggml-cpu computes it.
//!
//! Work is split into chunks (a range of rows, times a range of tokens when
//! T > 1) that threads claim from a shared counter, as ggml does; the calling
//! thread takes part. For T > 1 the type's tiled kernel (`gemm`) computes a
//! few rows by a few tokens at once, loading each weight block once per tile.
//!
//! Overhead per call is a few microseconds. From inside `pool.install(..)`
//! the chunks are forked with `rayon::join` (no allocation); from another
//! thread, helpers are spawned and only those that already started are
//! waited for (see [`fork`]). Either way the calling thread works too.

use crate::simd::SimdLevel;
use crate::types::{GemmFn, VecDotFn};
use crate::{GgmlType, QuantError, QuantizedActivations};
use rayon::ThreadPool;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A weight matrix read in place (e.g. straight from a memory map): `rows`
/// output features, each row `cols` input elements stored as `ty` blocks;
/// row r starts at `r * ty.row_bytes(cols)`.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> WeightMatrix<'a> {
    /// Checks that `data` holds exactly `rows` rows of `cols` elements of `ty`.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> Result<Self, QuantError> {
        let row_bytes = ty.row_bytes(cols).ok_or(QuantError::NotBlockMultiple {
            ty,
            n: cols,
            block: ty.block_size(),
        })?;
        let expected = row_bytes
            .checked_mul(rows)
            .ok_or(QuantError::Overflow { ty, n: cols })?;
        if data.len() != expected {
            return Err(QuantError::MatrixBytes {
                ty,
                rows,
                cols,
                expected,
                actual: data.len(),
            });
        }
        Ok(WeightMatrix {
            ty,
            rows,
            cols,
            data,
        })
    }

    /// Bytes per row.
    #[inline]
    pub fn row_bytes(&self) -> usize {
        self.ty
            .row_bytes(self.cols)
            .expect("cols is a whole number of blocks")
    }

    /// Row `r` as bytes.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Dequantizes row `r` into `out` (`cols` floats), e.g. an embedding lookup.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols);
        (self.ty.traits().dequantize)(self.row(r), out);
    }
}

/// `y[T, rows] = x[T, cols] · W^T` with ggml's numerics (see the module docs).
///
/// Panics (programmer errors) if `x` was not quantized to
/// `w.ty.vec_dot_type()` with `w.cols` columns, if `y.len() != T * w.rows`,
/// if `w.data` is shorter than its shape, or if `w.ty` has no dot product
/// (Q8_1, Q8_K).
pub fn matmul(w: &WeightMatrix, x: &QuantizedActivations, y: &mut [f32], pool: &ThreadPool) {
    matmul_at(SimdLevel::detect(), w, x, y, pool)
}

/// [`matmul`] for tokens of several sequences, `groups` holding how many
/// consecutive tokens each has (summing to T): each group's outputs are what
/// a product of that group alone gives, so that a sequence computed in a
/// batch (a decode step of many, or a prompt chunk beside them) gets the
/// values it gets alone. Only the float types differ from [`matmul`] (their
/// tiles follow tinyBLAS, which ggml uses only for several tokens, and whose
/// sums are ordered differently): they run one product per group of
/// several tokens, and one per run of one-token groups (their dot products
/// are independent, a decode step of many sequences). The block
/// types' tiles give their dot products' bits, so one product serves all.
pub fn matmul_grouped(
    w: &WeightMatrix,
    x: &QuantizedActivations,
    y: &mut [f32],
    groups: &[usize],
    pool: &ThreadPool,
) {
    let level = SimdLevel::detect();
    if !is_float(w.ty) || groups.len() <= 1 {
        return product(level, w, x, 0, x.n_tokens(), y, false, pool);
    }
    assert_eq!(
        groups.iter().sum::<usize>(),
        x.n_tokens(),
        "groups do not cover T"
    );
    // A one-token group alone takes the dot-product path, whose outputs are
    // independent dot products: a run of such groups (a decode step of many
    // sequences) is one product, not one per sequence.
    let (mut t0, mut i) = (0, 0);
    while i < groups.len() {
        let ones = groups[i..].iter().take_while(|&&n| n == 1).count();
        let (n, one_each) = if ones > 0 {
            (ones, true)
        } else {
            (groups[i], false)
        };
        let y = &mut y[t0 * w.rows..(t0 + n) * w.rows];
        product(level, w, x, t0, n, y, one_each, pool);
        t0 += n;
        i += ones.max(1);
    }
}

/// Whether `ty` is a float type, whose tiles ggml uses only for several
/// tokens (see [`product`]).
fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Quantizes `x: [n_tokens, w.cols]` into `scratch`, then [`matmul`].
pub fn matmul_f32(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut QuantizedActivations,
    pool: &ThreadPool,
) {
    scratch.quantize(w.ty.vec_dot_type(), x, n_tokens, w.cols, pool);
    matmul(w, scratch, y, pool);
}

/// The naive product srl's kernels are tested against: each weight row
/// dequantized to f32 and dotted with the unquantized `x` in f64.
pub fn matmul_reference(w: &WeightMatrix, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    assert_eq!(x.len(), n_tokens * w.cols);
    assert_eq!(y.len(), n_tokens * w.rows);
    let mut row = vec![0.0f32; w.cols];
    for r in 0..w.rows {
        w.dequantize_row(r, &mut row);
        for t in 0..n_tokens {
            let xt = &x[t * w.cols..(t + 1) * w.cols];
            let dot: f64 = row.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
            y[t * w.rows + r] = dot as f32;
        }
    }
}

/// Products smaller than this many multiply-adds run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 17;
/// Rows per tiled chunk (a multiple of every tile height).
const GEMM_ROWS: usize = 32;
/// Tokens per tiled chunk.
const GEMM_TOKENS: usize = 64;

/// [`matmul`] with the kernels of one SIMD level (falling back to scalar
/// where that level has none); tests use it to hold each level to the scalar
/// reference.
pub fn matmul_at(
    level: SimdLevel,
    w: &WeightMatrix,
    x: &QuantizedActivations,
    y: &mut [f32],
    pool: &ThreadPool,
) {
    product(level, w, x, 0, x.n_tokens(), y, false, pool)
}

/// [`matmul_at`] on tokens `t0..t0 + n_tokens` of `x` (y holds theirs);
/// with `one_each`, every token is computed as a product of it alone would
/// (the dot-product path of a float type, see [`matmul_grouped`]).
#[allow(clippy::too_many_arguments)]
fn product(
    level: SimdLevel,
    w: &WeightMatrix,
    x: &QuantizedActivations,
    t0: usize,
    n_tokens: usize,
    y: &mut [f32],
    one_each: bool,
    pool: &ThreadPool,
) {
    let traits = w.ty.traits();
    assert!(
        t0 + n_tokens <= x.n_tokens(),
        "tokens outside the activations"
    );
    assert_eq!(
        x.ty(),
        Some(traits.vec_dot_type),
        "{} weights need {} activations",
        w.ty,
        traits.vec_dot_type
    );
    assert_eq!(x.cols(), w.cols, "activation and weight widths differ");
    assert_eq!(y.len(), n_tokens * w.rows, "output is not [T, rows]");
    let ws = w.row_bytes();
    assert!(
        w.data.len() >= ws * w.rows,
        "weight data shorter than its shape"
    );
    if w.rows == 0 || n_tokens == 0 {
        return;
    }
    let vec_dot_kernel = traits
        .vec_dot
        .unwrap_or_else(|| panic!("{} has no dot product", w.ty));
    let vec_dot = vec_dot_kernel.at(level).unwrap_or(vec_dot_kernel.scalar);
    // ggml runs float products (F32, F16, BF16) through llamafile's sgemm
    // (tinyBLAS) only for T >= 2 and rows % 4 == 0 (and K % 8 == 0, checked
    // by the float gemms), else through its vec_dot, whose sums are ordered
    // differently: srl follows, for llama.cpp's bits.
    let alone = n_tokens < 2 || one_each;
    let gemm = if is_float(w.ty) && (alone || !w.rows.is_multiple_of(4)) {
        None
    } else {
        traits.gemm.and_then(|k| k.at(level))
    };
    let problem = Problem {
        n: w.cols,
        rows: w.rows,
        w: w.data,
        ws,
        x: &x.data()[t0 * x.row_bytes()..],
        xs: x.row_bytes(),
        n_tokens,
        y: SendPtr(y.as_mut_ptr()),
    };
    let macs = w.rows * w.cols * n_tokens;
    let threads = if macs < PARALLEL_MIN_MACS {
        1
    } else {
        pool.current_num_threads()
    };
    match gemm {
        Some(gemm) => problem.run_gemm(gemm, threads, pool),
        None => problem.run_vec_dot(vec_dot, threads, pool),
    }
}

/// One product, shared read-only by the threads computing it.
struct Problem<'a> {
    n: usize,
    rows: usize,
    w: &'a [u8],
    ws: usize,
    x: &'a [u8],
    xs: usize,
    n_tokens: usize,
    y: SendPtr<f32>,
}

impl Problem<'_> {
    /// Row chunks, each computed with `vec_dot` for every token.
    fn run_vec_dot(&self, vec_dot: VecDotFn, threads: usize, pool: &ThreadPool) {
        let chunk = if threads == 1 {
            self.rows
        } else {
            (self.rows / (4 * threads))
                .clamp(4, 1024)
                .next_multiple_of(4)
        };
        let next = AtomicUsize::new(0);
        let work = || loop {
            let r0 = next.fetch_add(chunk, Ordering::Relaxed);
            if r0 >= self.rows {
                break;
            }
            let r1 = (r0 + chunk).min(self.rows);
            for t in 0..self.n_tokens {
                let x = &self.x[t * self.xs..(t + 1) * self.xs];
                // SAFETY: rows r0..r1 of token t are claimed by this thread
                // only, and lie inside y ([T, rows], checked by the caller).
                let y = unsafe {
                    std::slice::from_raw_parts_mut(self.y.get().add(t * self.rows + r0), r1 - r0)
                };
                for (r, y) in (r0..r1).zip(y) {
                    *y = vec_dot(self.n, &self.w[r * self.ws..(r + 1) * self.ws], x);
                }
            }
        };
        if threads == 1 {
            work();
        } else {
            fork(pool, &work);
        }
    }

    /// Chunks of rows by tokens, each computed by the tiled kernel. With one
    /// token (decoding) the chunks are row ranges, a few per thread; the
    /// kernel then still computes several rows per activation block load.
    fn run_gemm(&self, gemm: GemmFn, threads: usize, pool: &ThreadPool) {
        let chunk_rows = if self.n_tokens >= GEMM_TOKENS / 2 {
            GEMM_ROWS
        } else if threads == 1 {
            self.rows
        } else {
            (self.rows / (4 * threads))
                .clamp(GEMM_ROWS, 1024)
                .next_multiple_of(GEMM_ROWS)
        };
        let chunk_tokens = GEMM_TOKENS.min(self.n_tokens);
        let row_chunks = self.rows.div_ceil(chunk_rows);
        let tok_chunks = self.n_tokens.div_ceil(chunk_tokens);
        let n_chunks = row_chunks * tok_chunks;
        let next = AtomicUsize::new(0);
        let work = || loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            let (tc, rc) = (c / row_chunks, c % row_chunks);
            let r0 = rc * chunk_rows;
            let t0 = tc * chunk_tokens;
            let nr = chunk_rows.min(self.rows - r0);
            let nt = chunk_tokens.min(self.n_tokens - t0);
            // SAFETY: this chunk's outputs (rows r0.., tokens t0..) are
            // written by this thread only and lie inside y.
            unsafe {
                gemm(
                    self.n,
                    &self.w[r0 * self.ws..],
                    self.ws,
                    nr,
                    &self.x[t0 * self.xs..],
                    self.xs,
                    nt,
                    self.y.get().add(t0 * self.rows + r0),
                    self.rows,
                )
            };
        };
        if threads == 1 {
            work();
        } else {
            fork(pool, &work);
        }
    }
}

/// Runs `f` on every thread of `pool`, the calling thread included; `f`
/// claims chunks of work from a shared counter, so a thread that starts late
/// finds nothing left and returns at once.
///
/// From a worker of `pool` this forks with `rayon::join` (no allocation; a
/// job no other thread picked up runs, and returns, on this thread). From
/// outside the pool it spawns helpers and, once its own loop is done, waits
/// only for helpers that already started: a helper still asleep must not
/// cost a wake-up per matrix product.
pub(crate) fn fork(pool: &ThreadPool, f: &(dyn Fn() + Sync)) {
    let n = pool.current_num_threads();
    if n <= 1 {
        f();
    } else if pool.current_thread_index().is_some() {
        join_n(n, f);
    } else {
        fork_from_outside(pool, n, f);
    }
}

fn join_n(n: usize, f: &(dyn Fn() + Sync)) {
    if n <= 1 {
        f();
    } else {
        rayon::join(f, || join_n(n - 1, f));
    }
}

/// Set in [`HelperState`] once the caller no longer accepts helpers.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Helpers that are running `f` (low bits) and the [`CLOSED`] flag.
struct HelperState(AtomicUsize);

/// Closes the helper state and waits for running helpers when the caller's
/// part ends, normally or by a panic: `f` borrows the caller's stack.
struct CloseOnDrop<'a>(&'a HelperState);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_or(CLOSED, Ordering::AcqRel);
        let mut spins = 0u32;
        while self.0 .0.load(Ordering::Acquire) & !CLOSED != 0 {
            spins += 1;
            if spins < 1 << 10 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

fn fork_from_outside(pool: &ThreadPool, n: usize, f: &(dyn Fn() + Sync)) {
    let state = std::sync::Arc::new(HelperState(AtomicUsize::new(0)));
    // SAFETY: a helper calls `f` only after registering in `state` while it
    // is open, and `CloseOnDrop` (which runs before this function returns or
    // unwinds) closes `state` and waits until no registered helper remains.
    // So every call of `f` ends while the borrow is alive; late helpers touch
    // only `state`, which they own a share of.
    let f_static: &'static (dyn Fn() + Sync) = unsafe { std::mem::transmute(f) };
    for _ in 1..n {
        let state = state.clone();
        pool.spawn(move || {
            if state.0.fetch_add(1, Ordering::AcqRel) & CLOSED == 0 {
                f_static();
            }
            state.0.fetch_sub(1, Ordering::AcqRel);
        });
    }
    let _close = CloseOnDrop(&state);
    f();
}

/// A raw pointer that threads writing disjoint elements may share.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: users write disjoint elements only (documented at each use).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the wrapper, not the field).
    #[inline(always)]
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

//! The GGML element types and the one table that describes them.
//!
//! Each type lives in its own file: a `#[repr(C)]` block struct with a
//! compile-time size check, its scalar reference kernels and its SIMD
//! kernels. [`TABLE`] is the only place that maps a [`GgmlType`] to those
//! functions; everything else in srl asks the table.

use crate::simd::SimdLevel;
use std::fmt;

pub mod bf16;
pub mod f16;
pub mod f32;
mod k_common;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

/// Elements per k-quant super-block.
pub const QK_K: usize = 256;

/// A GGML tensor element type, with its GGUF id.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
}

/// `fn(src blocks, dst f32)`; lengths are checked by the caller.
pub type DequantizeFn = fn(&[u8], &mut [f32]);
/// `fn(src f32, dst blocks)`; lengths are checked by the caller.
pub type QuantizeFn = fn(&[f32], &mut [u8]);
/// `fn(n, w, x) -> sum_i w[i] * x[i]` over `n` elements: `w` holds blocks of
/// the weight type, `x` blocks of its `vec_dot_type`.
pub type VecDotFn = fn(usize, &[u8], &[u8]) -> f32;
/// Tiled product: `fn(n, w, w_stride, nr, x, x_stride, nt, y, y_stride)`
/// computes `y[t * y_stride + r] = dot(w row r, x row t)` for `r < nr`,
/// `t < nt`, with rows `w_stride` / `x_stride` bytes apart. Entries of the
/// block types give the same result as calling the type's vec_dot of the same
/// level per pair; the float types' follow llamafile's tinyBLAS, as ggml
/// where it uses it (`crate::matmul`).
///
/// # Safety
/// `y` must be valid for writes at every `t * y_stride + r`, and no other
/// thread may access those elements during the call. (Output blocks of
/// different threads interleave, so this cannot be a `&mut [f32]`.)
pub type GemmFn = unsafe fn(usize, &[u8], usize, usize, &[u8], usize, usize, *mut f32, usize);

/// One kernel at several SIMD levels; `scalar` is the reference.
#[derive(Clone, Copy)]
pub struct Kernel<F: Copy> {
    pub scalar: F,
    pub avx2: Option<F>,
    pub neon: Option<F>,
}

impl<F: Copy> Kernel<F> {
    /// The fastest entry this CPU can run.
    #[inline]
    pub fn best(&self) -> F {
        self.at(SimdLevel::detect()).unwrap_or(self.scalar)
    }

    /// The entry for exactly `level`, if it exists and this CPU can run it.
    pub fn at(&self, level: SimdLevel) -> Option<F> {
        if !level.available() {
            return None;
        }
        match level {
            SimdLevel::Scalar => Some(self.scalar),
            SimdLevel::Avx2 => self.avx2,
            SimdLevel::Neon => self.neon,
        }
    }
}

const fn scalar_only<F: Copy>(scalar: F) -> Kernel<F> {
    Kernel {
        scalar,
        avx2: None,
        neon: None,
    }
}

/// Everything srl knows about one element type (ggml's `type_traits` and
/// `type_traits_cpu` in one row).
pub struct TypeTraits {
    pub ty: GgmlType,
    /// Name as llama.cpp prints it: lowercase ("q4_1", "f16"), k-quants
    /// with a capital K ("q4_K").
    pub name: &'static str,
    /// Elements per block.
    pub block_size: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Block data to f32 (scalar; the reference).
    pub dequantize: DequantizeFn,
    /// Reference quantizer (the one that writes model files), if any.
    pub quantize: Option<QuantizeFn>,
    /// The activation type a matrix product pairs with this weight type.
    pub vec_dot_type: GgmlType,
    /// Activation quantizer with ggml-cpu's x86 numerics; present for the
    /// types that serve as a `vec_dot_type`.
    pub from_float: Option<Kernel<QuantizeFn>>,
    /// Dot product of a row of this type with a row of `vec_dot_type`.
    pub vec_dot: Option<Kernel<VecDotFn>>,
    /// Tiled matrix product (several rows by several tokens), when a kernel
    /// that reuses loaded blocks exists.
    pub gemm: Option<Kernel<GemmFn>>,
}

/// The table. Adding a type means one file and one row here.
pub static TABLE: [TypeTraits; 15] = [
    TypeTraits {
        ty: GgmlType::F32,
        name: "f32",
        block_size: 1,
        block_bytes: 4,
        dequantize: f32::dequantize,
        quantize: Some(f32::quantize),
        vec_dot_type: GgmlType::F32,
        from_float: Some(scalar_only(f32::quantize as QuantizeFn)),
        vec_dot: Some(f32::VEC_DOT),
        gemm: f32::GEMM,
    },
    TypeTraits {
        ty: GgmlType::F16,
        name: "f16",
        block_size: 1,
        block_bytes: 2,
        dequantize: f16::dequantize,
        quantize: Some(f16::quantize),
        vec_dot_type: GgmlType::F16,
        from_float: Some(f16::FROM_FLOAT),
        vec_dot: Some(f16::VEC_DOT),
        gemm: f16::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q4_0,
        name: "q4_0",
        block_size: q4_0::QK,
        block_bytes: std::mem::size_of::<q4_0::BlockQ4_0>(),
        dequantize: q4_0::dequantize,
        quantize: Some(q4_0::quantize),
        vec_dot_type: GgmlType::Q8_0,
        from_float: None,
        vec_dot: Some(q4_0::VEC_DOT),
        gemm: q4_0::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q4_1,
        name: "q4_1",
        block_size: q4_1::QK,
        block_bytes: std::mem::size_of::<q4_1::BlockQ4_1>(),
        dequantize: q4_1::dequantize,
        quantize: Some(q4_1::quantize),
        vec_dot_type: GgmlType::Q8_1,
        from_float: None,
        vec_dot: Some(q4_1::VEC_DOT),
        gemm: q4_1::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q5_0,
        name: "q5_0",
        block_size: q5_0::QK,
        block_bytes: std::mem::size_of::<q5_0::BlockQ5_0>(),
        dequantize: q5_0::dequantize,
        quantize: Some(q5_0::quantize),
        vec_dot_type: GgmlType::Q8_0,
        from_float: None,
        vec_dot: Some(q5_0::VEC_DOT),
        gemm: q5_0::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q5_1,
        name: "q5_1",
        block_size: q5_1::QK,
        block_bytes: std::mem::size_of::<q5_1::BlockQ5_1>(),
        dequantize: q5_1::dequantize,
        quantize: Some(q5_1::quantize),
        vec_dot_type: GgmlType::Q8_1,
        from_float: None,
        vec_dot: Some(q5_1::VEC_DOT),
        gemm: q5_1::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q8_0,
        name: "q8_0",
        block_size: q8_0::QK,
        block_bytes: std::mem::size_of::<q8_0::BlockQ8_0>(),
        dequantize: q8_0::dequantize,
        quantize: Some(q8_0::quantize),
        vec_dot_type: GgmlType::Q8_0,
        from_float: Some(q8_0::FROM_FLOAT),
        vec_dot: Some(q8_0::VEC_DOT),
        gemm: q8_0::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q8_1,
        name: "q8_1",
        block_size: q8_1::QK,
        block_bytes: std::mem::size_of::<q8_1::BlockQ8_1>(),
        dequantize: q8_1::dequantize,
        quantize: Some(q8_1::quantize),
        vec_dot_type: GgmlType::Q8_1,
        from_float: Some(q8_1::FROM_FLOAT),
        vec_dot: None,
        gemm: None,
    },
    TypeTraits {
        ty: GgmlType::Q2_K,
        name: "q2_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q2_k::BlockQ2K>(),
        dequantize: q2_k::dequantize,
        quantize: Some(q2_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: None,
        vec_dot: Some(q2_k::VEC_DOT),
        gemm: q2_k::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q3_K,
        name: "q3_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q3_k::BlockQ3K>(),
        dequantize: q3_k::dequantize,
        quantize: Some(q3_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: None,
        vec_dot: Some(q3_k::VEC_DOT),
        gemm: q3_k::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q4_K,
        name: "q4_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q4_k::BlockQ4K>(),
        dequantize: q4_k::dequantize,
        quantize: Some(q4_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: None,
        vec_dot: Some(q4_k::VEC_DOT),
        gemm: q4_k::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q5_K,
        name: "q5_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q5_k::BlockQ5K>(),
        dequantize: q5_k::dequantize,
        quantize: Some(q5_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: None,
        vec_dot: Some(q5_k::VEC_DOT),
        gemm: q5_k::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q6_K,
        name: "q6_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q6_k::BlockQ6K>(),
        dequantize: q6_k::dequantize,
        quantize: Some(q6_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: None,
        vec_dot: Some(q6_k::VEC_DOT),
        gemm: q6_k::GEMM,
    },
    TypeTraits {
        ty: GgmlType::Q8_K,
        name: "q8_K",
        block_size: QK_K,
        block_bytes: std::mem::size_of::<q8_k::BlockQ8K>(),
        dequantize: q8_k::dequantize,
        quantize: Some(q8_k::quantize),
        vec_dot_type: GgmlType::Q8_K,
        from_float: Some(scalar_only(q8_k::quantize as QuantizeFn)),
        vec_dot: None,
        gemm: None,
    },
    TypeTraits {
        ty: GgmlType::BF16,
        name: "bf16",
        block_size: 1,
        block_bytes: 2,
        dequantize: bf16::dequantize,
        quantize: Some(bf16::quantize),
        vec_dot_type: GgmlType::BF16,
        from_float: Some(scalar_only(bf16::quantize as QuantizeFn)),
        vec_dot: Some(bf16::VEC_DOT),
        gemm: bf16::GEMM,
    },
];

/// GGUF id -> index into [`TABLE`], built from the table at compile time.
const MAX_ID: usize = 31;
static SLOT_BY_ID: [u8; MAX_ID] = {
    let mut slots = [u8::MAX; MAX_ID];
    let mut i = 0;
    while i < TABLE_IDS.len() {
        slots[TABLE_IDS[i] as usize] = i as u8;
        i += 1;
    }
    slots
};
/// The ids of [`TABLE`]'s rows, in order (checked against the table in tests).
const TABLE_IDS: [u32; 15] = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];

impl GgmlType {
    /// Every type, in table order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|t| t.ty)
    }

    /// The type with GGUF id `id`.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        let slot = *SLOT_BY_ID.get(id as usize)?;
        TABLE.get(slot as usize).map(|t| t.ty)
    }

    /// GGUF id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// This type's row of the table.
    #[inline]
    pub fn traits(self) -> &'static TypeTraits {
        &TABLE[SLOT_BY_ID[self as usize] as usize]
    }

    /// Lowercase name as llama.cpp prints it ("q4_1", "f16"; k-quants "q4_K").
    pub fn name(self) -> &'static str {
        self.traits().name
    }

    /// The type called `s` (case-insensitive).
    pub fn from_name(s: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(s))
            .map(|t| t.ty)
    }

    /// Elements per block.
    #[inline]
    pub fn block_size(self) -> usize {
        self.traits().block_size
    }

    /// Bytes per block.
    #[inline]
    pub fn block_bytes(self) -> usize {
        self.traits().block_bytes
    }

    /// Bytes taken by `n` elements; `None` if `n` is not a whole number of
    /// blocks or the size overflows.
    #[inline]
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        let t = self.traits();
        if !n.is_multiple_of(t.block_size) {
            return None;
        }
        (n / t.block_size).checked_mul(t.block_bytes)
    }

    /// The activation type ggml-cpu pairs with this weight type.
    pub fn vec_dot_type(self) -> GgmlType {
        self.traits().vec_dot_type
    }

    /// Whether [`crate::quantize_row`] supports this type.
    pub fn can_quantize(self) -> bool {
        self.traits().quantize.is_some()
    }

    /// Whether this type can be the weight of [`crate::matmul`].
    pub fn can_matmul(self) -> bool {
        let t = self.traits();
        t.vec_dot.is_some() && t.vec_dot_type.traits().from_float.is_some()
    }

    /// Whether blocks hold more than one element (not F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.traits().block_size > 1
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GgmlType {
    type Err = crate::QuantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GgmlType::from_name(s).ok_or_else(|| crate::QuantError::UnknownType(s.to_string()))
    }
}

/// Reference tiled product: `vec_dot` for each (row, token) pair (see
/// [`GemmFn`] for the arguments).
///
/// # Safety
/// As [`GemmFn`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_with(
    vec_dot: VecDotFn,
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    x: &[u8],
    xs: usize,
    nt: usize,
    y: *mut f32,
    ys: usize,
) {
    for t in 0..nt {
        for r in 0..nr {
            *y.add(t * ys + r) = vec_dot(n, &w[r * ws..], &x[t * xs..]);
        }
    }
}

/// Defines `fn gemm`, the scalar [`GemmFn`] of a type, from its `vec_dot`.
macro_rules! scalar_gemm {
    ($vec_dot:path) => {
        /// Reference tiled product (`vec_dot` per pair).
        ///
        /// # Safety
        /// As [`crate::types::GemmFn`].
        #[allow(clippy::too_many_arguments)]
        unsafe fn gemm(
            n: usize,
            w: &[u8],
            ws: usize,
            nr: usize,
            x: &[u8],
            xs: usize,
            nt: usize,
            y: *mut f32,
            ys: usize,
        ) {
            $crate::types::gemm_with($vec_dot, n, w, ws, nr, x, xs, nt, y, ys)
        }
    };
}
pub(crate) use scalar_gemm;

/// A block struct that may be viewed in place in any byte buffer.
///
/// # Safety
/// Implementors are `#[repr(C)]`, have alignment 1, no padding, and every bit
/// pattern is a valid value (only `u8`/`i8` arrays inside).
pub unsafe trait Block: Copy + 'static {}

/// Declares `$t` a [`Block`] of `$bytes` bytes, checked at compile time.
macro_rules! block {
    ($t:ty, $bytes:expr) => {
        const _: () = assert!(std::mem::size_of::<$t>() == $bytes);
        const _: () = assert!(std::mem::align_of::<$t>() == 1);
        // SAFETY: checked above: align 1, exact size; fields are byte arrays.
        unsafe impl $crate::types::Block for $t {}
    };
}
pub(crate) use block;

/// Views `bytes` as blocks. Panics if the length is not a whole number of
/// blocks (a programmer error: callers check lengths first).
#[inline(always)]
pub fn as_blocks<B: Block>(bytes: &[u8]) -> &[B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "byte length not a multiple of block size"
    );
    // SAFETY: B has alignment 1, no padding and accepts any bit pattern; the
    // length is a whole number of blocks.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const B, bytes.len() / size) }
}

/// Mutable version of [`as_blocks`].
#[inline(always)]
pub fn as_blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "byte length not a multiple of block size"
    );
    // SAFETY: as in `as_blocks`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut B, bytes.len() / size) }
}

/// `x86_entry!(NAME: Type = path)` declares `const NAME: Option<Type>`:
/// `Some(path)` on x86-64, `None` elsewhere. `path` must be a safe wrapper
/// that is only reachable through a [`Kernel`] (which checks the CPU first).
macro_rules! x86_entry {
    ($name:ident : $t:ty = $path:path) => {
        #[cfg(target_arch = "x86_64")]
        const $name: Option<$t> = Some($path);
        #[cfg(not(target_arch = "x86_64"))]
        const $name: Option<$t> = None;
    };
}
pub(crate) use x86_entry;

/// `neon_entry!(NAME: Type = path)`: as [`x86_entry!`] for aarch64.
macro_rules! neon_entry {
    ($name:ident : $t:ty = $path:path) => {
        #[cfg(target_arch = "aarch64")]
        const $name: Option<$t> = Some($path);
        #[cfg(not(target_arch = "aarch64"))]
        const $name: Option<$t> = None;
    };
}
pub(crate) use neon_entry;

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 dequantizers give the reference's bits, for blocks of random
    /// bytes (any scale, min, quant; inf and NaN scales included, whose NaN
    /// results may carry other payloads).
    #[test]
    fn simd_dequantizers_equal_the_reference() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let bytes: Vec<u8> = (0..20 * 34 * 64)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        type Pair = (usize, fn(&[u8], &mut [f32]), fn(&[u8], &mut [f32]));
        let pairs: [Pair; 2] = [
            (20, q4_1::dequantize, q4_1::dequantize_scalar),
            (34, q8_0::dequantize, q8_0::dequantize_scalar),
        ];
        for (block_bytes, fast, reference) in pairs {
            let src = &bytes[..block_bytes * 600];
            let (mut a, mut b) = (vec![0.0f32; 32 * 600], vec![1.0f32; 32 * 600]);
            fast(src, &mut a);
            reference(src, &mut b);
            // Bit for bit; NaNs (from NaN scales) may differ in payload.
            let bad = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()));
            assert!(
                bad.is_none(),
                "{block_bytes}-byte blocks, element {bad:?}: {:?} vs {:?}",
                bad.map(|i| a[i]),
                bad.map(|i| b[i])
            );
        }
    }

    #[test]
    fn table_ids_match_enum() {
        for (i, t) in TABLE.iter().enumerate() {
            assert_eq!(t.ty.id(), TABLE_IDS[i]);
            assert_eq!(GgmlType::from_id(t.ty.id()), Some(t.ty));
            assert_eq!(GgmlType::from_name(t.name), Some(t.ty));
            assert_eq!(GgmlType::from_name(&t.name.to_uppercase()), Some(t.ty));
            assert!(std::ptr::eq(t.ty.traits(), t));
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(1000), None);
        assert_eq!(GgmlType::from_name("q4_2"), None);
    }

    #[test]
    fn sizes_match_ggml() {
        // (type, block size, bytes per block) from ggml's type_traits.
        let want = [
            (GgmlType::F32, 1, 4),
            (GgmlType::F16, 1, 2),
            (GgmlType::BF16, 1, 2),
            (GgmlType::Q4_0, 32, 18),
            (GgmlType::Q4_1, 32, 20),
            (GgmlType::Q5_0, 32, 22),
            (GgmlType::Q5_1, 32, 24),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q8_1, 32, 36),
            (GgmlType::Q2_K, 256, 84),
            (GgmlType::Q3_K, 256, 110),
            (GgmlType::Q4_K, 256, 144),
            (GgmlType::Q5_K, 256, 176),
            (GgmlType::Q6_K, 256, 210),
            (GgmlType::Q8_K, 256, 292),
        ];
        for (ty, bs, bytes) in want {
            assert_eq!(ty.block_size(), bs, "{ty}");
            assert_eq!(ty.block_bytes(), bytes, "{ty}");
        }
        assert_eq!(GgmlType::Q4_1.row_bytes(576), Some(18 * 20));
        assert_eq!(GgmlType::Q4_1.row_bytes(577), None);
        assert_eq!(GgmlType::F32.row_bytes(usize::MAX), None);
    }
}

//! The SIMD dot products give the same bits on x86-64 and aarch64.
//!
//! `tests/data/avx2_dot_bits.json` holds the results of srl's AVX2 kernels
//! (themselves equal to ggml-cpu's AVX2 ones, see `reference_vectors.rs`) on
//! seeded random rows; on x86-64 the AVX2 kernel and on aarch64 the NEON one
//! must reproduce every result bit for bit. An aarch64 run cannot execute
//! AVX2, so these committed results are what it compares against.
//!
//! Two kinds of rows, each at 1, 2, 6 and 16 super-blocks:
//! - `quantized`: random weights and activations through the reference
//!   quantizers, for every quantized weight type;
//! - `raw`: random bytes as k-quant weights (every scale, min and high-bit
//!   pattern, e.g. Q6_K scale -128), with random finite f16 super-scales.
//!   The 32-element types are left out: a raw Q8_0 weight of -128 times an
//!   activation of -128 saturates x86's `maddubs`, a case their quantizers
//!   never produce.
//!
//! Both kinds are also held to the scalar reference within a tolerance.
//!
//! Regenerate on an x86-64 CPU with AVX2 (after a deliberate change of the
//! AVX2 numerics): `SRL_WRITE_AVX2_DOT_BITS=1 cargo test --release -p
//! srl-quant --test simd_bits`.

mod common;

use common::{load_json, random_f32, rng};
use rand::rngs::StdRng;
use rand::Rng;
use srl_quant::types::{q2_k, q3_k, q4_k, q5_k, q6_k};
use srl_quant::{dequantize_row, quantize_row, GgmlType, SimdLevel};
use std::mem::offset_of;

const FILE: &str = "avx2_dot_bits.json";
const WRITE_ENV: &str = "SRL_WRITE_AVX2_DOT_BITS";
const SIZES: [usize; 4] = [256, 512, 1536, 4096];

/// As `kernels.rs`: a SIMD dot product may differ from the scalar one by
/// this much relative to `sum |w_i x_i|` (f32 order and FMA only).
const SIMD_VS_SCALAR: f32 = 1e-5;

/// One dot product: its inputs and a label.
struct Case {
    ty: GgmlType,
    kind: &'static str,
    n: usize,
    w: Vec<u8>,
    x: Vec<u8>,
}

impl Case {
    fn key(&self) -> String {
        format!("{} {} n={}", self.ty, self.kind, self.n)
    }
}

/// Weight types with a quantized activation type and a SIMD dot product.
fn types() -> Vec<GgmlType> {
    GgmlType::all()
        .filter(|t| t.can_matmul() && t.is_quantized() && t.vec_dot_type().is_quantized())
        .collect()
}

/// Byte offsets of the f16 super-scales of a k-quant block.
fn f16_fields(ty: GgmlType) -> Vec<usize> {
    match ty {
        GgmlType::Q2_K => vec![
            offset_of!(q2_k::BlockQ2K, d),
            offset_of!(q2_k::BlockQ2K, dmin),
        ],
        GgmlType::Q3_K => vec![offset_of!(q3_k::BlockQ3K, d)],
        GgmlType::Q4_K => vec![
            offset_of!(q4_k::BlockQ4K, d),
            offset_of!(q4_k::BlockQ4K, dmin),
        ],
        GgmlType::Q5_K => vec![
            offset_of!(q5_k::BlockQ5K, d),
            offset_of!(q5_k::BlockQ5K, dmin),
        ],
        GgmlType::Q6_K => vec![offset_of!(q6_k::BlockQ6K, d)],
        _ => vec![],
    }
}

fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    quantize_row(ty, x, &mut q).unwrap();
    q
}

/// Random bytes, with each f16 super-scale replaced by a random positive
/// normal f16 between 2^-14 and 2^-3.
fn raw_weights(r: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut w = vec![0u8; ty.row_bytes(n).unwrap()];
    r.fill(&mut w[..]);
    for block in w.chunks_exact_mut(ty.block_bytes()) {
        for &off in &f16_fields(ty) {
            let exp: u16 = r.gen_range(1..=12);
            let bits = (exp << 10) | r.gen_range(0..1024u16);
            block[off..off + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
    w
}

/// The cases, in a fixed order from one seed (the RNG, `random_f32` and the
/// reference quantizers give the same bytes on every architecture).
fn cases() -> Vec<Case> {
    let mut r = rng(41);
    let mut out = Vec::new();
    for ty in types() {
        let vt = ty.vec_dot_type();
        let kinds: &[&str] = if f16_fields(ty).is_empty() {
            &["quantized"]
        } else {
            &["quantized", "raw"]
        };
        for &kind in kinds {
            for n in SIZES {
                let w = if kind == "raw" {
                    raw_weights(&mut r, ty, n)
                } else {
                    quantized(ty, &random_f32(&mut r, n, 0.5))
                };
                let x = quantized(vt, &random_f32(&mut r, n, 2.0));
                out.push(Case { ty, kind, n, w, x });
            }
        }
    }
    out
}

/// FNV-1a of the inputs: tells "the inputs differ here" from "the kernel
/// differs" if a check fails.
fn fnv(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

fn dequantized(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; n];
    dequantize_row(ty, q, &mut y).unwrap();
    y
}

#[test]
fn simd_dot_products_equal_committed_avx2_bits() {
    let cases = cases();
    if std::env::var_os(WRITE_ENV).is_some() {
        write_expectations(&cases);
    }
    let data = load_json(FILE);
    let want = data["cases"].as_array().unwrap();
    assert_eq!(want.len(), cases.len(), "{FILE}: case count");
    let mut compared = 0;
    for (case, want) in cases.iter().zip(want) {
        let key = case.key();
        assert_eq!(want["case"].as_str().unwrap(), key);
        assert_eq!(
            want["inputs_fnv1a"].as_str().unwrap(),
            fnv(&[&case.w, &case.x]),
            "{key}: inputs differ from the ones the expectations were made from"
        );
        let bits = u32::from_str_radix(want["result_bits"].as_str().unwrap(), 16).unwrap();
        let k = case.ty.traits().vec_dot.unwrap();
        for level in [SimdLevel::Avx2, SimdLevel::Neon] {
            if let Some(f) = k.at(level) {
                let got = f(case.n, &case.w, &case.x);
                assert_eq!(
                    got.to_bits(),
                    bits,
                    "{key} {level:?}: {got} vs AVX2 {}",
                    f32::from_bits(bits)
                );
                compared += 1;
            }
        }
        let scalar = (k.scalar)(case.n, &case.w, &case.x);
        let wd = dequantized(case.ty, &case.w, case.n);
        let xd = dequantized(case.ty.vec_dot_type(), &case.x, case.n);
        let mag: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
        let tol = SIMD_VS_SCALAR * mag.max(1e-30);
        let avx2 = f32::from_bits(bits);
        assert!(
            (avx2 - scalar).abs() <= tol,
            "{key}: AVX2 {avx2} vs scalar {scalar} (tol {tol})"
        );
    }
    // A CPU with neither level compares nothing; say so rather than pass.
    if SimdLevel::detect() != SimdLevel::Scalar {
        assert_eq!(compared, cases.len());
    } else {
        eprintln!("no SIMD level on this CPU: only the scalar tolerance was checked");
    }
}

/// Writes [`FILE`] from this CPU's AVX2 kernels.
fn write_expectations(cases: &[Case]) {
    assert!(
        SimdLevel::Avx2.available(),
        "{WRITE_ENV}: the expectations come from the AVX2 kernels; run on x86-64 with AVX2"
    );
    let rows: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let f = c.ty.traits().vec_dot.unwrap().at(SimdLevel::Avx2).unwrap();
            let bits = f(c.n, &c.w, &c.x).to_bits();
            serde_json::json!({
                "case": c.key(),
                "inputs_fnv1a": fnv(&[&c.w, &c.x]),
                "result_bits": format!("{bits:08x}"),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "generator": format!("{WRITE_ENV}=1 cargo test --release -p srl-quant --test simd_bits"),
        "cases": rows,
    });
    let path = format!("{}/tests/data/{FILE}", env!("CARGO_MANIFEST_DIR"));
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
}

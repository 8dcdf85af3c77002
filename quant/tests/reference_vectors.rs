//! Bit-for-bit agreement with the reference implementations:
//! gguf-py 0.19.0 (`tests/data/gguf_vectors.json`, from `gen_vectors.py`) and
//! ggml's C reference quantizers (`tests/data/ggml_vectors.json`, from
//! `gen_ggml_vectors.py`). See `tests/data/README.md`.

mod common;

use common::{b64, f32s, load_json, same_f32};
use srl_quant::{dequantize_row, quantize_row, GgmlType, SimdLevel};

fn check_dequantize(ty: GgmlType, case: &str, bytes: &[u8], want: &[f32]) {
    let mut got = vec![0.0f32; want.len()];
    dequantize_row(ty, bytes, &mut got).unwrap();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            same_f32(g, w),
            "{ty} {case}: dequantized[{i}] = {g:e}, reference {w:e}"
        );
    }
}

fn check_quantize(ty: GgmlType, case: &str, input: &[f32], want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    quantize_row(ty, input, &mut got).unwrap();
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        let block = i / ty.block_bytes();
        panic!(
            "{ty} {case}: byte {i} (block {block}, offset {}) is {:#04x}, reference {:#04x}",
            i % ty.block_bytes(),
            got[i],
            want[i]
        );
    }
}

fn run_file(name: &str) -> usize {
    let data = load_json(name);
    let mut checked = 0;
    for case in data["quantize"].as_array().unwrap() {
        let ty = GgmlType::from_name(case["type"].as_str().unwrap()).unwrap();
        let label = case["name"].as_str().unwrap();
        let input = f32s(&b64(case["input_f32"].as_str().unwrap()));
        let quantized = b64(case["quantized"].as_str().unwrap());
        assert_eq!(input.len(), case["n"].as_u64().unwrap() as usize);
        check_quantize(ty, label, &input, &quantized);
        // ggml has no dequantizer for some activation types (Q8_1).
        if let Some(d) = case["dequantized_f32"].as_str() {
            check_dequantize(ty, label, &quantized, &f32s(&b64(d)));
        }
        checked += 1;
    }
    for case in data["dequantize"].as_array().unwrap() {
        let ty = GgmlType::from_name(case["type"].as_str().unwrap()).unwrap();
        let label = case["name"].as_str().unwrap();
        let quantized = b64(case["quantized"].as_str().unwrap());
        let dequantized = f32s(&b64(case["dequantized_f32"].as_str().unwrap()));
        check_dequantize(ty, label, &quantized, &dequantized);
        checked += 1;
    }
    checked
}

#[test]
fn matches_gguf_py() {
    let n = run_file("gguf_vectors.json");
    assert!(n > 100, "only {n} cases");
}

#[test]
fn matches_ggml_reference_quantizers() {
    let n = run_file("ggml_vectors.json");
    assert!(n > 200, "only {n} cases");
}

/// Activation quantizers equal ggml-cpu's x86 `quantize_row_q8_0/q8_1/q8_K`
/// byte for byte, at every SIMD level.
#[test]
fn activation_quantizers_match_ggml_cpu() {
    let data = load_json("ggml_vectors.json");
    let cases = data["from_float"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let ty = GgmlType::from_name(case["type"].as_str().unwrap()).unwrap();
        let label = case["name"].as_str().unwrap();
        let input = f32s(&b64(case["input_f32"].as_str().unwrap()));
        let want = b64(case["quantized"].as_str().unwrap());
        let kernel = ty.traits().from_float.unwrap();
        for level in SimdLevel::ALL {
            let Some(f) = kernel.at(level) else { continue };
            let mut got = vec![0u8; want.len()];
            f(&input, &mut got);
            assert_eq!(got, want, "{ty} {label} {level:?}");
        }
    }
}

/// How far the scalar dot products may be from ggml-cpu's AVX2 ones,
/// relative to the magnitude of the result plus one block's worth: they sum
/// the same exact integers, in a different f32 order.
const SCALAR_VS_GGML_AVX2: f32 = 1e-5;

/// Dot products equal ggml-cpu's AVX2 `ggml_vec_dot_*` bit for bit where
/// srl has an AVX2 or NEON kernel, and closely for the scalar reference.
#[test]
fn dot_products_match_ggml_cpu() {
    let data = load_json("ggml_vectors.json");
    let cases = data["vec_dot"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let ty = GgmlType::from_name(case["type"].as_str().unwrap()).unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let w = b64(case["weights"].as_str().unwrap());
        let x = b64(case["activations"].as_str().unwrap());
        let want = f32s(&b64(case["result_f32"].as_str().unwrap()))[0];
        let kernel = ty.traits().vec_dot.unwrap();
        let scalar = (kernel.scalar)(n, &w, &x);
        let tol = SCALAR_VS_GGML_AVX2 * (want.abs() + 1.0);
        assert!(
            (scalar - want).abs() <= tol,
            "{ty} n={n}: scalar {scalar} vs ggml {want}"
        );
        // The NEON kernels repeat the AVX2 arithmetic, so they match too.
        for level in [SimdLevel::Avx2, SimdLevel::Neon] {
            if let Some(f) = kernel.at(level) {
                let got = f(n, &w, &x);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{ty} n={n}: {level:?} {got} vs ggml {want}"
                );
            }
        }
    }
}

//! Bit-for-bit agreement with the reference implementations:
//! gguf-py 0.19.0 (`tests/data/gguf_vectors.json`, from `gen_vectors.py`) and
//! ggml's C reference quantizers (`tests/data/ggml_vectors.json`, from
//! `gen_ggml_vectors.py`). See `tests/data/README.md`.

mod common;

use common::{b64, f32s, load_json, same_f32};
use srl_quant::{dequantize_row, quantize_row, GgmlType};

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
        let dequantized = f32s(&b64(case["dequantized_f32"].as_str().unwrap()));
        assert_eq!(input.len(), case["n"].as_u64().unwrap() as usize);
        check_quantize(ty, label, &input, &quantized);
        check_dequantize(ty, label, &quantized, &dequantized);
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

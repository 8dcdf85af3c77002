//! Round trips through the writer and reader, and hostile files.

use super::*;
use srl_quant::GgmlType;
use std::path::Path;

fn sample() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!(
        "srl-gguf-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.gguf");
    let mut w = GgufWriter::new();
    w.set("general.architecture", GgufValue::String("llama".into()));
    w.set("a.u8", GgufValue::U8(7));
    w.set("a.i8", GgufValue::I8(-7));
    w.set("a.u16", GgufValue::U16(700));
    w.set("a.i16", GgufValue::I16(-700));
    w.set("a.u32", GgufValue::U32(70000));
    w.set("a.i32", GgufValue::I32(-70000));
    w.set("a.u64", GgufValue::U64(1 << 40));
    w.set("a.i64", GgufValue::I64(-(1 << 40)));
    w.set("a.f32", GgufValue::F32(0.5));
    w.set("a.f64", GgufValue::F64(0.25));
    w.set("a.bool", GgufValue::Bool(true));
    w.set(
        "a.strs",
        GgufValue::Array(
            tag::STRING,
            vec![
                GgufValue::String("x".into()),
                GgufValue::String("yé".into()),
            ],
        ),
    );
    w.set(
        "a.nested",
        GgufValue::Array(
            tag::ARRAY,
            vec![GgufValue::Array(tag::I32, vec![GgufValue::I32(1)])],
        ),
    );
    let f: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.add_tensor("t.f32", GgmlType::F32, &[2, 2], f).unwrap();
    let q = vec![0u8; GgmlType::Q8_0.row_bytes(64).unwrap()];
    w.add_tensor("t.q8", GgmlType::Q8_0, &[64], q).unwrap();
    w.write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

fn parse(bytes: &[u8]) -> crate::error::Result<GgufFile> {
    GgufFile::from_bytes(Path::new("test.gguf"), bytes.to_vec())
}

#[test]
fn round_trip_every_value_type() {
    let g = parse(&sample()).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.get_u64("a.u8"), Some(7));
    assert_eq!(g.get("a.i8").unwrap().as_i64(), Some(-7));
    assert_eq!(g.get_u64("a.u16"), Some(700));
    assert_eq!(g.get("a.i16").unwrap().as_i64(), Some(-700));
    assert_eq!(g.get_u64("a.u32"), Some(70000));
    assert_eq!(g.get("a.i32").unwrap().as_i64(), Some(-70000));
    assert_eq!(g.get_u64("a.u64"), Some(1 << 40));
    assert_eq!(g.get("a.i64").unwrap().as_i64(), Some(-(1 << 40)));
    assert_eq!(g.get_f32("a.f32"), Some(0.5));
    assert_eq!(g.get_f32("a.f64"), Some(0.25));
    assert_eq!(g.get_bool("a.bool"), Some(true));
    assert_eq!(g.get_str_array("a.strs").unwrap(), vec!["x", "yé"]);
    assert!(g.get("a.nested").unwrap().as_array().unwrap()[0]
        .as_array()
        .is_some());
    let t = g.tensor_info("t.f32").unwrap().clone();
    assert_eq!(t.dims, vec![2, 2]);
    assert_eq!(t.offset % 32, 0);
    assert_eq!(&g.tensor_data(&t)[4..8], &2.0f32.to_le_bytes());
    assert_eq!(g.tensor_info("t.q8").unwrap().size, 68);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample();
    for n in 0..bytes.len() {
        // Trailing alignment padding after the last tensor may be cut without harm.
        let last = parse(&bytes)
            .unwrap()
            .tensors
            .iter()
            .map(|t| t.offset + t.size)
            .max()
            .unwrap();
        let r = parse(&bytes[..n]);
        if n < last {
            assert!(r.is_err(), "truncated at {n} of {} parsed", bytes.len());
        }
    }
}

#[test]
fn hostile_headers() {
    let good = sample();
    let err = |b: &[u8]| parse(b).expect_err("should fail").to_string();
    let mut b = good.clone();
    b[0] = b'X';
    assert!(err(&b).contains("not a GGUF file"));
    let mut b = good.clone();
    b[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(err(&b).contains("unsupported GGUF version 9"));
    let mut b = good.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(&b).contains("more than the file can hold"));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(err(&b).contains("more than the file can hold"));
    // A key length far past the end.
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(err(&b).contains("more than the file holds"));
}

#[test]
fn hostile_tensor_table() {
    let good = sample();
    let g = parse(&good).unwrap();
    let _ = g;
    // Find the tensor table entry of "t.q8" and corrupt its fields.
    let name = b"t.q8";
    let pos = good.windows(name.len()).rposition(|w| w == name).unwrap() + name.len();
    // n_dims u32, dim u64, type u32, offset u64
    let err = |b: &[u8]| parse(b).expect_err("should fail").to_string();
    let mut b = good.clone();
    b[pos..pos + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(err(&b).contains("dimensions"));
    let mut b = good.clone();
    b[pos + 4..pos + 12].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(err(&b).contains("absurd dimension"));
    let mut b = good.clone();
    b[pos + 4..pos + 12].copy_from_slice(&33u64.to_le_bytes());
    assert!(err(&b).contains("not a whole number"));
    let mut b = good.clone();
    b[pos + 12..pos + 16].copy_from_slice(&77u32.to_le_bytes());
    assert!(err(&b).contains("unknown or unsupported ggml type 77"));
    let mut b = good.clone();
    b[pos + 16..pos + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(err(&b).contains("runs past the end"));
    let mut b = good.clone();
    b[pos + 16..pos + 24].copy_from_slice(&3u64.to_le_bytes());
    assert!(err(&b).contains("not aligned"));
}

/// Inputs the fuzzer (fuzz/fuzz_targets/gguf_reader.rs) found crashing the
/// reader, kept as regression tests: each must give an error, not a panic.
#[test]
fn fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| parse(&bytes).map(|_| ()));
        let err = r.unwrap_or_else(|_| panic!("{} panics the reader", path.display()));
        let msg = err.expect_err("a corrupt file must be refused").to_string();
        assert!(msg.contains("corrupt GGUF"), "{}: {msg}", path.display());
        n += 1;
    }
    assert!(n >= 1);
}

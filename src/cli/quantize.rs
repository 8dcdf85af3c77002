//! `srl quantize`: convert a GGUF model to another element type.

use anyhow::Context;
use srl_models::gguf::GgufFile;
use srl_quant::GgmlType;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The GGUF model to convert
    input: PathBuf,
    /// Where to write the converted model
    output: PathBuf,
    /// Target type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let ty =
        GgmlType::from_name(&a.ty).ok_or_else(|| anyhow::anyhow!("unknown type '{}'", a.ty))?;
    if a.input.is_dir() {
        anyhow::bail!(
            "{}: converting safetensors folders is not supported yet; give a GGUF file",
            a.input.display()
        );
    }
    let src =
        GgufFile::open(&a.input).with_context(|| format!("cannot open {}", a.input.display()))?;
    let s =
        srl_models::quantize::quantize_gguf(&src, &a.output, ty, &mut |line| eprintln!("{line}"))?;
    if let Some((first, t)) = s.fallbacks.first() {
        eprintln!(
            "note: {} tensors (e.g. {first}) have rows that do not fit {} blocks of {}; written as {}, as llama.cpp does",
            s.fallbacks.len(),
            ty.name(),
            ty.block_size(),
            t.name()
        );
    }
    eprintln!(
        "wrote {} ({} tensors, {} quantized, {:.1} MiB -> {:.1} MiB)",
        a.output.display(),
        s.tensors,
        s.quantized,
        s.bytes_in as f64 / (1 << 20) as f64,
        s.bytes_out as f64 / (1 << 20) as f64
    );
    Ok(())
}

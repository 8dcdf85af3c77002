//! `srl quantize`: convert a GGUF model to another element type, or a
//! Hugging Face safetensors folder to GGUF.

use anyhow::Context;
use srl_models::formats::gguf::GgufFile;
use srl_quant::GgmlType;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The model to convert: a GGUF file, or a Hugging Face folder
    /// (config.json, *.safetensors, tokenizer.json)
    input: PathBuf,
    /// Where to write the converted model (GGUF)
    output: PathBuf,
    /// Target type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let ty =
        GgmlType::from_name(&a.ty).ok_or_else(|| anyhow::anyhow!("unknown type '{}'", a.ty))?;
    super::common::check_overwrite(&a.output, a.overwrite)?;
    let mut log = |line: &str| eprintln!("{line}");
    let s = if a.input.is_dir() {
        if !a.input.join("config.json").exists() {
            anyhow::bail!(
                "{}: no config.json: converting folders other than Hugging Face safetensors \
                 folders is not supported yet; give a GGUF file or such a folder",
                a.input.display()
            );
        }
        srl_models::formats::convert::convert_hf_dir(&a.input, &a.output, ty, &mut log)
            .with_context(|| format!("cannot convert {}", a.input.display()))?
    } else {
        let src = GgufFile::open(&a.input)
            .with_context(|| format!("cannot open {}", a.input.display()))?;
        srl_models::formats::quantize::quantize_gguf(&src, &a.output, ty, &mut log)?
    };
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

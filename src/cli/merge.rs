//! `srl merge`: fold a LoRA adapter into its GGUF base and write a
//! standalone model (optionally in another type).

use super::common::resolve_model;
use anyhow::Context;
use srl_finetune::adapter_files::read_adapter;
use srl_finetune::merge::merge_to_gguf;
use srl_models::Model;
use srl_quant::GgmlType;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The GGUF base model [default: SmolLM2-135M-Instruct Q4_1]
    #[arg(short, long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// The adapter: a folder written by `srl train` (or any PEFT folder), or a GGUF LoRA file
    #[arg(long, value_name = "PATH")]
    lora: PathBuf,
    /// Scale of the adapter (1 = as trained)
    #[arg(long, default_value_t = 1.0)]
    lora_scale: f32,
    /// Where to write the merged GGUF model
    #[arg(short, long, value_name = "PATH")]
    out: PathBuf,
    /// Type of the merged matrices: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K..q6_K [default: each tensor's own]
    #[arg(long = "type", value_name = "TYPE")]
    ty: Option<String>,
    /// Replace --out if it exists
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let ty =
        a.ty.as_deref()
            .map(|t| GgmlType::from_name(t).ok_or_else(|| anyhow::anyhow!("unknown type '{t}'")))
            .transpose()?;
    super::common::check_overwrite(&a.out, a.overwrite)?;
    let path = resolve_model(a.model.as_ref())?;
    let model =
        Model::open(&path).with_context(|| format!("cannot load model {}", path.display()))?;
    let mut params = read_adapter(&a.lora, &model)
        .with_context(|| format!("cannot use adapter {}", a.lora.display()))?;
    if a.lora_scale != 1.0 {
        for t in &mut params.tensors {
            t.b.iter_mut().for_each(|v| *v *= a.lora_scale);
        }
    }
    let s = merge_to_gguf(&model, &params, &a.out, ty, &mut |line| eprintln!("{line}"))?;
    if let Some((first, t)) = s.fallbacks.first() {
        eprintln!(
            "note: {} tensors (e.g. {first}) have rows that do not fit the type's blocks; written as {}, as llama.cpp does",
            s.fallbacks.len(),
            t.name()
        );
    }
    eprintln!(
        "wrote {} ({} tensors, {} merged with scale {}, {} requantized, {:.1} MiB)",
        a.out.display(),
        s.tensors,
        s.merged,
        s.scale,
        s.requantized,
        s.bytes_out as f64 / (1 << 20) as f64
    );
    Ok(())
}

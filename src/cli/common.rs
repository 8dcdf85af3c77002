//! Arguments shared by several subcommands, and how they resolve.

use anyhow::Context;
use srl_runtime::model_cache;
use srl_runtime::{BackendKind, Engine, Runner, RunnerOptions, SamplerConfig};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file, a safetensors folder, or a model name (srl list) [default: smollm2:135m, fetched on first use]
    #[arg(short, long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(short, long, default_value_t = 0, hide_default_value = true)]
    pub threads: usize,
    /// Apply a LoRA adapter without merging (a GGUF LoRA file or a PEFT folder); repeatable
    #[arg(long, value_name = "PATH")]
    pub lora: Vec<PathBuf>,
    /// Scale of the LoRA adapters (1 = as trained)
    #[arg(long, default_value_t = 1.0)]
    pub lora_scale: f32,
}

impl ModelArgs {
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        resolve_model(self.model.as_ref())
    }
    pub fn load(&self) -> anyhow::Result<Engine> {
        let path = self.path()?;
        let mut engine = Engine::load(&path, self.threads)
            .with_context(|| format!("cannot load model {}", path.display()))?;
        for lora in &self.lora {
            let adapter = srl_models::LoraAdapter::open(lora)?;
            engine.model.add_lora(adapter, self.lora_scale)?;
        }
        Ok(engine)
    }
}

/// Which engine runs the model (`generate`, `chat`, `serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArgs {
    /// native (srl's engine) or llama-cpp (llama.cpp; needs a build with --features llama-cpp)
    #[arg(long, default_value_t = BackendKind::Native, value_name = "NAME")]
    pub backend: BackendKind,
    /// Layers llama.cpp offloads to the GPU (--backend llama-cpp in a cuda, vulkan or metal build)
    #[arg(long, value_name = "N")]
    pub gpu_layers: Option<u32>,
}

impl ModelArgs {
    /// The model with its adapters on the backend that `b` names.
    pub fn load_runner(&self, b: &BackendArgs) -> anyhow::Result<Runner> {
        let path = self.path()?;
        let opts = RunnerOptions {
            backend: b.backend,
            threads: self.threads,
            loras: self.lora.clone(),
            lora_scale: self.lora_scale,
            gpu_layers: b.gpu_layers,
        };
        Runner::load(&path, &opts).with_context(|| {
            format!(
                "cannot load model {} on the {} backend",
                path.display(),
                b.backend
            )
        })
    }
}

/// The given path; else a catalogue name (fetched on first use) or the
/// name of a file in the cache; none given: the default model (fetched on
/// first use).
pub fn resolve_model(model: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let mut log = |line: &str| eprintln!("{line}");
    let Some(p) = model else {
        return Ok(model_cache::ensure_default_model(&mut log)?);
    };
    if p.exists() {
        return Ok(p.clone());
    }
    let name = p.to_string_lossy();
    if let Some(m) = srl_runtime::model_catalogue::find(&name) {
        return Ok(model_cache::ensure_model(m, &mut log)?);
    }
    let cached = model_cache::models_dir().join(p);
    if p.components().count() == 1 && cached.is_file() {
        return Ok(cached);
    }
    // The path as given: the loader's error names it.
    Ok(p.clone())
}

/// The chat template's thinking switch, for templates that read
/// `enable_thinking` (Qwen3, SmolLM3); other templates ignore it.
#[derive(clap::Args, Debug, Clone)]
pub struct ThinkArgs {
    /// Let the model think before it answers (the template's enable_thinking = true) [default: the template's own]
    #[arg(long, conflicts_with = "no_think")]
    pub think: bool,
    /// Ask the model to answer without thinking (enable_thinking = false)
    #[arg(long)]
    pub no_think: bool,
}

impl ThinkArgs {
    /// The template variables these switches set.
    pub fn kwargs(&self) -> srl_runtime::TemplateKwargs {
        let think = match (self.think, self.no_think) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        srl_runtime::thinking_kwargs(think)
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all)
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off)
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than p times the most likely one (0 = off)
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalise tokens seen in the last --repeat-last-n (1 = off)
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed [default: from the clock]
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn config(&self) -> SamplerConfig {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        }
    }
}

/// Refuses to replace a file or folder the user already has unless they
/// said so (`--overwrite`); the writers then replace it atomically.
pub fn check_overwrite(path: &std::path::Path, overwrite: bool) -> anyhow::Result<()> {
    if path.exists() && !overwrite {
        anyhow::bail!(
            "{} exists: give --overwrite to replace it, or another output path",
            path.display()
        );
    }
    Ok(())
}

/// How final answers are read (`data check`, `data distill`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AnswersArg {
    /// Numbers and formulas, compared by value
    Math,
    /// Any text, compared exactly (labels, names)
    Exact,
}

impl From<AnswersArg> for srl_finetune::dataset::check::AnswerKind {
    fn from(a: AnswersArg) -> Self {
        match a {
            AnswersArg::Math => Self::Math,
            AnswersArg::Exact => Self::Exact,
        }
    }
}

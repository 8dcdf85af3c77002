//! `srl serve`: the OpenAI-compatible HTTP server.

use super::common::{resolve_model, BackendArgs, ThinkArgs};
use anyhow::Context;
use srl_runtime::server::{is_loopback, serve, ServeConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a safetensors folder [default: SmolLM2-135M-Instruct Q4_1, fetched on first use]
    #[arg(short, long, value_name = "PATH")]
    model: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    think: ThinkArgs,
    /// The id clients name the model by [default: the file name without .gguf]
    #[arg(long, value_name = "ID")]
    alias: Option<String>,
    /// Load a LoRA adapter as NAME=PATH (or PATH: named after its file); requests pick it with "model": NAME; repeatable
    #[arg(long, value_name = "NAME=PATH")]
    lora: Vec<String>,
    /// Let clients load adapters at run time (POST /v1/adapters) from this directory only; repeatable [default: run-time loading off]
    #[arg(long, value_name = "DIR")]
    adapter_dir: Vec<PathBuf>,
    /// Scale of the adapters loaded with --lora (1 = as trained)
    #[arg(long, default_value_t = 1.0)]
    lora_scale: f32,
    /// Address to listen on (127.0.0.1: this machine only)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port, printed)
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests decoded together (slots)
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Requests that may wait for a slot; beyond that the server answers 429
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Context of each slot, in tokens (prompt + completion)
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Require 'Authorization: Bearer KEY' (also read from $SRL_API_KEY); needed with a --host beyond loopback
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Serve a --host beyond loopback without an API key: anyone who reaches it can use it
    #[arg(long, conflicts_with = "api_key")]
    no_api_key: bool,
    /// Worker threads [default: all cores]
    #[arg(short, long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
    /// Largest request body in bytes
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Print a line per request on stderr (method, path, status, milliseconds)
    #[arg(long)]
    log_requests: bool,
}

/// NAME=PATH, or PATH named after its file (without .gguf).
fn parse_lora(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            (name.to_string(), PathBuf::from(path))
        }
        _ => {
            let path = PathBuf::from(spec);
            (srl_runtime::server::model_id_of(&path), path)
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model = resolve_model(a.model.as_ref())?;
    let api_key = a.api_key.or_else(|| std::env::var("SRL_API_KEY").ok());
    let config = ServeConfig {
        model: model.clone(),
        backend: a.backend.backend,
        gpu_layers: a.backend.gpu_layers,
        model_id: a.alias,
        adapters: a.lora.iter().map(|s| parse_lora(s)).collect(),
        lora_scale: a.lora_scale,
        host: a.host.clone(),
        port: a.port,
        parallel: a.parallel,
        queue: a.queue,
        ctx: a.ctx,
        api_key: api_key.clone(),
        no_api_key: a.no_api_key,
        adapter_dirs: a.adapter_dir.clone(),
        threads: a.threads,
        max_body: a.max_body,
        template_kwargs: a.think.kwargs(),
        log_requests: a.log_requests,
    };
    let open = !is_loopback(&a.host) && api_key.as_deref().is_none_or(|k| k.is_empty());
    let (parallel, backend) = (a.parallel, a.backend.backend);
    serve(config, |addr, ctx| {
        if open {
            eprintln!(
                "srl serve: warning: --no-api-key: anyone who reaches http://{addr} can use \
                 this server"
            );
        }
        eprintln!(
            "srl serve: {} on the {backend} backend with {parallel} slots of {ctx} tokens, \
             listening on http://{addr}",
            model.display()
        );
    })
    .with_context(|| format!("cannot serve {}", model.display()))
}

#[cfg(test)]
mod tests {
    use super::parse_lora;
    use std::path::PathBuf;

    #[test]
    fn lora_specs() {
        assert_eq!(
            parse_lora("uc=adapters/uc"),
            ("uc".to_string(), PathBuf::from("adapters/uc"))
        );
        assert_eq!(
            parse_lora("adapters/uc.gguf"),
            ("uc".to_string(), PathBuf::from("adapters/uc.gguf"))
        );
    }
}

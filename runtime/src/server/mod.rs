//! `srl serve`: an OpenAI-compatible HTTP server over srl's engine or
//! llama.cpp.
//!
//! Endpoints: `POST /v1/chat/completions` and `POST /v1/completions` (whole
//! or streamed as server-sent events), `GET /v1/models`, LoRA adapters
//! loaded and unloaded at run time (`GET|POST /v1/adapters`,
//! `DELETE /v1/adapters/{name}`), `GET /health` and `GET /metrics`
//! (Prometheus). One scheduler thread owns the model and decodes every
//! request together (see [`scheduler`]) through a backend's [`decoder`]
//! ([`native`], or llama.cpp's with the cargo feature `llama-cpp`); the HTTP
//! side (tokio + axum) only parses, tokenizes and streams, the same for
//! every backend.

pub mod adapter_dirs;
pub mod adapters;
pub mod decoder;
pub mod errors;
mod handlers;
#[cfg(feature = "llama-cpp")]
mod llama_cpp;
pub mod metrics;
mod native;
pub mod openai;
pub mod reasoning;
mod responses;
pub mod scheduler;

use crate::backend::BackendKind;
use crate::generate::Engine;
use adapter_dirs::AdapterDirs;
use adapters::{valid_name, Adapter, Registry};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
pub use errors::{ApiError, ServeError};
use metrics::Metrics;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub model: PathBuf,
    /// Which engine runs the forward passes.
    pub backend: BackendKind,
    /// Layers llama.cpp offloads to the GPU (llama-cpp backend only).
    pub gpu_layers: Option<u32>,
    /// The id clients name the base model by [default: the file's name
    /// without `.gguf`].
    pub model_id: Option<String>,
    /// Adapters loaded at start: (name, path).
    pub adapters: Vec<(String, PathBuf)>,
    pub lora_scale: f32,
    pub host: String,
    /// 0 picks a free port (the address is printed).
    pub port: u16,
    /// Sequences decoded together (slots).
    pub parallel: usize,
    /// Requests that may wait for a slot; more get 429.
    pub queue: usize,
    /// Context of each slot, in tokens.
    pub ctx: usize,
    pub api_key: Option<String>,
    /// Serve beyond loopback without an API key (the operator said so).
    pub no_api_key: bool,
    /// Directories `POST /v1/adapters` may load from (none: run-time
    /// loading is off).
    pub adapter_dirs: Vec<PathBuf>,
    /// Worker threads of the forward pass (0 = all cores).
    pub threads: usize,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Chat template variables of every request (`--think`/`--no-think`);
    /// a request's `chat_template_kwargs` override them.
    pub template_kwargs: crate::TemplateKwargs,
    /// Print a line per request on stderr (method, path, status, time to
    /// the response's head).
    pub log_requests: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model: PathBuf::new(),
            backend: BackendKind::Native,
            gpu_layers: None,
            model_id: None,
            adapters: Vec::new(),
            lora_scale: 1.0,
            host: "127.0.0.1".into(),
            port: 8080,
            parallel: 4,
            queue: 64,
            ctx: 4096,
            api_key: None,
            no_api_key: false,
            adapter_dirs: Vec::new(),
            threads: 0,
            template_kwargs: crate::TemplateKwargs::new(),
            max_body: 4 << 20,
            log_requests: false,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub scheduler: scheduler::Handle,
    pub adapters: Registry,
    pub metrics: Arc<Metrics>,
    pub model_id: String,
    pub api_key: Option<String>,
    pub adapter_dirs: AdapterDirs,
    /// Start time (seconds since the epoch), the models' `created`.
    pub started: u64,
    pub log_requests: bool,
    /// The server's chat template variables (see [`ServeConfig`]).
    pub template_kwargs: crate::TemplateKwargs,
}

/// The model id of a path: its file or folder name without `.gguf`.
pub fn model_id_of(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

/// Loads the model and adapters, then serves until the process ends.
/// `on_listen` is told the bound address and the context of a slot (the
/// model's own when `ctx` is larger) once the server accepts requests.
pub fn serve(
    config: ServeConfig,
    on_listen: impl FnOnce(SocketAddr, usize),
) -> Result<(), ServeError> {
    if config.parallel == 0 {
        return Err(ServeError::Config("--parallel must be at least 1".into()));
    }
    if config.ctx < 16 {
        return Err(ServeError::Config(
            "--ctx must be at least 16 tokens".into(),
        ));
    }
    let api_key = config.api_key.clone().filter(|k| !k.is_empty());
    if !is_loopback(&config.host) && api_key.is_none() && !config.no_api_key {
        return Err(ServeError::Config(format!(
            "--host {} serves beyond this machine: give --api-key KEY (or $SRL_API_KEY), \
             or --no-api-key to serve without one",
            config.host
        )));
    }
    let adapter_dirs = AdapterDirs::new(&config.adapter_dirs)?;
    let engine = Arc::new(Engine::load(&config.model, config.threads)?);
    let model_id = config
        .model_id
        .clone()
        .unwrap_or_else(|| model_id_of(&config.model));
    let registry = Registry::default();
    let metrics = Arc::new(Metrics::default());
    let (parallel, ctx, queue) = (config.parallel, config.ctx, config.queue);
    let handle = match config.backend {
        BackendKind::Native => {
            if let Some(n) = config.gpu_layers.filter(|&n| n > 0) {
                return Err(crate::backend::gpu_layers_need_llama_cpp(n).into());
            }
            for (name, path) in &config.adapters {
                check_name(name, &model_id)?;
                let a = Adapter::load(&engine.model, name, path, config.lora_scale)?;
                register(&registry, a)?;
            }
            native::start(engine.clone(), parallel, ctx, queue, metrics.clone())?
        }
        #[cfg(feature = "llama-cpp")]
        BackendKind::LlamaCpp => {
            let opts = crate::RunnerOptions {
                backend: BackendKind::LlamaCpp,
                threads: config.threads,
                gpu_layers: config.gpu_layers,
                ..Default::default()
            };
            let mut model = crate::llama_cpp_backend::LlamaCppModel::load(
                &config.model,
                &opts,
                engine.threads(),
            )?;
            for (name, path) in &config.adapters {
                check_name(name, &model_id)?;
                let a = Adapter::load_llama_cpp(&mut model, name, path, config.lora_scale)?;
                register(&registry, a)?;
            }
            llama_cpp::start(engine.clone(), model, parallel, ctx, queue, metrics.clone())?
        }
        #[cfg(not(feature = "llama-cpp"))]
        BackendKind::LlamaCpp => return Err(crate::backend::llama_cpp_not_built().into()),
    };
    metrics
        .adapters
        .store(registry.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let n_ctx = handle.n_ctx;
    let state = Arc::new(AppState {
        engine,
        scheduler: handle,
        adapters: registry,
        metrics,
        model_id,
        api_key,
        adapter_dirs,
        started: openai::now_s(),
        log_requests: config.log_requests,
        template_kwargs: config.template_kwargs.clone(),
    });
    let app = router(state, config.max_body);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("srl-http")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = if config.host.contains(':') && !config.host.starts_with('[') {
            format!("[{}]:{}", config.host, config.port) // IPv6
        } else {
            format!("{}:{}", config.host, config.port)
        };
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        on_listen(listener.local_addr()?, n_ctx);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// Whether `host` is this machine only (IPv4 or IPv6 loopback).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a name an adapter given at start cannot have.
fn check_name(name: &str, model_id: &str) -> Result<(), ServeError> {
    if !valid_name(name) || name == model_id {
        return Err(ServeError::Config(format!(
            "'{name}' cannot name an adapter: use 1-128 letters, digits, '-', '_', '.', ':', not the model's id"
        )));
    }
    Ok(())
}

fn register(registry: &Registry, adapter: Adapter) -> Result<(), ServeError> {
    let name = adapter.name.clone();
    if !registry.insert(adapter) {
        return Err(ServeError::Config(format!(
            "two adapters are named '{name}'"
        )));
    }
    Ok(())
}

/// The routes, the API key check and the body limit.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::models))
        .route("/models", get(handlers::models))
        .route("/v1/models/{id}", get(handlers::model))
        .route(
            "/v1/adapters",
            get(handlers::list_adapters).post(handlers::load_adapter),
        )
        .route("/v1/adapters/{name}", delete(handlers::unload_adapter))
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!("no endpoint {} {}", req.method(), req.uri().path()))
        .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// With an API key set, every endpoint but /health needs
/// `Authorization: Bearer KEY`. Logs the request when asked to.
async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !st.log_requests {
        return check_key(&st, req, next).await;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let t0 = std::time::Instant::now();
    let r = check_key(&st, req, next).await;
    eprintln!(
        "{method} {path} {} {:.1} ms",
        r.status().as_u16(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    r
}

async fn check_key(st: &AppState, req: Request, next: Next) -> Response {
    if let Some(key) = &st.api_key {
        if req.uri().path() != "/health" {
            let given = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
                Metrics::add(&st.metrics.errors, 1);
                return ApiError::unauthorized().into_response();
            }
        }
    }
    next.run(req).await
}

/// Equality whose time depends only on the length of `key`, not on where
/// `given` first differs.
pub fn constant_time_eq(given: &[u8], key: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != key.len());
    for (i, &k) in key.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ k;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-and-more", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"sec", b"secret"));
    }

    #[test]
    fn model_ids() {
        assert_eq!(
            model_id_of(std::path::Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "SmolLM2-135M-Instruct.Q4_1"
        );
        assert_eq!(
            model_id_of(std::path::Path::new("/m/qwen-folder")),
            "qwen-folder"
        );
    }
}

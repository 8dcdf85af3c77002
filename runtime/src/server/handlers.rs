//! The endpoints: each checks a request and turns it into a scheduler job
//! (answered by [`super::responses`]), or reads or changes the server's
//! state (models, adapters, health, metrics).

use super::adapters::{valid_name, Adapter};
use super::errors::ApiError;
use super::metrics::Metrics;
use super::openai::{self, ChatRequest, CompletionRequest, Sampling};
use super::reasoning::ReasoningSplitter;
use super::responses::{json_response, Output};
use super::scheduler::JobSpec;
use super::AppState;
use crate::chat_template::Message;
use crate::sampler::SamplerConfig;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;
type BodyBytes = Result<Bytes, BytesRejection>;

/// Most stop strings a request may give.
const MAX_STOPS: usize = 16;
/// Most alternatives per token (OpenAI's limit).
const MAX_TOP_LOGPROBS: usize = 20;

fn body_of(body: BodyBytes) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the server accepts (--max-body)".to_string()
        } else {
            format!("cannot read the request body: {}", r.body_text())
        };
        ApiError::new(status, "invalid_request_error", msg)
    })
}

/// Counts the outcome of a generation request.
fn counted(st: &AppState, r: Result<Response, ApiError>) -> Response {
    match r {
        Ok(r) => r,
        Err(e) => {
            if e.status != StatusCode::TOO_MANY_REQUESTS {
                Metrics::add(&st.metrics.errors, 1);
            }
            e.into_response()
        }
    }
}

pub async fn chat(State(st): Shared, body: BodyBytes) -> Response {
    Metrics::add(&st.metrics.requests, 1);
    let r = chat_inner(&st, body).await;
    counted(&st, r)
}

pub async fn completions(State(st): Shared, body: BodyBytes) -> Response {
    Metrics::add(&st.metrics.requests, 1);
    let r = completions_inner(&st, body).await;
    counted(&st, r)
}

async fn chat_inner(st: &Arc<AppState>, body: BodyBytes) -> Result<Response, ApiError> {
    let req: ChatRequest = openai::parse(&body_of(body)?)?;
    let (model, adapter) = st.resolve_model(req.model.as_deref(), req.lora.as_deref())?;
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::invalid_param(
            "tools",
            "tool calling is not supported by this server yet",
        ));
    }
    if let Some(f) = &req.response_format {
        if f["type"] != "text" {
            return Err(ApiError::invalid_param(
                "response_format",
                "only {\"type\": \"text\"} is supported (no JSON mode or schemas yet)",
            ));
        }
    }
    if req.messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "'messages' is empty: give at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!("unknown role '{other}' (system, developer, user, assistant, tool)"),
                ))
            }
        };
        messages.push(Message::new(role, &m.text()?));
    }
    let mut kwargs = st.template_kwargs.clone();
    kwargs.extend(req.chat_template_kwargs.clone().unwrap_or_default());
    let engine = st.engine.clone();
    let (text, prompt) = tokio::task::spawn_blocking(move || {
        let text = engine
            .render_chat_with(&messages, true, &kwargs)
            .map_err(|e| ApiError::invalid_param("messages", e.to_string()))?;
        let ids = engine.tokenize_prompt(&text);
        Ok::<_, ApiError>((text, ids))
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizer task failed: {e}")))??;
    let top = match (req.logprobs, req.top_logprobs) {
        (Some(true), k) => Some(k.unwrap_or(0)),
        (_, Some(_)) => {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                "'top_logprobs' needs 'logprobs': true",
            ))
        }
        _ => None,
    };
    let spec = st.job(prompt, &req.sampling(), top, adapter)?;
    let out = Output {
        id: openai::new_id("chatcmpl"),
        created: openai::now_s(),
        model,
        chat: true,
        in_think: ReasoningSplitter::prompt_opens_think(&text),
        prompt_tokens: spec.prompt.len(),
        n: spec.n,
    };
    let include_usage = req
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let rx = st.scheduler.submit(spec)?;
    if req.stream.unwrap_or(false) {
        Ok(out.stream(rx, include_usage))
    } else {
        out.whole(rx).await
    }
}

async fn completions_inner(st: &Arc<AppState>, body: BodyBytes) -> Result<Response, ApiError> {
    let req: CompletionRequest = openai::parse(&body_of(body)?)?;
    let (model, adapter) = st.resolve_model(req.model.as_deref(), req.lora.as_deref())?;
    let mut prompts = req.prompt.clone().into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::invalid_param(
            "prompt",
            format!(
                "give one prompt (a string), not {}: send one request per prompt",
                prompts.len()
            ),
        ));
    }
    let text = prompts.remove(0);
    let engine = st.engine.clone();
    let prompt = tokio::task::spawn_blocking(move || engine.tokenize_prompt(&text))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizer task failed: {e}")))?;
    if let Some(k) = req.logprobs {
        check_top_logprobs("logprobs", k)?;
    }
    let spec = st.job(prompt, &req.sampling(), req.logprobs, adapter)?;
    let out = Output {
        id: openai::new_id("cmpl"),
        created: openai::now_s(),
        model,
        chat: false,
        in_think: false,
        prompt_tokens: spec.prompt.len(),
        n: spec.n,
    };
    let include_usage = req
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let rx = st.scheduler.submit(spec)?;
    if req.stream.unwrap_or(false) {
        Ok(out.stream(rx, include_usage))
    } else {
        out.whole(rx).await
    }
}

fn check_top_logprobs(param: &str, k: usize) -> Result<(), ApiError> {
    if k > MAX_TOP_LOGPROBS {
        return Err(ApiError::invalid_param(
            param,
            format!("'{param}' is {k}; at most {MAX_TOP_LOGPROBS}"),
        ));
    }
    Ok(())
}

impl AppState {
    /// The model id to answer with and the adapter a request chose, by its
    /// `model` or `lora` field.
    fn resolve_model(
        &self,
        model: Option<&str>,
        lora: Option<&str>,
    ) -> Result<(String, Option<Arc<Adapter>>), ApiError> {
        if let Some(name) = lora {
            let a = self
                .adapters
                .get(name)
                .ok_or_else(|| ApiError::model_not_found(name, &self.model_ids()).param("lora"))?;
            if let Some(m) = model {
                if m != self.model_id && m != name {
                    return Err(ApiError::invalid_param(
                        "model",
                        format!("'model' is '{m}' but 'lora' is '{name}': name one adapter"),
                    ));
                }
            }
            return Ok((name.to_string(), Some(a)));
        }
        match model {
            None | Some("") => Ok((self.model_id.clone(), None)),
            Some(m) if m == self.model_id => Ok((m.to_string(), None)),
            Some(m) => match self.adapters.get(m) {
                Some(a) => Ok((m.to_string(), Some(a))),
                None => Err(ApiError::model_not_found(m, &self.model_ids())),
            },
        }
    }

    fn model_ids(&self) -> Vec<String> {
        std::iter::once(self.model_id.clone())
            .chain(self.adapters.list().iter().map(|a| a.name.clone()))
            .collect()
    }

    /// Checks a request's sampling and length fields against the prompt and
    /// the context, and builds the job.
    fn job(
        &self,
        prompt: Vec<u32>,
        s: &Sampling,
        logprobs: Option<usize>,
        adapter: Option<Arc<Adapter>>,
    ) -> Result<JobSpec, ApiError> {
        let n_ctx = self.scheduler.n_ctx;
        if prompt.is_empty() {
            return Err(ApiError::invalid_param("prompt", "the prompt is empty"));
        }
        if let Some(k) = logprobs {
            check_top_logprobs("top_logprobs", k)?;
        }
        if prompt.len() >= n_ctx {
            return Err(ApiError::invalid(format!(
                "the prompt has {} tokens but the context holds {n_ctx} (--ctx, per slot): shorten the prompt",
                prompt.len()
            ))
            .param("messages")
            .code("context_length_exceeded"));
        }
        let room = n_ctx - prompt.len();
        let (param, asked) = match (s.max_completion_tokens, s.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let max_tokens = match asked {
            Some(0) => return Err(ApiError::invalid_param(param, format!("'{param}' must be at least 1"))),
            Some(m) if m > room => {
                return Err(ApiError::invalid_param(
                    param,
                    format!(
                        "'{param}' is {m} but the prompt has {} tokens and the context holds {n_ctx}: at most {room} more fit",
                        prompt.len()
                    ),
                )
                .code("context_length_exceeded"))
            }
            Some(m) => m,
            None => room,
        };
        let n = s.n.unwrap_or(1);
        if n == 0 || n > self.scheduler.parallel {
            return Err(ApiError::invalid_param(
                "n",
                format!(
                    "'n' is {n}: between 1 and the server's slots ({})",
                    self.scheduler.parallel
                ),
            ));
        }
        let mut sampler = SamplerConfig {
            seed: s
                .seed
                .and_then(|x| u64::try_from(x).ok())
                .unwrap_or_else(clock_seed),
            ..SamplerConfig::default()
        };
        let in_range = |name: &str, v: Option<f32>, lo: f32, hi: f32| match v {
            Some(x) if !(x.is_finite() && x >= lo && x <= hi) => Err(ApiError::invalid_param(
                name,
                format!("'{name}' is {x}: between {lo} and {hi}"),
            )),
            _ => Ok(v),
        };
        if let Some(t) = in_range("temperature", s.temperature, 0.0, 2.0)? {
            sampler.temperature = t;
        }
        if let Some(p) = in_range("top_p", s.top_p, 0.0, 1.0)? {
            sampler.top_p = p;
        }
        if let Some(p) = in_range("min_p", s.min_p, 0.0, 1.0)? {
            sampler.min_p = p;
        }
        if let Some(p) = in_range("repeat_penalty", s.repeat_penalty, 0.0, 10.0)? {
            sampler.repeat_penalty = p;
        }
        if let Some(k) = s.top_k {
            sampler.top_k = k;
        }
        let stop = s.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
        if stop.len() > MAX_STOPS {
            return Err(ApiError::invalid_param(
                "stop",
                format!("{} stop strings; at most {MAX_STOPS}", stop.len()),
            ));
        }
        Ok(JobSpec {
            prompt,
            n,
            max_tokens,
            sampler,
            stop,
            logprobs,
            adapter,
        })
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl AppState {
    /// The `model` objects: the base model, then each adapter.
    fn model_list(&self) -> Vec<Value> {
        let mut data = vec![json!({
            "id": self.model_id,
            "object": "model",
            "created": self.started,
            "owned_by": "srl",
        })];
        for a in self.adapters.list() {
            data.push(json!({
                "id": a.name,
                "object": "model",
                "created": self.started,
                "owned_by": "srl",
                "parent": self.model_id,
            }));
        }
        data
    }
}

pub async fn models(State(st): Shared) -> Response {
    let data = st.model_list();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

pub async fn model(State(st): Shared, Path(id): Path<String>) -> Response {
    match st.model_list().into_iter().find(|m| m["id"] == id.as_str()) {
        Some(m) => json_response(StatusCode::OK, &m),
        None => ApiError::model_not_found(&id, &st.model_ids()).into_response(),
    }
}

pub async fn health(State(st): Shared) -> Response {
    let active = st.metrics.active_slots.load(Relaxed);
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "slots_processing": active,
            "slots_idle": (st.scheduler.parallel as u64).saturating_sub(active),
            "requests_queued": st.metrics.queued.load(Relaxed),
        }),
    )
}

pub async fn metrics(State(st): Shared) -> Response {
    let mut r = st.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn adapter_json(a: &Adapter) -> Value {
    json!({
        "object": "adapter",
        "name": a.name,
        "path": a.path.display().to_string(),
        "scale": a.scale,
    })
}

pub async fn list_adapters(State(st): Shared) -> Response {
    let data: Vec<Value> = st.adapters.list().iter().map(|a| adapter_json(a)).collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

pub async fn load_adapter(State(st): Shared, body: BodyBytes) -> Response {
    match load_adapter_inner(&st, body).await {
        Ok(r) => r,
        Err(e) => {
            Metrics::add(&st.metrics.errors, 1);
            e.into_response()
        }
    }
}

async fn load_adapter_inner(st: &Arc<AppState>, body: BodyBytes) -> Result<Response, ApiError> {
    let req: openai::AdapterRequest = openai::parse(&body_of(body)?)?;
    if !valid_name(&req.name) {
        return Err(ApiError::invalid_param(
            "name",
            format!(
                "'{}' is not a valid adapter name: 1-128 letters, digits, '-', '_', '.', ':'",
                req.name
            ),
        ));
    }
    let taken = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!(
                "the name '{}' is taken: unload it first (DELETE /v1/adapters/{})",
                req.name, req.name
            ),
        )
        .param("name")
    };
    if req.name == st.model_id || st.adapters.get(&req.name).is_some() {
        return Err(taken());
    }
    let scale = req.scale.unwrap_or(1.0);
    if !scale.is_finite() {
        return Err(ApiError::invalid_param("scale", "'scale' must be a number"));
    }
    // Resolved inside the allowed directories before anything is opened.
    let path = st.adapter_dirs.resolve(&req.path).map_err(|why| {
        ApiError::new(StatusCode::FORBIDDEN, "permission_error", why.message()).param("path")
    })?;
    let st2 = st.clone();
    let name = req.name.clone();
    let adapter =
        tokio::task::spawn_blocking(move || st2.scheduler.load_adapter(&name, &path, scale))
            .await
            .map_err(|e| ApiError::internal(format!("adapter loading failed: {e}")))?
            .map_err(|e| ApiError::invalid_param("path", e.to_string()))?;
    let body = adapter_json(&adapter);
    if !st.adapters.insert(adapter) {
        return Err(taken());
    }
    st.metrics.adapters.store(st.adapters.len() as u64, Relaxed);
    Ok(json_response(StatusCode::CREATED, &body))
}

pub async fn unload_adapter(State(st): Shared, Path(name): Path<String>) -> Response {
    match st.adapters.remove(&name) {
        Some(a) => {
            st.metrics.adapters.store(st.adapters.len() as u64, Relaxed);
            let mut body = adapter_json(&a);
            body["deleted"] = json!(true);
            json_response(StatusCode::OK, &body)
        }
        None => {
            Metrics::add(&st.metrics.errors, 1);
            ApiError::not_found(format!("no adapter named '{name}' is loaded"))
                .code("adapter_not_found")
                .into_response()
        }
    }
}

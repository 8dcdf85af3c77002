//! A teacher for `srl data distill`: any OpenAI-compatible chat endpoint
//! (another `srl serve`, llama.cpp's `llama-server`, vLLM, Ollama, a hosted
//! API), asked over HTTP(S) with a timeout, retried with exponential
//! backoff on 429, 5xx, timeouts and dropped connections (a `Retry-After`
//! header is honoured, up to a minute), never on other 4xx answers, which
//! a retry cannot fix.

use serde_json::{json, Value};
use srl_runtime::Message;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TeacherConfig {
    /// The server's base URL (`http://host:8080`, `.../v1`) or its chat
    /// completions URL.
    pub url: String,
    /// The `model` of each request; None: the first the server lists.
    pub model: Option<String>,
    pub api_key: Option<String>,
    /// Per request, connection and answer together.
    pub timeout: Duration,
    /// Retries of one request after its first try.
    pub retries: u32,
    /// The first retry's wait; each next one doubles it.
    pub backoff: Duration,
    pub max_tokens: usize,
    pub temperature: f32,
}

/// What the teacher answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub content: String,
    /// The reasoning a server split off (`reasoning_content`), kept apart.
    pub reasoning: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Why a request gave no answer (after its retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeacherError {
    /// An HTTP status other than 200, with the start of the body.
    Status(u16, String),
    Timeout,
    /// The connection failed or dropped.
    Connection(String),
    /// A 200 answer that is not a chat completion.
    Malformed(String),
}

impl TeacherError {
    /// The reason as the summary counts it: "http 429", "timeout", ...
    pub fn reason(&self) -> String {
        match self {
            TeacherError::Status(code, _) => format!("http {code}"),
            TeacherError::Timeout => "timeout".into(),
            TeacherError::Connection(_) => "connection failed".into(),
            TeacherError::Malformed(_) => "malformed answer".into(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            TeacherError::Status(code, _) => *code == 429 || *code >= 500,
            TeacherError::Timeout | TeacherError::Connection(_) => true,
            TeacherError::Malformed(_) => false,
        }
    }
}

impl std::error::Error for TeacherError {}

impl std::fmt::Display for TeacherError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            TeacherError::Status(code, body) => {
                write!(f, "the teacher answered HTTP {code}: {body}")
            }
            TeacherError::Timeout => f.write_str("the teacher did not answer in time"),
            TeacherError::Connection(e) => write!(f, "cannot reach the teacher: {e}"),
            TeacherError::Malformed(e) => {
                write!(f, "the teacher's answer is not a chat completion: {e}")
            }
        }
    }
}

pub struct Teacher {
    /// Requests tried again, over all calls.
    retries: std::sync::atomic::AtomicU64,
    agent: ureq::Agent,
    chat_url: String,
    models_url: String,
    config: TeacherConfig,
}

/// The chat completions and models URLs of a base URL.
fn endpoints(url: &str) -> (String, String) {
    let url = url.trim_end_matches('/');
    if let Some(base) = url.strip_suffix("/chat/completions") {
        return (url.to_string(), format!("{base}/models"));
    }
    let v1 = if url.ends_with("/v1") {
        url.to_string()
    } else {
        format!("{url}/v1")
    };
    (format!("{v1}/chat/completions"), format!("{v1}/models"))
}

/// The start of a body, for an error message.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &body[..i]),
        None => body.to_string(),
    }
}

impl Teacher {
    pub fn new(config: TeacherConfig) -> Teacher {
        let agent = ureq::AgentBuilder::new().timeout(config.timeout).build();
        let (chat_url, models_url) = endpoints(&config.url);
        Teacher {
            retries: Default::default(),
            agent,
            chat_url,
            models_url,
            config,
        }
    }

    /// Requests tried again so far (after a 429, 5xx, timeout or dropped
    /// connection).
    pub fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn chat_url(&self) -> &str {
        &self.chat_url
    }

    fn with_key(&self, req: ureq::Request) -> ureq::Request {
        match &self.config.api_key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }

    /// One try: the body of a 200 answer, or why not (with a Retry-After
    /// wait when the server gave one).
    fn send(
        &self,
        req: ureq::Request,
        body: Option<&Value>,
    ) -> Result<String, (TeacherError, Option<Duration>)> {
        let req = self.with_key(req);
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(resp) => resp
                .into_string()
                .map_err(|e| (TeacherError::Connection(e.to_string()), None)),
            Err(ureq::Error::Status(code, resp)) => {
                let wait = resp
                    .header("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(60)));
                let body = resp.into_string().unwrap_or_default();
                Err((TeacherError::Status(code, excerpt(&body)), wait))
            }
            Err(ureq::Error::Transport(t)) => {
                let text = t.to_string();
                let timed_out = text.contains("timed out") || text.contains("Timeout");
                let e = if timed_out {
                    TeacherError::Timeout
                } else {
                    TeacherError::Connection(text)
                };
                Err((e, None))
            }
        }
    }

    /// The first model the server lists (`GET /v1/models`).
    pub fn first_model(&self) -> Result<String, TeacherError> {
        let body = self
            .send(self.agent.get(&self.models_url), None)
            .map_err(|(e, _)| e)?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| TeacherError::Malformed(e.to_string()))?;
        v["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| TeacherError::Malformed("the model list is empty".into()))
    }

    /// Asks for one completion of `messages`, retrying as the module docs
    /// say. `seed` makes a sample reproducible where the server honours it.
    pub fn chat(&self, messages: &[Message], seed: u64) -> Result<Reply, TeacherError> {
        let mut body = json!({
            "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "seed": seed,
            "stream": false,
        });
        if let Some(m) = &self.config.model {
            body["model"] = m.clone().into();
        }
        let mut retries = 0;
        loop {
            let err = match self.send(self.agent.post(&self.chat_url), Some(&body)) {
                Ok(text) => match parse_reply(&text) {
                    Ok(r) => return Ok(r),
                    Err(e) => (e, None),
                },
                Err(e) => e,
            };
            if !err.0.retryable() || retries >= self.config.retries {
                return Err(err.0);
            }
            let wait = err
                .1
                .unwrap_or(self.config.backoff * 2u32.saturating_pow(retries));
            std::thread::sleep(wait);
            retries += 1;
            self.retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A chat completion's message and usage.
fn parse_reply(text: &str) -> Result<Reply, TeacherError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| TeacherError::Malformed(format!("not JSON: {e}")))?;
    let message = &v["choices"][0]["message"];
    let content = message["content"].as_str().ok_or_else(|| {
        TeacherError::Malformed(format!(
            "no choices[0].message.content in {}",
            excerpt(text)
        ))
    })?;
    Ok(Reply {
        content: content.to_string(),
        reasoning: message["reasoning_content"].as_str().map(str::to_string),
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_replies_are_read() {
        assert_eq!(
            endpoints("http://h:8080"),
            (
                "http://h:8080/v1/chat/completions".into(),
                "http://h:8080/v1/models".into()
            )
        );
        assert_eq!(endpoints("http://h/v1/").0, "http://h/v1/chat/completions");
        assert_eq!(
            endpoints("https://api.x/v1/chat/completions"),
            (
                "https://api.x/v1/chat/completions".into(),
                "https://api.x/v1/models".into()
            )
        );
        let r = parse_reply(
            r#"{"choices":[{"message":{"content":"Step 1: a","reasoning_content":"hm"}}],
                "usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(
            (r.content.as_str(), r.reasoning.as_deref()),
            ("Step 1: a", Some("hm"))
        );
        assert_eq!((r.prompt_tokens, r.completion_tokens), (5, 7));
        assert!(matches!(
            parse_reply("{\"choices\":[]}"),
            Err(TeacherError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply("<html>"),
            Err(TeacherError::Malformed(_))
        ));
        assert!(TeacherError::Status(503, String::new()).retryable());
        assert!(!TeacherError::Status(401, String::new()).retryable());
        assert_eq!(
            TeacherError::Status(429, String::new()).reason(),
            "http 429"
        );
    }
}

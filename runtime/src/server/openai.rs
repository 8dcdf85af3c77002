//! OpenAI's request and response shapes: the requests as serde types (fields
//! a client may send that srl does not use are ignored), the responses and
//! stream chunks as JSON builders.

use super::errors::ApiError;
use super::scheduler::TokenLogprob;
use crate::generate::StopReason;
use serde::Deserialize;
use serde_json::{json, Value};

/// A string or a list of strings (`stop`, a completion's `prompt`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A message's content: text, or a list of parts of which srl reads the text.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug, Clone)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Sampling and length fields common to both generation endpoints.
#[derive(Debug, Clone, Default)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub stop: Option<OneOrMany>,
    /// Negative (llama.cpp's -1): a seed from the clock.
    pub seed: Option<i64>,
    pub n: Option<usize>,
}

/// Declares a request type with the [`Sampling`] fields inline (serde's
/// `flatten` would lose the path of a field of the wrong type).
macro_rules! with_sampling {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Deserialize, Debug, Clone)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            #[serde(default)]
            pub temperature: Option<f32>,
            #[serde(default)]
            pub top_p: Option<f32>,
            /// llama.cpp's extensions: top_k, min_p, repeat_penalty.
            #[serde(default)]
            pub top_k: Option<usize>,
            #[serde(default)]
            pub min_p: Option<f32>,
            #[serde(default)]
            pub repeat_penalty: Option<f32>,
            #[serde(default)]
            pub max_tokens: Option<usize>,
            #[serde(default)]
            pub max_completion_tokens: Option<usize>,
            #[serde(default)]
            pub stop: Option<OneOrMany>,
            #[serde(default)]
            pub seed: Option<i64>,
            #[serde(default)]
            pub n: Option<usize>,
        }

        impl $name {
            pub fn sampling(&self) -> Sampling {
                Sampling {
                    temperature: self.temperature,
                    top_p: self.top_p,
                    top_k: self.top_k,
                    min_p: self.min_p,
                    repeat_penalty: self.repeat_penalty,
                    max_tokens: self.max_tokens,
                    max_completion_tokens: self.max_completion_tokens,
                    stop: self.stop.clone(),
                    seed: self.seed,
                    n: self.n,
                }
            }
        }
    };
}

with_sampling! {
    pub struct ChatRequest {
        #[serde(default)]
        pub model: Option<String>,
        pub messages: Vec<ChatMessage>,
        /// Not supported: refused when given (not silently ignored).
        #[serde(default)]
        pub tools: Option<Vec<Value>>,
        #[serde(default)]
        pub response_format: Option<Value>,
        #[serde(default)]
        pub stream: Option<bool>,
        #[serde(default)]
        pub stream_options: Option<StreamOptions>,
        #[serde(default)]
        pub logprobs: Option<bool>,
        #[serde(default)]
        pub top_logprobs: Option<usize>,
        /// An adapter by name (in place of naming it as the model).
        #[serde(default)]
        pub lora: Option<String>,
        /// Extra chat template variables (`{"enable_thinking": false}`),
        /// over the server's own, as llama.cpp's server and vLLM take them.
        #[serde(default)]
        pub chat_template_kwargs: Option<serde_json::Map<String, Value>>,
    }
}

with_sampling! {
    pub struct CompletionRequest {
        #[serde(default)]
        pub model: Option<String>,
        pub prompt: OneOrMany,
        #[serde(default)]
        pub stream: Option<bool>,
        #[serde(default)]
        pub stream_options: Option<StreamOptions>,
        /// The legacy API's count of alternatives per token.
        #[serde(default)]
        pub logprobs: Option<usize>,
        #[serde(default)]
        pub lora: Option<String>,
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct AdapterRequest {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub scale: Option<f32>,
}

/// Parses a JSON body into `T`; a syntax error or a field of the wrong type
/// is a 400 naming the field.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid value for '{path}': {inner}")
        };
        let err = ApiError::invalid(msg);
        if path == "." || inner.is_syntax() || inner.is_eof() {
            err
        } else {
            err.param(path)
        }
    })
}

impl ChatMessage {
    /// The text of the message (text parts joined).
    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(s)) => Ok(s.clone()),
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => s.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::invalid_param(
                                "messages",
                                format!(
                                    "content parts of type '{kind}' are not supported (text only)"
                                ),
                            ))
                        }
                    }
                }
                Ok(s)
            }
        }
    }
}

pub fn finish_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::Eog | StopReason::StopString | StopReason::Cancelled => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
    }
}

pub fn usage(prompt: usize, cached: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// A chat `logprobs.content` entry.
pub fn chat_logprob(lp: &TokenLogprob) -> Value {
    let top: Vec<Value> = lp
        .top
        .iter()
        .map(|c| json!({"token": c.token, "logprob": c.logprob, "bytes": c.bytes}))
        .collect();
    json!({
        "token": lp.chosen.token,
        "logprob": lp.chosen.logprob,
        "bytes": lp.chosen.bytes,
        "top_logprobs": top,
    })
}

/// The legacy completions `logprobs` object of some tokens.
pub fn completion_logprobs(lps: &[TokenLogprob]) -> Value {
    let top: Vec<Value> = lps
        .iter()
        .map(|lp| {
            let m: serde_json::Map<String, Value> = lp
                .top
                .iter()
                .map(|c| (c.token.clone(), json!(c.logprob)))
                .collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": lps.iter().map(|l| l.chosen.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.chosen.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
    })
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A response id: prefix, then the time and a counter in hex.
pub fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}-{nanos:x}{:04x}", NEXT.fetch_add(1, Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse::<ChatRequest>(br#"{"messages": [], "temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some("temperature"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"messages": [{"role": 1}]}"#).unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].role"),
            "{}",
            e.message
        );
        let e = parse::<ChatRequest>(b"{not json").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model": "x"}"#).unwrap_err();
        assert!(e.message.contains("messages"), "{}", e.message);
    }

    #[test]
    fn stop_and_content_forms() {
        let r: ChatRequest = parse(
            br#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "stop": "x", "max_tokens": 3, "seed": 1}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].text().unwrap(), "ab");
        assert_eq!(r.sampling().stop.unwrap().into_vec(), vec!["x"]);
        assert_eq!(r.max_tokens, Some(3));
        let r: CompletionRequest = parse(br#"{"prompt": ["p"], "stop": ["a", "b"]}"#).unwrap();
        assert_eq!(r.sampling().stop.unwrap().into_vec().len(), 2);
    }
}

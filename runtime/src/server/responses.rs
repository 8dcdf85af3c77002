//! Responses: a job's events turned into OpenAI's answer, one JSON body
//! (waiting for every choice) or server-sent events (`data: {chunk}` per
//! piece of text, `data: [DONE]` at the end), with the think block split
//! out as `reasoning_content` for chat.

use super::errors::ApiError;
use super::openai;
use super::reasoning::{ReasoningSplitter, Split};
use super::scheduler::{Event, TokenLogprob};
use crate::generate::StopReason;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::VecDeque;
use tokio::sync::mpsc::UnboundedReceiver;

/// How a job's events become a response.
pub struct Output {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Chat (messages, reasoning split) or legacy completion (text).
    pub chat: bool,
    pub in_think: bool,
    pub prompt_tokens: usize,
    pub n: usize,
}

/// What one choice produced.
#[derive(Default)]
struct Choice {
    text: String,
    logprobs: Vec<TokenLogprob>,
    reason: Option<StopReason>,
    completion_tokens: usize,
    cached_tokens: usize,
}

impl Output {
    fn fingerprint() -> String {
        format!("srl-{}", env!("CARGO_PKG_VERSION"))
    }

    /// Waits for every choice, then answers in one JSON body.
    pub async fn whole(self, mut rx: UnboundedReceiver<Event>) -> Result<Response, ApiError> {
        let mut choices: Vec<Choice> = (0..self.n).map(|_| Choice::default()).collect();
        let mut left = self.n;
        while left > 0 {
            match rx.recv().await {
                Some(Event::Token {
                    index,
                    text,
                    logprob,
                }) => {
                    let c = &mut choices[index];
                    c.text.push_str(&text);
                    c.logprobs.extend(logprob);
                }
                Some(Event::Done {
                    index,
                    reason,
                    completion_tokens,
                    cached_tokens,
                }) => {
                    let c = &mut choices[index];
                    c.reason = Some(reason);
                    c.completion_tokens = completion_tokens;
                    c.cached_tokens = cached_tokens;
                    left -= 1;
                }
                Some(Event::Error(e)) => return Err(ApiError::internal(e)),
                None => return Err(ApiError::unavailable("the scheduler stopped")),
            }
        }
        let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
        let usage = openai::usage(self.prompt_tokens, choices[0].cached_tokens, completion);
        let list: Vec<Value> = choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let reason = openai::finish_reason(c.reason.unwrap_or(StopReason::MaxTokens));
                if self.chat {
                    let split = super::reasoning::split(&c.text, self.in_think);
                    let mut message = json!({"role": "assistant", "content": split.content});
                    if !split.reasoning.is_empty() {
                        message["reasoning_content"] = json!(split.reasoning);
                    }
                    let logprobs = if c.logprobs.is_empty() {
                        Value::Null
                    } else {
                        json!({"content": c.logprobs.iter().map(openai::chat_logprob).collect::<Vec<_>>()})
                    };
                    json!({"index": i, "message": message, "logprobs": logprobs, "finish_reason": reason})
                } else {
                    let logprobs = if c.logprobs.is_empty() {
                        Value::Null
                    } else {
                        openai::completion_logprobs(&c.logprobs)
                    };
                    json!({"index": i, "text": c.text, "logprobs": logprobs, "finish_reason": reason})
                }
            })
            .collect();
        let body = json!({
            "id": self.id,
            "object": if self.chat { "chat.completion" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": Self::fingerprint(),
            "choices": list,
            "usage": usage,
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Answers with server-sent events, one chunk per piece of text.
    pub fn stream(self, rx: UnboundedReceiver<Event>, include_usage: bool) -> Response {
        let mut s = Streamer {
            splitters: (0..self.n)
                .map(|_| ReasoningSplitter::new(self.in_think))
                .collect(),
            left: self.n,
            completion_tokens: 0,
            cached_tokens: 0,
            include_usage,
            outbox: VecDeque::new(),
            finished: false,
            out: self,
            rx,
        };
        if s.out.chat {
            for i in 0..s.out.n {
                let c = s.chunk(
                    i,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    None,
                );
                s.push(&c);
            }
        }
        let stream = futures_util::stream::unfold(s, |mut s| async move {
            loop {
                if let Some(b) = s.outbox.pop_front() {
                    return Some((Ok::<Bytes, std::convert::Infallible>(b), s));
                }
                if s.finished {
                    return None;
                }
                let ev = s.rx.recv().await;
                s.on_event(ev);
            }
        });
        let mut r = Response::new(Body::from_stream(stream));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        r
    }
}

struct Streamer {
    out: Output,
    rx: UnboundedReceiver<Event>,
    splitters: Vec<ReasoningSplitter>,
    left: usize,
    completion_tokens: usize,
    cached_tokens: usize,
    include_usage: bool,
    outbox: VecDeque<Bytes>,
    finished: bool,
}

impl Streamer {
    fn push(&mut self, v: &Value) {
        self.outbox.push_back(Bytes::from(format!("data: {v}\n\n")));
    }

    /// A chunk of choice `index`: a chat delta or a completion's text.
    fn chunk(
        &self,
        index: usize,
        delta: Value,
        logprobs: Value,
        reason: Option<StopReason>,
    ) -> Value {
        let o = &self.out;
        let reason = reason.map(openai::finish_reason);
        let choice = if o.chat {
            json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason})
        } else {
            json!({"index": index, "text": delta, "logprobs": logprobs, "finish_reason": reason})
        };
        let mut c = json!({
            "id": o.id,
            "object": if o.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": o.created,
            "model": o.model,
            "system_fingerprint": Output::fingerprint(),
            "choices": [choice],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    fn text_chunk(&mut self, index: usize, text: &str, split: Split, lp: Option<&TokenLogprob>) {
        let (delta, logprobs) = if self.out.chat {
            let mut d = serde_json::Map::new();
            if !split.reasoning.is_empty() {
                d.insert("reasoning_content".into(), json!(split.reasoning));
            }
            if !split.content.is_empty() {
                d.insert("content".into(), json!(split.content));
            }
            let lps = lp.map_or(
                Value::Null,
                |l| json!({"content": [openai::chat_logprob(l)]}),
            );
            (Value::Object(d), lps)
        } else {
            let lps = lp.map_or(Value::Null, |l| {
                openai::completion_logprobs(std::slice::from_ref(l))
            });
            (json!(text), lps)
        };
        let c = self.chunk(index, delta, logprobs, None);
        self.push(&c);
    }

    fn on_event(&mut self, ev: Option<Event>) {
        match ev {
            Some(Event::Token {
                index,
                text,
                logprob,
            }) => {
                let split = if self.out.chat {
                    self.splitters[index].push(&text)
                } else {
                    Split::default()
                };
                let has_text = if self.out.chat {
                    !split.is_empty()
                } else {
                    !text.is_empty()
                };
                if has_text || logprob.is_some() {
                    self.text_chunk(index, &text, split, logprob.as_ref());
                }
            }
            Some(Event::Done {
                index,
                reason,
                completion_tokens,
                cached_tokens,
            }) => {
                if self.out.chat {
                    let tail = self.splitters[index].finish();
                    if !tail.is_empty() {
                        self.text_chunk(index, "", tail, None);
                    }
                }
                let empty = if self.out.chat { json!({}) } else { json!("") };
                let c = self.chunk(index, empty, Value::Null, Some(reason));
                self.push(&c);
                self.completion_tokens += completion_tokens;
                if index == 0 {
                    self.cached_tokens = cached_tokens;
                }
                self.left -= 1;
                if self.left == 0 {
                    if self.include_usage {
                        let o = &self.out;
                        let u = json!({
                            "id": o.id,
                            "object": if o.chat { "chat.completion.chunk" } else { "text_completion" },
                            "created": o.created,
                            "model": o.model,
                            "system_fingerprint": Output::fingerprint(),
                            "choices": [],
                            "usage": openai::usage(o.prompt_tokens, self.cached_tokens, self.completion_tokens),
                        });
                        self.push(&u);
                    }
                    self.outbox
                        .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                    self.finished = true;
                }
            }
            Some(Event::Error(e)) => {
                let err = ApiError::internal(e).body();
                self.push(&err);
                self.finished = true;
            }
            None => {
                let err = ApiError::unavailable("the scheduler stopped").body();
                self.push(&err);
                self.finished = true;
            }
        }
    }
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn output(chat: bool) -> Output {
        Output {
            id: "id".into(),
            created: 0,
            model: "m".into(),
            chat,
            in_think: false,
            prompt_tokens: 3,
            n: 1,
        }
    }

    fn events(pieces: &[&str]) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        for p in pieces {
            tx.send(Event::Token {
                index: 0,
                text: p.to_string(),
                logprob: None,
            })
            .unwrap();
        }
        tx.send(Event::Done {
            index: 0,
            reason: StopReason::Eog,
            completion_tokens: pieces.len(),
            cached_tokens: 0,
        })
        .unwrap();
        rx
    }

    fn body(r: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let b = rt
            .block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    const PIECES: [&str; 5] = ["<thi", "nk>2+2", " is 4</th", "ink>\n\nIt", " is 4."];

    #[test]
    fn stream_splits_reasoning_like_the_whole_answer() {
        let text = body(output(true).stream(events(&PIECES), true));
        let mut chunks: Vec<Value> = Vec::new();
        let mut done = false;
        for block in text.split("\n\n").filter(|b| !b.is_empty()) {
            let data = block.strip_prefix("data: ").expect(block);
            if data == "[DONE]" {
                done = true;
                continue;
            }
            chunks.push(serde_json::from_str(data).unwrap());
        }
        assert!(done, "{text}");
        let field = |k: &str| {
            chunks
                .iter()
                .filter_map(|c| c["choices"].get(0))
                .filter_map(|ch| ch["delta"][k].as_str())
                .collect::<String>()
        };
        assert_eq!(field("reasoning_content"), "2+2 is 4");
        assert_eq!(field("content"), "It is 4.");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"].as_array().unwrap().len(), 0);
        assert_eq!(last["usage"]["completion_tokens"], 5);
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let whole = rt.block_on(output(true).whole(events(&PIECES))).unwrap();
        let v: Value = serde_json::from_str(&body(whole)).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["reasoning_content"], "2+2 is 4");
        assert_eq!(m["content"], "It is 4.");
        assert_eq!(v["usage"]["total_tokens"], 8);
    }

    #[test]
    fn completions_keep_the_text_as_is() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let whole = rt.block_on(output(false).whole(events(&PIECES))).unwrap();
        let v: Value = serde_json::from_str(&body(whole)).unwrap();
        assert_eq!(v["choices"][0]["text"], PIECES.concat());
        assert_eq!(v["object"], "text_completion");
    }
}

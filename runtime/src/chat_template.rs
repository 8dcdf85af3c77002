//! Chat templates: the model's own Jinja template (from GGUF metadata or
//! tokenizer_config.json) rendered with minijinja, Python string methods
//! included, with Hugging Face's whitespace settings (trim_blocks,
//! lstrip_blocks). Undefined variables are errors, except in `if` tests, so a
//! template that needs something srl does not provide says so.

use minijinja::{context, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum TemplateError {
    #[error("the model has no chat template (tokenizer.chat_template); use a raw prompt instead")]
    Missing,
    #[error("chat template error: {0}")]
    Render(String),
}

/// Extra variables a template reads, as Hugging Face's
/// `apply_chat_template(**kwargs)` and llama.cpp's and vLLM's servers'
/// `chat_template_kwargs` pass them (Qwen3's `enable_thinking`).
pub type TemplateKwargs = serde_json::Map<String, serde_json::Value>;

/// The kwargs of a `--think` / `--no-think` switch: `enable_thinking`, or
/// none (the template's own default) when neither was given.
pub fn thinking_kwargs(think: Option<bool>) -> TemplateKwargs {
    let mut kw = TemplateKwargs::new();
    if let Some(on) = think {
        kw.insert("enable_thinking".into(), serde_json::Value::Bool(on));
    }
    kw
}

pub struct ChatTemplate {
    env: Environment<'static>,
    pub source: String,
    bos: String,
    eos: String,
    /// The tokenizer adds BOS (EOS) itself: a leading BOS (trailing EOS)
    /// the template printed is dropped, as llama.cpp's chat does, so the
    /// prompt does not carry two.
    strip_bos: bool,
    strip_eos: bool,
}

fn render_error(e: minijinja::Error) -> TemplateError {
    let mut msg = e.to_string();
    if e.kind() == ErrorKind::UndefinedError {
        msg.push_str(" (the template uses a variable srl does not provide)");
    }
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    TemplateError::Render(msg)
}

impl ChatTemplate {
    /// Compiles `source`; `bos`/`eos` are the token texts templates may print.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        // As transformers' apply_chat_template renders: block tags do not
        // leave their own newlines and indentation behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(render_error)?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos: bos.to_string(),
            eos: eos.to_string(),
            strip_bos: false,
            strip_eos: false,
        })
    }

    /// Tells the template that the tokenizer adds BOS / EOS itself, so a
    /// rendering that starts with BOS (ends with EOS) loses it (Llama 3's
    /// and Gemma's templates print `bos_token`).
    pub fn with_added_specials(mut self, add_bos: bool, add_eos: bool) -> ChatTemplate {
        self.strip_bos = add_bos && !self.bos.is_empty();
        self.strip_eos = add_eos && !self.eos.is_empty();
        self
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends
    /// where the assistant's reply begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_with(messages, add_generation_prompt, &TemplateKwargs::new())
    }

    /// [`ChatTemplate::render`] with extra variables (`kwargs`); the
    /// conversation's own variables win over a kwarg of the same name.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        kwargs: &TemplateKwargs,
    ) -> Result<String, TemplateError> {
        let tmpl = self.env.get_template("chat").map_err(render_error)?;
        let mut text = tmpl
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos,
                eos_token => self.eos,
                ..minijinja::Value::from_serialize(kwargs)
            })
            .map_err(render_error)?;
        if self.strip_bos && text.starts_with(&self.bos) {
            text.drain(..self.bos.len());
        }
        if self.strip_eos && text.ends_with(&self.eos) {
            text.truncate(text.len() - self.eos.len());
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let s = t.render(&[Message::new("user", " hi ")], true).unwrap();
        assert_eq!(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }

    /// Qwen3's template (as its models ship it) reads `enable_thinking`:
    /// false closes an empty think block for the model, unset or true
    /// leaves the thinking to it.
    #[test]
    fn qwen3_thinking_switch() {
        let src = include_str!("../../scripts/reference/templates/qwen3.jinja");
        let t = ChatTemplate::new(src, "", "<|im_end|>").unwrap();
        let msgs = [Message::new("user", "2+2?")];
        let head = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n";
        for (think, want) in [
            (None, head.to_string()),
            (Some(true), head.to_string()),
            (Some(false), format!("{head}<think>\n\n</think>\n\n")),
        ] {
            let got = t.render_with(&msgs, true, &thinking_kwargs(think)).unwrap();
            assert_eq!(got, want, "{think:?}");
        }
        // A kwarg never overrides the conversation.
        let mut kw = thinking_kwargs(None);
        kw.insert("messages".into(), serde_json::json!([]));
        assert_eq!(t.render_with(&msgs, true, &kw).unwrap(), head);
    }

    /// A BOS the template prints is dropped when the tokenizer adds one
    /// (llama.cpp's chat does the same), and kept when it does not.
    #[test]
    fn printed_bos_is_dropped_when_the_tokenizer_adds_it() {
        let src = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
        let msgs = [Message::new("user", "hi")];
        let plain = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(plain.render(&msgs, true).unwrap(), "<s><user>hi");
        let t = ChatTemplate::new(src, "<s>", "</s>")
            .unwrap()
            .with_added_specials(true, false);
        assert_eq!(t.render(&msgs, true).unwrap(), "<user>hi");
    }

    #[test]
    fn python_methods_and_exceptions() {
        let t = ChatTemplate::new("{{ messages[0].content.strip().upper() }}{% if messages|length > 1 %}{{ raise_exception('one only') }}{% endif %}", "", "").unwrap();
        assert_eq!(
            t.render(&[Message::new("user", " a ")], false).unwrap(),
            "A"
        );
        let e = t
            .render(
                &[Message::new("user", "a"), Message::new("user", "b")],
                false,
            )
            .unwrap_err();
        assert!(e.to_string().contains("one only"), "{e}");
    }

    /// Block tags swallow their newline and leading indentation, as in transformers.
    #[test]
    fn trims_blocks_like_transformers() {
        let t = ChatTemplate::new("{% for m in messages %}\n  {% if true %}\n{{ m.content }}\n  {% endif %}\n{% endfor %}", "", "").unwrap();
        let s = t
            .render(
                &[Message::new("user", "a"), Message::new("user", "b")],
                false,
            )
            .unwrap();
        assert_eq!(s, "a\nb\n");
    }

    #[test]
    fn unknown_variable_is_an_error() {
        let t = ChatTemplate::new("{{ nonexistent_thing }}", "", "").unwrap();
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("undefined"), "{e}");
        // ...but testing it in an `if` is fine.
        let t = ChatTemplate::new("{% if tools %}x{% endif %}ok", "", "").unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "ok");
    }
}

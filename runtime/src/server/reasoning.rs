//! Splitting a reasoning model's `<think>...</think>` block from its answer,
//! as llama.cpp's server does: the block's text goes to `reasoning_content`,
//! the rest to `content`. Works on streamed text: a piece that could still
//! become a tag is held back until it is known.

use crate::think::{THINK_CLOSE as CLOSE, THINK_OPEN as OPEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// Nothing but whitespace seen yet: an opening tag may still come.
    Start,
    Think,
    /// Just after `</think>`: whitespace before the answer is dropped.
    AfterThink,
    Content,
}

/// Text of one piece, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

impl Split {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

pub struct ReasoningSplitter {
    at: Where,
    held: String,
}

impl ReasoningSplitter {
    /// `in_think`: the prompt itself opened the block (templates that end the
    /// generation prompt with `<think>`), so the output starts inside it.
    pub fn new(in_think: bool) -> ReasoningSplitter {
        ReasoningSplitter {
            at: if in_think { Where::Think } else { Where::Start },
            held: String::new(),
        }
    }

    /// Whether a rendered prompt leaves the model inside a think block.
    pub fn prompt_opens_think(prompt: &str) -> bool {
        let p = prompt.trim_end();
        match (p.rfind(OPEN), p.rfind(CLOSE)) {
            (Some(o), Some(c)) => o > c,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Adds generated text; returns what is known to be reasoning or answer.
    pub fn push(&mut self, text: &str) -> Split {
        self.held.push_str(text);
        let mut out = Split::default();
        loop {
            match self.at {
                Where::Start => {
                    let t = self.held.trim_start();
                    if let Some(rest) = t.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.at = Where::Think;
                    } else if OPEN.starts_with(t) {
                        return out; // whitespace or a partial tag: wait
                    } else {
                        self.at = Where::Content;
                    }
                }
                Where::Think => {
                    if let Some(pos) = self.held.find(CLOSE) {
                        out.reasoning.push_str(&self.held[..pos]);
                        self.held.drain(..pos + CLOSE.len());
                        self.at = Where::AfterThink;
                    } else {
                        let keep = partial_suffix(&self.held, CLOSE);
                        let cut = self.held.len() - keep;
                        out.reasoning.push_str(&self.held[..cut]);
                        self.held.drain(..cut);
                        return out;
                    }
                }
                Where::AfterThink => {
                    let t = self.held.trim_start();
                    if t.is_empty() {
                        self.held.clear();
                        return out;
                    }
                    self.held = t.to_string();
                    self.at = Where::Content;
                }
                Where::Content => {
                    out.content.push_str(&self.held);
                    self.held.clear();
                    return out;
                }
            }
        }
    }

    /// Releases what is held at the end of generation (an unclosed block
    /// stays reasoning).
    pub fn finish(&mut self) -> Split {
        let held = std::mem::take(&mut self.held);
        match self.at {
            Where::Think => Split {
                reasoning: held,
                content: String::new(),
            },
            Where::AfterThink => Split::default(),
            Where::Start | Where::Content => Split {
                reasoning: String::new(),
                content: held,
            },
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Splits a whole text at once.
pub fn split(text: &str, in_think: bool) -> Split {
    let mut s = ReasoningSplitter::new(in_think);
    let mut a = s.push(text);
    let b = s.finish();
    a.reasoning.push_str(&b.reasoning);
    a.content.push_str(&b.content);
    a
}

#[cfg(test)]
mod tests {
    use crate::chat_template::{ChatTemplate, Message};

    /// DeepSeek-R1-Distill-Qwen's template (srl runs it as `qwen2`) ends
    /// the generation prompt inside an open `<think>`: the reply's text up
    /// to `</think>` is reasoning, the rest the answer.
    #[test]
    fn deepseek_r1_distill_prompt_opens_the_think_block() {
        let src =
            include_str!("../../../scripts/reference/templates/deepseek-r1-distill-qwen.jinja");
        let t = ChatTemplate::new(src, "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>").unwrap();
        let prompt = t
            .render(&[Message::new("user", "What is 2+2?")], true)
            .unwrap();
        assert!(
            prompt.ends_with("<｜User｜>What is 2+2?<｜Assistant｜><think>\n"),
            "{prompt:?}"
        );
        assert!(ReasoningSplitter::prompt_opens_think(&prompt));
        let s = split("2 plus 2 is 4.\n</think>\n\nThe answer is 4.", true);
        assert_eq!(s.reasoning.trim(), "2 plus 2 is 4.");
        assert_eq!(s.content, "The answer is 4.");
        // An earlier turn's thinking is dropped from the history.
        let msgs = [
            Message::new("user", "1+1?"),
            Message::new("assistant", "<think>\nsmall sum\n</think>\n\n2"),
            Message::new("user", "2+2?"),
        ];
        let prompt = t.render(&msgs, true).unwrap();
        assert!(!prompt.contains("small sum"), "{prompt:?}");
    }

    use super::*;

    /// Every way of cutting `text` into streamed pieces gives the whole split.
    fn streamed(text: &str, in_think: bool, step: usize) -> Split {
        let mut s = ReasoningSplitter::new(in_think);
        let mut all = Split::default();
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(step) {
            let p = s.push(&piece.iter().collect::<String>());
            all.reasoning.push_str(&p.reasoning);
            all.content.push_str(&p.content);
        }
        let p = s.finish();
        all.reasoning.push_str(&p.reasoning);
        all.content.push_str(&p.content);
        all
    }

    fn check(text: &str, in_think: bool, reasoning: &str, content: &str) {
        for step in 1..=text.chars().count().max(1) {
            let got = streamed(text, in_think, step);
            assert_eq!(got.reasoning, reasoning, "{text:?} in pieces of {step}");
            assert_eq!(got.content, content, "{text:?} in pieces of {step}");
        }
        assert_eq!(split(text, in_think).content, content);
    }

    #[test]
    fn think_block_goes_to_reasoning() {
        check(
            "<think>2+2 is 4.</think>\n\nThe answer is 4.",
            false,
            "2+2 is 4.",
            "The answer is 4.",
        );
        check("\n<think>a</think>b", false, "a", "b");
        check(
            "<think>\nweigh ü options\n</think>ok",
            false,
            "\nweigh ü options\n",
            "ok",
        );
    }

    #[test]
    fn no_block_is_all_content() {
        check("Hello there.", false, "", "Hello there.");
        check("  <b>bold</b>", false, "", "  <b>bold</b>");
        check("Use <think> tags.", false, "", "Use <think> tags.");
        check("<thin", false, "", "<thin");
        check("", false, "", "");
    }

    #[test]
    fn prompt_that_opens_the_block() {
        assert!(ReasoningSplitter::prompt_opens_think(
            "<|im_start|>assistant\n<think>\n"
        ));
        assert!(!ReasoningSplitter::prompt_opens_think(
            "<think></think>\n<|im_start|>assistant\n"
        ));
        assert!(!ReasoningSplitter::prompt_opens_think("assistant\n"));
        check("plan</think>\nanswer", true, "plan", "answer");
        check("unfinished </thi", true, "unfinished </thi", "");
    }

    #[test]
    fn close_tag_inside_content_stays() {
        check("<think>x</think>y</think>z", false, "x", "y</think>z");
    }
}

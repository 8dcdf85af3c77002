//! The token table: text of every id, and the id of every text.

use std::collections::HashMap;

#[derive(Debug)]
pub(crate) struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Empty texts become "[EMPTY_<id>]", as llama.cpp renames them; when a
    /// text repeats, the last id wins (llama.cpp's token_to_id does the same).
    pub fn new(mut tokens: Vec<String>) -> Vocab {
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            ids.insert(t.clone(), i as u32);
        }
        Vocab { tokens, ids }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text of a token; "" for an id out of range.
    pub fn text(&self, id: u32) -> &str {
        self.tokens
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// (text, id) for every distinct text (the id its text maps to), in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .filter(|&(t, i)| self.ids.get(t) == Some(&i))
    }
}

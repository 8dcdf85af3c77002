//! Holding a step-wise response to its shape while it is generated: a
//! `<think>` monologue, then one step (SRL.md, "Prompt and output format").
//!
//! Two controls, both optional:
//! - a think budget: when the monologue has used its sampled tokens without
//!   closing, `</think>` and a newline are written for the model and it goes
//!   on with the step (the "budget forcing" of the s1 paper). Small models
//!   that never close the block on their own can then still be scored and
//!   trained; the forced tokens are marked so that no loss falls on them.
//! - a step end: generation stops at the first newline after the step has
//!   begun, since a step is one line and what follows would be the next one.

pub use crate::think::THINK_CLOSE;

/// How a step-wise response is controlled while it is generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFormat {
    /// Sampled monologue tokens allowed before `</think>\n` is forced
    /// (None: no limit).
    pub think_budget: Option<usize>,
    /// Stop at the end of the step's first line.
    pub stop_at_step_end: bool,
}

/// Where a response being generated stands.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepTracker {
    /// Decoded text so far (stop strings not applied).
    raw: String,
    /// Monologue tokens sampled so far.
    think_tokens: usize,
    /// Byte offset in `raw` where the step begins, once `</think>` is seen.
    step_start: Option<usize>,
}

/// What the tracker wants after a sampled token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepAction {
    Continue,
    /// Write `</think>\n` for the model now.
    ForceClose,
    /// The step's line is complete.
    StepEnd,
}

impl StepTracker {
    /// Records a sampled token's text.
    pub fn sampled(&mut self, piece: &str, format: &StepFormat) -> StepAction {
        self.raw.push_str(piece);
        match self.step_start {
            None => {
                if let Some(i) = self.raw.find(THINK_CLOSE) {
                    self.step_start = Some(i + THINK_CLOSE.len());
                    return self.check_end(format);
                }
                self.think_tokens += 1;
                match format.think_budget {
                    Some(b) if self.think_tokens >= b => StepAction::ForceClose,
                    _ => StepAction::Continue,
                }
            }
            Some(_) => self.check_end(format),
        }
    }

    /// Records the forced `</think>\n`.
    pub fn forced(&mut self, text: &str) {
        self.raw.push_str(text);
        if self.step_start.is_none() {
            if let Some(i) = self.raw.find(THINK_CLOSE) {
                self.step_start = Some(i + THINK_CLOSE.len());
            }
        }
    }

    fn check_end(&self, format: &StepFormat) -> StepAction {
        let Some(start) = self.step_start else {
            return StepAction::Continue;
        };
        if !format.stop_at_step_end {
            return StepAction::Continue;
        }
        let step = &self.raw[start..];
        let Some(first) = step.find(|c: char| !c.is_whitespace()) else {
            return StepAction::Continue;
        };
        if step[first..].contains('\n') {
            StepAction::StepEnd
        } else {
            StepAction::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(format: &StepFormat, pieces: &[&str]) -> Vec<StepAction> {
        let mut t = StepTracker::default();
        pieces.iter().map(|p| t.sampled(p, format)).collect()
    }

    #[test]
    fn the_budget_forces_the_close_after_that_many_monologue_tokens() {
        let f = StepFormat {
            think_budget: Some(3),
            stop_at_step_end: false,
        };
        use StepAction::*;
        assert_eq!(feed(&f, &["a", "b", "c"]), [Continue, Continue, ForceClose]);
        // A block closed within the budget is left alone.
        assert_eq!(
            feed(&f, &["a", "</th", "ink>", "x", "y", "z"]),
            [Continue, Continue, Continue, Continue, Continue, Continue]
        );
    }

    #[test]
    fn the_step_ends_at_the_first_newline_after_its_text() {
        let f = StepFormat {
            think_budget: None,
            stop_at_step_end: true,
        };
        use StepAction::*;
        assert_eq!(
            feed(
                &f,
                &["hm\n", "</think>", "\n", " ", "Step", " 2.\n", "more"]
            ),
            [Continue, Continue, Continue, Continue, Continue, StepEnd, StepEnd]
        );
        // After a forced close, the same rule applies.
        let mut t = StepTracker::default();
        t.forced("</think>\n");
        assert_eq!(t.sampled("x", &f), Continue);
        assert_eq!(t.sampled("\n", &f), StepEnd);
    }
}

//! The prompt of a step instance and the split of a model's response into
//! its `<think>` monologue and its action (SRL.md, "Prompt and output
//! format").

use super::{strip_step_label, Format, StepInstance};
use srl_runtime::think::{THINK_CLOSE, THINK_OPEN};
use srl_runtime::{think_close, think_open, Engine, Message, StepFormat};

/// The system prompt of math instances (SRL.md, "Prompt and output format").
pub const MATH_SYSTEM_PROMPT: &str = concat!(
    "You are solving a problem step by step. You are given the problem and the steps of the \
solution so far. Continue the solution with the very next logical step only. First draft your \
thinking inside ",
    think_open!(),
    " ",
    think_close!(),
    ", then, after ",
    think_close!(),
    ", write only that single next step. Do not solve the whole problem and do not repeat \
earlier steps."
);

/// The system prompt of agentic instances.
pub const AGENTIC_SYSTEM_PROMPT: &str = concat!(
    "You are carrying out a task step by step in an environment. You are given the task and \
your most recent actions with what the environment answered. Decide the very next action only. \
First draft your thinking inside ",
    think_open!(),
    " ",
    think_close!(),
    ", then, after ",
    think_close!(),
    ", write only that single next action. Do not try to finish the whole task at once."
);

/// The chat messages that ask for an instance's target step: a system
/// prompt (by format), then the task, the steps so far (numbered as in the
/// trajectory, observations included, omitted ones counted), the hint if
/// any, and which step to write. For example (math, step 3 with a hint):
///
/// ```text
/// Problem:
/// What is 2 + 3 * 4?
///
/// Solution so far:
/// Step 1: Multiply first: 3 * 4 = 12.
/// Step 2: ...
///
/// Hint: step 3 is titled "Add".
///
/// Write step 3 only: think inside <think> </think> first, then write the step.
/// ```
pub fn render_prompt(inst: &StepInstance) -> Vec<Message> {
    let (system, task_head, so_far, unit) = match inst.format {
        Format::Math => (MATH_SYSTEM_PROMPT, "Problem", "Solution so far", "step"),
        Format::Agentic => (AGENTIC_SYSTEM_PROMPT, "Task", "Actions so far", "action"),
    };
    let mut user = format!("{task_head}:\n{}\n\n{so_far}:\n", inst.task.trim());
    let omitted = inst.omitted();
    if inst.step == 1 {
        user += "(none yet)\n";
    } else if omitted > 0 {
        user += &format!(
            "({} earlier {unit}{} not shown)\n",
            omitted,
            if omitted == 1 { " is" } else { "s are" }
        );
    }
    for (i, s) in inst.previous.iter().enumerate() {
        user += &format!("Step {}: {}\n", omitted + i + 1, s.action.trim());
        if let Some(obs) = &s.observation {
            user += &format!("Observation: {}\n", obs.trim());
        }
    }
    if let Some(hint) = &inst.hint {
        user += &format!(
            "\nHint: step {} is titled \"{}\".\n",
            inst.step,
            hint.trim()
        );
    }
    user += &format!(
        "\nWrite step {} only: think inside {THINK_OPEN} {THINK_CLOSE} first, then write the {unit}.",
        inst.step
    );
    vec![Message::new("system", system), Message::new("user", &user)]
}

/// The prompt token ids of a step-wise request: the model's chat template,
/// then `<think>\n` when a think budget is in force (the model starts
/// inside its monologue, as reasoning models' templates do).
pub fn prompt_ids(
    engine: &Engine,
    messages: &[Message],
    format: &StepFormat,
) -> Result<Vec<u32>, srl_runtime::RuntimeError> {
    let mut text = engine.render_chat(messages, true)?;
    if format.think_budget.is_some() {
        text.push_str(THINK_OPEN);
        text.push('\n');
    }
    Ok(engine.tokenize_prompt(&text))
}

/// A response split per SRL.md: the monologue and the action (trimmed,
/// a copied "Step k:" label removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub thought: String,
    pub action: String,
}

/// Why a response does not follow the format (reward -1).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FormatFailure {
    #[error("no <think> block")]
    NoThink,
    #[error("the <think> block is not closed")]
    Unclosed,
    #[error("text before <think>")]
    TextBeforeThink,
    #[error("more than one <think> block")]
    ExtraThink,
    #[error("no action after </think>")]
    EmptyAction,
}

/// Splits a model response into its `<think>...</think>` monologue and the
/// action after it. The response may start with whitespace; it may also
/// lack the opening `<think>` when the prompt ended with it (then
/// everything before `</think>` is the monologue). A missing or unclosed
/// block, text before `<think>`, a second block, or nothing after
/// `</think>` is a format failure.
pub fn parse_response(text: &str) -> Result<Parsed, FormatFailure> {
    const OPEN: &str = THINK_OPEN;
    const CLOSE: &str = THINK_CLOSE;
    let t = text.trim_start();
    let (thought, rest) = if let Some(after) = t.strip_prefix(OPEN) {
        let end = after.find(CLOSE).ok_or(FormatFailure::Unclosed)?;
        (&after[..end], &after[end + CLOSE.len()..])
    } else if let Some(end) = t.find(CLOSE) {
        if t[..end].contains(OPEN) {
            return Err(FormatFailure::TextBeforeThink);
        }
        (&t[..end], &t[end + CLOSE.len()..])
    } else if t.contains(OPEN) {
        return Err(FormatFailure::TextBeforeThink);
    } else {
        return Err(FormatFailure::NoThink);
    };
    if thought.contains(OPEN) || rest.contains(OPEN) || rest.contains(CLOSE) {
        return Err(FormatFailure::ExtraThink);
    }
    let action = strip_step_label(rest);
    if action.is_empty() {
        return Err(FormatFailure::EmptyAction);
    }
    Ok(Parsed {
        thought: thought.trim().to_string(),
        action,
    })
}

//! RLVR's task (SRL.md, "RLVR and the SRL -> RLVR curriculum"): a problem
//! per prompt, solved whole; the reward is 1 when the final answer matches
//! the reference ([`AnswerChecker`]), else 0.

use super::{RlTask, Score};
use crate::answer::{final_answer, AnswerChecker};
use crate::eval::Problem;
use crate::steps::{Format, StepsError};
use serde_json::Value;
use srl_runtime::{think_close, think_open, Message};
use std::path::Path;

/// The system prompt of whole-solution rollouts.
pub const RLVR_SYSTEM_PROMPT: &str = concat!(
    "You are solving a problem. First draft your thinking inside ",
    think_open!(),
    " ",
    think_close!(),
    ", then, after ",
    think_close!(),
    ", write the solution step by step and end with the final answer in \\boxed{}."
);

/// The chat that asks for `task`'s whole solution (RLVR's rollouts, and
/// `srl eval --whole`).
pub fn whole_solution_messages(task: &str) -> Vec<Message> {
    vec![
        Message::new("system", RLVR_SYSTEM_PROMPT),
        Message::new("user", &format!("Problem:\n{}", task.trim())),
    ]
}

pub struct RlvrTask {
    pub problems: Vec<Problem>,
    pub checker: Box<dyn AnswerChecker + Send + Sync>,
}

impl RlTask for RlvrTask {
    fn name(&self) -> &'static str {
        "rlvr"
    }

    fn len(&self) -> usize {
        self.problems.len()
    }

    fn id(&self, i: usize) -> &str {
        &self.problems[i].id
    }

    fn messages(&self, i: usize) -> Vec<Message> {
        whole_solution_messages(&self.problems[i].task)
    }

    fn one_step(&self) -> bool {
        false
    }

    fn score(&self, i: usize, response: &str) -> Score {
        let reference = self.problems[i].answer.as_deref().unwrap_or_default();
        Score {
            reward: self.checker.check(response, reference) as u8 as f64,
            similarity: None,
            format_failure: final_answer(response).is_none(),
        }
    }
}

/// Problems with answers from JSONL: `task` (or `problem`, `question`) and
/// `answer` (a string or a number), as in trajectories. Lines without an
/// answer are counted, not kept; a line that is not a JSON object or has no
/// task is an error naming the line, or with `skip_bad` counted too.
/// Returns the problems and (no answer, malformed) counts.
pub fn read_problems(
    path: &Path,
    skip_bad: bool,
) -> Result<(Vec<Problem>, usize, usize), StepsError> {
    let text = std::fs::read_to_string(path).map_err(|err| StepsError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let (mut problems, mut no_answer, mut bad) = (Vec::new(), 0, 0);
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_problem(line, line_no);
        match parsed {
            Ok(Some(p)) => problems.push(p),
            Ok(None) => no_answer += 1,
            Err(message) if skip_bad => {
                let _ = message;
                bad += 1
            }
            Err(message) => {
                return Err(StepsError::Line {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                })
            }
        }
    }
    if problems.is_empty() {
        return Err(StepsError::NoInstances {
            path: path.to_path_buf(),
            summary: format!("{no_answer} lines without an answer, {bad} malformed"),
        });
    }
    Ok((problems, no_answer, bad))
}

fn parse_problem(line: &str, line_no: usize) -> Result<Option<Problem>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(o) = &v else {
        return Err("expected a JSON object".into());
    };
    let task = ["task", "problem", "question"]
        .iter()
        .find_map(|k| o.get(*k))
        .ok_or("no 'task' (or 'problem', 'question') field")?;
    let Value::String(task) = task else {
        return Err("'task' must be a string".into());
    };
    if task.trim().is_empty() {
        return Err("'task' is empty".into());
    }
    let answer = match o.get("answer") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(x)) => x.to_string(),
        Some(_) => return Err("'answer' must be a string or a number".into()),
    };
    let id = match o.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(x)) => x.to_string(),
        _ => format!("line{line_no}"),
    };
    Ok(Some(Problem {
        id,
        task: task.clone(),
        format: Format::Math,
        answer: Some(answer),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::MathAnswer;

    #[test]
    fn problems_are_read_counted_and_scored() {
        let dir = std::env::temp_dir().join(format!("srl-rlvr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"task\":\"2+2?\",\"answer\":\"4\"}\n\
             {\"problem\":\"3*3?\",\"answer\":9}\n\
             {\"task\":\"no answer here\"}\n\n",
        )
        .unwrap();
        let (problems, no_answer, bad) = read_problems(&p, false).unwrap();
        assert_eq!((problems.len(), no_answer, bad), (2, 1, 0));
        assert_eq!(problems[1].id, "line2");
        assert_eq!(problems[1].answer.as_deref(), Some("9"));
        let task = RlvrTask {
            problems,
            checker: Box::new(MathAnswer),
        };
        assert_eq!(
            task.score(0, "<think>hm</think> 2+2 = \\boxed{4}").reward,
            1.0
        );
        assert_eq!(task.score(0, "<think>hm</think> it is 5").reward, 0.0);
        assert!(task.score(1, "no idea").format_failure);

        std::fs::write(&p, "{\"task\":\"ok\",\"answer\":\"1\"}\n[1,2]\n").unwrap();
        let e = read_problems(&p, false).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("object"), "{e}");
        assert_eq!(read_problems(&p, true).unwrap().2, 1);
    }
}

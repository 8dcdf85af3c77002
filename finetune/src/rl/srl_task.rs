//! SRL's task (SRL.md, "Reward"): one step instance per prompt, the reward
//! the similarity of the response's action to the expert step, -1 for a
//! response that breaks the `<think>` + step format.

use super::{RlTask, Score};
use crate::similarity::Similarity;
use crate::steps::{parse_response, render_prompt, StepInstance};
use srl_runtime::Message;

pub struct SrlTask {
    pub instances: Vec<StepInstance>,
    /// difflib's autojunk heuristic.
    pub autojunk: bool,
}

impl RlTask for SrlTask {
    fn name(&self) -> &'static str {
        "srl"
    }

    fn len(&self) -> usize {
        self.instances.len()
    }

    fn id(&self, i: usize) -> &str {
        &self.instances[i].id
    }

    fn messages(&self, i: usize) -> Vec<Message> {
        render_prompt(&self.instances[i])
    }

    fn one_step(&self) -> bool {
        true
    }

    fn score(&self, i: usize, response: &str) -> Score {
        match parse_response(response) {
            Ok(p) => {
                let s = Similarity::new(&self.instances[i].target, self.autojunk).ratio(&p.action);
                Score {
                    reward: s,
                    similarity: Some(s),
                    format_failure: false,
                }
            }
            Err(_) => Score {
                reward: -1.0,
                similarity: None,
                format_failure: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Format;

    #[test]
    fn the_reward_is_the_action_similarity_or_minus_one() {
        let task = SrlTask {
            instances: vec![StepInstance {
                id: "t:1".into(),
                source: "t".into(),
                format: Format::Math,
                task: "2 + 2?".into(),
                previous: vec![],
                target: "Add: 2 + 2 = 4.".into(),
                step: 1,
                total: 1,
                hint: None,
                answer: None,
            }],
            autojunk: true,
        };
        let s = task.score(0, "<think>easy</think>\nAdd: 2 + 2 = 4.");
        assert_eq!(
            (s.reward, s.similarity, s.format_failure),
            (1.0, Some(1.0), false)
        );
        // The prompt may end inside the monologue (think budget).
        let s = task.score(0, "so 4</think> Add: 2 + 2 = 5.");
        assert!(s.reward > 0.8 && s.reward < 1.0, "{s:?}");
        let s = task.score(0, "Add: 2 + 2 = 4.");
        assert_eq!(
            (s.reward, s.similarity, s.format_failure),
            (-1.0, None, true)
        );
        assert_eq!(task.score(0, "<think>x</think>   ").reward, -1.0);
    }
}

//! Held-out evaluation of an SRL model (SRL.md, "What users ... expect":
//! "mean step similarity (greedy) and, where answers exist, final-answer
//! accuracy"), and step-by-step solving the way an SRL model is used.
//!
//! - Step similarity: each step instance's prompt ([`render_prompt`]) is
//!   answered greedily; the response is split by [`parse_response`]; a
//!   well-formed action is scored against the expert step with difflib's
//!   ratio ([`Similarity`]). Reported: the mean similarity over well-formed
//!   responses, the format-failure rate, and the mean SRL reward (a format
//!   failure counts -1, as SRL.md's reward does).
//! - Final answers: each problem with a reference answer is solved step by
//!   step ([`solve`]: task + steps so far -> next step, until a step gives
//!   an answer, a format failure or the step limit), once greedily and `k`
//!   times sampled (temperature 1.0 by default); the last step's final
//!   answer is checked with [`MathAnswer`]. Reported: greedy accuracy and
//!   avg@k (the mean accuracy over the k samples).
//!
//! Input ([`load_eval_data`]): step instances (`srl data build`'s output)
//! or raw trajectories, which are cut into instances in memory.

use crate::answer::{extract_boxed, final_answer, AnswerChecker, MathAnswer};
use crate::data::Step;
use crate::rl::whole_solution_messages;
use crate::similarity::Similarity;
use crate::steps::{
    parse_response, prompt_ids, read_instances, render_prompt, step_instances, BuildOptions,
    Format, FormatFailure, SkipReason, StepInstance, StepsError,
};
use serde::Serialize;
use serde_json::Value;
use srl_runtime::{Engine, GenerateParams, PromptCache, RolloutRequest, SamplerConfig, StepFormat};
use std::path::{Path, PathBuf};

/// A problem to solve from scratch: a trajectory's task and, if known, its
/// answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub id: String,
    pub task: String,
    pub format: Format,
    pub answer: Option<String>,
}

/// What an evaluation file holds.
#[derive(Debug, Clone, Default)]
pub struct EvalData {
    pub instances: Vec<StepInstance>,
    /// One per trajectory (with or without an answer), in file order.
    pub problems: Vec<Problem>,
    /// Trajectories that gave no instances (no steps, empty task ...).
    pub skipped: usize,
}

/// Reads step instances (lines with `target` and `previous`) or
/// trajectories (anything else) from `path`; errors name the file and line.
pub fn load_eval_data(path: &Path) -> Result<EvalData, StepsError> {
    let read = |err| StepsError::Read {
        path: path.to_path_buf(),
        err,
    };
    let text = std::fs::read(path).map_err(read)?;
    let line_err = |line: usize, message: String| StepsError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = String::from_utf8(text).map_err(|e| line_err(0, format!("not valid UTF-8: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(first_no, first)) = lines.first() else {
        return Err(StepsError::Empty {
            path: path.to_path_buf(),
        });
    };
    let first: Value = serde_json::from_str(first)
        .map_err(|e| line_err(first_no, format!("not valid JSON: {e}")))?;
    let mut data = EvalData::default();
    if first.get("target").is_some() && first.get("previous").is_some() {
        data.instances = read_instances(path)?;
        for inst in &data.instances {
            if !data.problems.iter().any(|p| p.id == inst.source) {
                data.problems.push(Problem {
                    id: inst.source.clone(),
                    task: inst.task.clone(),
                    format: inst.format,
                    answer: inst.answer.clone(),
                });
            }
        }
        return Ok(data);
    }
    let opts = BuildOptions::default();
    for (line, l) in lines {
        let value: Value =
            serde_json::from_str(l).map_err(|e| line_err(line, format!("not valid JSON: {e}")))?;
        match step_instances(&value, line, &opts) {
            Ok(built) => {
                let i = &built.instances[0];
                data.problems.push(Problem {
                    id: i.source.clone(),
                    task: i.task.clone(),
                    format: i.format,
                    answer: i.answer.clone(),
                });
                data.instances.extend(built.instances);
            }
            Err(SkipReason::Bad(m)) => return Err(line_err(line, m)),
            Err(_) => data.skipped += 1,
        }
    }
    if data.instances.is_empty() {
        return Err(StepsError::NoInstances {
            path: path.to_path_buf(),
            summary: format!("{} trajectories skipped", data.skipped),
        });
    }
    Ok(data)
}

#[derive(thiserror::Error, Debug)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] StepsError),
    #[error("{id}: {source}")]
    Generate {
        id: String,
        source: srl_runtime::RuntimeError,
    },
    #[error("{path}: no step instances or problems to evaluate", path = .0.display())]
    Nothing(PathBuf),
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Tokens per generated step.
    pub max_tokens: usize,
    /// Step instances scored, and problems solved (0 = all).
    pub limit: usize,
    /// Problems solved, when not `limit` (0 = none).
    pub problems: Option<usize>,
    /// Sampled solutions per problem for avg@k (0 = none).
    pub k: usize,
    pub temperature: f32,
    pub seed: u64,
    /// Steps per solution before giving up.
    pub max_steps: usize,
    /// difflib's autojunk heuristic in the similarity.
    pub autojunk: bool,
    /// Monologue tokens before `</think>` is written for the model (as in
    /// training with a think budget); None: the model closes it itself.
    pub think_budget: Option<usize>,
    /// Also solve each problem in one go (the whole solution in one
    /// generation, as RLVR samples it) with up to this many tokens; 0: not.
    pub whole_max_tokens: usize,
}

/// Sequences decoded together in an evaluation's batches: every step
/// instance, every problem's next step and every whole solution is one
/// sequence of a batch, so the weights are read once per token for all.
pub const EVAL_BATCH: usize = 32;

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_tokens: 256,
            limit: 0,
            problems: None,
            k: 4,
            temperature: 1.0,
            seed: 0,
            max_steps: 12,
            autojunk: true,
            think_budget: None,
            whole_max_tokens: 0,
        }
    }
}

/// One scored step instance.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredStep {
    pub id: String,
    pub response: String,
    /// None on a format failure.
    pub similarity: Option<f64>,
    pub format_failure: Option<String>,
}

/// One solved problem.
#[derive(Debug, Clone, Serialize)]
pub struct SolvedProblem {
    pub id: String,
    pub answer: String,
    pub greedy_correct: bool,
    /// Correct samples out of k.
    pub sampled_correct: usize,
    pub greedy_steps: Vec<String>,
    /// Solved in one go (greedy), when asked for.
    pub whole_correct: Option<bool>,
    pub whole_response: Option<String>,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub instances: usize,
    pub well_formed: usize,
    pub format_failures: usize,
    /// format_failures / instances.
    pub format_failure_rate: f64,
    /// Over well-formed responses; None when there are none.
    pub mean_similarity: Option<f64>,
    /// Over every instance, a format failure counting 0: comparable between
    /// models that fail the format at different rates.
    pub mean_similarity_all: f64,
    /// SRL.md's reward: the similarity, -1 for a format failure.
    pub mean_reward: f64,
    /// Problems with a reference answer that were solved.
    pub problems: usize,
    pub k: usize,
    pub greedy_accuracy: Option<f64>,
    pub avg_at_k: Option<f64>,
    /// Greedy final-answer accuracy of whole solutions written in one go.
    pub whole_accuracy: Option<f64>,
    /// Whole solutions without a final answer, over those solved in one go.
    pub whole_no_answer_rate: Option<f64>,
    pub steps: Vec<ScoredStep>,
    pub solved: Vec<SolvedProblem>,
}

impl EvalReport {
    /// A markdown table of the summary numbers.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
        let mut rows = vec![
            ("step instances", self.instances.to_string()),
            ("well-formed responses", self.well_formed.to_string()),
            (
                "format-failure rate",
                format!("{:.4}", self.format_failure_rate),
            ),
            (
                "mean step similarity (greedy, failures count 0)",
                format!("{:.4}", self.mean_similarity_all),
            ),
            (
                "mean step similarity (greedy, well-formed only)",
                opt(self.mean_similarity),
            ),
            (
                "mean step reward (failure = -1)",
                format!("{:.4}", self.mean_reward),
            ),
            ("problems with answers", self.problems.to_string()),
            ("final-answer accuracy (greedy)", opt(self.greedy_accuracy)),
        ];
        let avg = format!("final-answer accuracy (avg@{})", self.k);
        rows.push((avg.as_str(), opt(self.avg_at_k)));
        if self.whole_accuracy.is_some() {
            rows.push((
                "final-answer accuracy (greedy, in one go)",
                opt(self.whole_accuracy),
            ));
            rows.push((
                "no final answer (in one go)",
                opt(self.whole_no_answer_rate),
            ));
        }
        let mut s = String::from("| metric | value |\n|---|---|\n");
        for (k, v) in rows {
            s += &format!("| {k} | {v} |\n");
        }
        s
    }
}

/// One step of a solution.
#[derive(Debug, Clone)]
pub struct SolveStep {
    /// 1-based.
    pub step: usize,
    pub response: String,
    pub parsed: Result<crate::steps::Parsed, FormatFailure>,
}

/// Why solving stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SolveEnd {
    /// A step wrote a final answer (`\boxed{}` or "answer").
    Answer,
    FormatFailure,
    MaxSteps,
}

/// Whether a step states a final answer: a `\boxed{}` or an "answer" phrase.
pub fn states_answer(action: &str) -> bool {
    extract_boxed(action).is_some() || action.to_lowercase().contains("answer")
}

/// How a step is generated: one line after the monologue, which is closed
/// for the model after `think_budget` tokens if given.
pub fn step_format(think_budget: Option<usize>) -> StepFormat {
    StepFormat {
        think_budget,
        stop_at_step_end: true,
    }
}

/// The step instance that asks for step `k` of `task` after `previous`.
fn next_step_instance(task: &str, format: Format, previous: &[Step], k: usize) -> StepInstance {
    StepInstance {
        id: format!("solve:{k}"),
        source: "solve".into(),
        format,
        task: task.to_string(),
        previous: previous.to_vec(),
        target: String::new(),
        step: k,
        total: k,
        hint: None,
        answer: None,
    }
}

/// A solution in progress: its steps so far, why it ended, and its last
/// prompt's KV cache (the next step's prompt starts the same way).
#[derive(Default)]
struct Solution {
    previous: Vec<Step>,
    steps: Vec<SolveStep>,
    end: Option<SolveEnd>,
    cache: PromptCache,
}

impl Solution {
    /// Takes the response to its next step; returns whether it goes on.
    fn advance(&mut self, response: String) -> bool {
        let k = self.steps.len() + 1;
        let parsed = parse_response(&response);
        self.end = match &parsed {
            Err(_) => Some(SolveEnd::FormatFailure),
            Ok(p) if states_answer(&p.action) => Some(SolveEnd::Answer),
            Ok(p) => {
                self.previous.push(Step {
                    action: p.action.clone(),
                    observation: None,
                });
                None
            }
        };
        self.steps.push(SolveStep {
            step: k,
            response,
            parsed,
        });
        self.end.is_none()
    }
}

/// Solves `task` step by step: the step-instance prompt with the steps so
/// far, one generation, the action appended; until a step states an answer
/// ([`states_answer`]), a format failure, or `max_steps`. Each step goes to
/// `on_step` as it is made. Returns the steps and why it stopped.
#[allow(clippy::too_many_arguments)]
pub fn solve(
    engine: &Engine,
    task: &str,
    format: Format,
    max_steps: usize,
    params: &GenerateParams,
    think_budget: Option<usize>,
    on_step: &mut dyn FnMut(&SolveStep),
) -> Result<(Vec<SolveStep>, SolveEnd), srl_runtime::RuntimeError> {
    let mut sol = Solution::default();
    for k in 1..=max_steps.max(1) {
        let inst = next_step_instance(task, format, &sol.previous, k);
        let step_format = step_format(think_budget);
        let ids = prompt_ids(engine, &render_prompt(&inst), &step_format)?;
        let request = [(ids, params.sampler.seed)];
        let response = generate_many(engine, &request, None, params, &step_format)?.remove(0);
        let goes_on = sol.advance(response);
        on_step(sol.steps.last().expect("a step was just made"));
        if !goes_on {
            break;
        }
    }
    let end = sol.end.unwrap_or(SolveEnd::MaxSteps);
    Ok((sol.steps, end))
}

/// One completion per (prompt ids, seed), decoded together in batches of
/// [`EVAL_BATCH`]; each is what generating it alone gives. With `caches`
/// (one per prompt), each prompt's KV cache is kept for the next prompt
/// that starts like it.
fn generate_many(
    engine: &Engine,
    prompts: &[(Vec<u32>, u64)],
    mut caches: Option<&mut [PromptCache]>,
    params: &GenerateParams,
    format: &StepFormat,
) -> Result<Vec<String>, srl_runtime::RuntimeError> {
    let mut out = Vec::with_capacity(prompts.len());
    for (i, chunk) in prompts.chunks(EVAL_BATCH).enumerate() {
        let cache = caches
            .as_deref_mut()
            .map(|c| &mut c[i * EVAL_BATCH..i * EVAL_BATCH + chunk.len()]);
        let requests: Vec<RolloutRequest> = chunk
            .iter()
            .map(|(ids, seed)| RolloutRequest {
                prompt_ids: ids,
                n: 1,
                seed: *seed,
            })
            .collect();
        let adapters = &engine.model.adapters;
        let batch = engine.rollouts_batch(adapters, &requests, cache, params, format)?;
        out.extend(
            batch
                .groups
                .into_iter()
                .map(|g| g.into_iter().next().map(|s| s.text).unwrap_or_default()),
        );
    }
    Ok(out)
}

/// Whether a solution's last well-formed action answers `reference`.
fn correct(steps: &[SolveStep], reference: &str) -> bool {
    steps
        .iter()
        .rev()
        .find_map(|s| s.parsed.as_ref().ok())
        .is_some_and(|p| MathAnswer.check(&p.action, reference))
}

/// Solves every (problem, seed) of `runs` step by step, all at once: each
/// round, the next step of every unfinished solution is generated in one
/// batched pass. `params` gives the sampler (its seed replaced by each
/// run's); `on_round` hears of each round (step, solutions in it).
#[allow(clippy::too_many_arguments)]
fn solve_many(
    engine: &Engine,
    problems: &[&Problem],
    runs: &[(usize, u64)],
    opts: &EvalOptions,
    params: &GenerateParams,
    on_round: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Solution>, EvalError> {
    let format = step_format(opts.think_budget);
    let mut sols: Vec<Solution> = (0..runs.len()).map(|_| Solution::default()).collect();
    for k in 1..=opts.max_steps.max(1) {
        let live: Vec<usize> = (0..runs.len()).filter(|&r| sols[r].end.is_none()).collect();
        if live.is_empty() {
            break;
        }
        let mut prompts = Vec::with_capacity(live.len());
        for &r in &live {
            let p = problems[runs[r].0];
            let inst = next_step_instance(&p.task, p.format, &sols[r].previous, k);
            let ids = prompt_ids(engine, &render_prompt(&inst), &format).map_err(|source| {
                EvalError::Generate {
                    id: p.id.clone(),
                    source,
                }
            })?;
            prompts.push((ids, runs[r].1));
        }
        let mut caches: Vec<PromptCache> = live
            .iter()
            .map(|&r| std::mem::take(&mut sols[r].cache))
            .collect();
        let responses = generate_many(engine, &prompts, Some(&mut caches), params, &format)
            .map_err(|source| EvalError::Generate {
                id: format!("step {k} of {} solutions", live.len()),
                source,
            })?;
        for ((&r, response), cache) in live.iter().zip(responses).zip(caches) {
            sols[r].advance(response);
            // A finished solution's cache is freed now.
            if sols[r].end.is_none() {
                sols[r].cache = cache;
            }
        }
        on_round(k, live.len());
    }
    for s in &mut sols {
        s.end.get_or_insert(SolveEnd::MaxSteps);
    }
    Ok(sols)
}

/// Solves each problem in one go, greedily: the whole-solution prompt
/// ([`whole_solution_messages`], as RLVR samples it), one generation of up
/// to `opts.whole_max_tokens` tokens with the think budget in force; returns
/// the responses.
fn solve_whole(
    engine: &Engine,
    problems: &[&Problem],
    opts: &EvalOptions,
) -> Result<Vec<String>, EvalError> {
    let format = StepFormat {
        think_budget: opts.think_budget,
        stop_at_step_end: false,
    };
    let mut prompts = Vec::with_capacity(problems.len());
    for p in problems {
        let ids =
            prompt_ids(engine, &whole_solution_messages(&p.task), &format).map_err(|source| {
                EvalError::Generate {
                    id: p.id.clone(),
                    source,
                }
            })?;
        prompts.push((ids, 0));
    }
    let params = GenerateParams {
        max_tokens: opts.whole_max_tokens,
        sampler: SamplerConfig::greedy(),
        ..Default::default()
    };
    generate_many(engine, &prompts, None, &params, &format).map_err(|source| EvalError::Generate {
        id: format!("{} whole solutions", problems.len()),
        source,
    })
}

/// Scores `instances` and solves `problems` (those with answers), up to
/// `opts.limit` of each (`opts.problems` of the problems if given), every
/// part batched ([`EVAL_BATCH`]); `progress` gets a line per batch or
/// round done.
pub fn evaluate(
    engine: &Engine,
    instances: &[StepInstance],
    problems: &[Problem],
    opts: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<EvalReport, EvalError> {
    let take = |n: usize| {
        if opts.limit == 0 {
            n
        } else {
            n.min(opts.limit)
        }
    };
    let instances = &instances[..take(instances.len())];
    let problems: Vec<&Problem> = problems.iter().filter(|p| p.answer.is_some()).collect();
    let n_problems = match opts.problems {
        Some(n) => n.min(problems.len()),
        None => take(problems.len()),
    };
    let problems = &problems[..n_problems];
    let greedy = GenerateParams {
        max_tokens: opts.max_tokens,
        sampler: SamplerConfig::greedy(),
        ..Default::default()
    };

    // Step instances, greedily, a batch at a time.
    let format = step_format(opts.think_budget);
    let mut steps = Vec::with_capacity(instances.len());
    for chunk in instances.chunks(EVAL_BATCH) {
        let mut prompts = Vec::with_capacity(chunk.len());
        for inst in chunk {
            let ids = prompt_ids(engine, &render_prompt(inst), &format).map_err(|source| {
                EvalError::Generate {
                    id: inst.id.clone(),
                    source,
                }
            })?;
            prompts.push((ids, 0));
        }
        let responses =
            generate_many(engine, &prompts, None, &greedy, &format).map_err(|source| {
                EvalError::Generate {
                    id: chunk[0].id.clone(),
                    source,
                }
            })?;
        for (inst, response) in chunk.iter().zip(responses) {
            let (similarity, format_failure) = match parse_response(&response) {
                Ok(p) => (
                    Some(Similarity::new(&inst.target, opts.autojunk).ratio(&p.action)),
                    None,
                ),
                Err(f) => (None, Some(f.to_string())),
            };
            steps.push(ScoredStep {
                id: inst.id.clone(),
                response,
                similarity,
                format_failure,
            });
        }
        let well_formed = steps.iter().filter(|s| s.similarity.is_some()).count();
        progress(&format!(
            "steps {}/{} scored ({well_formed} well-formed)",
            steps.len(),
            instances.len()
        ));
    }

    // Problems step by step: greedily, then k samples each.
    let greedy_runs: Vec<(usize, u64)> = (0..problems.len()).map(|i| (i, 0)).collect();
    let g = solve_many(
        engine,
        problems,
        &greedy_runs,
        opts,
        &greedy,
        &mut |k, live| progress(&format!("greedy solutions: step {k} of {live} generated")),
    )?;
    let sampled_runs: Vec<(usize, u64)> = (0..problems.len())
        .flat_map(|i| {
            (0..opts.k).map(move |j| {
                let seed = opts
                    .seed
                    .wrapping_add((i * opts.k.max(1) + j) as u64 * 1_000_003);
                (i, seed)
            })
        })
        .collect();
    let sampled = if sampled_runs.is_empty() {
        Vec::new()
    } else {
        let params = GenerateParams {
            max_tokens: opts.max_tokens,
            sampler: SamplerConfig {
                temperature: opts.temperature,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                ..SamplerConfig::default()
            },
            ..Default::default()
        };
        solve_many(
            engine,
            problems,
            &sampled_runs,
            opts,
            &params,
            &mut |k, live| progress(&format!("sampled solutions: step {k} of {live} generated")),
        )?
    };
    let whole = if opts.whole_max_tokens > 0 && !problems.is_empty() {
        let w = solve_whole(engine, problems, opts)?;
        progress(&format!("{} whole solutions generated", w.len()));
        Some(w)
    } else {
        None
    };

    let mut solved = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        let answer = p.answer.clone().unwrap_or_default();
        let greedy_correct = correct(&g[i].steps, &answer);
        let sampled_correct = sampled_runs
            .iter()
            .zip(&sampled)
            .filter(|((pi, _), s)| *pi == i && correct(&s.steps, &answer))
            .count();
        let whole_response = whole.as_ref().map(|w| w[i].clone());
        solved.push(SolvedProblem {
            id: p.id.clone(),
            greedy_correct,
            sampled_correct,
            greedy_steps: g[i].steps.iter().map(|s| s.response.clone()).collect(),
            whole_correct: whole_response
                .as_ref()
                .map(|r| MathAnswer.check(r, &answer)),
            whole_response,
            answer,
        });
    }
    Ok(summarize(steps, solved, opts.k))
}

/// The report's means and rates from the per-item results.
fn summarize(steps: Vec<ScoredStep>, solved: Vec<SolvedProblem>, k: usize) -> EvalReport {
    let n = steps.len();
    let sims: Vec<f64> = steps.iter().filter_map(|s| s.similarity).collect();
    let failures = n - sims.len();
    let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let rewards: Vec<f64> = steps.iter().map(|s| s.similarity.unwrap_or(-1.0)).collect();
    let np = solved.len();
    let greedy: Vec<f64> = solved
        .iter()
        .map(|s| s.greedy_correct as u8 as f64)
        .collect();
    let at_k: Vec<f64> = solved
        .iter()
        .map(|s| s.sampled_correct as f64 / k.max(1) as f64)
        .collect();
    let whole: Vec<&SolvedProblem> = solved
        .iter()
        .filter(|s| s.whole_correct.is_some())
        .collect();
    let whole_right: Vec<f64> = whole
        .iter()
        .map(|s| s.whole_correct == Some(true))
        .map(|b| b as u8 as f64)
        .collect();
    let whole_none: Vec<f64> = whole
        .iter()
        .map(|s| final_answer(s.whole_response.as_deref().unwrap_or("")).is_none())
        .map(|b| b as u8 as f64)
        .collect();
    EvalReport {
        instances: n,
        well_formed: sims.len(),
        format_failures: failures,
        format_failure_rate: if n == 0 {
            0.0
        } else {
            failures as f64 / n as f64
        },
        mean_similarity: mean(&sims),
        mean_similarity_all: sims.iter().sum::<f64>() / n.max(1) as f64,
        mean_reward: mean(&rewards).unwrap_or(0.0),
        problems: np,
        k,
        greedy_accuracy: mean(&greedy),
        avg_at_k: if k == 0 { None } else { mean(&at_k) },
        whole_accuracy: mean(&whole_right),
        whole_no_answer_rate: mean(&whole_none),
        steps,
        solved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(sim: Option<f64>) -> ScoredStep {
        ScoredStep {
            id: "x".into(),
            response: String::new(),
            similarity: sim,
            format_failure: sim.is_none().then(|| "no <think> block".into()),
        }
    }

    #[test]
    fn summary_separates_failures_from_similarity() {
        let r = summarize(
            vec![
                scored(Some(0.5)),
                scored(None),
                scored(Some(1.0)),
                scored(None),
            ],
            vec![],
            4,
        );
        assert_eq!((r.instances, r.well_formed, r.format_failures), (4, 2, 2));
        assert_eq!(r.format_failure_rate, 0.5);
        assert_eq!(r.mean_similarity, Some(0.75));
        assert_eq!(r.mean_similarity_all, 1.5 / 4.0);
        assert_eq!(r.mean_reward, (0.5 - 1.0 + 1.0 - 1.0) / 4.0);
        assert_eq!((r.greedy_accuracy, r.avg_at_k), (None, None));
        assert!(r.table().contains("| format-failure rate | 0.5000 |"));
    }

    #[test]
    fn answers_are_stated_by_a_box_or_the_word() {
        assert!(states_answer("So the total is \\boxed{12}."));
        assert!(states_answer("Answer: 34000 meters"));
        assert!(!states_answer("1 kilometer is 1000 meters."));
    }
}

//! Token sampling: greedy, or the llama.cpp chain repetition penalty ->
//! top-k -> top-p -> min-p -> temperature -> draw. The sampler owns its seeded
//! RNG, so a seed reproduces a run.

use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// 0 (or below) means greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables.
    pub top_p: f32,
    /// 0.0 disables.
    pub min_p: f32,
    /// 1.0 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's defaults.
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

pub struct Sampler {
    pub config: SamplerConfig,
    rng: rand::rngs::StdRng,
    // Buffers reused across calls: sampling allocates nothing per token.
    candidates: Vec<(u32, f32)>,
    seen: Vec<u32>,
    probs: Vec<f32>,
}

/// Index of the largest value (the first, on ties, as llama.cpp's greedy sampler).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Sampler {
        let rng = rand::rngs::StdRng::seed_from_u64(config.seed);
        Sampler {
            config,
            rng,
            candidates: Vec::new(),
            seen: Vec::new(),
            probs: Vec::new(),
        }
    }

    /// Picks the next token from `logits` ([V]); `history` is the sequence so far
    /// (for the repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let cfg = &self.config;
        let penalize = cfg.repeat_penalty != 1.0 && cfg.repeat_last_n > 0;
        if cfg.is_greedy() && !penalize {
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if penalize {
            let start = history.len().saturating_sub(cfg.repeat_last_n);
            let seen = &mut self.seen;
            seen.clear();
            seen.extend_from_slice(&history[start..]);
            seen.sort_unstable();
            seen.dedup();
            for &t in seen.iter() {
                if let Some(e) = c.get_mut(t as usize) {
                    e.1 = if e.1 > 0.0 {
                        e.1 / cfg.repeat_penalty
                    } else {
                        e.1 * cfg.repeat_penalty
                    };
                }
            }
        }
        if cfg.is_greedy() {
            let best = c
                .iter()
                .fold(0, |b, &(i, l)| if l > c[b].1 { i as usize } else { b });
            return best as u32;
        }
        // Top-k first when it applies (a partial selection, cheap); the full
        // sort only when top-p needs the order. Without it (RL rollouts:
        // top-k 0, top-p 1) candidates stay in id order.
        let k = if cfg.top_k > 0 {
            cfg.top_k.min(c.len())
        } else {
            c.len()
        };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            c.truncate(k);
        }
        let p = &mut self.probs;
        if cfg.top_p < 1.0 {
            c.sort_by(|a, b| b.1.total_cmp(&a.1));
            softmax(c, 1.0, p);
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, &pi) in p.iter().enumerate() {
                cum += pi;
                if cum >= cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        if cfg.min_p > 0.0 {
            let m = max_logit(c);
            // The best candidate always stays (min_p above 1 included).
            let threshold = (m + cfg.min_p.ln()).min(m);
            c.retain(|&(_, l)| l >= threshold);
        }
        softmax(c, cfg.temperature, p);
        let r: f32 = self.rng.gen();
        let mut cum = 0.0;
        for (i, &pi) in p.iter().enumerate() {
            cum += pi;
            if r < cum {
                return c[i].0;
            }
        }
        c[c.len() - 1].0
    }
}

fn max_logit(c: &[(u32, f32)]) -> f32 {
    c.iter().fold(f32::NEG_INFINITY, |m, &(_, l)| m.max(l))
}

/// Softmax of the candidates' logits at `temp`, into `p`.
fn softmax(c: &[(u32, f32)], temp: f32, p: &mut Vec<f32>) {
    let m = max_logit(c);
    p.clear();
    p.extend(c.iter().map(|&(_, l)| (l - m) / temp));
    // libm's expf, bit for bit, eight at a time: the draws stay those of
    // `f32::exp` (a seed reproduces earlier runs).
    srl_models::layers::exp::exp_in_place(p);
    let s: f32 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_max_first_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&[0.0, 5.0, 1.0], &[]), 1);
    }

    #[test]
    fn seed_reproduces_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let cfg = SamplerConfig {
            temperature: 1.0,
            seed: 7,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(cfg.clone());
            (0..20).map(|_| s.sample(&logits, &[])).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(cfg.clone());
            (0..20).map(|_| s.sample(&logits, &[])).collect()
        };
        assert_eq!(a, b);
        let mut s = Sampler::new(SamplerConfig { top_k: 1, ..cfg });
        assert_eq!(s.sample(&logits, &[]), argmax(&logits));
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&[1.0, 0.9, 0.1], &[0]), 1);
    }
}

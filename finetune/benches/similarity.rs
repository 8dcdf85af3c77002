//! Step-similarity micro-benchmark: microseconds per `ratio` on math steps
//! of about 1,000 characters (a rollout against its expert step), with
//! autojunk on and off, fresh (`ratio(a, b)`) and with the expert step's
//! index and the buffers reused (`Similarity::ratio_with`), and the mean over
//! the reference pairs of `tests/data/similarity_pairs.jsonl`.
//!
//! `cargo bench -p srl-finetune --bench similarity`. `SRL_BENCH_SECS` per
//! case (default 0.5). Single-threaded; on Linux each time also comes as
//! time on a CPU, the steadier number on a busy machine.

use srl_finetune::similarity::{ratio, Scratch, Similarity};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SENTENCES: [&str; 10] = [
    r"Let $x$ be the number of apples, so $3x + 5 = 20$ and $x = 5$.",
    r"Substituting $x = 5$ into $y = 2x - 1$ gives $y = 9$.",
    r"By the Pythagorean theorem, $c^2 = 3^2 + 4^2 = 25$, so $c = 5$.",
    r"The sum of the first $n$ integers is $\frac{n(n+1)}{2} = 5050$ for $n = 100$.",
    r"Factor: $x^2 - 5x + 6 = (x - 2)(x - 3)$, so the roots are $2$ and $3$.",
    r"Since $\gcd(12, 18) = 6$, $\operatorname{lcm}(12, 18) = 36$.",
    r"The probability of two sixes is $\frac{1}{6} \cdot \frac{1}{6} = \frac{1}{36}$.",
    r"We compute $\binom{5}{2} = 10$ ways to choose the pair.",
    r"Modulo $7$, $3^{100} \equiv 3^4 = 81 \equiv 4$.",
    r"Therefore the final answer is $\boxed{42}$.",
];

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// About `n` characters of math sentences.
fn step(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    while s.chars().count() < n {
        s.push_str(SENTENCES[rng.below(SENTENCES.len())]);
        s.push(' ');
    }
    s.chars().take(n).collect()
}

/// `s` with `edits` characters replaced, inserted or deleted.
fn edit(rng: &mut Rng, s: &str, edits: usize) -> String {
    let mut c: Vec<char> = s.chars().collect();
    for _ in 0..edits {
        let at = rng.below(c.len());
        let new = "0123456789 xyz=+$"[rng.below(17)..].chars().next().unwrap();
        match rng.below(3) {
            0 => c[at] = new,
            1 => c.insert(at, new),
            _ => {
                c.remove(at);
            }
        }
    }
    c.into_iter().collect()
}

/// Seconds this thread has spent on a CPU (Linux), to time calls on a
/// shared machine, where wall time also counts the waits for a core.
fn on_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? * 1e-9)
}

/// Seconds per call of `f`, wall and on-CPU (NaN where unknown), each the
/// best of 10 rounds of about `secs / 10`.
fn time(secs: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..10 {
        let (start, cpu_start) = (Instant::now(), on_cpu());
        let mut calls = 0u64;
        while start.elapsed() < Duration::from_secs_f64(secs / 10.0) || calls < 2 {
            f();
            calls += 1;
        }
        wall = wall.min(start.elapsed().as_secs_f64() / calls as f64);
        let used = on_cpu().zip(cpu_start).map_or(f64::NAN, |(b, a)| b - a);
        cpu = cpu.min(used / calls as f64);
    }
    (wall, cpu)
}

fn main() {
    let secs: f64 = std::env::var("SRL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let expert = step(&mut rng, 1000);
    let cases = [
        ("1000 chars, 30 edits", edit(&mut rng, &expert, 30)),
        ("1000 chars, other step", step(&mut rng, 1000)),
    ];
    let mut scratch = Scratch::default();
    for (name, rollout) in &cases {
        for autojunk in [true, false] {
            let fresh = time(secs, || {
                black_box(ratio(black_box(rollout), black_box(&expert), autojunk));
            });
            let sim = Similarity::new(&expert, autojunk);
            let reused = time(secs, || {
                black_box(sim.ratio_with(black_box(rollout), &mut scratch));
            });
            println!(
                "{name:<24} autojunk {:<5}  ratio {:.6}  fresh {:>6.1} us ({:>6.1} on CPU)  reused index {:>6.1} us ({:>6.1} on CPU)",
                autojunk,
                sim.ratio(rollout),
                fresh.0 * 1e6,
                fresh.1 * 1e6,
                reused.0 * 1e6,
                reused.1 * 1e6
            );
        }
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/similarity_pairs.jsonl");
    let text = std::fs::read_to_string(&path).expect("reference pairs");
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["a"].as_str().unwrap().into(),
                v["b"].as_str().unwrap().into(),
            )
        })
        .collect();
    for autojunk in [true, false] {
        let all = time(secs, || {
            for (a, b) in &pairs {
                black_box(ratio(a, b, autojunk));
            }
        });
        println!(
            "reference pairs ({}) autojunk {:<5}  {:.1} us per pair ({:.1} on CPU)",
            pairs.len(),
            autojunk,
            all.0 * 1e6 / pairs.len() as f64,
            all.1 * 1e6 / pairs.len() as f64
        );
    }
}

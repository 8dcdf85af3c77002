//! Counters and gauges of the server, shown by `GET /metrics` in
//! Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    /// Requests that reached a generation endpoint.
    pub requests: AtomicU64,
    /// Requests answered with an error (any status >= 400).
    pub errors: AtomicU64,
    /// Requests refused because the server was full (429).
    pub rejected: AtomicU64,
    /// Sequences dropped because their client went away.
    pub cancelled: AtomicU64,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens found in a slot's cache (not computed again).
    pub prompt_tokens_cached: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Batched forward calls of the scheduler, and the rows they carried.
    pub steps: AtomicU64,
    pub step_rows: AtomicU64,
    pub busy_us: AtomicU64,
    /// Time to first token: sum in microseconds, and count.
    pub ttft_us: AtomicU64,
    pub ttft_n: AtomicU64,
    /// Gauges.
    pub active_slots: AtomicU64,
    pub queued: AtomicU64,
    pub slots: AtomicU64,
    pub adapters: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut put = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(s, "# HELP srl_{name} {help}");
            let _ = writeln!(s, "# TYPE srl_{name} {kind}");
            let _ = writeln!(s, "srl_{name} {v}");
        };
        let get = |c: &AtomicU64| c.load(Relaxed) as f64;
        put(
            "requests_total",
            "counter",
            "Generation requests received.",
            get(&self.requests),
        );
        put(
            "requests_failed_total",
            "counter",
            "Requests answered with an error.",
            get(&self.errors),
        );
        put(
            "requests_rejected_total",
            "counter",
            "Requests refused because all slots and the queue were full.",
            get(&self.rejected),
        );
        put(
            "sequences_cancelled_total",
            "counter",
            "Sequences stopped because their client disconnected.",
            get(&self.cancelled),
        );
        put(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens read.",
            get(&self.prompt_tokens),
        );
        put(
            "prompt_tokens_cached_total",
            "counter",
            "Prompt tokens reused from a slot's cache.",
            get(&self.prompt_tokens_cached),
        );
        put(
            "tokens_generated_total",
            "counter",
            "Tokens generated.",
            get(&self.generated_tokens),
        );
        put(
            "decode_steps_total",
            "counter",
            "Batched forward passes of the scheduler.",
            get(&self.steps),
        );
        put(
            "decode_step_rows_total",
            "counter",
            "Sequences carried by those passes (rows / steps = mean batch).",
            get(&self.step_rows),
        );
        put(
            "busy_seconds_total",
            "counter",
            "Time the scheduler spent in forward passes.",
            get(&self.busy_us) / 1e6,
        );
        put(
            "time_to_first_token_seconds_sum",
            "counter",
            "Sum of the times from request to first token.",
            get(&self.ttft_us) / 1e6,
        );
        put(
            "time_to_first_token_seconds_count",
            "counter",
            "Sequences that produced a first token.",
            get(&self.ttft_n),
        );
        put(
            "slots_active",
            "gauge",
            "Slots generating now.",
            get(&self.active_slots),
        );
        put(
            "slots_total",
            "gauge",
            "Slots (--parallel).",
            get(&self.slots),
        );
        put(
            "requests_queued",
            "gauge",
            "Requests waiting for a slot.",
            get(&self.queued),
        );
        put(
            "adapters_loaded",
            "gauge",
            "LoRA adapters loaded.",
            get(&self.adapters),
        );
        s
    }
}

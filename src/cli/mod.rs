//! The command line: argument definitions and dispatch. Each subcommand lives
//! in its own file and is a thin layer over one library call.

mod bench;
mod bench_rollouts;
mod bench_train;
mod chat;
mod chat_trace;
mod common;
mod data;
mod data_distill;
mod data_review;
mod eval;
mod generate;
mod info;
mod merge;
mod pull;
mod quantize;
mod reward;
mod serve;
mod solve;
mod tokenize;
mod train;
mod train_rl;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "srl",
    version,
    about = "Run small reasoning models on ordinary machines and teach them new skills there."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a model into the cache: a catalogue name (default smollm2:135m), a URL or hf:OWNER/REPO/FILE.
    Pull(pull::Args),
    /// List the cached models (name, size, family, quant), or the catalogue with --catalogue.
    List(pull::ListArgs),
    /// Remove a model from the cache.
    Rm(pull::RmArgs),
    /// Describe a model: architecture, sizes, tokenizer, chat template, tensors.
    Info(info::Args),
    /// Generate a completion for a prompt.
    Generate(generate::Args),
    /// Chat interactively in the terminal (/reset, /system TEXT, /quit).
    Chat(chat::Args),
    /// Print the token ids (and pieces) of a text.
    Tokenize(tokenize::Args),
    /// Measure prompt and generation speed and peak memory.
    Bench(bench::Args),
    /// Convert a GGUF model or a safetensors folder to a GGUF of another type (e.g. q8_0, q4_0, f16).
    Quantize(quantize::Args),
    /// Fold a LoRA adapter into its base and write a standalone GGUF model.
    Merge(merge::Args),
    /// Score JSONL pairs {"a": action or "response": whole rollout, "b": expert step}: step similarity or SRL reward.
    Reward(reward::Args),
    /// Evaluate on held-out data: greedy step similarity, format failures, final-answer accuracy.
    Eval(eval::Args),
    /// Serve the model over HTTP with an OpenAI-compatible API (chat, completions, adapters).
    Serve(serve::Args),
    /// Solve a problem step by step as an SRL model is used, printing each step.
    Solve(solve::Args),
    /// Prepare training data: SRL step instances, checks, splits
    #[command(subcommand)]
    Data(data::Command),
    /// Train a LoRA adapter (sft, srl, rlvr)
    #[command(subcommand)]
    Train(train::Command),
}

pub fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Pull(a) => pull::run(a),
        Command::List(a) => pull::list(a),
        Command::Rm(a) => pull::rm(a),
        Command::Info(a) => info::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Data(c) => data::run(c),
        Command::Train(c) => train::run(c),
        Command::Merge(a) => merge::run(a),
        Command::Reward(a) => reward::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Solve(a) => solve::run(a),
        Command::Serve(a) => serve::run(a),
    }
}

//! A session keeps its KV cache between calls: a prompt that extends what is
//! cached (the next chat turn) computes only its new tokens.

use srl_runtime::generate::GenerateParams;
use srl_runtime::{Engine, Message, SamplerConfig};

#[test]
fn next_turn_reuses_the_cached_conversation() {
    let engine = Engine::load(&srl_runtime::model_cache::test_model_path(), 2).unwrap();
    let params = GenerateParams {
        max_tokens: 8,
        sampler: SamplerConfig::greedy(),
        ..Default::default()
    };
    let mut session = engine.session(1024);
    let mut msgs = vec![Message::new("user", "What is 2+2?")];
    let first = engine.tokenize_prompt(&engine.render_chat(&msgs, true).unwrap());
    let a = session.generate(&first, &params, |_| true).unwrap();
    assert_eq!(a.timings.prompt_tokens, first.len());
    msgs.push(Message::new("assistant", a.text.trim()));
    msgs.push(Message::new("user", "And 3+3?"));
    let second = engine.tokenize_prompt(&engine.render_chat(&msgs, true).unwrap());
    let b = session.generate(&second, &params, |_| true).unwrap();
    // Everything up to the first reply is cached; the turn's new tokens are not.
    assert!(
        b.timings.prompt_tokens < second.len() - first.len() + 8,
        "{} of {}",
        b.timings.prompt_tokens,
        second.len()
    );
    assert!(b.timings.prompt_tokens >= second.len() - first.len() - a.ids.len());
    // After a reset everything is computed again.
    session.reset();
    let c = session.generate(&second, &params, |_| true).unwrap();
    assert_eq!(c.timings.prompt_tokens, second.len());
}

//! Step instances: splitting raw solutions in many layouts, trajectories to
//! instances (math, agentic windows, hints, --drop-last), the JSONL file
//! and its summary, the prompt, and parsing responses.

use serde_json::{json, Value};
use srl_finetune::data::Step;
use srl_finetune::steps::{
    build_instances, parse_response, read_instances, render_prompt, split_solution, step_instances,
    strip_step_label, BuildOptions, BuildSummary, Format, FormatFailure, Parsed, SkipReason,
    StepInstance, StepsError,
};
use std::path::{Path, PathBuf};

fn texts(text: &str) -> Vec<String> {
    split_solution(text)
        .steps
        .into_iter()
        .map(|s| s.text)
        .collect()
}

fn titles(text: &str) -> Vec<Option<String>> {
    split_solution(text)
        .steps
        .into_iter()
        .map(|s| s.title)
        .collect()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("srl-steps-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trajectories.jsonl")
}

#[test]
fn numbered_lists_split_into_steps() {
    let want = ["Add 2 and 3.", "Double it: 10."];
    for text in [
        "1. Add 2 and 3.\n2. Double it: 10.",
        "1) Add 2 and 3.\n2) Double it: 10.",
        "(1) Add 2 and 3.\n(2) Double it: 10.",
        "**1.** Add 2 and 3.\n**2.** Double it: 10.",
        "**1**. Add 2 and 3.\n**2**. Double it: 10.",
        "  1. Add 2 and 3.\n  2. Double it: 10.",
        "1. Add 2 and 3.\r\n\r\n2. Double it: 10.\r\n",
    ] {
        assert_eq!(texts(text), want, "{text:?}");
    }
}

#[test]
fn step_labels_split_into_steps() {
    let want = ["Add 2 and 3.", "Double it: 10."];
    for text in [
        "Step 1: Add 2 and 3.\nStep 2: Double it: 10.",
        "Step 1. Add 2 and 3.\nStep 2. Double it: 10.",
        "step 1 - Add 2 and 3.\nstep 2 - Double it: 10.",
        "Step 1 — Add 2 and 3.\nStep 2 — Double it: 10.",
        "**Step 1:** Add 2 and 3.\n**Step 2:** Double it: 10.",
        "**Step 1**: Add 2 and 3.\n**Step 2**: Double it: 10.",
        "Step 1:\nAdd 2 and 3.\n\nStep 2:\nDouble it: 10.",
        "### Step 1\nAdd 2 and 3.\n### Step 2\nDouble it: 10.",
    ] {
        assert_eq!(texts(text), want, "{text:?}");
    }
}

#[test]
fn headings_and_bold_titles_split_and_give_titles() {
    let text = "## Set up\nLet x be the width.\n\n## Solve\nThen 2x = 10, so x = 5.";
    assert_eq!(
        texts(text),
        [
            "Set up\nLet x be the width.",
            "Solve\nThen 2x = 10, so x = 5."
        ]
    );
    assert_eq!(titles(text), [Some("Set up".into()), Some("Solve".into())]);

    let text = "**Step 1: Area**\nThe area is 12.\n**Step 2: Double**\nIt is 24.";
    assert_eq!(texts(text), ["Area\nThe area is 12.", "Double\nIt is 24."]);
    assert_eq!(titles(text), [Some("Area".into()), Some("Double".into())]);

    let text = "## 1. Area\nThe area is 12.\n## 2. Double\nIt is 24.";
    assert_eq!(texts(text), ["Area\nThe area is 12.", "Double\nIt is 24."]);
    assert_eq!(titles(text), [Some("Area".into()), Some("Double".into())]);

    // A title with nothing after it is the whole step: no title.
    let text = "### Step 1: Area is 12\n### Step 2: Double to 24";
    assert_eq!(titles(text), [None, None]);
    // A single heading is not a step structure.
    assert!(split_solution("# Solution\nThe answer is 4.")
        .steps
        .is_empty());
}

#[test]
fn sub_lists_restarts_and_out_of_order_labels_stay_in_their_step() {
    // Step labels win over numbered sub-lists.
    let text = "Step 1: Expand.\n1. a\n2. b\nStep 2: Collect terms.";
    assert_eq!(texts(text), ["Expand.\n1. a\n2. b", "Collect terms."]);
    // Indented sub-lists belong to their item.
    let text = "1. Expand:\n   1. first\n   2. second\n2. Collect.";
    assert_eq!(
        texts(text),
        ["Expand:\n   1. first\n   2. second", "Collect."]
    );
    // Lists restarting per section: the sections are the steps.
    let text = "## Part A\n1. a1\n2. a2\n## Part B\n1. b1\n2. b2";
    assert_eq!(
        texts(text),
        ["Part A\n1. a1\n2. a2", "Part B\n1. b1\n2. b2"]
    );
    // A number out of sequence is text; numbers must start at 1.
    assert_eq!(texts("1. one\n3. three\n2. two"), ["one\n3. three", "two"]);
    assert!(split_solution("2. two\n3. three").steps.is_empty());
    // Decimals and arithmetic at a line start are not labels.
    assert_eq!(
        texts("1. Halve it:\n1.5 is half of 3.\n2. Done."),
        ["Halve it:\n1.5 is half of 3.", "Done."]
    );
}

#[test]
fn code_fences_preamble_and_trailing_text() {
    let text = "Let us write a script.\n\n1. Write it:\n```python\n# comment\n2. not a step\n```\n2. Run it.\nIt prints 4.";
    let split = split_solution(text);
    assert_eq!(split.preamble, "Let us write a script.");
    let texts: Vec<&str> = split.steps.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Write it:\n```python\n# comment\n2. not a step\n```",
            "Run it.\nIt prints 4."
        ]
    );
    let split = split_solution("Just prose, no steps.");
    assert!(split.steps.is_empty());
    assert_eq!(split.preamble, "Just prose, no steps.");
    assert!(split_solution("").steps.is_empty());
}

#[test]
fn step_labels_are_stripped_from_given_steps_and_responses() {
    assert_eq!(strip_step_label("Step 3: Add."), "Add.");
    assert_eq!(strip_step_label("  **Step 3:** Add.\nMore."), "Add.\nMore.");
    assert_eq!(strip_step_label("### Step 3\nAdd."), "Add.");
    // Other text is kept as written (trimmed).
    assert_eq!(strip_step_label(" 3. Add. "), "3. Add.");
    assert_eq!(strip_step_label("# comment\nls"), "# comment\nls");
    assert_eq!(strip_step_label("Step 3 is to add."), "Step 3 is to add.");
}

fn opts() -> BuildOptions {
    BuildOptions::default()
}

#[test]
fn math_instances_carry_all_previous_steps() {
    let v = json!({"id": "t", "task": " Add. ", "steps": ["a", "Step 2: b", "c"], "answer": 6});
    let built = step_instances(&v, 1, &opts()).unwrap();
    assert_eq!(
        (built.format, built.steps, built.preamble),
        (Format::Math, 3, false)
    );
    let insts = built.instances;
    assert_eq!(insts.len(), 3);
    let third = &insts[2];
    assert_eq!(third.id, "t:3");
    assert_eq!(third.source, "t");
    assert_eq!(third.task, "Add.");
    assert_eq!(
        third
            .previous
            .iter()
            .map(|s| s.action.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        (third.target.as_str(), third.step, third.total),
        ("c", 3, 3)
    );
    assert_eq!(third.answer.as_deref(), Some("6"));
    assert_eq!(insts[0].previous, []);
    assert_eq!(insts[1].target, "b");
    // --drop-last: no instance for the final step.
    let o = BuildOptions {
        drop_last: true,
        ..opts()
    };
    let insts = step_instances(&v, 1, &o).unwrap().instances;
    assert_eq!(insts.iter().map(|i| i.step).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(insts[1].total, 3);
}

#[test]
fn agentic_instances_keep_the_last_rounds() {
    let steps: Vec<Value> = (1..=5)
        .map(|k| json!({"action": format!("cmd{k}"), "observation": format!("out{k}")}))
        .collect();
    let v = json!({"task": "Do it.", "steps": steps});
    let built = step_instances(&v, 9, &opts()).unwrap();
    assert_eq!(built.format, Format::Agentic);
    let i = &built.instances[4];
    assert_eq!(i.id, "line9:5");
    assert_eq!(i.target, "cmd5");
    assert_eq!(i.omitted(), 2);
    assert_eq!(
        i.previous,
        [
            Step {
                action: "cmd3".into(),
                observation: Some("out3".into())
            },
            Step {
                action: "cmd4".into(),
                observation: Some("out4".into())
            }
        ]
    );
    assert_eq!(built.instances[1].previous.len(), 1);
    // Window 0 keeps every round; --format math keeps all steps too.
    for o in [
        BuildOptions {
            window: 0,
            ..opts()
        },
        BuildOptions {
            format: Some(Format::Math),
            ..opts()
        },
    ] {
        let built = step_instances(&v, 9, &o).unwrap();
        assert_eq!(built.instances[4].previous.len(), 4);
    }
    let o = BuildOptions {
        window: 1,
        ..opts()
    };
    let i = &step_instances(&v, 9, &o).unwrap().instances[4];
    assert_eq!(
        (i.previous.len(), i.previous[0].action.as_str()),
        (1, "cmd4")
    );
    // Forcing agentic on string steps applies the window.
    let v = json!({"task": "t", "steps": ["a", "b", "c", "d"]});
    let o = BuildOptions {
        format: Some(Format::Agentic),
        ..opts()
    };
    let i = &step_instances(&v, 1, &o).unwrap().instances[3];
    assert_eq!(
        (i.format, i.omitted(), i.previous.len()),
        (Format::Agentic, 1, 2)
    );
}

#[test]
fn raw_solutions_hints_and_boxed_answers() {
    let v = json!({"id": 12, "task": "Area, doubled?", "solution":
        "Think first.\n### Step 1: Area\nIt is 12.\n### Step 2: Double\nIt is \\boxed{24}."});
    let built = step_instances(&v, 1, &opts()).unwrap();
    assert!(built.preamble);
    let i = &built.instances[1];
    assert_eq!(i.id, "12:2");
    assert_eq!(i.target, "Double\nIt is \\boxed{24}.");
    assert_eq!(i.hint, None, "hints only with --title-hint");
    assert_eq!(i.answer.as_deref(), Some("24"));
    let o = BuildOptions {
        title_hint: true,
        ..opts()
    };
    let insts = step_instances(&v, 1, &o).unwrap().instances;
    assert_eq!(insts[0].hint.as_deref(), Some("Area"));
    assert_eq!(insts[1].hint.as_deref(), Some("Double"));
    // Titles of given steps: a heading or bold first line with more after.
    let v = json!({"task": "t", "steps": ["**Plan**\nList files.", "## Run\nls", "one line"]});
    let insts = step_instances(&v, 1, &o).unwrap().instances;
    let hints: Vec<Option<&str>> = insts.iter().map(|i| i.hint.as_deref()).collect();
    assert_eq!(hints, [Some("Plan"), Some("Run"), None]);
    assert_eq!(insts[0].target, "**Plan**\nList files.");
}

#[test]
fn lines_without_instances_say_why() {
    let reason = |v: Value, o: &BuildOptions| step_instances(&v, 1, o).unwrap_err();
    assert_eq!(
        reason(json!({"task": "t", "solution": "just prose"}), &opts()),
        SkipReason::NoSteps
    );
    assert_eq!(
        reason(json!({"task": "t", "steps": [], "answer": "1"}), &opts()),
        SkipReason::NoSteps
    );
    // Without an answer too (the bug: a malformed-line error that stopped
    // `srl data build` and `srl train srl`).
    assert_eq!(
        reason(json!({"task": "t", "steps": []}), &opts()),
        SkipReason::NoSteps
    );
    assert_eq!(
        reason(json!({"task": "t", "solution": "  "}), &opts()),
        SkipReason::NoSteps
    );
    assert_eq!(
        reason(json!({"task": " ", "steps": ["a"]}), &opts()),
        SkipReason::EmptyTask
    );
    assert_eq!(
        reason(json!({"task": "t", "steps": ["a", "  "]}), &opts()),
        SkipReason::BlankStep(2)
    );
    assert_eq!(
        reason(
            json!({"task": "t", "solution": "Step 1:\nStep 2: b"}),
            &opts()
        ),
        SkipReason::BlankStep(1)
    );
    let drop = BuildOptions {
        drop_last: true,
        ..opts()
    };
    assert_eq!(
        reason(json!({"task": "t", "steps": ["a"]}), &drop),
        SkipReason::OnlyLastStep
    );
    for (v, want) in [
        (json!({"task": "t", "steps": 5}), "'steps' must be an array"),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "a chat",
        ),
        (
            json!({"prompt": "p", "completion": "c"}),
            "prompt/completion",
        ),
        (
            json!({"id": [1], "task": "t", "steps": ["a"]}),
            "'id' must be a string or a number",
        ),
        (json!({"steps": ["a"]}), "'task' is missing"),
    ] {
        match reason(v, &opts()) {
            SkipReason::Bad(m) => assert!(m.contains(want), "{m} (wanted {want})"),
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn build_writes_instances_and_counts_what_it_skipped() {
    let dir = temp("build");
    let out = dir.join("steps.jsonl");
    // Without --skip-bad the malformed line stops the build, naming it.
    let err = build_instances(&fixture(), &out, &opts(), &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("trajectories.jsonl: line 8: 'steps' must be an array"),
        "{msg}"
    );
    assert!(!out.exists() && !dir.join("steps.jsonl.tmp").exists());

    let o = BuildOptions {
        skip_bad: true,
        title_hint: true,
        ..opts()
    };
    let mut skipped = Vec::new();
    let sum = build_instances(&fixture(), &out, &o, &mut |s| skipped.push(s.to_string())).unwrap();
    assert_eq!(
        sum,
        BuildSummary {
            lines: 7,
            math: 3,
            agentic: 1,
            steps: 11,
            instances: 11,
            hints: 2,
            preambles: 1,
            skipped_bad: 1,
            skipped_empty_task: 1,
            skipped_no_steps: 1,
            ..BuildSummary::default()
        }
    );
    assert_eq!(
        skipped,
        [
            "line 5: no steps found",
            "line 6: the task is empty",
            "line 8: 'steps' must be an array, found a number"
        ]
    );
    assert_eq!(
        sum.describe(),
        "7 trajectories read: 4 used (3 math, 1 agentic), 3 skipped (1 with no steps found, \
         1 with an empty task, 1 malformed)\n11 steps found; 11 step instances written; \
         2 with a title hint\ntext before the first step dropped in 1 raw solution"
    );
    let insts = read_instances(&out).unwrap();
    let ids: Vec<&str> = insts.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["sum:1", "sum:2", "sum:3", "7:1", "7:2", "md:1", "md:2", "ls:1", "ls:2", "ls:3", "ls:4"]
    );
    assert_eq!(insts[3].target, "Subtract 1 from both sides: x = 3 - 1.");
    assert_eq!(
        insts[4].target,
        "Simplify: x = 2.\n\nSo the answer is $\\boxed{2}$."
    );
    assert_eq!(insts[4].answer.as_deref(), Some("2"));
    assert_eq!(insts[6].hint.as_deref(), Some("Double"));
    let last = &insts[10];
    assert_eq!(
        (last.format, last.omitted(), last.target.as_str()),
        (Format::Agentic, 1, "submit")
    );
    assert_eq!(last.previous[1].observation.as_deref(), Some("done"));

    // The file's lines: fields in a fixed order, optional ones left out.
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"id":"sum:1","source":"sum","format":"math","task":"What is 2 + 3 * 4?","previous":[],"target":"Multiply first: 3 * 4 = 12.","step":1,"total":3,"answer":"14"}"#
    );
    assert!(text.contains(
        r#""previous":[{"action":"head -n 1 notes.txt","observation":"buy milk"},{"action":"echo done","observation":"done"}],"target":"submit""#
    ));

    // --drop-last.
    let o = BuildOptions {
        drop_last: true,
        ..o
    };
    let sum = build_instances(&fixture(), &out, &o, &mut |_| {}).unwrap();
    assert_eq!((sum.instances, sum.dropped_last), (7, 4));
    assert!(sum
        .describe()
        .contains("7 step instances written (4 last steps dropped)"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn build_errors_name_the_file() {
    let dir = temp("errors");
    let out = dir.join("out.jsonl");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("blank.jsonl", "\n  \n");
    let err = build_instances(&p, &out, &opts(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, StepsError::Empty { .. }), "{err}");
    let p = write(
        "json.jsonl",
        "{\"task\": \"t\", \"steps\": [\"a\"]}\n{oops\n",
    );
    let err = build_instances(&p, &out, &opts(), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: line 2: not valid JSON", p.display())),
        "{err}"
    );
    let p = write("none.jsonl", "{\"task\": \"t\", \"solution\": \"prose\"}\n");
    let err = build_instances(&p, &out, &opts(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, StepsError::NoInstances { .. })
            && err.to_string().contains("1 with no steps found"),
        "{err}"
    );
    assert!(!out.exists());
    let err = build_instances(&p, &p, &opts(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, StepsError::SamePath { .. }), "{err}");
    let missing = dir.join("missing.jsonl");
    let err = build_instances(&missing, &out, &opts(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("missing.jsonl"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn instances_round_trip_and_bad_instance_lines_are_named() {
    let inst = StepInstance {
        id: "a:2".into(),
        source: "a".into(),
        format: Format::Agentic,
        task: "T".into(),
        previous: vec![Step {
            action: "ls".into(),
            observation: Some("x".into()),
        }],
        target: "cat x".into(),
        step: 2,
        total: 2,
        hint: Some("Read".into()),
        answer: None,
    };
    assert_eq!(StepInstance::from_json(&inst.to_json()).unwrap(), inst);
    let dir = temp("read");
    let p = dir.join("i.jsonl");
    let good = inst.to_json();
    for (bad, want) in [
        (
            good.replace("\"target\":\"cat x\",", ""),
            "missing field `target`",
        ),
        (
            good.replace("\"step\":2", "\"step\":3"),
            "'step' must be in 1..=2",
        ),
        (
            good.replace("\"step\":2", "\"step\":1"),
            "'previous' has 1 steps",
        ),
        (
            good.replace("agentic", "poetry"),
            "unknown variant `poetry`",
        ),
    ] {
        std::fs::write(&p, format!("{good}\n\n{bad}\n")).unwrap();
        let msg = read_instances(&p).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}: line 3: ", p.display())) && msg.contains(want),
            "{msg} (wanted {want})"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prompts_show_the_context_and_ask_for_one_step() {
    let v = json!({"id": "t", "task": "What is 2 + 3 * 4?", "solution":
        "1. **Multiply**\n3 * 4 = 12.\n2. **Add**\n2 + 12 = 14."});
    let o = BuildOptions {
        title_hint: true,
        ..opts()
    };
    let insts = step_instances(&v, 1, &o).unwrap().instances;
    let m = render_prompt(&insts[1]);
    assert_eq!((m[0].role.as_str(), m[1].role.as_str()), ("system", "user"));
    assert!(m[0].content.contains("very next logical step only"));
    assert!(m[0].content.contains("<think>"));
    assert_eq!(
        m[1].content,
        "Problem:\nWhat is 2 + 3 * 4?\n\nSolution so far:\nStep 1: **Multiply**\n3 * 4 = 12.\n\n\
         Hint: step 2 is titled \"Add\".\n\n\
         Write step 2 only: think inside <think> </think> first, then write the step."
    );
    assert!(render_prompt(&insts[0])[1]
        .content
        .contains("Solution so far:\n(none yet)\n"));

    let steps: Vec<Value> = (1..=4)
        .map(|k| json!({"action": format!("cmd{k}"), "observation": format!("out{k}")}))
        .collect();
    let v = json!({"task": "Do it.", "steps": steps});
    let insts = step_instances(&v, 1, &opts()).unwrap().instances;
    let m = render_prompt(&insts[3]);
    assert!(m[0].content.contains("very next action only"));
    assert_eq!(
        m[1].content,
        "Task:\nDo it.\n\nActions so far:\n(1 earlier action is not shown)\n\
         Step 2: cmd2\nObservation: out2\nStep 3: cmd3\nObservation: out3\n\n\
         Write step 4 only: think inside <think> </think> first, then write the action."
    );
}

#[test]
fn responses_split_into_thought_and_action() {
    let ok = |t: &str, thought: &str, action: &str| {
        assert_eq!(
            parse_response(t),
            Ok(Parsed {
                thought: thought.into(),
                action: action.into()
            }),
            "{t:?}"
        );
    };
    ok(
        "<think>12 first</think>Add: 2 + 12 = 14.",
        "12 first",
        "Add: 2 + 12 = 14.",
    );
    ok("\n <think>\nhm\n</think>\n\nls -la\n", "hm", "ls -la");
    ok("<think></think>x", "", "x");
    // The prompt ended with <think>: only the closing tag.
    ok("plan it</think> cat a.txt", "plan it", "cat a.txt");
    // A copied step label is not part of the action.
    ok("<think>t</think>**Step 2:** Add.", "t", "Add.");
    ok("<think>t</think>Step 2: Add.\nSo 14.", "t", "Add.\nSo 14.");
    let fail = |t: &str, want: FormatFailure| assert_eq!(parse_response(t), Err(want), "{t:?}");
    fail("just an answer", FormatFailure::NoThink);
    fail("", FormatFailure::NoThink);
    fail("<think>never closed", FormatFailure::Unclosed);
    fail("Sure! <think>x</think> y", FormatFailure::TextBeforeThink);
    fail(
        "<think>a</think>b<think>c</think>d",
        FormatFailure::ExtraThink,
    );
    fail("<think>a <think> b</think>c", FormatFailure::ExtraThink);
    fail("<think>a</think>b</think>", FormatFailure::ExtraThink);
    fail("<think>a</think>  \n ", FormatFailure::EmptyAction);
    fail("<think>a</think>Step 3:", FormatFailure::EmptyAction);
    assert_eq!(
        FormatFailure::EmptyAction.to_string(),
        "no action after </think>"
    );
}

#[test]
fn format_names() {
    assert_eq!("math".parse::<Format>(), Ok(Format::Math));
    assert_eq!("agentic".parse::<Format>(), Ok(Format::Agentic));
    assert!("poetry"
        .parse::<Format>()
        .unwrap_err()
        .contains("math or agentic"));
    assert_eq!(Format::Agentic.to_string(), "agentic");
}

/// Every prefix of awkward text (multi-byte characters, stray markers,
/// unclosed bold and tags) splits and parses without panicking.
#[test]
fn no_panics_on_any_prefix() {
    let text = "## **Step 1: Ünïcode — title**\n(1) ×2 = 4\n**2.** __x__ «y»\n```\n# 3.\n~~~\n### ## #\nStep 2) 1.5\n<think>é</think>Step 3:**";
    for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
        let prefix = &text[..i];
        let _ = split_solution(prefix);
        let _ = strip_step_label(prefix);
        let _ = parse_response(prefix);
        let _ = split_solution(&text[i..]);
    }
}

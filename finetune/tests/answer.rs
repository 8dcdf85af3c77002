//! Final-answer extraction and checking for RLVR's verifiable reward:
//! tricky spellings that must match, near misses that must not.

use srl_finetune::answer::{
    answers_match, extract_boxed, final_answer, normalize, AnswerChecker, ExactMatch, MathAnswer,
    Normalized,
};

#[test]
fn extraction_prefers_box_then_answer_phrase_then_last_number() {
    let cases = [
        (
            r"We get $x=3$, so the answer is $\boxed{\frac{3}{4}}$.",
            Some(r"\frac{3}{4}"),
        ),
        (r"First \boxed{1}, corrected: \boxed{2}", Some("2")),
        (
            r"\boxed{\left(1, \frac{\sqrt{3}}{2}\right)}",
            Some(r"\left(1, \frac{\sqrt{3}}{2}\right)"),
        ),
        (
            "Final Answer: The final answer is $42$. I hope it is correct.",
            Some("42"),
        ),
        ("The answer is 17 apples. Done.", Some("17 apples")),
        ("**Answer:** 12\n", Some("12")),
        ("answer: 3.5.", Some("3.5")),
        ("Thus the answer is: $$x^2+1$$", Some("x^2+1")),
        ("So 12 + 30 = 42.", Some("42")),
        ("We need 1,000,000 steps", Some("1,000,000")),
        ("the temperature fell to -7 degrees", Some("-7")),
        ("It is one half, i.e. .5", Some(".5")),
        (
            r"so the probability is $\frac{1}{6}$.",
            Some(r"\frac{1}{6}"),
        ),
        (r"The area is 12 \text{ cm}^2.", Some("12")),
        ("no numbers here", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(final_answer(text), want, "{text}");
    }
}

#[test]
fn the_answer_after_the_think_block_counts() {
    let r = "<think>maybe 5? or \\boxed{6}</think>The result is \\boxed{7}.";
    assert_eq!(final_answer(r), Some("7"));
    // Nothing after the think block: look inside it.
    assert_eq!(final_answer("<think>so it is 9</think>  "), Some("9"));
    assert_eq!(extract_boxed(r"\boxed{a{b}c}"), Some("a{b}c"));
}

#[test]
fn normalisation_spells_answers_one_way() {
    let n = |s: &str| normalize(s);
    let v = |value: &str, unit: Option<&str>| Normalized {
        value: value.into(),
        unit: unit.map(String::from),
    };
    assert_eq!(n(" $1,000$. "), v("1000", None));
    assert_eq!(n(r"1{,}000"), v("1000", None));
    assert_eq!(n(r"1\,000"), v("1000", None));
    assert_eq!(n(r"\dfrac{1}{2}"), v("1/2", None));
    assert_eq!(n(r"\left( 1, 2 \right)"), v("(1,2)", None));
    assert_eq!(n(r"x = 5"), v("5", None));
    assert_eq!(n(r"5\text{ cm}"), v("5", Some("cm")));
    assert_eq!(n("12 m/s"), v("12", Some("m/s")));
    assert_eq!(n("5cm"), v("5", Some("cm")));
    assert_eq!(n(r"30^\circ"), v("30", Some("°")));
    assert_eq!(n(r"30^{\circ}"), v("30", Some("°")));
    assert_eq!(n("30 degrees"), v("30", Some("°")));
    assert_eq!(n(r"50\%"), v("50", Some("%")));
    assert_eq!(n(r"\$4.50"), v("4.50", None));
    assert_eq!(n("17 Apples"), v("17", Some("apple")));
    // No unit without a number in front; letters of an expression stay.
    assert_eq!(n("2 x"), v("2x", None));
    assert_eq!(n("x squared"), v("xsquared", None));
    assert_eq!(n(r"\rightarrow"), v(r"\rightarrow", None));
    assert_eq!(n("−3"), v("-3", None));
}

#[test]
fn equal_answers_match() {
    let pairs = [
        ("0.5", "1/2"),
        ("1/2", r"\frac{1}{2}"),
        (r"\frac12", ".50"),
        (r"\tfrac{2}{4}", "0.5"),
        ("-0.25", r"-\frac{1}{4}"),
        (r"\frac{-1}{4}", "-1/4"),
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("$42$", "42"),
        ("42.", "42"),
        ("+7", "7"),
        ("1e3", "1000"),
        (r"\text{5 cm}", "5 cm"),
        ("5 cm", "5cm"),
        ("5 cm", "5"),
        ("5", r"5\text{ apples}"),
        ("90°", r"90^\circ"),
        ("90 degrees", r"90^{\circ}"),
        (r"50\%", "50"),
        (r"\$12", "12 dollars"),
        ("x=3", "3"),
        (r"(1, \frac{1}{2})", "(1,0.5)"),
        (r"[0, \infty)", r"\left[0,\infty\right)"),
        (r"2\sqrt2", r"2\sqrt{2}"),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}"),
        (r"\frac{x+1}{2}", "(x+1)/2"),
        (
            "123456789012345678901234567890",
            "123,456,789,012,345,678,901,234,567,890",
        ),
    ];
    for (a, b) in pairs {
        assert!(answers_match(a, b), "{a} vs {b}");
        assert!(answers_match(b, a), "{b} vs {a}");
    }
}

#[test]
fn different_answers_do_not_match() {
    let pairs = [
        ("0.333", "1/3"),
        ("1/2", "2"),
        ("5 cm", "5 m"),
        ("5 apples", "5 oranges"),
        ("50%", "0.5"),
        ("(1,2)", "[1,2]"),
        ("(1,2)", "(2,1)"),
        ("(1,2)", "(1,2,3)"),
        ("1,2", "12"),
        (r"2\frac{1}{2}", "21/2"),
        ("x+1", "x-1"),
        ("3", ""),
        ("", ""),
        ("1/0", "1/0 "),
        (
            "123456789012345678901234567891",
            "123456789012345678901234567890",
        ),
    ];
    for (a, b) in pairs {
        let same = a.trim() == b.trim() && !a.trim().is_empty();
        assert_eq!(answers_match(a, b), same, "{a} vs {b}");
    }
}

#[test]
fn math_checker_extracts_and_compares() {
    let c = MathAnswer;
    assert!(c.check(
        r"<think>...</think>So the total is \boxed{0.5}.",
        r"\frac{1}{2}"
    ));
    assert!(c.check("Adding gives 1,024 in all.", "1024"));
    assert!(c.check("The answer is $\\frac{3}{4}$.", r"\boxed{\dfrac34}"));
    assert!(c.check("The area is 12 \\text{ cm}^2.", "12"));
    assert!(!c.check("The answer is 13.", "12"));
    assert!(!c.check("I cannot tell.", "12"));
    // The last box counts, not an earlier guess.
    assert!(!c.check(r"\boxed{12}, no wait: \boxed{13}", "12"));
    // As a trait object, the way a trainer holds its checker.
    let checkers: [&dyn AnswerChecker; 2] = [&MathAnswer, &ExactMatch];
    assert!(checkers.iter().all(|c| c.check(r"\boxed{7}", "7")));
}

#[test]
fn exact_checker_compares_text() {
    let c = ExactMatch;
    assert!(c.check(r"\boxed{Paris}", "Paris"));
    assert!(c.check("<think>capital?</think> Paris \n", " Paris"));
    assert!(c.check("Answer: (B)", "(B)"));
    assert!(!c.check(r"\boxed{paris}", "Paris"));
    assert!(!c.check(r"\boxed{0.5}", "1/2"));
    assert!(!c.check("Paris, France", "Paris"));
}

/// Every prefix and suffix of awkward text extracts and compares without
/// panicking.
#[test]
fn no_panics_on_any_prefix() {
    let text = r"Ünïcode −½ \boxed{\frac{1}{\sqrt{2}} \text{ m²}} answer is: $$ 1,00 \frac{ } \frac 1 $3.$ -.5/ (( ]] 7e99999 9/0 \$ ^{\circ";
    for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
        for part in [&text[..i], &text[i..]] {
            let _ = final_answer(part);
            let _ = normalize(part);
            let _ = answers_match(part, "1/2");
            let _ = MathAnswer.check(part, part);
            let _ = ExactMatch.check(part, "x");
        }
    }
}

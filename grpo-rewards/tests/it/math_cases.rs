//! Table-driven math equivalence cases: GSM8K answers and our own edge cases
//! (Math-Verify's own suite runs in `math_suite.rs`).

use grpo_rewards::math::{ExtractionTarget, MathConfig, verify};

#[test]
fn gsm8k_answers() {
    let cfg = MathConfig::default();
    let mut n = 0;
    for line in include_str!("../data/gsm8k_cases.jsonl").lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let gold = v["gold"].as_str().unwrap();
        let pred = v["pred"].as_str().unwrap();
        let got = verify(gold, pred, &cfg).unwrap();
        assert_eq!(
            got.correct,
            v["expected"].as_bool().unwrap(),
            "gold {gold}: {got:?}\n{pred}"
        );
        n += 1;
    }
    assert_eq!(n, 240);
}

/// Our own cases for every feature the issue lists (gold, prediction, expected).
const OWN: &[(&str, &str, bool)] = &[
    // extraction
    ("5", "first \\boxed{3}, finally \\boxed{5}", true),
    ("\\frac{1}{2}", "so $\\boxed{\\frac{1}{2}}$ done", true),
    ("x^{2}", "\\boxed{x^{2}}", true),
    ("7", "\\fbox{7}", true),
    ("12", "The answer is 12.", true),
    ("12", "The answer is: $12$", true),
    ("18", "She makes 9 * 2 = 18 dollars.\n#### 18", true),
    ("18", "#### 1,8", false),
    ("1000", "#### 1,000", true),
    ("42", "no number here", false),
    (
        "\\boxed{4}",
        "The final answer is $4$. I hope it is correct.",
        true,
    ),
    // numbers
    ("-5", "$-5$", true),
    ("1234567", "$1,234,567$", true),
    ("0.5", "$\\frac{1}{2}$", true),
    ("0.5", "$\\frac12$", true),
    ("\\frac{2}{4}", "$\\frac{1}{2}$", true),
    ("\\frac{3}{4}", "$3/4$", true),
    ("\\frac{3}{4}", "$0.75$", true),
    ("\\frac{3}{4}", "$0.7$", false),
    ("2\\frac{1}{2}", "$2.5$", true),
    ("2\\frac{1}{2}", "$\\frac{5}{2}$", true),
    ("1500", "$1.5 \\times 10^{3}$", true),
    ("1500", "$1.5e3$", true),
    ("0.001", "$10^{-3}$", true),
    ("-3", "$-(3)$", true),
    ("3", "$-3$", false),
    ("\\frac{1}{3}", "$0.333333$", true),
    ("\\frac{1}{3}", "$0.333$", false),
    // issue #14: tiny exact values are not equal
    ("\\frac{1}{2^{99}}", "$\\frac{1}{2^{98}}$", false),
    ("\\frac{1}{2004!}", "$\\frac{1}{2006!}$", false),
    // roots, pi, symbolic
    ("2\\sqrt{2}", "$\\sqrt{8}$", true),
    ("\\sqrt{12}", "$2\\sqrt{3}$", true),
    ("\\sqrt{2}", "$1.414214$", true),
    ("\\sqrt[3]{8}", "$2$", true),
    ("\\frac{\\pi}{2}", "$\\frac{1}{2}\\pi$", true),
    ("2\\pi", "$6.283185$", true),
    ("\\pi", "$3.14$", false),
    ("x+1", "$1+x$", true),
    ("(r+5)^2", "$(r+5)(r+5)$", true),
    ("x^2-1", "$(x-1)(x+1)$", true),
    ("x^2+1", "$(x+1)^2$", false),
    ("\\frac{x+2}{7}", "$\\frac{x}{7}+\\frac{2}{7}$", true),
    ("\\sin^2 x + \\cos^2 x", "$1$", true),
    ("\\tan^2 y + 1", "$\\sec^2 y$", true),
    ("2\\sin b \\cos a", "$\\sin(a+b) - \\sin(a-b)$", true),
    ("e^{2}", "$\\exp(2)$", false),
    ("\\ln 8", "$3\\ln 2$", true),
    ("\\binom{5}{2}", "$10$", true),
    ("5!", "$120$", true),
    ("|-3|", "$3$", true),
    // percent, units, text, spacing
    ("28\\%", "$28\\%$", true),
    ("28\\%", "$0.28$", true),
    // a bare number is not a percent unless `percent_accepts_bare` (Math-Verify:
    // `$28\\%$` vs `$28$` is false; it reads an undelimited `28\\%` gold as 28,
    // we keep it a percent so that `$28\\%$` and `$0.28$` match it)
    ("28\\%", "$28$", false),
    ("0.28", "$28$", false),
    ("90^\\circ", "$90$", true),
    ("90", "$90^{\\circ}$", true),
    ("15", "$15 \\text{ cm}^2$", true),
    ("125", "$125\\mbox{ miles}$", true),
    ("\\text{Evelyn}", "$\\boxed{\\text{Evelyn}}$", true),
    ("\\text{Evelyn}", "$\\boxed{\\text{Briana}}$", false),
    ("\\text{13}", "$13$", true),
    ("10", "$1\\,0$", false),
    ("\\frac{1}{3}", "$\\left( \\frac{1}{3} \\right)$", true),
    ("\\frac{1}{3}", "$\\dfrac{1}{3}$", true),
    ("\\frac{1}{3}", "$\\displaystyle \\frac{1}{3}$", true),
    ("50", "$\\$50$", true),
    // intervals, sets, tuples, matrices
    ("[0,1)", "$[0,1)$", true),
    ("[0,1)", "$[0,1]$", false),
    ("(0,1]", "$(0,1]$", true),
    ("(-\\infty, 3]", "$(-\\infty,3]$", true),
    ("(-\\infty, 3]", "$(-\\infty,3)$", false),
    ("[1,2] \\cup [3,4]", "$[3,4] \\cup [1,2]$", true),
    ("\\{1,2,3\\}", "$\\{3,2,1\\}$", true),
    ("\\{1,2,3\\}", "$\\{1,2\\}$", false),
    ("1,2,3", "$3, 2, 1$", true),
    ("(1,2,3)", "$(1,2,3)$", true),
    ("(1,2,3)", "$(3,2,1)$", false),
    ("(2,1)", "$(2,1)$", true),
    ("(1,2)", "$(2,1)$", false),
    ("(1,2)", "$\\{1,2\\}$", false),
    ("1 \\pm \\sqrt{2}", "$\\{1+\\sqrt{2}, 1-\\sqrt{2}\\}$", true),
    (
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        "$\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}$",
        true,
    ),
    (
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        "$\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}$",
        false,
    ),
    (
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "$\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}$",
        false,
    ),
    (
        "\\begin{pmatrix} \\frac{1}{2} \\\\ 2 \\end{pmatrix}",
        "$\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}$",
        true,
    ),
    // relations
    ("x = 3", "$3$", true),
    ("3", "$x = 3$", true),
    ("3", "$x = 1 + 2 = 3$", true),
    ("y = 2x + 1", "$y = 1 + 2x$", true),
    ("y = 2x + 1", "$2y = 4x + 2$", true),
    ("y = 2x + 1", "$y = 2x - 1$", false),
    ("x < 3", "$3 > x$", true),
    ("x < 3", "$x \\le 3$", false),
    ("x \\ge 2", "$[2, \\infty)$", true),
    ("[2, \\infty)", "$x \\ge 2$", false),
    ("-1 < x < 4", "$(-1, 4)$", true),
    ("3x+4y+14=0", "$3x-y+13=0$", false),
    ("2x+4y-3=0", "$y = -\\frac{x}{2} + \\frac{3}{4}$", true),
    // budgets: must terminate quickly and not be equal
    ("5^{5^{5^{5^5}}}", "$5^{5^{5^{5^4}}}$", false),
    ("4\\sqrt{2}", "$4\\sqrt(2)$", true),
];

#[test]
fn own_cases() {
    let cfg = MathConfig::default();
    let mut bad = Vec::new();
    for (gold, pred, expected) in OWN {
        let got = verify(gold, pred, &cfg).map(|v| v.correct);
        if got.as_ref().ok() != Some(expected) {
            bad.push(format!(
                "gold={gold:?} pred={pred:?} expected={expected} got={got:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn options_change_verdicts() {
    let mut cfg = MathConfig::default();
    assert!(!verify("f(x)", "$f(y)$", &cfg).unwrap().correct);
    cfg.strict = false;
    assert!(verify("f(x)", "$f(y)$", &cfg).unwrap().correct);
    let mut cfg = MathConfig::default();
    assert!(!verify("[2, \\infty)", "$x \\ge 2$", &cfg).unwrap().correct);
    cfg.allow_set_relation_comp = true;
    assert!(verify("[2, \\infty)", "$x \\ge 2$", &cfg).unwrap().correct);
    let cfg = MathConfig {
        float_rounding: 3,
        ..MathConfig::default()
    };
    assert!(verify("\\frac{1}{3}", "$0.333$", &cfg).unwrap().correct);
    let cfg = MathConfig {
        percent_accepts_bare: true,
        ..MathConfig::default()
    };
    assert!(verify("28\\%", "$28$", &cfg).unwrap().correct);
    assert!(
        !verify("28\\%", "$28$", &MathConfig::default())
            .unwrap()
            .correct
    );
    // boxed priority: with Math-Verify's default 50, an "answer:" span wins over the box
    let mut cfg = MathConfig::default();
    let text =
        "Answer: $3$. More words here push the box away from the answer word, far away: \\boxed{4}";
    assert_eq!(
        verify("4", text, &cfg).unwrap().extracted.as_deref(),
        Some("4")
    );
    cfg.boxed_match_priority = 150;
    assert_eq!(
        verify("4", text, &cfg).unwrap().extracted.as_deref(),
        Some("3")
    );
    // letters
    let cfg = MathConfig {
        gold_extraction: vec![ExtractionTarget::Letters],
        pred_extraction: vec![ExtractionTarget::Letters],
        ..MathConfig::default()
    };
    assert!(verify("B", "The answer is (B).", &cfg).unwrap().correct);
    assert!(!verify("B", "The answer is (C).", &cfg).unwrap().correct);
    // bad gold is an error, bad prediction a verdict
    assert!(verify("", "1", &MathConfig::default()).is_err());
    let v = verify("1", "", &MathConfig::default()).unwrap();
    assert!(!v.correct && v.extracted.is_none());
}

#[test]
fn anchor_option_names() {
    // lighteval's and Math-Verify's spellings next to ours
    let out = grpo_rewards::math::verify_json(&serde_json::json!({
        "gold": "C", "pred": "réponse est C non A",
        "options": {"language": "french", "gold_extraction_target": ["indices"],
                    "pred_extraction_target": ["indices"], "precision": 6,
                    "strings": ["A", "B", "C", "D"], "try_extract_without_anchor": true}
    }))
    .unwrap();
    assert_eq!(out["correct"], true, "{out}");
    let out = grpo_rewards::math::verify_json(&serde_json::json!({
        "gold": "\\frac{1}{3}", "pred": "$0.333$", "options": {"precision": 3}
    }))
    .unwrap();
    assert_eq!(out["correct"], true, "{out}");
    // the same option twice under two names is an error
    assert!(
        grpo_rewards::math::verify_json(&serde_json::json!({
            "gold": "1", "pred": "1", "options": {"precision": 3, "float_rounding": 3}
        }))
        .is_err()
    );
}

#[test]
fn json_entry_point() {
    let out = grpo_rewards::math::verify_json(&serde_json::json!({
        "gold": "\\frac{1}{3}", "pred": "$0.333$", "options": {"float_rounding": 3}
    }))
    .unwrap();
    assert_eq!(out["correct"], true);
    assert_eq!(out["reward"], 1.0);
    assert_eq!(out["extracted"], "0.333");
    assert!(
        grpo_rewards::math::verify_json(
            &serde_json::json!({"gold": "1", "pred": "1", "options": {"nope": 1}})
        )
        .is_err()
    );
}

mod robustness {
    use grpo_rewards::math::{MathConfig, verify};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Arbitrary LaTeX-ish predictions never panic and always yield a verdict.
        #[test]
        fn never_panics(pred in r"[0-9a-z\\{}()\[\]^_+\-*/=<>,.$% |&!]{0,80}") {
            let v = verify("\\frac{1}{2}", &pred, &MathConfig::default());
            prop_assert!(v.is_ok());
        }

        #[test]
        fn integers_match_themselves(n in -1_000_000_000i64..1_000_000_000) {
            let cfg = MathConfig::default();
            let g = n.to_string();
            let right = format!("The answer is $\\boxed{{{n}}}$.");
            let wrong = format!("#### {}", n + 1);
            let ok = verify(&g, &right, &cfg).unwrap().correct;
            let bad = verify(&g, &wrong, &cfg).unwrap().correct;
            prop_assert!(ok && !bad);
        }
    }

    #[test]
    fn hostile_inputs_finish_fast() {
        let cfg = MathConfig::default();
        let t = std::time::Instant::now();
        let deep = format!("$\\boxed{{{}1{}}}$", "(".repeat(3000), ")".repeat(3000));
        let _ = verify("1", &deep, &cfg).unwrap();
        let fracs = format!(
            "$\\boxed{{{}1{}}}$",
            "\\frac{".repeat(500),
            "}{2}".repeat(500)
        );
        let _ = verify("1", &fracs, &cfg).unwrap();
        let pms = format!("$\\boxed{{{}}}$", vec!["1"; 40].join("\\pm "));
        let _ = verify("1", &pms, &cfg).unwrap();
        let tower = "$\\boxed{9^{9^{9^{9^{9^{9}}}}}}$";
        assert!(!verify("1", tower, &cfg).unwrap().correct);
        let fact = "$\\boxed{100000!}$";
        assert!(!verify("1", fact, &cfg).unwrap().correct);
        let long = "word ".repeat(100_000) + "\\boxed{1}";
        assert!(verify("1", &long, &cfg).unwrap().correct);
        let nested_text = format!("$\\boxed{{{}x{}}}$", "\\text{".repeat(800), "}".repeat(800));
        let _ = verify("1", &nested_text, &cfg).unwrap();
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    }
}

#[test]
fn words_approx_percent_ratios() {
    let cfg = MathConfig::default();
    let cases: &[(&str, &str, bool)] = &[
        // golds that are words or primed symbols are compared as text
        ("odd", "The function is \\boxed{odd}.", true),
        ("odd", "The function is \\boxed{even}.", false),
        ("odd", "so the answer is odd", true),
        ("Odd", "$\\text{odd}$", true),
        ("f'", "$f'$", true),
        ("f'", "$f$", false),
        // `\approx`: a symbol on the left gives the value, an expression is kept
        ("11", "$x \\approx 11$", true),
        (
            "\\frac{9.5}{3.14159}",
            "$\\frac{9.5}{3.14159} \\approx 3.01$",
            true,
        ),
        ("3.01", "$\\frac{9.5}{3.14159} \\approx 3.01$", false),
        // percent after a box; a percent is not the bare number
        ("$28\\%$", "$\\boxed{28}$ pct", true),
        ("$28\\%$", "$28$", false),
        // ratios and clock times: `12:00` is 12/0, never equal to another value
        ("12:00", "$1:00$", false),
        ("$V_{1}:V_{2}=11:21$", "$11:21$", true),
    ];
    let mut bad = Vec::new();
    for (gold, pred, expected) in cases {
        let got = verify(gold, pred, &cfg).map(|v| v.correct);
        if got.as_ref().ok() != Some(expected) {
            bad.push(format!(
                "gold={gold:?} pred={pred:?} expected={expected} got={got:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // a gold with nothing at all in it is still bad data
    assert!(verify("  ", "x", &cfg).is_err());
}

#[test]
fn multilingual_and_letters() {
    let lang = |l: &str| MathConfig {
        language: l.into(),
        ..MathConfig::default()
    };
    // lighteval's answer prefixes: French `Réponse:` anchors the number after it
    let fr_pred = "Réponse: Janeth aura encore 220 $ à payer d'ici 12 mois.";
    assert!(verify("220", fr_pred, &lang("fr")).unwrap().correct);
    assert!(!verify("220", fr_pred, &lang("en")).unwrap().correct);
    assert!(verify("220", fr_pred, &lang("french")).unwrap().correct);
    let zh = "答案：地块面积是 4000 平方米, 不是 72000";
    assert!(verify("4000", zh, &lang("zh")).unwrap().correct);
    // letters, with the language's punctuation and without an anchor phrase
    let letters = |l: &str| MathConfig {
        gold_extraction: vec![ExtractionTarget::Letters],
        pred_extraction: vec![ExtractionTarget::Letters],
        ..lang(l)
    };
    assert!(
        verify("C", "réponse est C non A", &letters("fr"))
            .unwrap()
            .correct
    );
    assert!(
        !verify("C", "réponse est C non A", &letters("en"))
            .unwrap()
            .correct
    );
    assert!(verify("B", "B。不是 A", &letters("zh")).unwrap().correct);
    assert!(verify("B", "B不是 A", &letters("zh")).unwrap().correct);
    let en = letters("en");
    assert!(verify("D", "D. it can't be A or B", &en).unwrap().correct);
    assert!(
        verify(
            "B",
            "It's not A because it makes no sense, therefore I think it's B",
            &en
        )
        .unwrap()
        .correct
    );
    assert!(
        verify("D", "The answer is for sure D, it can't be A or B", &en)
            .unwrap()
            .correct
    );
    assert!(verify("D", "(D) Alina", &en).unwrap().correct);
    let anchored = MathConfig {
        letters_without_anchor: false,
        ..letters("en")
    };
    let v = verify("B", "therefore I think it's B", &anchored).unwrap();
    assert!(!v.correct && v.extracted.is_none(), "{v:?}");
    let u = MathConfig {
        letters: vec!["U".into()],
        ..letters("en")
    };
    assert!(verify("U", "The answer is U.", &u).unwrap().correct);
    // unknown language: bad options, named
    let e = verify("1", "1", &lang("klingon")).unwrap_err().to_string();
    assert!(
        e.contains("options.language") && e.contains("klingon"),
        "{e}"
    );
    // malformed operators: repaired by default, refused when switched off
    assert!(
        verify("\\frac{1}{2}", "$\\frac12$", &MathConfig::default())
            .unwrap()
            .correct
    );
    let strict = MathConfig {
        malformed_operators: false,
        pred_extraction: vec![ExtractionTarget::Latex],
        ..MathConfig::default()
    };
    assert!(
        !verify("\\frac{1}{2}", "$\\frac12$", &strict)
            .unwrap()
            .correct
    );
    // boxed priority below 0 never extracts a box
    let no_box = MathConfig {
        boxed_match_priority: -1,
        pred_extraction: vec![ExtractionTarget::Latex],
        ..MathConfig::default()
    };
    assert!(
        verify("1", "\\boxed{1}", &no_box)
            .unwrap()
            .extracted
            .is_none()
    );
}

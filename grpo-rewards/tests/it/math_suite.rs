//! Math-Verify 0.8.0's complete test suite (`tests/` of huggingface/Math-Verify
//! at 5d148cfa), as data: `tests/data/math_verify_suite.jsonl`, written by
//! `scripts/math_verify_suite.py` with the verdict each test expects and the
//! configuration it uses. Cases where we knowingly differ are listed, with a
//! one-line reason each, in `tests/data/math_verify_suite_divergences.txt`.
//! (test_timeout.py and test_raise_on_error.py mock Math-Verify's internals
//! to test its signal timeouts and exception propagation; they have no data
//! case: our verifier has budgets instead of timeouts and never raises on
//! model output.)

use std::collections::BTreeMap;

use grpo_rewards::math::{ExtractionTarget, MathConfig, verify};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    id: String,
    kind: String,
    #[serde(default)]
    gold: String,
    pred: String,
    #[serde(default)]
    expected: Option<bool>,
    #[serde(default)]
    expect: Option<String>,
    targets: Option<Vec<ExtractionTarget>>,
    #[serde(default)]
    float_rounding: Option<u32>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    allow_set_relation_comp: Option<bool>,
    #[serde(default)]
    boxed_match_priority: Option<i32>,
    #[serde(default)]
    malformed_operators: Option<bool>,
}

fn config(c: &Case) -> MathConfig {
    // no targets = Math-Verify's library defaults (LaTeX with boxed priority 50, expressions)
    let targets = c
        .targets
        .clone()
        .unwrap_or(vec![ExtractionTarget::Latex, ExtractionTarget::Expr]);
    MathConfig {
        gold_extraction: targets.clone(),
        pred_extraction: targets,
        float_rounding: c.float_rounding.unwrap_or(6),
        strict: c.strict.unwrap_or(true),
        allow_set_relation_comp: c.allow_set_relation_comp.unwrap_or(false),
        boxed_match_priority: c.boxed_match_priority.unwrap_or(0),
        malformed_operators: c.malformed_operators.unwrap_or(true),
        ..MathConfig::default()
    }
}

/// Whether we agree with the verdict the case's test expects.
fn agrees(c: &Case) -> Result<bool, String> {
    let cfg = config(c);
    match c.kind.as_str() {
        "verify" => {
            let want = c.expected.ok_or("no expected verdict")?;
            let got = verify(&c.gold, &c.pred, &cfg).map(|v| v.correct);
            Ok(got.unwrap_or(false) == want)
        }
        "parse" => {
            // first-match extraction: the value parsed first, or nothing
            let gold_cfg = MathConfig {
                gold_extraction: vec![ExtractionTarget::Latex, ExtractionTarget::Expr],
                ..cfg.clone()
            };
            match &c.expect {
                Some(x) => {
                    let gold_cfg = MathConfig {
                        gold_extraction: cfg.pred_extraction.clone(),
                        ..gold_cfg
                    };
                    Ok(verify(x, &c.pred, &gold_cfg).is_ok_and(|v| v.correct))
                }
                None => Ok(verify("0", &c.pred, &gold_cfg).is_ok_and(|v| v.extracted.is_none())),
            }
        }
        other => Err(format!("unknown kind {other}")),
    }
}

fn divergences() -> BTreeMap<String, String> {
    include_str!("../data/math_verify_suite_divergences.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (id, why) = l.split_once('\t')?;
            Some((id.to_string(), why.trim().to_string()))
        })
        .collect()
}

#[test]
fn math_verify_suite() {
    let cases: Vec<Case> = include_str!("../data/math_verify_suite.jsonl")
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect();
    assert!(cases.len() >= 280, "{}", cases.len());
    let known = divergences();
    for (id, why) in &known {
        assert!(!why.is_empty(), "{id}: a divergence needs its reason");
        assert!(cases.iter().any(|c| &c.id == id), "{id}: no such case");
    }
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut agree = 0;
    for c in &cases {
        let ok = agrees(c).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        agree += usize::from(ok);
        match (ok, known.contains_key(&c.id)) {
            (false, false) => unexpected.push(format!(
                "{}\tgold={:?} pred={:?} expected={:?}{:?}",
                c.id,
                c.gold.chars().take(100).collect::<String>(),
                c.pred.chars().take(100).collect::<String>(),
                c.expected,
                c.expect
            )),
            (true, true) => fixed.push(c.id.clone()),
            _ => {}
        }
    }
    eprintln!(
        "Math-Verify 0.8.0 suite: we agree on {agree} of {} ({} documented divergences)",
        cases.len(),
        known.len()
    );
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{} unexpected:\n{}\nnow agreeing (remove from the divergence list): {fixed:?}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// lighteval's `test_extractive_match.py` cases (multilingual answer
/// prefixes, letters without an anchor phrase, math), committed as
/// `tests/data/agreement/lighteval.jsonl` by `scripts/math_agreement.py`,
/// run under each case's language, targets and precision. The divergence
/// is the same case as in Math-Verify's suite (lighteval copied it).
#[test]
fn lighteval_suite() {
    let known: BTreeMap<&str, &str> = [(
        "test_math_extraction_additional_cases[5]",
        "(1,3) is not the set {1,3}",
    )]
    .into_iter()
    .collect();
    let mut bad = Vec::new();
    let mut n = 0;
    for (i, line) in include_str!("../data/agreement/lighteval.jsonl")
        .lines()
        .enumerate()
    {
        let c: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let id = c["id"].as_str().expect("id");
        let short = id.split("::").nth(1).unwrap_or(id);
        assert!(
            c["source"].as_str().is_some_and(|s| s.contains('@')),
            "{id}"
        );
        let letters = c["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .any(|t| t == "NativeLetters");
        let targets: Vec<ExtractionTarget> = c["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| match t.as_str() {
                Some("latex") => ExtractionTarget::Latex,
                Some("expr") => ExtractionTarget::Expr,
                _ => ExtractionTarget::Letters,
            })
            .collect();
        let cfg = MathConfig {
            gold_extraction: targets.clone(),
            pred_extraction: targets,
            float_rounding: c["float_rounding"].as_u64().expect("precision") as u32,
            boxed_match_priority: 55,
            language: c["language"].as_str().expect("language").into(),
            letters: if letters {
                ["A", "B", "C", "D"].map(String::from).to_vec()
            } else {
                Vec::new()
            },
            ..MathConfig::default()
        };
        let want = c["expected"].as_bool().expect("expected");
        let gold = c["gold"].as_str().expect("gold");
        let pred = c["pred"].as_str().expect("pred");
        let got = verify(gold, pred, &cfg).map(|v| v.correct).unwrap_or(false);
        match (got == want, known.contains_key(short)) {
            (false, false) => bad.push(format!("{short}: gold={gold:?} expected={want} got={got}")),
            (true, true) => bad.push(format!("{short}: agrees now, remove from the known list")),
            _ => {}
        }
        n += 1;
    }
    assert!(n >= 230, "{n} cases");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// NeMo-Skills' `math_equal` pairs (`tests/data/agreement/nemo_skills.jsonl`,
/// both directions): words and primed symbols compared as text (`odd`, `f'`),
/// `\approx` tails, letters, percent with NeMo's rule (a bare number matches).
#[test]
fn nemo_skills_pairs() {
    let cfg = MathConfig {
        percent_accepts_bare: true,
        ..MathConfig::default()
    };
    let mut bad = Vec::new();
    let mut n = 0;
    for (i, line) in include_str!("../data/agreement/nemo_skills.jsonl")
        .lines()
        .enumerate()
    {
        let c: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert!(
            c["source"].as_str().is_some_and(|s| s.contains('@')),
            "line {}",
            i + 1
        );
        let (gold, pred) = (
            c["gold"].as_str().expect("gold"),
            c["pred"].as_str().expect("pred"),
        );
        let want = c["expected"].as_bool().expect("expected");
        let got = verify(gold, pred, &cfg).map(|v| v.correct);
        if got.as_ref().ok() != Some(&want) {
            bad.push(format!(
                "{}: gold={gold:?} pred={pred:?} expected={want} got={got:?}",
                c["id"]
            ));
        }
        n += 1;
    }
    assert_eq!(n, 60);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

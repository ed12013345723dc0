//! Known-answer tests of the anchor-named functions (`compat::eval`) against
//! `tests/data/compat_anchor_cases.jsonl`, produced by `scripts/anchor_cases.py`
//! (torch float64 + autograd re-running verl/TRL's formulas). Every expected
//! output must be present and agree within 1e-6 (relative above 1).

use grpo_core::compat::eval::eval;
use serde_json::Value;

const CASES: &str = include_str!("../data/compat_anchor_cases.jsonl");

/// Compares `got` with `want` recursively; returns the first mismatch path.
fn compare(path: &str, got: &Value, want: &Value) -> Result<(), String> {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Err(format!(
                    "{path}: length {} vs expected {}",
                    g.len(),
                    w.len()
                ));
            }
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                compare(&format!("{path}[{i}]"), a, b)?;
            }
            Ok(())
        }
        (g, w) if w.is_number() => {
            let (a, b) = (
                g.as_f64()
                    .ok_or(format!("{path}: got {g}, expected a number"))?,
                w.as_f64().unwrap(),
            );
            if (a - b).abs() <= 1e-6 * b.abs().max(1.0) {
                Ok(())
            } else {
                Err(format!(
                    "{path}: got {a}, expected {b} (diff {:e})",
                    (a - b).abs()
                ))
            }
        }
        (g, w) => Err(format!("{path}: got {g}, expected {w}")),
    }
}

#[test]
fn every_anchor_case_matches_the_python_reference() {
    let mut failures = Vec::new();
    let mut fns = std::collections::BTreeSet::new();
    let mut n = 0;
    for (lineno, line) in CASES.lines().enumerate() {
        let mut case: Value = serde_json::from_str(line).unwrap();
        let expected = case.as_object_mut().unwrap().remove("expected").unwrap();
        let name = case["case"].as_str().unwrap().to_string();
        fns.insert(case["fn"].as_str().unwrap().to_string());
        n += 1;
        match eval(&case) {
            Err(e) => failures.push(format!("line {}: {name}: error {e}", lineno + 1)),
            Ok(out) => {
                for (k, want) in expected.as_object().unwrap() {
                    match out["outputs"].get(k) {
                        None => failures
                            .push(format!("line {}: {name}: output `{k}` missing", lineno + 1)),
                        Some(got) => {
                            if let Err(e) = compare(k, got, want) {
                                failures.push(format!("line {}: {name}: {e}", lineno + 1));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(n >= 80, "only {n} cases");
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // every anchor function of the registry has at least one known-answer case
    for e in grpo_core::compat::registry() {
        assert!(fns.contains(e.name), "no known-answer case for {}", e.name);
    }
}

//! Known-answer tests for the advantage estimators: numbers computed by hand
//! from the published formulas (algorithms.md §3), committed in
//! `tests/data/adv_cases.json`.

use grpo_core::advantage::{self, AdvantageConfig};
use grpo_core::batch::{BudgetRecord, ScoredBatch};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: AdvantageConfig,
    rewards: Vec<f64>,
    group: Vec<usize>,
    lengths: Vec<usize>,
    #[serde(default)]
    components: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    old_log_prob: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    budgets: Option<Vec<BudgetRecord>>,
    #[serde(default)]
    expected_per_row: Option<Vec<f64>>,
    #[serde(default)]
    expected_tokens: Option<Vec<Vec<f64>>>,
    #[allow(dead_code)]
    note: String,
}

fn to2(v: &[Vec<f64>]) -> Array2<f64> {
    Array2::from_shape_fn((v.len(), v[0].len()), |(i, j)| v[i][j])
}

#[test]
fn advantage_known_answers() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/adv_cases.json"
    ))
    .unwrap();
    let file: File = serde_json::from_str(&text).unwrap();
    assert!(file.cases.len() >= 15);
    for c in file.cases {
        let mut b = ScoredBatch::from_outcome(&c.rewards, &c.group, &c.lengths).unwrap();
        // components in JSON key order must match the config's weight order: keep accuracy, format order
        let mut names: Vec<&String> = c.components.keys().collect();
        names.sort_by_key(|n| if n.as_str() == "accuracy" { 0 } else { 1 });
        for n in names {
            b = b
                .with_component(n, Array1::from(c.components[n].clone()))
                .unwrap();
        }
        if let Some(lp) = &c.old_log_prob {
            b = b.with_old_log_prob(to2(lp)).unwrap();
        }
        if let Some(bu) = c.budgets.clone() {
            b = b.with_budgets(bu).unwrap();
        }
        let out = advantage::compute(&c.config, &b, &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        if let Some(exp) = &c.expected_per_row {
            for (i, e) in exp.iter().enumerate() {
                for t in 0..c.lengths[i] {
                    let got = out.advantages[[i, t]];
                    assert!(
                        (got - e).abs() <= 1e-12 * (1.0 + e.abs()),
                        "{} row {i}: got {got}, expected {e}",
                        c.name
                    );
                }
            }
        }
        if let Some(exp) = &c.expected_tokens {
            let e = to2(exp);
            for ((i, t), x) in e.indexed_iter() {
                let got = out.advantages[[i, t]];
                assert!(
                    (got - x).abs() <= 1e-12 * (1.0 + x.abs()),
                    "{} [{i},{t}]: got {got}, expected {x}",
                    c.name
                );
            }
        }
        assert!(
            c.expected_per_row.is_some() || c.expected_tokens.is_some(),
            "{} has no expectation",
            c.name
        );
    }
}

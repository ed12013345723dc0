//! Shared helpers for the advantage/filter/sampler tests: random batches with
//! every optional input populated, and one example config per registry name.

use grpo_core::batch::{BudgetRecord, ScoredBatch, StepRecord};
use ndarray::{Array1, Array2};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Shape and value knobs of a random batch.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub group_sizes: Vec<usize>,
    pub t: usize,
    pub seed: u64,
    /// Rewards in {0, 1} instead of [0, 1].
    pub binary: bool,
    /// Groups whose rewards (and components) are forced equal.
    pub constant_groups: Vec<bool>,
}

pub fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        prop::collection::vec(2usize..6, 1..5),
        1usize..7,
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(prop::bool::weighted(0.3), 4),
    )
        .prop_map(|(group_sizes, t, seed, binary, cg)| BatchSpec {
            constant_groups: cg[..group_sizes.len()].to_vec(),
            group_sizes,
            t,
            seed,
            binary,
        })
}

/// Builds the batch: groups in order (ids 10, 11, ...), every row non-empty, all extras set.
pub fn build(spec: &BatchSpec) -> ScoredBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let b: usize = spec.group_sizes.iter().sum();
    let t = spec.t;
    let mut group = Vec::new();
    let mut reward = Vec::new();
    let mut c1 = Vec::new();
    let mut c2 = Vec::new();
    for (k, &n) in spec.group_sizes.iter().enumerate() {
        let constant = spec.constant_groups[k];
        let base: f64 = if spec.binary {
            f64::from(rng.random_bool(0.5) as u8)
        } else {
            rng.random()
        };
        let b1: f64 = rng.random();
        for _ in 0..n {
            group.push(10 + k);
            let draw = |rng: &mut ChaCha8Rng| -> f64 {
                if spec.binary {
                    f64::from(rng.random_bool(0.5) as u8)
                } else {
                    rng.random()
                }
            };
            reward.push(if constant { base } else { draw(&mut rng) });
            c1.push(if constant { b1 } else { rng.random::<f64>() });
            c2.push(if constant {
                2.0
            } else {
                5.0 * rng.random::<f64>() - 1.0
            });
        }
    }
    let mut mask = Array2::zeros((b, t));
    let mut lens = Vec::new();
    for i in 0..b {
        let l = rng.random_range(1..=t);
        lens.push(l);
        for c in 0..l {
            mask[[i, c]] = 1.0;
        }
    }
    let lp = Array2::from_shape_fn((b, t), |_| -5.0 * rng.random::<f64>());
    let s2 = Array2::from_shape_fn((b, t), |(i, c)| {
        let p = lp[[i, c]].exp();
        p * p + (1.0 - p) * (1.0 - p) * rng.random::<f64>()
    });
    let values = Array2::from_shape_fn((b, t), |_| 2.0 * rng.random::<f64>() - 1.0);
    let is_weight = Array2::from_shape_fn((b, t), |_| 0.5 + rng.random::<f64>());
    let baseline = Array1::from_shape_fn(b, |_| rng.random::<f64>());
    let keys: Vec<String> = group.iter().map(|g| format!("prompt-{g}")).collect();
    let steps: Vec<Vec<StepRecord>> = lens
        .iter()
        .map(|&l| {
            let n_steps = rng.random_range(1..=l.min(3));
            let mut out = Vec::new();
            let mut start = 0;
            for s in 0..n_steps {
                let end = if s + 1 == n_steps { l } else { start + 1 };
                out.push(StepRecord {
                    state: format!("s{}", rng.random_range(0..3)),
                    action: format!("a{}", rng.random_range(0..2)),
                    reward: rng.random(),
                    start,
                    end,
                });
                start = end;
            }
            out
        })
        .collect();
    let budgets: Vec<BudgetRecord> = lens
        .iter()
        .map(|&l| BudgetRecord {
            segment_ends: (1..=3).map(|s| (s * l).div_ceil(3)).collect(),
            scores: (0..3).map(|_| rng.random()).collect(),
        })
        .collect();
    ScoredBatch::new(mask, group, Array1::from(reward))
        .unwrap()
        .with_component("accuracy", Array1::from(c1))
        .unwrap()
        .with_component("format", Array1::from(c2))
        .unwrap()
        .with_old_log_prob(lp)
        .unwrap()
        .with_sum_sq_prob(s2)
        .unwrap()
        .with_values(values)
        .unwrap()
        .with_baseline_reward(baseline)
        .unwrap()
        .with_prompt_keys(keys)
        .unwrap()
        .with_steps(steps)
        .unwrap()
        .with_budgets(budgets)
        .unwrap()
        .with_is_weight(is_weight)
        .unwrap()
        .with_truncated((0..b).map(|i| i % 3 == 1).collect())
        .unwrap()
}

/// One runnable example config per advantage registry name.
pub fn advantage_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("grpo", json!({"type": "grpo"})),
        ("dr_grpo", json!({"type": "dr_grpo"})),
        ("grpo_batch_std", json!({"type": "grpo_batch_std"})),
        ("rloo", json!({"type": "rloo"})),
        (
            "reinforce_plus_plus",
            json!({"type": "reinforce_plus_plus", "gamma": 0.9}),
        ),
        (
            "reinforce_plus_plus_baseline",
            json!({"type": "reinforce_plus_plus_baseline"}),
        ),
        ("remax", json!({"type": "remax"})),
        ("gae", json!({"type": "gae", "gamma": 0.99, "lam": 0.95})),
        ("opo", json!({"type": "opo"})),
        ("gpg", json!({"type": "gpg"})),
        (
            "opmd",
            json!({"type": "opmd", "baseline": "logavgexp", "tau": 0.5}),
        ),
        ("asymre", json!({"type": "asymre"})),
        (
            "rec",
            json!({"type": "rec", "std_normalize": true, "drop": "balance"}),
        ),
        ("oblr", json!({"type": "oblr", "weight": "score_norm"})),
        ("grpo_passk", json!({"type": "grpo_passk"})),
        (
            "optimal_token_baseline",
            json!({"type": "optimal_token_baseline", "handle_zero_tail": true}),
        ),
        (
            "bnpo",
            json!({"type": "bnpo", "r_min": -1.0, "r_max": 4.0, "decompose": true}),
        ),
        ("gdpo", json!({"type": "gdpo", "weights": [1.0, 0.5]})),
        ("spo", json!({"type": "spo"})),
        (
            "risk_po",
            json!({"type": "risk_po", "bundle_size": 2, "permute": true}),
        ),
        ("unlikeliness", json!({"type": "unlikeliness"})),
        (
            "brpo",
            json!({"type": "brpo", "prior": "linear", "variant": "brpo"}),
        ),
        (
            "gigpo",
            json!({"type": "gigpo", "gamma": 0.95, "mode": "mean_std_norm"}),
        ),
        ("salt", json!({"type": "salt"})),
        ("hrpo", json!({"type": "hrpo", "omega": 0.5})),
        (
            "tempsamp",
            json!({"type": "tempsamp", "s_pos": 0.5, "s_neg": 1.5}),
        ),
    ]
}

/// Estimators whose output is not equivariant under row permutations (with the reason).
pub const ORDER_DEPENDENT: &[(&str, &str)] = &[
    (
        "risk_po",
        "papers pair responses by row order and bundles follow group order; the RNG permutation consumes draws in row order",
    ),
    ("rec", "the balanced drop consumes RNG draws in row order"),
];

/// Per-row advantage of an outcome estimator (value on the first token; rows are non-empty).
pub fn per_row(a: &Array2<f64>) -> Vec<f64> {
    a.column(0).to_vec()
}

/// Sum per group id of a per-row vector.
pub fn group_sums(batch: &ScoredBatch, v: &[f64]) -> Vec<f64> {
    batch
        .groups()
        .rows
        .iter()
        .map(|rows| rows.iter().map(|&i| v[i]).sum())
        .collect()
}

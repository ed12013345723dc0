//! Property tests of the anchor functions through `compat::eval`: no panic and
//! no NaN/inf output for any finite input (an `Err` is allowed where the anchor
//! itself raises), and permutation equivariance of the group estimators.

use grpo_core::compat::eval::eval;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A small batch: mask (row lengths ≥ 1), per-token values, per-row values, group ids.
#[derive(Debug, Clone)]
struct Case {
    mask: Vec<Vec<f64>>,
    a: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    c: Vec<Vec<f64>>,
    rows: Vec<f64>,
    index: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..6, 1usize..6).prop_flat_map(|(b, t)| {
        let mat = move || prop::collection::vec(prop::collection::vec(-4.0f64..4.0, t), b);
        (
            prop::collection::vec(1usize..=t, b),
            mat(),
            mat(),
            mat(),
            prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), -3.0f64..3.0], b),
            prop::collection::vec(0u8..3, b),
        )
            .prop_map(move |(lens, a, bb, c, rows, index)| Case {
                mask: lens
                    .iter()
                    .map(|&l| (0..t).map(|s| f64::from(u8::from(s < l))).collect())
                    .collect(),
                a,
                b: bb,
                c,
                rows,
                index,
            })
    })
}

fn all_finite(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(all_finite),
        Value::Object(o) => o.values().all(all_finite),
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::Null => false,
        _ => true,
    }
}

fn requests(c: &Case) -> Vec<Value> {
    let adv_fns = [
        "verl.compute_grpo_outcome_advantage",
        "verl.compute_grpo_vectorized_outcome_advantage",
        "verl.compute_grpo_passk_outcome_advantage",
        "verl.compute_rloo_outcome_advantage",
        "verl.compute_rloo_vectorized_outcome_advantage",
        "verl.compute_reinforce_plus_plus_baseline_outcome_advantage",
        "verl.compute_opo_outcome_advantage",
        "verl.compute_gpg_outcome_advantage",
    ];
    let mut v: Vec<Value> = adv_fns
        .iter()
        .map(|f| json!({"fn": f, "inputs": {"rewards": c.rows, "response_mask": c.mask, "index": c.index}}))
        .collect();
    v.push(
        json!({"fn": "verl.compute_reinforce_plus_plus_outcome_advantage", "params": {"gamma": 0.9},
        "inputs": {"token_level_rewards": c.a, "response_mask": c.mask}}),
    );
    v.push(json!({"fn": "verl.compute_remax_outcome_advantage",
        "inputs": {"token_level_rewards": c.a, "response_mask": c.mask, "reward_baselines": c.rows}}));
    for f in [
        "vanilla", "gspo", "sapo", "cispo", "gpg", "geo_mean", "kl_cov",
    ] {
        for mode in [
            "token-mean",
            "seq-mean-token-mean",
            "seq-mean-token-sum",
            "seq-mean-token-sum-norm",
        ] {
            v.push(json!({"fn": format!("verl.compute_policy_loss_{f}"), "params": {"loss_agg_mode": mode, "kl_cov_ratio": 0.3},
                "inputs": {"old_log_prob": c.a, "log_prob": c.b, "advantages": c.c, "response_mask": c.mask}}));
        }
    }
    v.push(json!({"fn": "verl.compute_policy_loss_reinforce",
        "inputs": {"rollout_log_prob": c.a, "log_prob": c.b, "advantages": c.c, "response_mask": c.mask}}));
    for k in ["k1", "k2", "k3", "abs", "k3+"] {
        v.push(json!({"fn": "verl.kl_penalty", "params": {"kl_penalty": k},
            "inputs": {"log_prob": c.a, "ref_log_prob": c.b, "response_mask": c.mask}}));
    }
    v.push(json!({"fn": "verl.masked_whiten", "inputs": {"values": c.a, "mask": c.mask}}));
    for lt in [
        "grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo",
    ] {
        for level in ["token", "sequence"] {
            v.push(json!({"fn": "trl.grpo_loss",
                "params": {"loss_type": lt, "importance_sampling_level": level, "beta": 0.1,
                           "top_entropy_quantile": 0.5, "entropy_coef": 0.01, "delta": 2.0},
                "inputs": {"old_log_prob": c.a, "log_prob": c.b, "ref_log_prob": c.c, "advantages": c.rows,
                           "entropy": c.c.iter().map(|r| r.iter().map(|x| x.abs()).collect::<Vec<_>>()).collect::<Vec<_>>(),
                           "response_mask": c.mask}}));
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn anchors_never_panic_and_outputs_are_finite(c in case()) {
        for req in requests(&c) {
            match eval(&req) {
                Ok(out) => prop_assert!(all_finite(&out), "{}: non-finite output {}", req["fn"], out),
                Err(e) => {
                    // the anchors raise only in these situations
                    let s = e.to_string();
                    prop_assert!(
                        s.contains("needs at least") || s.contains("masked_var") || s.contains("group"),
                        "{}: unexpected error {s}", req["fn"]
                    );
                }
            }
        }
    }

    #[test]
    fn group_estimators_are_permutation_equivariant(c in case(), rot in 0usize..5) {
        let b = c.rows.len();
        let perm: Vec<usize> = (0..b).map(|i| (i + rot) % b).collect();
        let pc = Case {
            mask: perm.iter().map(|&i| c.mask[i].clone()).collect(),
            rows: perm.iter().map(|&i| c.rows[i]).collect(),
            index: perm.iter().map(|&i| c.index[i]).collect(),
            ..c.clone()
        };
        for f in [
            "verl.compute_grpo_outcome_advantage",
            "verl.compute_rloo_outcome_advantage",
            "verl.compute_rloo_vectorized_outcome_advantage",
            "verl.compute_opo_outcome_advantage",
            "verl.compute_gpg_outcome_advantage",
        ] {
            let req = |c: &Case| json!({"fn": f, "inputs": {"rewards": c.rows, "response_mask": c.mask, "index": c.index}});
            let a = eval(&req(&c)).unwrap();
            let p = eval(&req(&pc)).unwrap();
            for (k, &i) in perm.iter().enumerate() {
                let (x, y) = (&a["outputs"]["advantages"][i], &p["outputs"]["advantages"][k]);
                for s in 0..c.mask[0].len() {
                    let (u, w) = (x[s].as_f64().unwrap(), y[s].as_f64().unwrap());
                    prop_assert!((u - w).abs() <= 1e-9 * u.abs().max(1.0), "{f}: row {i}: {u} vs {w}");
                }
            }
        }
    }
}

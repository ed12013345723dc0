//! `compat::eval` on native registry names: params become the serde-tagged
//! config (`type` = fn). Where the native item and the anchor agree by design
//! (no singleton groups, PPO-clip with verl's clamp), the outputs must match.

use grpo_core::compat::eval::eval;
use serde_json::{Value, json};

fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter()
                .zip(y)
                .map(|(p, q)| max_abs_diff(p, q))
                .fold(0.0, f64::max)
        }
        _ => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs(),
    }
}

#[test]
fn native_grpo_equals_verl_loop_without_singletons() {
    let inputs = json!({
        "rewards": [1.0, 0.0, 0.5, 2.0, -1.0],
        "response_mask": [[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]],
        "index": ["a", "a", "a", 3, 3],
    });
    let native =
        eval(&json!({"fn": "grpo", "params": {"epsilon": 1e-6}, "inputs": inputs})).unwrap();
    let anchor =
        eval(&json!({"fn": "verl.compute_grpo_outcome_advantage", "inputs": inputs})).unwrap();
    let d = max_abs_diff(
        &native["outputs"]["advantages"],
        &anchor["outputs"]["advantages"],
    );
    assert!(d < 1e-12, "{d}");
    assert!(native["outputs"]["metrics"].is_object());
}

#[test]
fn native_ppo_clip_equals_verl_vanilla() {
    let inputs = json!({
        "old_log_prob": [[-1.0, -2.0, -0.5], [-0.3, -0.9, -2.0]],
        "log_prob": [[-0.7, -2.1, -0.45], [-0.35, -0.2, -1.9]],
        "advantages": [[0.7, 0.7, 0.7], [-0.4, -0.4, -0.4]],
        "response_mask": [[1, 1, 1], [1, 1, 0]],
    });
    let native = eval(&json!({"fn": "ppo_clip", "params": {
        "eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 3.0, "agg": {"type": "token_mean"}}, "inputs": inputs}))
    .unwrap();
    let anchor = eval(&json!({"fn": "verl.compute_policy_loss_vanilla",
        "params": {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28}, "inputs": inputs}))
    .unwrap();
    let (n, a) = (&native["outputs"], &anchor["outputs"]);
    assert!((n["loss"].as_f64().unwrap() - a["pg_loss"].as_f64().unwrap()).abs() < 1e-12);
    assert!(max_abs_diff(&n["grad_log_prob"], &a["grad_log_prob"]) < 1e-12);
}

#[test]
fn native_errors_name_the_field() {
    let e = eval(
        &json!({"fn": "grpo", "params": {"epsilon": 1e-6, "bogus": 1}, "inputs": {
        "rewards": [1.0, 0.0], "response_mask": [[1], [1]], "index": [0, 0]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("field params") && e.contains("bogus"), "{e}");
    let e = eval(&json!({"fn": "grpo", "params": {"type": "rloo"}, "inputs": {}}))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("field params.type"), "{e}");
    // default singleton policy of the native item is an error (the anchor gives R/(1+eps))
    let e = eval(&json!({"fn": "grpo", "inputs": {
        "rewards": [1.0, 0.0, 3.0], "response_mask": [[1], [1], [1]], "index": [0, 0, 1]}}))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("field inputs.index"), "{e}");
    // native batch field names are reported under the eval input names
    let e = eval(&json!({"fn": "remax", "inputs": {
        "rewards": [1.0, 0.0], "response_mask": [[1], [1]], "index": [0, 0], "reward_baselines": [0.5]}}))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("field inputs.reward_baselines"), "{e}");
}

#[test]
fn native_kl_aggregation_and_controller_match_the_verl_anchors() {
    let kl_in = json!({"log_prob": [[-1.0, -30.0, -0.5]], "ref_log_prob": [[24.0, -1.0, -0.9]],
        "response_mask": [[1, 1, 0]]});
    for (native, anchor) in [
        ("k1", "kl"),
        ("k2", "mse"),
        ("k3", "low_var_kl"),
        ("abs", "abs"),
        ("k3_plus", "k3+"),
    ] {
        let n = eval(&json!({"fn": native, "inputs": kl_in})).unwrap();
        let a = eval(
            &json!({"fn": "verl.kl_penalty", "params": {"kl_penalty": anchor}, "inputs": kl_in}),
        )
        .unwrap();
        assert!(
            max_abs_diff(&n["outputs"]["kl"], &a["outputs"]["kl"]) < 1e-12,
            "{native}"
        );
        let (g, h) = (
            &n["outputs"]["grad_log_prob_of_masked_sum"],
            &a["outputs"]["grad_log_prob_of_masked_sum"],
        );
        assert!(max_abs_diff(g, h) < 1e-12, "{native}");
    }
    let agg_in = json!({"loss_mat": [[1.0, 2.0, 9.0], [3.0, 4.0, 5.0]], "loss_mask": [[1, 1, 0], [1, 1, 1]]});
    let n = eval(
        &json!({"fn": "seq_mean_token_sum_norm", "params": {"normalizer": 7.0}, "inputs": agg_in}),
    )
    .unwrap();
    let a = eval(&json!({"fn": "verl.agg_loss",
        "params": {"loss_agg_mode": "seq-mean-token-sum-norm", "loss_scale_factor": 7.0}, "inputs": agg_in}))
    .unwrap();
    assert!((n["outputs"]["loss"].as_f64().unwrap() - 15.0 / 7.0).abs() < 1e-12);
    assert!(
        max_abs_diff(
            &n["outputs"]["grad_loss_mat"],
            &a["outputs"]["grad_loss_mat"]
        ) < 1e-15
    );
    let up = json!({"updates": [[0.3, 100], [0.05, 200], [0.1, 50]]});
    let n = eval(&json!({"fn": "adaptive", "params": {"init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 1000},
        "inputs": up}))
    .unwrap();
    let a = eval(&json!({"fn": "verl.AdaptiveKLController",
        "params": {"init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 1000}, "inputs": up}))
    .unwrap();
    let (x, y) = (
        &n["outputs"]["values_after_each_update"],
        &a["outputs"]["values_after_each_update"],
    );
    assert!(max_abs_diff(x, y) < 1e-15);
    let e = eval(&json!({"fn": "adaptive", "params": {"init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 1000},
        "inputs": {"updates": [[0.3, 1.5]]}}))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("field inputs.updates"), "{e}");
}

//! Known-answer tests: losses and gradients computed by hand from the formulas of
//! algorithms.md (committed in `tests/data/loss_known.json`).

use grpo_core::loss::{LossConfig, LossInputs};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn arr2(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (b, t) = (rows.len(), rows[0].len());
    Array2::from_shape_vec((b, t), rows.into_iter().flatten().collect()).unwrap()
}

#[test]
fn known_answers() {
    let text = include_str!("../data/loss_known.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let inp = &doc["inputs"];
    let lp = arr2(&inp["log_prob"]);
    let old = arr2(&inp["old_log_prob"]);
    let refp = arr2(&inp["ref_log_prob"]);
    let mask = arr2(&inp["response_mask"]);
    let adv = arr2(&inp["advantages"]);
    let index: Vec<usize> = serde_json::from_value(inp["index"].clone()).unwrap();
    let rewards: Array1<f64> =
        Array1::from(serde_json::from_value::<Vec<f64>>(inp["rewards"].clone()).unwrap());
    let inputs = LossInputs::new(lp.view(), old.view(), mask.view(), adv.view())
        .with_ref_log_prob(refp.view())
        .with_index(&index)
        .with_rewards(rewards.view());
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let cfg: LossConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let out = cfg.compute(&inputs, &mut rng).unwrap();
        let loss = case["expected"]["loss"].as_f64().unwrap();
        let grad = arr2(&case["expected"]["grad_log_prob"]);
        assert!(
            (out.loss - loss).abs() <= 1e-9 * (1.0 + loss.abs()),
            "{name}: loss {} expected {loss}",
            out.loss
        );
        for ((i, j), g) in grad.indexed_iter() {
            assert!(
                (out.grad_logp[[i, j]] - g).abs() <= 1e-9 * (1.0 + g.abs()),
                "{name}: grad[{i},{j}] {} expected {g}",
                out.grad_logp[[i, j]]
            );
        }
    }
}

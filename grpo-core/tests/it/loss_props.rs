//! Registry-driven property tests for every policy loss, modifier and aggregation:
//! each registered name parses from an example config and runs; finite-difference
//! gradients agree with the analytic ones (f64, relative error ≤ 1e-3, skipping
//! tokens at a kink); masked tokens get zero gradient; no NaN/inf for extreme but
//! finite inputs.

use grpo_core::loss::{LossConfig, LossInputs, LossOutput};
use grpo_core::registry::{self, Kind};
use ndarray::{Array1, Array2};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// A small but complete config for every loss registry name.
pub(crate) fn example(name: &str) -> Option<Value> {
    let tm = json!({"type": "token_mean"});
    let sm = json!({"type": "seq_mean_token_mean"});
    let ppo = json!({"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 3.0, "agg": tm});
    Some(match name {
        "ppo_clip" => ppo,
        "two_sided_clip" => {
            json!({"type": name, "eps_low": 0.2, "eps_high": 0.28, "delta": 1.5, "agg": tm})
        }
        "gspo" | "gspo_token" => json!({"type": name, "eps_low": 0.1, "eps_high": 0.15, "agg": sm}),
        "luspo" => json!({"type": name, "eps_low": 0.1, "eps_high": 0.15}),
        "cispo" => {
            json!({"type": name, "eps_low": 0.3, "eps_high": 0.2, "absolute_cap": false, "agg": tm})
        }
        "sapo" => json!({"type": name, "tau_pos": 1.0, "tau_neg": 1.05, "agg": sm}),
        "gmpo" => json!({"type": name, "eps_low": 0.2, "eps_high": 0.3}),
        "vespo" => {
            json!({"type": name, "k_pos": 2.0, "lambda_pos": 3.0, "k_neg": 3.0, "lambda_neg": 2.0, "agg": tm})
        }
        "clip_cov" => {
            json!({"type": name, "eps_low": 0.2, "clip_cov_ratio": 0.1, "clip_cov_lb": -5.0, "clip_cov_ub": 5.0, "agg": tm})
        }
        "kl_cov" => json!({"type": name, "kl_cov_ratio": 0.1, "ppo_kl_coef": 0.5, "agg": tm}),
        "reinforce" => {
            json!({"type": name, "is_threshold": 1.3, "agg": {"type": "seq_mean_token_sum"}})
        }
        "opmd_loss" => json!({"type": name, "tau": 1.0}),
        "rec_loss" => {
            json!({"type": name, "clip_mode": "ring", "weight": "importance_sampling", "regularizer": "k2", "reg_coef": 0.3})
        }
        "mdpo" => json!({"type": name, "t_k": 0.5, "agg": tm}),
        "r2vpo" => json!({"type": name, "eta": 0.7, "delta_v": 0.05, "agg": tm}),
        "reg_grpo" => json!({"type": name, "beta": 0.5}),
        "disco" => {
            json!({"type": name, "score": "l_ratio", "variant": "disco", "tau": 1.0, "delta": 1e-4, "beta": 10.0, "kl_type": "k3"})
        }
        "p3o" => json!({"type": name, "variant": "v1", "eps": 0.2}),
        "gtpo" => {
            json!({"type": name, "conflict_weight": 2.0, "entropy_max": 1.2, "entropy_coef": 0.1, "pad_id": 0})
        }
        "dagrpo_loss" => json!({"type": name, "tau_d": 0.2, "eps_low": 0.2, "agg": tm}),
        "rollout_correction" => {
            json!({"type": name, "level": "token", "mode": "truncate", "c_min": 0.8, "c_max": 1.2, "base": ppo})
        }
        "off_policy_mask" => json!({"type": name, "threshold": 0.0, "base": ppo}),
        "top_entropy_mask" => json!({"type": name, "quantile": 0.5, "base": ppo}),
        "capo_mask" => json!({"type": name, "fraction": 0.2, "base": ppo}),
        "kl_penalty" => {
            json!({"type": name, "coef": 0.1, "estimator": "k3", "agg": tm, "base": ppo})
        }
        "entropy_bonus" => json!({"type": name, "coef": 0.01, "agg": sm, "base": ppo}),
        "llds" => {
            json!({"type": name, "lambda": 0.2, "gate": "action", "threshold": 0.0, "base": ppo})
        }
        _ => return None,
    })
}

/// Extra configs that exercise options the examples do not.
pub(crate) fn variants() -> Vec<Value> {
    let tm = json!({"type": "token_mean"});
    let ppo = example("ppo_clip").unwrap();
    let mut v = vec![
        json!({"type": "cispo", "eps_high": 5.0, "absolute_cap": true, "agg": tm}),
        json!({"type": "rec_loss", "clip_mode": "one_side", "weight": "advantage", "regularizer": "forward_kl", "reg_coef": 0.1, "temp": 2.0}),
        json!({"type": "rec_loss", "clip_mode": "two_side", "weight": "none", "regularizer": "none"}),
        json!({"type": "disco", "score": "log_l", "variant": "disco_b", "tau": 10.0, "delta": 1e-4, "beta": 1e3, "kl_type": "kl"}),
        json!({"type": "disco", "score": "log_l", "variant": "disco", "tau": 10.0, "delta": -1.0, "beta": 1.0, "kl_type": "k3"}),
        json!({"type": "p3o", "variant": "v2", "eps": 0.2}),
        json!({"type": "rollout_correction", "level": "sequence", "mode": "mask", "c_max": 3.0, "base": ppo}),
        json!({"type": "rollout_correction", "level": "token", "mode": "seq_mask_tis", "c_min": 0.5, "c_max": 2.0, "base": example("gspo").unwrap()}),
        json!({"type": "capo_mask", "threshold": 0.5, "base": example("gtpo").unwrap()}),
        json!({"type": "llds", "lambda": 0.2, "gate": "response", "threshold": 0.0, "base": example("gspo_token").unwrap()}),
        json!({"type": "entropy_bonus", "coef": 0.05, "agg": tm, "base": {"type": "top_entropy_mask", "quantile": 0.3, "base": example("sapo").unwrap()}}),
    ];
    for est in [
        "k1",
        "k2",
        "k3_unclamped",
        "abs",
        "k1_plus",
        "k3_plus",
        "abs_plus",
        "k3_bias_corrected",
        "full",
    ] {
        v.push(json!({"type": "kl_penalty", "coef": 0.2, "estimator": est, "agg": {"type": "seq_mean_token_sum_norm", "normalizer": 7.0}, "base": ppo}));
    }
    for agg in [
        json!({"type": "token_mean"}),
        json!({"type": "seq_mean_token_mean"}),
        json!({"type": "seq_mean_token_sum"}),
        json!({"type": "seq_mean_token_sum_norm", "normalizer": 10.0}),
    ] {
        v.push(json!({"type": "ppo_clip", "eps_low": 0.2, "agg": agg}));
    }
    v
}

/// Every config the property tests run: one example per registered loss plus variants.
pub(crate) fn all_configs() -> Vec<(String, LossConfig)> {
    let mut out = Vec::new();
    for e in registry::all().into_iter().filter(|e| e.kind == Kind::Loss) {
        let v = example(e.name).unwrap_or_else(|| panic!("no example config for `{}`", e.name));
        let c: LossConfig = serde_json::from_value(v).unwrap();
        out.push((e.name.to_string(), c));
    }
    for v in variants() {
        let c: LossConfig = serde_json::from_value(v.clone()).unwrap();
        out.push((format!("variant {v}"), c));
    }
    out
}

/// Owned inputs with every optional field filled.
#[derive(Clone, Debug)]
pub(crate) struct Owned {
    pub logp: Array2<f64>,
    pub old: Array2<f64>,
    pub refp: Array2<f64>,
    pub roll: Array2<f64>,
    pub ent: Array2<f64>,
    pub mask: Array2<f64>,
    pub adv: Array2<f64>,
    pub index: Vec<usize>,
    pub rewards: Array1<f64>,
    pub scores: Array1<f64>,
    pub ids: Array2<i64>,
    pub inst: Array2<f64>,
    pub full: Array2<f64>,
    pub sg: Array2<f64>,
}

impl Owned {
    pub fn view(&self) -> LossInputs<'_> {
        LossInputs::new(
            self.logp.view(),
            self.old.view(),
            self.mask.view(),
            self.adv.view(),
        )
        .with_ref_log_prob(self.refp.view())
        .with_rollout_log_prob(self.roll.view())
        .with_entropy(self.ent.view())
        .with_index(&self.index)
        .with_rewards(self.rewards.view())
        .with_scores(self.scores.view())
        .with_token_ids(self.ids.view())
        .with_instability(self.inst.view())
        .with_full_kl(self.full.view())
        .with_stop_grad_log_prob(self.sg.view())
    }

    /// Random batch: 3 groups of 2 rows (B = 6), T = 6, ragged masks with an
    /// occasional hole, log-ratios of scale `spread`, row-constant or token-varying
    /// advantages, binary rewards.
    pub fn random(seed: u64, spread: f64, token_adv: bool, empty_row: bool) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let (b, t) = (6usize, 6usize);
        let mut mask = Array2::zeros((b, t));
        for i in 0..b {
            let len = r.random_range(2..=t);
            for j in 0..len {
                mask[[i, j]] = 1.0;
            }
            if len > 3 && r.random::<f64>() < 0.3 {
                mask[[i, 1]] = 0.0;
            }
        }
        if empty_row {
            mask.row_mut(5).fill(0.0);
        }
        let old = Array2::from_shape_fn((b, t), |_| -0.05 - 2.5 * r.random::<f64>());
        let logp = Array2::from_shape_fn((b, t), |(i, j)| {
            old[[i, j]] + spread * (2.0 * r.random::<f64>() - 1.0)
        });
        let refp = Array2::from_shape_fn((b, t), |(i, j)| {
            old[[i, j]] + 0.5 * (2.0 * r.random::<f64>() - 1.0)
        });
        let roll = Array2::from_shape_fn((b, t), |(i, j)| {
            old[[i, j]] + 0.3 * (2.0 * r.random::<f64>() - 1.0)
        });
        let ent = Array2::from_shape_fn((b, t), |_| 1.5 * r.random::<f64>());
        let rewards = Array1::from_shape_fn(b, |_| (r.random::<f64>() < 0.5) as u8 as f64);
        let row_a: Vec<f64> = (0..b).map(|_| 4.0 * r.random::<f64>() - 2.0).collect();
        let adv = Array2::from_shape_fn((b, t), |(i, _)| {
            if token_adv {
                4.0 * r.random::<f64>() - 2.0
            } else {
                row_a[i]
            }
        });
        let scores = Array1::from_shape_fn(b, |_| r.random::<f64>());
        // small vocabulary so that conflict tokens (GTPO) occur
        let ids = Array2::from_shape_fn((b, t), |_| r.random_range(1..3i64));
        let inst = Array2::from_shape_fn((b, t), |_| r.random::<f64>());
        let full = Array2::from_shape_fn((b, t), |_| 0.3 * r.random::<f64>());
        Owned {
            sg: logp.clone(),
            logp,
            old,
            refp,
            roll,
            ent,
            mask,
            adv,
            index: vec![0, 0, 1, 1, 2, 2],
            rewards,
            scores,
            ids,
            inst,
            full,
        }
    }
}

pub(crate) fn run(cfg: &LossConfig, o: &Owned) -> LossOutput {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    cfg.compute(&o.view(), &mut rng)
        .unwrap_or_else(|e| panic!("{cfg:?} failed: {e}"))
}

/// Finite-difference check of `grad_logp` (and `grad_entropy` when present).
/// Returns the number of tokens checked (kinks are skipped).
pub(crate) fn fd_check(name: &str, cfg: &LossConfig, o: &Owned) -> usize {
    let base = run(cfg, o);
    let h = 1e-6;
    let mut checked = 0;
    let (b, t) = o.mask.dim();
    let f = |o2: &Owned| run(cfg, o2).loss;
    for which in 0..2 {
        if which == 1 && base.grad_entropy.is_none() {
            break;
        }
        for i in 0..b {
            for j in 0..t {
                if o.mask[[i, j]] == 0.0 {
                    continue;
                }
                let bump = |d: f64| {
                    let mut o2 = o.clone();
                    if which == 0 {
                        o2.logp[[i, j]] += d;
                    } else {
                        o2.ent[[i, j]] += d;
                    }
                    f(&o2)
                };
                let (fp, fm, f0) = (bump(h), bump(-h), base.loss);
                let c = (fp - fm) / (2.0 * h);
                let one_p = (fp - f0) / h;
                let one_m = (f0 - fm) / h;
                if (one_p - one_m).abs() > 1e-4 * (1.0 + c.abs()) {
                    continue; // kink (clip boundary or indicator switch)
                }
                let g = if which == 0 {
                    base.grad_logp[[i, j]]
                } else {
                    base.grad_entropy.as_ref().unwrap()[[i, j]]
                };
                let err = (c - g).abs();
                assert!(
                    err <= 1e-3 * c.abs().max(g.abs()) + 1e-8,
                    "{name}: FD mismatch at ({i},{j}) [{}]: analytic {g}, numeric {c}",
                    if which == 0 { "logp" } else { "entropy" }
                );
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn every_loss_name_has_an_example_that_parses_and_runs() {
    let names: Vec<_> = registry::all()
        .into_iter()
        .filter(|e| e.kind == Kind::Loss)
        .collect();
    assert!(names.len() >= 28);
    let o = Owned::random(1, 0.3, false, false);
    for e in names {
        let v = example(e.name).unwrap_or_else(|| panic!("no example for {}", e.name));
        let c: LossConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.name(), e.name);
        // round trip through serde
        let back: LossConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let out = run(&c, &o);
        assert!(out.loss.is_finite(), "{}", e.name);
    }
}

#[test]
fn every_aggregation_name_parses() {
    use grpo_core::loss::Aggregation;
    for e in registry::all()
        .into_iter()
        .filter(|e| e.kind == Kind::Aggregation)
    {
        let v = if e.name == "seq_mean_token_sum_norm" {
            json!({"type": e.name, "normalizer": 4096.0})
        } else {
            json!({"type": e.name})
        };
        let a: Aggregation = serde_json::from_value(v).unwrap();
        assert_eq!(a.name(), e.name);
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let bad =
        json!({"type": "ppo_clip", "eps_low": 0.2, "agg": {"type": "token_mean"}, "epsilon": 0.3});
    assert!(serde_json::from_value::<LossConfig>(bad).is_err());
    let bad = json!({"type": "off_policy_mask", "threshold": 0.5, "base": {"type": "nope"}});
    assert!(serde_json::from_value::<LossConfig>(bad).is_err());
}

#[test]
fn registry_names_are_unique() {
    let all = registry::all();
    let mut names: Vec<_> = all.iter().map(|e| e.name).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(n, names.len(), "duplicate registry names");
}

#[test]
fn fd_gradients_every_loss_fixed_seeds() {
    let configs = all_configs();
    for (name, cfg) in &configs {
        let mut total = 0;
        for seed in 0..6u64 {
            let o = Owned::random(100 + seed, 0.35, seed % 2 == 1, seed == 4);
            total += fd_check(name, cfg, &o);
        }
        assert!(total > 0, "{name}: no token away from kinks was checked");
    }
}

fn assert_masked_zero(name: &str, o: &Owned, out: &LossOutput) {
    for ((i, j), m) in o.mask.indexed_iter() {
        if *m == 0.0 {
            assert_eq!(
                out.grad_logp[[i, j]],
                0.0,
                "{name}: grad on masked ({i},{j})"
            );
            if let Some(g) = &out.grad_entropy {
                assert_eq!(g[[i, j]], 0.0, "{name}: entropy grad on masked ({i},{j})");
            }
            if let Some(g) = &out.grad_full_kl {
                assert_eq!(g[[i, j]], 0.0, "{name}: full-KL grad on masked ({i},{j})");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fd_gradients_every_loss(seed in 0u64..1_000_000, spread in 0.01f64..0.8, token_adv: bool, empty: bool) {
        let o = Owned::random(seed, spread, token_adv, empty);
        for (name, cfg) in all_configs() {
            fd_check(&name, &cfg, &o);
        }
    }

    #[test]
    fn masked_tokens_get_zero_gradient(seed in 0u64..1_000_000, token_adv: bool) {
        let mut o = Owned::random(seed, 0.4, token_adv, true);
        // garbage (even NaN) outside the mask must not leak
        for ((i, j), m) in o.mask.clone().indexed_iter() {
            if *m == 0.0 {
                o.logp[[i, j]] = f64::NAN;
                o.old[[i, j]] = 1e300;
                o.adv[[i, j]] = f64::INFINITY;
                o.ent[[i, j]] = f64::NAN;
                o.sg[[i, j]] = f64::NAN;
            }
        }
        for (name, cfg) in all_configs() {
            let out = run(&cfg, &o);
            prop_assert!(out.loss.is_finite(), "{}", name);
            assert_masked_zero(&name, &o, &out);
        }
    }

    #[test]
    fn finite_for_extreme_finite_inputs(seed in 0u64..1_000_000) {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let mut o = Owned::random(seed, 0.3, true, false);
        o.logp.mapv_inplace(|_| -60.0 * r.random::<f64>());
        o.old.mapv_inplace(|_| -60.0 * r.random::<f64>());
        o.refp.mapv_inplace(|_| -60.0 * r.random::<f64>());
        o.roll.mapv_inplace(|_| -60.0 * r.random::<f64>());
        o.adv.mapv_inplace(|_| 2000.0 * r.random::<f64>() - 1000.0);
        o.ent.mapv_inplace(|_| 12.0 * r.random::<f64>());
        o.sg = o.logp.clone();
        for (name, cfg) in all_configs() {
            let out = run(&cfg, &o);
            prop_assert!(out.loss.is_finite(), "{}: loss {}", name, out.loss);
            prop_assert!(out.grad_logp.iter().all(|g| g.is_finite()), "{}", name);
            if let Some(g) = &out.grad_entropy {
                prop_assert!(g.iter().all(|g| g.is_finite()), "{}", name);
            }
        }
    }
}

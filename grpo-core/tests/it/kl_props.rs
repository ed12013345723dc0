//! KL estimators and controllers (algorithms.md §5): registry coverage, finite
//! differences, non-negativity, the on-policy gradient identities on an exactly
//! enumerated categorical policy, and controller invariants.

use grpo_core::kl::{KlController, KlControllerConfig, KlEstimator, full_distribution_kl};
use grpo_core::registry::{self, Kind};
use proptest::prelude::*;
use serde_json::json;

fn estimator(name: &str) -> KlEstimator {
    serde_json::from_value(json!(name)).unwrap()
}

fn controller_example(name: &str) -> serde_json::Value {
    match name {
        "fixed" => json!({"type": name, "kl_coef": 0.001}),
        "adaptive" => {
            json!({"type": name, "init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 10000.0})
        }
        "grpo_d" => {
            json!({"type": name, "schedule": "linear_warmup", "beta_min": 0.0, "beta_max": 0.04, "warmup_steps": 100, "total_steps": 1000})
        }
        "disco_constrained" => json!({"type": name, "beta": 1000.0, "delta": 1e-4}),
        other => panic!("no example for KL controller `{other}`"),
    }
}

#[test]
fn every_kl_registry_name_parses() {
    let est: Vec<_> = registry::all()
        .into_iter()
        .filter(|e| e.kind == Kind::Kl)
        .collect();
    assert_eq!(est.len(), KlEstimator::ALL.len());
    for e in est {
        assert_eq!(estimator(e.name).name(), e.name);
    }
    // verl aliases
    assert_eq!(estimator("low_var_kl"), KlEstimator::K3);
    assert_eq!(estimator("mse"), KlEstimator::K2);
    assert_eq!(estimator("kl"), KlEstimator::K1);
    for e in registry::all()
        .into_iter()
        .filter(|e| e.kind == Kind::KlController)
    {
        let c: KlControllerConfig = serde_json::from_value(controller_example(e.name)).unwrap();
        let mut k = KlController::new(c).unwrap();
        assert!(k.update(0.05, 1).unwrap().is_finite());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn fd_and_signs(l in -30.0f64..0.0, r in -30.0f64..0.0, o in -30.0f64..0.0) {
        for est in KlEstimator::ALL {
            let Some((v, g)) = est.value_grad(l, r, o) else {
                prop_assert_eq!(est, KlEstimator::Full);
                continue;
            };
            prop_assert!(v.is_finite() && g.is_finite());
            let h = 1e-6;
            let f = |x: f64| est.value_grad_sg(x, l, r, o).unwrap().0;
            let (fp, fm) = (f(l + h), f(l - h));
            let c = (fp - fm) / (2.0 * h);
            let kink = ((fp - v) / h - (v - fm) / h).abs() > 1e-4 * (1.0 + c.abs());
            if !kink {
                // tolerance: 1e-3 relative plus the floating-point roundoff of the difference quotient
                let roundoff = 8.0 * f64::EPSILON * v.abs().max(1.0) / h;
                prop_assert!((c - g).abs() <= 1e-3 * c.abs().max(g.abs()) + 1e-7 + roundoff,
                    "{:?}: analytic {} numeric {}", est, g, c);
            }
            if matches!(est, KlEstimator::K2 | KlEstimator::K3 | KlEstimator::K3Unclamped | KlEstimator::K3Plus | KlEstimator::Abs) {
                prop_assert!(v >= 0.0, "{:?} negative: {}", est, v);
            }
        }
    }

    #[test]
    fn zero_at_reference(l in -30.0f64..0.0, o in -30.0f64..0.0) {
        for est in KlEstimator::ALL {
            if let Some((v, g)) = est.value_grad(l, l, o) {
                prop_assert!(v.abs() < 1e-12, "{:?}", est);
                let expect = if est == KlEstimator::K1 { 1.0 } else { 0.0 };
                prop_assert!((g - expect).abs() < 1e-12, "{:?}", est);
            }
        }
    }

    /// §5: on-policy, E_π[∇k1] = 0; E_π[∇k2] = ∇ KL(π‖π_ref) (the full-distribution
    /// gradient); E_π[∇k3] = ∇ KL(π_ref‖π) = π − π_ref (gradients w.r.t. the logits).
    #[test]
    fn categorical_gradient_identities(z in prop::collection::vec(-3.0f64..3.0, 5), zr in prop::collection::vec(-3.0f64..3.0, 5)) {
        let lsm = |z: &[f64]| {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            z.iter().map(|x| x - s).collect::<Vec<f64>>()
        };
        let lp = lsm(&z);
        let lr = lsm(&zr);
        let p: Vec<f64> = lp.iter().map(|x| x.exp()).collect();
        let expected_grad = |est: KlEstimator| {
            let mut g = vec![0.0; 5];
            for y in 0..5 {
                let (_, d) = est.value_grad(lp[y], lr[y], lp[y]).unwrap();
                for v in 0..5 {
                    let dl_dz = if v == y { 1.0 } else { 0.0 } - p[v];
                    g[v] += p[y] * d * dl_dz;
                }
            }
            g
        };
        let g1 = expected_grad(KlEstimator::K1);
        prop_assert!(g1.iter().all(|x| x.abs() < 1e-12));
        let (_, full) = full_distribution_kl(&z, &lr).unwrap();
        let g2 = expected_grad(KlEstimator::K2);
        for v in 0..5 {
            prop_assert!((g2[v] - full[v]).abs() < 1e-12);
        }
        let g3 = expected_grad(KlEstimator::K3Unclamped);
        for v in 0..5 {
            prop_assert!((g3[v] - (p[v] - lr[v].exp())).abs() < 1e-12);
        }
        // full-distribution KL: FD w.r.t. logits
        let (kl, g) = full_distribution_kl(&z, &lr).unwrap();
        prop_assert!(kl >= -1e-15);
        for v in 0..5 {
            let mut zp = z.clone();
            zp[v] += 1e-6;
            let mut zm = z.clone();
            zm[v] -= 1e-6;
            let c = (full_distribution_kl(&zp, &lr).unwrap().0 - full_distribution_kl(&zm, &lr).unwrap().0) / 2e-6;
            prop_assert!((c - g[v]).abs() < 1e-6);
        }
    }

    #[test]
    fn adaptive_controller_invariants(kl in 0.0f64..2.0, n in 1u64..5000) {
        let cfg = KlControllerConfig::Adaptive { init_kl_coef: 0.2, target_kl: 0.1, horizon: 10000.0 };
        let mut c = KlController::new(cfg.clone()).unwrap();
        let before = c.value();
        let after = c.update(kl, n).unwrap();
        prop_assert!(after > 0.0);
        let bound = 0.2 * n as f64 / 10000.0;
        prop_assert!((after / before - 1.0).abs() <= bound + 1e-15);
        let mut c = KlController::new(cfg).unwrap();
        prop_assert_eq!(c.update(0.1, n).unwrap(), 0.2);
        // monotone in the sign of KL − target
        let mut c = KlController::new(KlControllerConfig::Adaptive { init_kl_coef: 0.2, target_kl: 0.1, horizon: 10000.0 }).unwrap();
        let v = c.update(kl, n).unwrap();
        if kl > 0.1 { prop_assert!(v >= 0.2); } else { prop_assert!(v <= 0.2); }
    }
}

#[test]
fn grpo_d_schedules_are_monotone_and_reach_max() {
    for schedule in ["linear_warmup", "cosine"] {
        let cfg: KlControllerConfig = serde_json::from_value(json!({"type": "grpo_d", "schedule": schedule, "beta_min": 0.001, "beta_max": 0.04, "warmup_steps": 50, "total_steps": 100})).unwrap();
        let mut c = KlController::new(cfg).unwrap();
        assert_eq!(c.value(), 0.001);
        let mut prev = c.value();
        for _ in 0..150 {
            let v = c.update(0.0, 1).unwrap();
            assert!(v >= prev - 1e-15);
            prev = v;
        }
        assert!((prev - 0.04).abs() < 1e-12);
    }
}

#[test]
fn disco_constrained_controller() {
    let mut c = KlController::new(KlControllerConfig::DiscoConstrained {
        beta: 1000.0,
        delta: 1e-4,
    })
    .unwrap();
    assert_eq!(c.update(5e-5, 1).unwrap(), 0.0);
    assert!((c.update(3e-4, 1).unwrap() - 0.2).abs() < 1e-12);
}

#[test]
fn controller_rejects_bad_params() {
    assert!(
        KlController::new(KlControllerConfig::Adaptive {
            init_kl_coef: 0.2,
            target_kl: 0.0,
            horizon: 1.0
        })
        .is_err()
    );
    assert!(
        serde_json::from_value::<KlControllerConfig>(
            json!({"type": "fixed", "kl_coef": 0.1, "extra": 1})
        )
        .is_err()
    );
}

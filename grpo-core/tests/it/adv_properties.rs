//! Property tests for every registered advantage estimator, driven by the
//! registry: each name has an example config that parses and runs, outputs are
//! finite and zero outside the mask for any finite input (zero-variance groups
//! included), rows permute with the batch, and the invariants and equivalences
//! of algorithms.md §3 and §9 hold.

use std::collections::BTreeSet;

use grpo_core::advantage::{
    self, AdvantageConfig, AdvantageEstimator, AdvantageState, riskpo, spo,
};
use grpo_core::batch::ScoredBatch;
use grpo_core::registry::{self, Kind};
use ndarray::Array1;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::adv_support::*;

fn cfg(v: serde_json::Value) -> AdvantageConfig {
    serde_json::from_value(v).unwrap()
}

fn run(c: &AdvantageConfig, b: &ScoredBatch) -> advantage::AdvantageOutput {
    advantage::compute(c, b, &mut ChaCha8Rng::seed_from_u64(7)).unwrap()
}

fn rows_of(c: serde_json::Value, b: &ScoredBatch) -> Vec<f64> {
    per_row(&run(&cfg(c), b).advantages)
}

fn with_rewards(b: &ScoredBatch, r: Vec<f64>) -> ScoredBatch {
    let mut b = b.clone();
    b.reward = Array1::from(r);
    b
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())))
}

/// Variant names as serde lists them when it rejects an unknown `type`.
fn serde_variant_names() -> BTreeSet<String> {
    let err = serde_json::from_value::<AdvantageConfig>(json!({"type": "__nope__"}))
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of")
        .nth(1)
        .expect("serde lists the variants");
    list.split(',')
        .map(|s| {
            s.trim()
                .trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_string()
        })
        .map(|s| s.split('`').next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn registry_examples_and_variants_agree() {
    let reg: BTreeSet<String> = advantage::registry()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    let ex: BTreeSet<String> = advantage_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let variants = serde_variant_names();
    assert_eq!(
        reg, ex,
        "every registered estimator needs an example config (and vice versa)"
    );
    assert_eq!(
        reg, variants,
        "every AdvantageConfig variant must be registered"
    );
    for (name, v) in advantage_examples() {
        let c = cfg(v);
        assert_eq!(c.name(), name);
        assert!(
            advantage::registry()
                .iter()
                .all(|e| e.kind == Kind::Advantage)
        );
    }
}

#[test]
fn registry_names_are_unique_across_families() {
    let all = registry::all();
    let mut seen = BTreeSet::new();
    for e in &all {
        assert!(seen.insert(e.name), "duplicate registry name `{}`", e.name);
    }
}

#[test]
fn configs_parse_from_toml_and_reject_unknown_fields() {
    let c: AdvantageConfig =
        toml::from_str("type = \"grpo\"\nepsilon = 1e-4\nsingleton = \"anchor\"\n").unwrap();
    assert_eq!(c.name(), "grpo");
    let t: toml::Table =
        toml::from_str("[advantage]\ntype = \"risk_po\"\nbundle_size = 3\n").unwrap();
    let c: AdvantageConfig = t["advantage"].clone().try_into().unwrap();
    assert_eq!(c.name(), "risk_po");
    assert!(
        serde_json::from_value::<AdvantageConfig>(json!({"type": "grpo", "epsilonn": 1.0}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<AdvantageConfig>(json!({"type": "hrpo"})).is_err(),
        "omega has no default"
    );
    assert!(
        serde_json::from_value::<AdvantageConfig>(json!({"type": "brpo", "prior": "uniform"}))
            .is_err()
    );
    assert!(AdvantageEstimator::new(cfg(json!({"type": "grpo", "epsilon": -1.0}))).is_err());
    // serialisation round trip
    for (_, v) in advantage_examples() {
        let c = cfg(v);
        let back: AdvantageConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn missing_inputs_are_named_errors() {
    let b = ScoredBatch::from_outcome(&[1.0, 0.0], &[0, 0], &[2, 2]).unwrap();
    for (name, v) in advantage_examples() {
        let r = advantage::compute(&cfg(v), &b, &mut ChaCha8Rng::seed_from_u64(0));
        let needs_extra = [
            "remax",
            "gae",
            "oblr",
            "optimal_token_baseline",
            "gdpo",
            "spo",
            "unlikeliness",
            "brpo",
            "gigpo",
            "salt",
            "hrpo",
        ];
        if needs_extra.contains(&name) {
            let e = r.expect_err(name);
            assert!(e.to_string().contains("needs input"), "{name}: {e}");
        } else {
            let o = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(o.advantages.iter().all(|x| x.is_finite()));
        }
    }
}

#[test]
fn singleton_groups_error_by_default() {
    let b = build(&BatchSpec {
        group_sizes: vec![1, 3],
        t: 3,
        seed: 1,
        binary: false,
        constant_groups: vec![false, false],
    });
    for name in [
        "grpo",
        "dr_grpo",
        "grpo_batch_std",
        "rloo",
        "opo",
        "gpg",
        "asymre",
        "unlikeliness",
        "salt",
        "hrpo",
        "tempsamp",
        "gigpo",
    ] {
        let v = advantage_examples()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let e = advantage::compute(&cfg(v), &b, &mut ChaCha8Rng::seed_from_u64(0)).unwrap_err();
        assert!(
            matches!(e, grpo_core::CoreError::GroupTooSmall { size: 1, .. }),
            "{name}: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_estimator_is_finite_and_masked(spec in batch_spec()) {
        let b = build(&spec);
        for (name, v) in advantage_examples() {
            let o = advantage::compute(&cfg(v), &b, &mut ChaCha8Rng::seed_from_u64(spec.seed))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            prop_assert_eq!(o.advantages.dim(), b.mask.dim());
            prop_assert_eq!(o.returns.dim(), b.mask.dim());
            for ((i, t), a) in o.advantages.indexed_iter() {
                prop_assert!(a.is_finite(), "{} non-finite at {},{}", name, i, t);
                prop_assert!(o.returns[[i, t]].is_finite());
                if b.mask[[i, t]] == 0.0 {
                    prop_assert_eq!(*a, 0.0, "{} non-zero outside mask", name);
                    prop_assert_eq!(o.returns[[i, t]], 0.0);
                }
            }
            for (k, m) in &o.metrics {
                prop_assert!(m.is_finite(), "{} metric {}", name, k);
            }
        }
    }

    #[test]
    fn every_estimator_is_permutation_equivariant(spec in batch_spec(), perm_seed in any::<u64>()) {
        let b = build(&spec);
        let mut perm: Vec<usize> = (0..b.rows()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(perm_seed);
        for j in (1..perm.len()).rev() {
            let k = rand::Rng::random_range(&mut rng, 0..=j);
            perm.swap(j, k);
        }
        let pb = b.select_rows(&perm).unwrap();
        for (name, v) in advantage_examples() {
            if ORDER_DEPENDENT.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let c = cfg(v);
            let o = run(&c, &b).advantages;
            let po = run(&c, &pb).advantages;
            for (new, &old) in perm.iter().enumerate() {
                let x = o.row(old).to_vec();
                let y = po.row(new).to_vec();
                prop_assert!(close(&x, &y, 1e-9), "{}: row {} {:?} vs {:?}", name, old, x, y);
            }
        }
    }

    #[test]
    fn grpo_invariants(spec in batch_spec(), a in 0.1f64..10.0, s in -5.0f64..5.0) {
        let b = build(&spec);
        let r = b.reward.to_vec();
        let g = per_row(&run(&cfg(json!({"type": "grpo", "epsilon": 0.0})), &b).advantages);
        for (k, rows) in b.groups().rows.iter().enumerate() {
            let sum: f64 = rows.iter().map(|&i| g[i]).sum();
            prop_assert!(sum.abs() < 1e-9, "group {} sum {}", k, sum);
            let vals: Vec<f64> = rows.iter().map(|&i| r[i]).collect();
            let sq: f64 = rows.iter().map(|&i| g[i] * g[i]).sum();
            if vals.iter().any(|v| *v != vals[0]) {
                prop_assert!((sq - (rows.len() as f64 - 1.0)).abs() < 1e-8, "Σ A² = n − 1");
            } else {
                prop_assert!(rows.iter().all(|&i| g[i] == 0.0), "zero-variance group ⇒ A = 0 exactly");
            }
        }
        // affine invariance (ε = 0)
        let ga = per_row(&run(&cfg(json!({"type": "grpo", "epsilon": 0.0})), &with_rewards(&b, r.iter().map(|x| a * x + s).collect())).advantages);
        prop_assert!(close(&g, &ga, 1e-7));
        // Dr.GRPO: shift invariant, scale equivariant; RLOO = n/(n−1) Dr.GRPO
        let d = rows_of(json!({"type": "dr_grpo"}), &b);
        let ds = rows_of(json!({"type": "dr_grpo"}), &with_rewards(&b, r.iter().map(|x| a * x + s).collect()));
        prop_assert!(close(&ds, &d.iter().map(|x| a * x).collect::<Vec<_>>(), 1e-9));
        let l = rows_of(json!({"type": "rloo"}), &b);
        for rows in b.groups().rows {
            let n = rows.len() as f64;
            for &i in &rows {
                prop_assert!((l[i] - n / (n - 1.0) * d[i]).abs() < 1e-9);
            }
            for &i in &rows {
                prop_assert!((l[i] - (r[i] - rows.iter().filter(|&&j| j != i).map(|&j| r[j]).sum::<f64>() / (n - 1.0))).abs() < 1e-9);
            }
        }
        // OPMD-mean ≡ Dr.GRPO; OBLR(length) ≡ OPO; AsymRE group sum = −n δ
        prop_assert!(close(&rows_of(json!({"type": "opmd", "baseline": "mean"}), &b), &d, 1e-12), "equivalence failed");
        prop_assert!(close(&rows_of(json!({"type": "oblr", "weight": "length"}), &b), &rows_of(json!({"type": "opo"}), &b), 1e-12), "equivalence failed");
        let asy = rows_of(json!({"type": "asymre", "delta_shift": -0.1}), &b);
        for (k, sum) in group_sums(&b, &asy).iter().enumerate() {
            let n = b.groups().rows[k].len() as f64;
            prop_assert!((sum - 0.1 * n).abs() < 1e-9);
        }
        // batch-std: group sums 0; single group → GRPO with the same ε
        let bs = rows_of(json!({"type": "grpo_batch_std"}), &b);
        prop_assert!(group_sums(&b, &bs).iter().all(|s| s.abs() < 1e-9));
        let first = b.select_rows(&b.groups().rows[0]).unwrap();
        prop_assert!(close(&rows_of(json!({"type": "grpo_batch_std", "epsilon": 1e-4}), &first), &rows_of(json!({"type": "grpo", "epsilon": 1e-4}), &first), 1e-12), "equivalence failed");
        // unlikeliness with β = 0 is GRPO; tempsamp with huge scales is GRPO
        prop_assert!(close(&rows_of(json!({"type": "unlikeliness", "rank_penalty": 0.0}), &b), &rows_of(json!({"type": "grpo"}), &b), 1e-12), "equivalence failed");
        prop_assert!(close(&rows_of(json!({"type": "tempsamp", "s_pos": 1e6, "s_neg": 1e6}), &b), &rows_of(json!({"type": "grpo"}), &b), 1e-6), "equivalence failed");
    }

    #[test]
    fn grpo_pairs_match_the_pairwise_formula(r0 in -3.0f64..3.0, r1 in -3.0f64..3.0) {
        let b = ScoredBatch::from_outcome(&[r0, r1], &[0, 0], &[1, 1]).unwrap();
        let g = rows_of(json!({"type": "grpo", "epsilon": 0.0}), &b);
        let expect = if r0 == r1 { 0.0 } else { (r0 - r1).signum() * std::f64::consts::FRAC_1_SQRT_2 };
        prop_assert!((g[0] - expect).abs() < 1e-9 && (g[1] + expect).abs() < 1e-9);
        // RLOO with n = 2 is the raw difference
        let l = rows_of(json!({"type": "rloo"}), &b);
        prop_assert!((l[0] - (r0 - r1)).abs() < 1e-12);
    }

    #[test]
    fn baseline_family_invariants(spec in batch_spec(), a in 0.1f64..10.0) {
        let b = build(&spec);
        let r = b.reward.to_vec();
        let lens = b.lengths().to_vec();
        // OPO: Σ L A = 0 per group; equals Dr.GRPO with equal lengths
        let o = rows_of(json!({"type": "opo"}), &b);
        for rows in b.groups().rows {
            let s: f64 = rows.iter().map(|&i| lens[i] * o[i]).sum();
            prop_assert!(s.abs() < 1e-9);
        }
        let eq = ScoredBatch::from_outcome(&r, &b.group, &vec![2; r.len()]).unwrap();
        prop_assert!(close(&rows_of(json!({"type": "opo"}), &eq), &rows_of(json!({"type": "dr_grpo"}), &eq), 1e-12), "equivalence failed");
        // GPG: group sums 0, A(aR) = a A(R)
        let gp = rows_of(json!({"type": "gpg"}), &b);
        prop_assert!(group_sums(&b, &gp).iter().all(|s| s.abs() < 1e-9));
        let gpa = rows_of(json!({"type": "gpg"}), &with_rewards(&b, r.iter().map(|x| a * x).collect()));
        prop_assert!(close(&gpa, &gp.iter().map(|x| a * x).collect::<Vec<_>>(), 1e-9));
        // pass@k: at most one non-zero per group, non-negative
        let pk = rows_of(json!({"type": "grpo_passk"}), &b);
        for rows in b.groups().rows {
            prop_assert!(rows.iter().filter(|&&i| pk[i] != 0.0).count() <= 1);
            prop_assert!(rows.iter().all(|&i| pk[i] >= 0.0));
        }
        // OPMD logavgexp: τ → ∞ gives the mean, τ → 0 the max
        let big = rows_of(json!({"type": "opmd", "baseline": "logavgexp", "tau": 1e7}), &b);
        prop_assert!(close(&big, &rows_of(json!({"type": "dr_grpo"}), &b), 1e-5), "equivalence failed");
        let small = rows_of(json!({"type": "opmd", "baseline": "logavgexp", "tau": 1e-4}), &b);
        for rows in b.groups().rows {
            let mx = rows.iter().map(|&i| r[i]).fold(f64::NEG_INFINITY, f64::max);
            for &i in &rows {
                prop_assert!((small[i] - (r[i] - mx)).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn whitening_estimators_have_zero_token_mean(spec in batch_spec()) {
        let b = build(&spec);
        for v in [json!({"type": "reinforce_plus_plus"}), json!({"type": "reinforce_plus_plus_baseline"}), json!({"type": "gae"})] {
            let o = run(&cfg(v), &b).advantages;
            let s: f64 = (&o * &b.mask).sum();
            prop_assert!(s.abs() < 1e-6 * b.mask.sum(), "Σ m A = {}", s);
        }
    }

    #[test]
    fn otb_baseline_is_weighted_mean(spec in batch_spec(), holes in prop::collection::vec(any::<bool>(), 64)) {
        let b = build(&spec);
        let lp = b.old_log_prob.clone().unwrap();
        let s2 = b.sum_sq_prob.clone().unwrap();
        let iw = b.is_weight.clone().unwrap();
        let w = |b: &ScoredBatch, i: usize, k: usize| {
            b.mask[[i, k]] * (1.0 - 2.0 * lp[[i, k]].exp() + s2[[i, k]]) * iw[[i, k]] * iw[[i, k]]
        };
        // position alignment: Σ_i W m A = 0 at every position
        let o = run(&cfg(json!({"type": "optimal_token_baseline"})), &b);
        for rows in b.groups().rows {
            for t in 0..b.cols() {
                let (mut s, mut wsum) = (0.0, 0.0);
                for &i in &rows {
                    let cw: f64 = (0..=t).map(|k| w(&b, i, k)).sum();
                    s += cw * b.mask[[i, t]] * o.advantages[[i, t]];
                    wsum += cw * b.mask[[i, t]];
                }
                prop_assert!(s.abs() <= 1e-6 * (1.0 + wsum), "t={} Σ W m A = {}", t, s);
            }
        }
        // right-padded masks: valid-index alignment equals position alignment
        let v = run(&cfg(json!({"type": "optimal_token_baseline", "align": "valid_index"})), &b);
        let x: Vec<f64> = o.advantages.iter().copied().collect();
        let y: Vec<f64> = v.advantages.iter().copied().collect();
        prop_assert!(close(&x, &y, 1e-12), "valid_index differs on contiguous masks");
        // masks with holes (observation tokens): the sum vanishes per valid-token index
        let mut h = b.clone();
        let mut k = 0;
        for i in 0..h.rows() {
            for t in 1..h.cols() {
                if holes[k % holes.len()] {
                    h.mask[[i, t]] = 0.0;
                }
                k += 1;
            }
        }
        let v = run(&cfg(json!({"type": "optimal_token_baseline", "align": "valid_index"})), &h);
        for rows in h.groups().rows {
            let mut per_slot = std::collections::BTreeMap::<usize, (f64, f64)>::new();
            for &i in &rows {
                let mut cw = 0.0;
                let mut idx = 0;
                for t in 0..h.cols() {
                    cw += w(&h, i, t);
                    if h.mask[[i, t]] != 0.0 {
                        let e = per_slot.entry(idx).or_default();
                        e.0 += cw * v.advantages[[i, t]];
                        e.1 += cw;
                        idx += 1;
                    }
                }
            }
            for (slot, (s, wsum)) in per_slot {
                prop_assert!(s.abs() <= 1e-6 * (1.0 + wsum), "slot {} Σ W A = {}", slot, s);
            }
        }
    }

    #[test]
    fn bnpo_invariants(spec in batch_spec()) {
        let b = build(&spec);
        let a = rows_of(json!({"type": "bnpo"}), &b);
        prop_assert!(group_sums(&b, &a).iter().all(|s| s.abs() < 1e-6 * (1.0 + a.iter().map(|x| x.abs()).sum::<f64>())));
        // symmetry: R → 1 − R flips the sign
        let f = rows_of(json!({"type": "bnpo"}), &with_rewards(&b, b.reward.iter().map(|x| 1.0 - x).collect()));
        prop_assert!(close(&f, &a.iter().map(|x| -x).collect::<Vec<_>>(), 1e-9));
    }

    #[test]
    fn gdpo_invariants(spec in batch_spec(), a1 in 0.1f64..10.0, b1 in -3.0f64..3.0, a2 in 0.1f64..10.0) {
        let b = build(&spec);
        let g = rows_of(json!({"type": "gdpo", "epsilon": 0.0, "singleton": "zero"}), &b);
        let mut t = b.clone();
        t.components[0].values.mapv_inplace(|x| a1 * x + b1);
        t.components[1].values.mapv_inplace(|x| a2 * x);
        let gt = rows_of(json!({"type": "gdpo", "epsilon": 0.0, "singleton": "zero"}), &t);
        // the weighted sum S must not be (numerically) constant, else its batch
        // normalisation amplifies rounding noise
        let mut s = vec![0.0; b.rows()];
        for comp in &b.components {
            let a = rows_of(json!({"type": "grpo", "epsilon": 0.0, "singleton": "zero"}), &with_rewards(&b, comp.values.to_vec()));
            for (x, y) in s.iter_mut().zip(a) { *x += y; }
        }
        prop_assume!(s.iter().fold(0.0f64, |m, x| m.max((x - s[0]).abs())) > 1e-6);
        prop_assert!(close(&g, &gt, 1e-6), "affine invariance per component");
        let m: f64 = g.iter().sum::<f64>() / g.len() as f64;
        prop_assert!(m.abs() < 1e-9);
    }

    #[test]
    fn step_estimators_reduce_to_grpo(spec in batch_spec()) {
        let b = build(&spec);
        // GiGPO with ω = 0 and mean_norm is Dr.GRPO on every token
        let gi = run(&cfg(json!({"type": "gigpo", "gamma": 0.9, "step_advantage_w": 0.0})), &b).advantages;
        let dr = run(&cfg(json!({"type": "dr_grpo"})), &b).advantages;
        prop_assert!(close(&gi.iter().copied().collect::<Vec<_>>(), &dr.iter().copied().collect::<Vec<_>>(), 1e-12));
        // HRPO with ω = 0 is GRPO
        let h = run(&cfg(json!({"type": "hrpo", "omega": 0.0})), &b).advantages;
        let g = run(&cfg(json!({"type": "grpo"})), &b).advantages;
        prop_assert!(close(&h.iter().copied().collect::<Vec<_>>(), &g.iter().copied().collect::<Vec<_>>(), 1e-12));
        // SALT with unique (state, action) per step is GRPO
        let mut u = b.clone();
        let mut k = 0;
        for row in u.steps.as_mut().unwrap() {
            for s in row {
                s.state = format!("unique-{k}");
                k += 1;
            }
        }
        let sa = run(&cfg(json!({"type": "salt"})), &u).advantages;
        prop_assert!(close(&sa.iter().copied().collect::<Vec<_>>(), &g.iter().copied().collect::<Vec<_>>(), 1e-12));
        // GiGPO step groups sum to zero: put every step in one state per group
        let mut one = b.clone();
        for row in one.steps.as_mut().unwrap() {
            for s in row {
                s.state = "same".into();
            }
        }
        let only_step = run(&cfg(json!({"type": "gigpo", "gamma": 0.9, "step_advantage_w": 1.0})), &one);
        let ep = rows_of(json!({"type": "dr_grpo"}), &one);
        for rows in one.groups().rows {
            let mut sum = 0.0;
            for &i in &rows {
                for s in &one.steps.as_ref().unwrap()[i] {
                    if s.end > s.start {
                        sum += only_step.advantages[[i, s.start]] - ep[i];
                    }
                }
            }
            prop_assert!(sum.abs() < 1e-9, "step-group sum {}", sum);
        }
    }

    #[test]
    fn brpo_reductions(spec in batch_spec(), c in 0.0f64..1.0) {
        let b = build(&spec);
        // constant scores ⇒ A = 0 (brpo, v2only; v1only has no baseline at s = 0)
        let mut k = b.clone();
        for r in k.budgets.as_mut().unwrap() {
            r.scores = vec![c; 3];
        }
        for v in ["brpo", "v2only"] {
            let o = run(&cfg(json!({"type": "brpo", "prior": "uniform", "variant": v})), &k).advantages;
            prop_assert!(o.iter().all(|x| x.abs() < 1e-12), "{}", v);
        }
        // S = 1 ⇒ Dr.GRPO on the final score
        let mut s1 = b.clone();
        let lens = b.lengths();
        for (i, r) in s1.budgets.as_mut().unwrap().iter_mut().enumerate() {
            r.scores = vec![r.scores[2]];
            r.segment_ends = vec![lens[i] as usize];
        }
        s1.reward = Array1::from(s1.budgets.as_ref().unwrap().iter().map(|r| r.scores[0]).collect::<Vec<_>>());
        let o = run(&cfg(json!({"type": "brpo", "prior": "uniform", "variant": "brpo"})), &s1).advantages;
        let d = run(&cfg(json!({"type": "dr_grpo"})), &s1).advantages;
        prop_assert!(close(&o.iter().copied().collect::<Vec<_>>(), &d.iter().copied().collect::<Vec<_>>(), 1e-12));
    }

    #[test]
    fn spo_normalises_and_tracks(spec in batch_spec(), target in 0.0f64..1.0) {
        let b = build(&spec);
        let c = cfg(json!({"type": "spo"}));
        let mut est = AdvantageEstimator::new(c.clone()).unwrap();
        let a = per_row(&est.compute(&b, &mut ChaCha8Rng::seed_from_u64(0)).unwrap().advantages);
        let m = a.iter().sum::<f64>() / a.len() as f64;
        prop_assert!(m.abs() < 1e-9);
        // repeated constant reward: p̂ approaches it monotonically
        let mut prev = (0.5f64 - target).abs();
        for step in 0..30 {
            est.spo_update(&[spo::SpoUpdate { key: "k".into(), reward: target, distance: Some(0.01 * step as f64) }]).unwrap();
            let AdvantageState::Spo(s) = est.state() else { panic!() };
            let d = (s.baseline("k") - target).abs();
            prop_assert!(d <= prev + 1e-12);
            prev = d;
        }
        prop_assert!(prev < 0.1);
        // the state round-trips exactly
        let text = serde_json::to_string(est.state()).unwrap();
        let back: AdvantageState = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, est.state());
        let restored = AdvantageEstimator::with_state(c, back).unwrap();
        prop_assert_eq!(restored, est);
    }

    #[test]
    fn riskpo_rvar_shape(z in -5.0f64..5.0, lo in -3.0f64..0.0, width in 0.0f64..3.0) {
        let c: riskpo::RiskPoConfig = serde_json::from_value(json!({"mixing": false})).unwrap();
        let hi = lo + width;
        let ar = riskpo::paper_advantage(&c, z, lo, hi);
        let d = c.alpha_hi - c.alpha_lo + 1e-6;
        prop_assert!(ar <= 1e-12 && ar >= (lo - hi) / d - 1e-12);
        if z >= hi { prop_assert!(ar.abs() < 1e-12); }
        if z <= lo { prop_assert!((ar - (lo - hi) / d).abs() < 1e-12); }
        let ar2 = riskpo::paper_advantage(&c, z + 0.1, lo, hi);
        prop_assert!(ar2 >= ar - 1e-12, "non-decreasing in Z");
        let mixed: riskpo::RiskPoConfig = serde_json::from_value(json!({})).unwrap();
        let ac_part = riskpo::paper_advantage(&mixed, z, lo, hi) * (mixed.w_mix + 1.0) - ar;
        if z >= lo { prop_assert!(ac_part.abs() < 1e-9); } else { prop_assert!(ac_part < 0.0); }
    }
}

#[test]
fn riskpo_tracker_converges_to_the_empirical_quantile() {
    let c: riskpo::RiskPoConfig = serde_json::from_value(json!({"lr_q": 0.05})).unwrap();
    let mut s = riskpo::RiskPoState {
        q_lo: Some(10.0),
        q_hi: Some(-10.0),
        bundles_seen: 0,
    };
    let z: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect();
    for _ in 0..20000 {
        s.update(&c, &z);
    }
    assert!((s.q_lo.unwrap() - 2.0).abs() < 0.2, "{:?}", s.q_lo);
    assert!((s.q_hi.unwrap() - 8.0).abs() < 0.2, "{:?}", s.q_hi);
}

#[test]
fn riskpo_state_moves_and_round_trips() {
    let b = build(&BatchSpec {
        group_sizes: vec![4, 4, 4, 4],
        t: 2,
        seed: 3,
        binary: false,
        constant_groups: vec![false; 4],
    });
    let mut e = AdvantageEstimator::new(cfg(json!({"type": "risk_po", "bundle_size": 2}))).unwrap();
    e.compute(&b, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let AdvantageState::RiskPo(s) = e.state().clone() else {
        panic!()
    };
    assert_eq!(s.bundles_seen, 2);
    let back: AdvantageState =
        serde_json::from_str(&serde_json::to_string(e.state()).unwrap()).unwrap();
    assert_eq!(&back, e.state());
    assert!(AdvantageEstimator::with_state(cfg(json!({"type": "grpo"})), back).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Rewards far from [0, 1] (scaled by 1e-9 … 1e9 and shifted) stay finite for every
    /// estimator that accepts unbounded rewards (BNPO and SPO require a bounded range).
    #[test]
    fn extreme_reward_scales_stay_finite(spec in batch_spec(), exp in -9i32..10, shift in -1e6f64..1e6) {
        let mut b = build(&spec);
        let scale = 10f64.powi(exp);
        b.reward.mapv_inplace(|x| x * scale + shift);
        for comp in b.components.iter_mut() {
            comp.values.mapv_inplace(|x| x * scale + shift);
        }
        for (name, v) in advantage_examples() {
            if matches!(name, "bnpo" | "spo") {
                continue;
            }
            let o = advantage::compute(&cfg(v), &b, &mut ChaCha8Rng::seed_from_u64(1))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            prop_assert!(o.advantages.iter().all(|x| x.is_finite()), "{} not finite", name);
            prop_assert!(o.returns.iter().all(|x| x.is_finite()), "{} returns not finite", name);
        }
    }
}

#[test]
fn inconsistent_public_fields_are_errors_not_panics() {
    let b = build(&BatchSpec {
        group_sizes: vec![2, 3],
        t: 4,
        seed: 9,
        binary: false,
        constant_groups: vec![false, false],
    });
    let mut bad = Vec::new();
    let mut x = b.clone();
    x.group.pop();
    bad.push(x);
    let mut x = b.clone();
    x.old_log_prob = Some(ndarray::Array2::zeros((5, 3)));
    bad.push(x);
    let mut x = b.clone();
    x.steps.as_mut().unwrap()[0][0].end = 99;
    bad.push(x);
    let mut x = b.clone();
    x.budgets.as_mut().unwrap()[1].scores.push(0.5);
    bad.push(x);
    let mut x = b.clone();
    x.reward[2] = f64::NAN;
    bad.push(x);
    for (k, x) in bad.iter().enumerate() {
        for (name, v) in advantage_examples() {
            assert!(
                advantage::compute(&cfg(v), x, &mut ChaCha8Rng::seed_from_u64(0)).is_err(),
                "case {k}: {name}"
            );
        }
    }
}

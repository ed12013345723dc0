//! Invariants of the policy losses and aggregations from algorithms.md §1.4 and §4,
//! plus input validation (named errors).

use grpo_core::CoreError;
use grpo_core::loss::{Aggregation, LossConfig, LossOutput};
use ndarray::{Array2, array};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::loss_props::{Owned, run};

fn cfg(v: Value) -> LossConfig {
    serde_json::from_value(v).unwrap()
}

fn aggs() -> Vec<Value> {
    vec![
        json!({"type": "token_mean"}),
        json!({"type": "seq_mean_token_mean"}),
        json!({"type": "seq_mean_token_sum"}),
        json!({"type": "seq_mean_token_sum_norm", "normalizer": 9.0}),
    ]
}

fn on_policy(mut o: Owned) -> Owned {
    o.logp = o.old.clone();
    o.sg = o.old.clone();
    o
}

fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())))
}

fn weights(agg: &Value, o: &Owned) -> Array2<f64> {
    let a: Aggregation = serde_json::from_value(agg.clone()).unwrap();
    a.weights(o.mask.view()).unwrap()
}

fn eval(c: &LossConfig, o: &Owned) -> LossOutput {
    run(c, o)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// §4.1 (1): at ℓ = ℓᵒ, γ = −A and 𝓛 = −Agg(A); no clipping on-policy.
    #[test]
    fn ppo_on_policy_is_minus_mean_advantage(seed in 0u64..1_000_000, tok: bool, empty: bool) {
        let o = on_policy(Owned::random(seed, 0.0, tok, empty));
        for agg in aggs() {
            let w = weights(&agg, &o);
            let out = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 3.0, "agg": agg})), &o);
            let expect_loss: f64 = (&w * &o.adv.mapv(|a| -a)).iter().zip(o.mask.iter()).filter(|(_, m)| **m != 0.0).map(|(v, _)| v).sum();
            prop_assert!((out.loss - expect_loss).abs() < 1e-12);
            let g = &w * &o.adv.mapv(|a| -a);
            let g = Array2::from_shape_fn(g.dim(), |(i, j)| if o.mask[[i, j]] != 0.0 { g[[i, j]] } else { 0.0 });
            prop_assert!(close(&out.grad_logp, &g, 1e-12));
            prop_assert_eq!(out.metrics.clip_frac, 0.0);
            prop_assert!(out.metrics.ppo_kl.abs() < 1e-15);
        }
    }

    /// §4.1 (3),(4): pessimistic bound, dual-clip cap, and ε, c → ∞ ⇒ IS-PG −Aρ.
    #[test]
    fn ppo_bounds_and_limits(seed in 0u64..1_000_000) {
        let o = Owned::random(seed, 0.8, true, false);
        let tm = json!({"type": "token_mean"});
        let w = weights(&tm, &o);
        let wide = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 1e9, "eps_high": 1e9, "agg": tm})), &o);
        let rho = (&o.logp - &o.old).mapv(f64::exp);
        let is_pg = &rho * &o.adv * -1.0;
        let expect: f64 = (&w * &is_pg).iter().zip(o.mask.iter()).filter(|(_, m)| **m != 0.0).map(|(v, _)| v).sum();
        prop_assert!((wide.loss - expect).abs() < 1e-10);
        // the clipped loss is ≥ the unclipped one token by token, aggregated with positive weights
        let clipped = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "agg": tm})), &o);
        prop_assert!(clipped.loss >= expect - 1e-12);
    }

    /// §4.2: TRL two-sided δ ≡ dual-clip with c = δ when δ ≥ 1 + ε_high (no log-ratio clamp).
    #[test]
    fn two_sided_equals_dual_clip(seed in 0u64..1_000_000, delta in 1.3f64..4.0) {
        let o = Owned::random(seed, 1.5, true, false);
        let tm = json!({"type": "token_mean"});
        let a = eval(&cfg(json!({"type": "two_sided_clip", "eps_low": 0.2, "eps_high": 0.28, "delta": delta, "agg": tm})), &o);
        let b = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": delta, "clamp_log_ratio": false, "agg": tm})), &o);
        prop_assert!((a.loss - b.loss).abs() < 1e-12);
        prop_assert!(close(&a.grad_logp, &b.grad_logp, 1e-12));
    }

    /// §4.3: GSPO equals the token loss when all ratios of a row are equal; GSPO and
    /// GSPO-token agree for row-constant advantages; every token of a row gets the same gradient.
    #[test]
    fn gspo_equivalences(seed in 0u64..1_000_000, empty: bool) {
        let mut o = Owned::random(seed, 0.3, false, empty);
        // equal log-ratio c_i across the row
        for i in 0..o.mask.nrows() {
            let c = 0.3 * ((i as f64) - 2.5) / 2.5;
            for j in 0..o.mask.ncols() {
                o.logp[[i, j]] = o.old[[i, j]] + c;
            }
        }
        o.sg = o.logp.clone();
        for agg in aggs() {
            let g = eval(&cfg(json!({"type": "gspo", "eps_low": 0.1, "eps_high": 0.15, "agg": agg})), &o);
            let gt = eval(&cfg(json!({"type": "gspo_token", "eps_low": 0.1, "eps_high": 0.15, "agg": agg})), &o);
            let p = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.1, "eps_high": 0.15, "clamp_log_ratio": false, "agg": agg})), &o);
            prop_assert!((g.loss - p.loss).abs() < 1e-10, "{} vs {}", g.loss, p.loss);
            prop_assert!(close(&g.grad_logp, &p.grad_logp, 1e-9));
            prop_assert!(close(&gt.grad_logp, &g.grad_logp, 1e-9));
        }
        let o = Owned::random(seed, 0.3, false, empty);
        let g = eval(&cfg(json!({"type": "gspo", "eps_low": 0.1, "eps_high": 0.15, "agg": {"type": "seq_mean_token_mean"}})), &o);
        for i in 0..o.mask.nrows() {
            let vals: Vec<f64> = (0..o.mask.ncols()).filter(|j| o.mask[[i, *j]] != 0.0).map(|j| g.grad_logp[[i, j]]).collect();
            prop_assert!(vals.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-15));
        }
    }

    /// §4.4: LUSPO on-policy = REINFORCE with seq_mean_token_sum weights.
    /// §4.7: GMPO on-policy = GRPO seq_mean_token_mean × B'/B.
    /// §4.5/4.6/4.8/4.18: CISPO, SAPO, VESPO, MDPO have γ = −A at ρ = 1.
    #[test]
    fn on_policy_equivalences(seed in 0u64..1_000_000, empty: bool) {
        let o = on_policy(Owned::random(seed, 0.0, false, empty));
        let sum = json!({"type": "seq_mean_token_sum"});
        let sm = json!({"type": "seq_mean_token_mean"});
        let tm = json!({"type": "token_mean"});
        let reinf = eval(&cfg(json!({"type": "reinforce", "agg": sum})), &o);
        let lu = eval(&cfg(json!({"type": "luspo", "eps_low": 0.1, "eps_high": 0.1})), &o);
        prop_assert!(close(&lu.grad_logp, &reinf.grad_logp, 1e-12));
        let b = o.mask.nrows() as f64;
        let bp = (0..o.mask.nrows()).filter(|i| o.mask.row(*i).sum() > 0.0).count() as f64;
        let gm = eval(&cfg(json!({"type": "gmpo", "eps_low": 0.2, "eps_high": 0.2})), &o);
        let grpo = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "agg": sm})), &o);
        prop_assert!(close(&gm.grad_logp, &grpo.grad_logp.mapv(|g| g * bp / b), 1e-7));
        prop_assert!((gm.loss - grpo.loss * bp / b).abs() < 1e-7);
        let base = eval(&cfg(json!({"type": "reinforce", "agg": tm})), &o);
        for c in [
            json!({"type": "cispo", "eps_high": 0.2, "absolute_cap": false, "agg": tm}),
            json!({"type": "cispo", "eps_high": 5.0, "absolute_cap": true, "agg": tm}),
            json!({"type": "sapo", "tau_pos": 1.0, "tau_neg": 1.05, "agg": tm}),
            json!({"type": "vespo", "k_pos": 2.0, "lambda_pos": 3.0, "k_neg": 3.0, "lambda_neg": 2.0, "agg": tm}),
            json!({"type": "mdpo", "t_k": 0.3, "agg": tm}),
            json!({"type": "r2vpo", "eta": 2.0, "delta_v": 0.0, "agg": tm}),
            json!({"type": "rec_loss", "clip_mode": "none", "weight": "none", "regularizer": "none"}),
            json!({"type": "rec_loss", "clip_mode": "ring", "weight": "importance_sampling", "regularizer": "k2", "reg_coef": 0.7}),
            json!({"type": "kl_cov", "kl_cov_ratio": 0.5, "ppo_kl_coef": 0.0, "agg": tm}),
        ] {
            let out = eval(&cfg(c.clone()), &o);
            prop_assert!(close(&out.grad_logp, &base.grad_logp, 1e-12), "{}", c);
        }
        let opmd = eval(&cfg(json!({"type": "opmd_loss", "tau": 1.0})), &o);
        prop_assert!(close(&opmd.grad_logp, &base.grad_logp.mapv(|g| g / 2.0), 1e-12));
    }

    /// §4.9: Clip-Cov differs from PPO (no clamp, no dual clip) on at most n tokens, which
    /// get zero gradient; KL-Cov's picked set is deterministic.
    #[test]
    fn cov_losses(seed in 0u64..1_000_000) {
        let o = Owned::random(seed, 0.3, true, false);
        let tm = json!({"type": "token_mean"});
        let cc = eval(&cfg(json!({"type": "clip_cov", "eps_low": 0.2, "clip_cov_ratio": 0.0, "clip_cov_lb": -100.0, "clip_cov_ub": 100.0, "agg": tm})), &o);
        let p = eval(&cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "clamp_log_ratio": false, "agg": tm})), &o);
        let diff = cc.grad_logp.iter().zip(p.grad_logp.iter()).filter(|(a, b)| a != b).count();
        prop_assert!(diff <= 1);
        let c = cfg(json!({"type": "kl_cov", "kl_cov_ratio": 0.1, "ppo_kl_coef": 0.5, "agg": tm}));
        prop_assert_eq!(eval(&c, &o), eval(&c, &o));
    }

    /// §4.15: DisCO score gradients sum to zero within each valid group (on-policy, no
    /// penalty), and J is invariant to adding a constant to every score of a group (logL).
    #[test]
    fn disco_invariants(seed in 0u64..1_000_000, variant in prop::sample::select(vec!["disco", "disco_b"])) {
        let o = on_policy(Owned::random(seed, 0.0, false, false));
        let c = cfg(json!({"type": "disco", "score": "log_l", "variant": variant, "tau": 2.0, "delta": 1e-4, "beta": 1e3, "kl_type": "k3"}));
        let out = eval(&c, &o);
        prop_assert_eq!(out.metrics.extra["disco_penalty_coef"], 0.0);
        for g in 0..3 {
            let rows = [2 * g, 2 * g + 1];
            // ∂/∂s_i = Σ_t grad·L_i
            let total: f64 = rows.iter().map(|i| {
                let l = o.mask.row(*i).sum();
                (0..o.mask.ncols()).filter(|j| o.mask[[*i, *j]] != 0.0).map(|j| out.grad_logp[[*i, j]]).sum::<f64>() / (o.mask.row(*i).iter().filter(|m| **m != 0.0).count() as f64) * l
            }).sum();
            prop_assert!(total.abs() < 1e-12);
        }
        // shift every log-prob of the batch by a constant per row-length: s_i += k
        let mut o2 = o.clone();
        o2.logp.mapv_inplace(|l| l + 0.37);
        o2.old = o2.logp.clone();
        o2.sg = o2.logp.clone();
        prop_assert!((eval(&c, &o2).loss - out.loss).abs() < 1e-9);
    }

    /// §4.16: P3O at ρ = 1 has gradient −½Δ per token of y₁ (one pair), is invariant to
    /// swapping the pair and to adding a constant to both rewards.
    #[test]
    fn p3o_invariants(seed in 0u64..1_000_000, variant in prop::sample::select(vec!["v1", "v2"]), shift in -3.0f64..3.0) {
        let mut o = on_policy(Owned::random(seed, 0.0, false, false));
        o.index = vec![0, 0, 1, 1, 2, 2];
        let c = cfg(json!({"type": "p3o", "variant": variant, "eps": 0.2}));
        let out = eval(&c, &o);
        let n_pairs = 3.0;
        for i in 0..6 {
            let other = i ^ 1;
            let delta = o.rewards[i] - o.rewards[other];
            for j in 0..o.mask.ncols() {
                if o.mask[[i, j]] != 0.0 {
                    prop_assert!((out.grad_logp[[i, j]] + 0.5 * delta / n_pairs).abs() < 1e-12);
                }
            }
        }
        let mut o2 = Owned::random(seed, 0.5, false, false);
        o2.rewards.mapv_inplace(|r| r + shift);
        let o3 = Owned::random(seed, 0.5, false, false);
        prop_assert!((eval(&c, &o2).loss - eval(&c, &o3).loss).abs() < 1e-12);
    }

    /// §4.19: LLDS is zero when ℓ ≥ ℓᵒ and its gradient only ever raises ℓ.
    #[test]
    fn llds_invariants(seed in 0u64..1_000_000, gate in prop::sample::select(vec!["action", "response"])) {
        let o = Owned::random(seed, 0.5, true, false);
        let tm = json!({"type": "token_mean"});
        let base = json!({"type": "reinforce", "agg": tm});
        let c = cfg(json!({"type": "llds", "lambda": 0.2, "gate": gate, "threshold": 0.0, "base": base}));
        let with = eval(&c, &o);
        let without = eval(&cfg(base), &o);
        let d = &with.grad_logp - &without.grad_logp;
        prop_assert!(d.iter().all(|g| *g <= 0.0));
        for ((i, j), g) in d.indexed_iter() {
            if *g != 0.0 {
                prop_assert!(o.logp[[i, j]] < o.old[[i, j]] && o.adv[[i, j]] >= 0.0);
            }
        }
        let mut up = o.clone();
        up.logp = &o.old + 0.1;
        up.sg = up.logp.clone();
        prop_assert_eq!(eval(&c, &up).metrics.extra["llds"], 0.0);
    }

    /// §4.11/4.12/4.14: modifiers that should be identities are identities.
    #[test]
    fn modifier_identities(seed in 0u64..1_000_000) {
        let mut o = Owned::random(seed, 0.4, false, false);
        let ppo = json!({"type": "ppo_clip", "eps_low": 0.2, "agg": {"type": "token_mean"}});
        let base = eval(&cfg(ppo.clone()), &o);
        let q1 = eval(&cfg(json!({"type": "top_entropy_mask", "quantile": 1.0, "base": ppo})), &o);
        prop_assert_eq!(&q1.grad_logp, &base.grad_logp);
        // off-policy mask never masks positive-advantage rows
        let om = eval(&cfg(json!({"type": "off_policy_mask", "threshold": -1e9, "base": ppo})), &o);
        for i in 0..o.mask.nrows() {
            if o.adv[[i, 0]] >= 0.0 {
                prop_assert_eq!(om.grad_logp.row(i), base.grad_logp.row(i));
            } else {
                prop_assert!(om.grad_logp.row(i).iter().all(|g| *g == 0.0));
            }
        }
        // rollout correction with ℓˢ = ℓᵒ is the identity; truncation bounds the gradient
        o.roll = o.old.clone();
        for mode in ["truncate", "mask"] {
            for level in ["token", "sequence"] {
                let rc = eval(&cfg(json!({"type": "rollout_correction", "level": level, "mode": mode, "c_max": 3.0, "base": ppo})), &o);
                prop_assert!(close(&rc.grad_logp, &base.grad_logp, 1e-14));
            }
        }
        let o2 = Owned::random(seed, 0.4, false, false);
        let b2 = eval(&cfg(ppo.clone()), &o2);
        let rc = eval(&cfg(json!({"type": "rollout_correction", "level": "token", "mode": "truncate", "c_max": 1.1, "base": ppo})), &o2);
        for (a, b) in rc.grad_logp.iter().zip(b2.grad_logp.iter()) {
            prop_assert!(a.abs() <= 1.1 * b.abs() + 1e-15);
        }
        // top-entropy mask keeps at least ρ_H of the tokens
        let te = eval(&cfg(json!({"type": "top_entropy_mask", "quantile": 0.2, "base": ppo})), &o2);
        prop_assert!(te.metrics.extra["entropy_mask_frac"] >= 0.2 - 1e-12);
    }

    /// §1.4: constant losses aggregate to the constant (token/seq means), weights vanish
    /// on masked tokens, padding with masked columns changes nothing (our
    /// `seq_mean_token_sum_norm` takes an explicit constant, so it is padding-invariant too).
    #[test]
    fn aggregation_invariants(seed in 0u64..1_000_000, c in -5.0f64..5.0) {
        let o = Owned::random(seed, 0.0, false, true);
        let vals = Array2::from_elem(o.mask.dim(), c);
        for agg in aggs() {
            let a: Aggregation = serde_json::from_value(agg).unwrap();
            let (l, w) = a.aggregate(vals.view(), o.mask.view()).unwrap();
            if matches!(a, Aggregation::TokenMean | Aggregation::SeqMeanTokenMean) {
                prop_assert!((l - c).abs() < 1e-7 * (1.0 + c.abs()));
            }
            for ((i, j), m) in o.mask.indexed_iter() {
                if *m == 0.0 { prop_assert_eq!(w[[i, j]], 0.0); }
            }
            let (b, t) = o.mask.dim();
            let mut padded = Array2::zeros((b, t + 3));
            padded.slice_mut(ndarray::s![.., ..t]).assign(&o.mask);
            let mut pv = Array2::from_elem((b, t + 3), f64::NAN);
            pv.slice_mut(ndarray::s![.., ..t]).assign(&vals);
            let (l2, _) = a.aggregate(pv.view(), padded.view()).unwrap();
            prop_assert!((l - l2).abs() < 1e-12);
        }
    }
}

/// §1.4 (3): length bias — doubling a row's length halves its token weights under
/// `seq_mean_token_mean`, not under `token_mean` (relative to other rows) or the constant normaliser.
#[test]
fn aggregation_length_bias() {
    let m1 = array![[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]];
    let m2 = array![[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]];
    let sm = Aggregation::SeqMeanTokenMean;
    let w1 = sm.weights(m1.view()).unwrap();
    let w2 = sm.weights(m2.view()).unwrap();
    assert!((w2[[0, 0]] - w1[[0, 0]] / 2.0).abs() < 1e-9);
    assert!((w2[[1, 0]] - w1[[1, 0]]).abs() < 1e-9);
    let n = Aggregation::SeqMeanTokenSumNorm { normalizer: 8.0 };
    assert_eq!(
        n.weights(m1.view()).unwrap()[[0, 0]],
        n.weights(m2.view()).unwrap()[[0, 0]]
    );
    let tm = Aggregation::TokenMean.weights(m2.view()).unwrap();
    assert_eq!(tm[[0, 0]], tm[[1, 0]]);
}

#[test]
fn empty_batch_is_zero_with_flag() {
    let mut o = Owned::random(3, 0.3, false, false);
    o.mask.fill(0.0);
    for (name, c) in crate::loss_props::all_configs() {
        let out = eval(&c, &o);
        assert_eq!(out.loss, 0.0, "{name}");
        assert!(out.metrics.empty_batch, "{name}");
        assert!(out.grad_logp.iter().all(|g| *g == 0.0), "{name}");
    }
}

#[test]
fn gtpo_without_conflicts_is_reinforce_with_row_weights() {
    let mut o = on_policy(Owned::random(11, 0.0, false, false));
    // distinct ids per row ⇒ no conflicts; zero entropy ⇒ no advantage change
    for i in 0..o.mask.nrows() {
        for j in 0..o.mask.ncols() {
            o.ids[[i, j]] = 10 + (i * 100 + j) as i64;
        }
    }
    o.ent.fill(0.0);
    let out = eval(
        &cfg(
            json!({"type": "gtpo", "conflict_weight": 2.0, "entropy_max": 0.7, "entropy_coef": 0.1}),
        ),
        &o,
    );
    for ((i, j), m) in o.mask.indexed_iter() {
        if *m != 0.0 {
            let l = o.mask.row(i).sum();
            assert!((out.grad_logp[[i, j]] + o.adv[[i, j]] / l).abs() < 1e-12);
        }
    }
}

#[test]
fn gtpo_negative_rows_get_zero_gradient_on_conflicts() {
    let mut o = on_policy(Owned::random(12, 0.0, false, false));
    o.mask.fill(1.0);
    o.ent.fill(0.0);
    o.ids.fill(5); // every token conflicts between a positive and a negative row
    o.adv = Array2::from_shape_fn(o.mask.dim(), |(i, _)| if i % 2 == 0 { 1.0 } else { -1.0 });
    let out = eval(
        &cfg(
            json!({"type": "gtpo", "conflict_weight": 2.0, "entropy_max": 0.7, "entropy_coef": 0.0}),
        ),
        &o,
    );
    for ((i, _), g) in out.grad_logp.indexed_iter() {
        if i % 2 == 1 {
            assert_eq!(*g, 0.0);
        } else {
            assert!(*g < 0.0);
        }
    }
}

#[test]
fn reg_grpo_on_policy_gradient() {
    let o = on_policy(Owned::random(5, 0.0, false, true));
    let beta = 0.7;
    let out = eval(&cfg(json!({"type": "reg_grpo", "beta": beta})), &o);
    let bp = (0..6).filter(|i| o.mask.row(*i).sum() > 0.0).count() as f64;
    for g in 0..3 {
        let rows: Vec<usize> = [2 * g, 2 * g + 1]
            .into_iter()
            .filter(|i| o.mask.row(*i).sum() > 0.0)
            .collect();
        let abar = rows.iter().map(|i| o.adv[[*i, 0]]).sum::<f64>() / rows.len() as f64;
        for i in rows {
            let l = o.mask.row(i).sum();
            for j in 0..o.mask.ncols() {
                if o.mask[[i, j]] != 0.0 {
                    let expect = -(2.0 * beta / bp) * (o.adv[[i, 0]] - abar) / l;
                    assert!((out.grad_logp[[i, j]] - expect).abs() < 1e-12);
                }
            }
        }
    }
}

#[test]
fn validation_errors_name_the_input() {
    let o = Owned::random(1, 0.3, false, false);
    let c = cfg(json!({"type": "ppo_clip", "eps_low": 0.2, "agg": {"type": "token_mean"}}));
    let mut r = ChaCha8Rng::seed_from_u64(0);
    // shape mismatch
    let short = o.old.slice(ndarray::s![.., ..3]).to_owned();
    let mut inp = o.view();
    inp.old_log_prob = short.view();
    match c.compute(&inp, &mut r) {
        Err(CoreError::ShapeMismatch { what, .. }) => assert_eq!(what, "old_log_prob"),
        other => panic!("{other:?}"),
    }
    // NaN on a valid token
    let mut bad = o.clone();
    bad.adv[[0, 0]] = f64::NAN;
    match c.compute(&bad.view(), &mut r) {
        Err(CoreError::NonFinite { what, row, col, .. }) => {
            assert_eq!((what.as_str(), row, col), ("advantages", 0, 0))
        }
        other => panic!("{other:?}"),
    }
    // non-0/1 mask
    let mut bad = o.clone();
    bad.mask[[1, 1]] = 0.5;
    assert!(matches!(
        c.compute(&bad.view(), &mut r),
        Err(CoreError::InvalidMask { row: 1, col: 1, .. })
    ));
    // index length
    let mut bad = o.clone();
    bad.index.pop();
    match c.compute(&bad.view(), &mut r) {
        Err(CoreError::ShapeMismatch { what, .. }) => assert_eq!(what, "index"),
        other => panic!("{other:?}"),
    }
    // missing input
    let plain =
        grpo_core::loss::LossInputs::new(o.logp.view(), o.old.view(), o.mask.view(), o.adv.view());
    let kl = cfg(
        json!({"type": "kl_penalty", "coef": 0.1, "estimator": "k3", "agg": {"type": "token_mean"}, "base": c}),
    );
    match kl.compute(&plain, &mut r) {
        Err(CoreError::MissingInput { what, .. }) => assert_eq!(what, "ref_log_prob"),
        other => panic!("{other:?}"),
    }
    // non-binary reward for DisCO
    let mut bad = o.clone();
    bad.rewards[2] = 0.5;
    let d = cfg(
        json!({"type": "disco", "score": "log_l", "variant": "disco", "tau": 10.0, "delta": 1e-4, "beta": 1e3, "kl_type": "k3"}),
    );
    assert!(matches!(
        d.compute(&bad.view(), &mut r),
        Err(CoreError::InvalidInput { row: 2, .. })
    ));
    // bad parameter
    let bad_c = cfg(
        json!({"type": "ppo_clip", "eps_low": 0.2, "clip_ratio_c": 0.5, "agg": {"type": "token_mean"}}),
    );
    match bad_c.compute(&o.view(), &mut r) {
        Err(CoreError::InvalidParam { name, .. }) => assert_eq!(name, "clip_ratio_c"),
        other => panic!("{other:?}"),
    }
    // token modifiers on a non-token loss are rejected
    let gm = cfg(
        json!({"type": "capo_mask", "fraction": 0.5, "base": {"type": "gmpo", "eps_low": 0.2, "eps_high": 0.2}}),
    );
    assert!(matches!(
        gm.compute(&o.view(), &mut r),
        Err(CoreError::InvalidParam { .. })
    ));
}

/// §4.13: c = 0 ⇒ no change; the adaptive controller moves with the sign of H̄ − H_target,
/// stays in bounds, and applies the bonus only after a window at or below the target.
#[test]
fn entropy_bonus_and_adaptive_coefficient() {
    use grpo_core::loss::{AdaptiveEntropyCoef, AdaptiveEntropyConfig};
    let o = Owned::random(21, 0.3, false, false);
    let ppo = json!({"type": "ppo_clip", "eps_low": 0.2, "agg": {"type": "token_mean"}});
    let base = eval(&cfg(ppo.clone()), &o);
    let zero = eval(
        &cfg(
            json!({"type": "entropy_bonus", "coef": 0.0, "agg": {"type": "token_mean"}, "base": ppo}),
        ),
        &o,
    );
    assert_eq!(zero.loss, base.loss);
    assert_eq!(zero.grad_logp, base.grad_logp);
    assert!(zero.grad_entropy.unwrap().iter().all(|g| *g == 0.0));
    let mut c = AdaptiveEntropyCoef::new(AdaptiveEntropyConfig {
        init_coef: 0.0,
        delta: 0.005,
        coef_min: 0.0,
        coef_max: 0.012,
        target_entropy: 0.2,
    })
    .unwrap();
    assert_eq!(c.effective_coef(), 0.0);
    assert!((c.end_window(0.1).unwrap() - 0.005).abs() < 1e-15);
    assert!((c.end_window(0.15).unwrap() - 0.01).abs() < 1e-15);
    assert!((c.end_window(0.15).unwrap() - 0.012).abs() < 1e-15);
    assert_eq!(c.end_window(0.5).unwrap(), 0.0);
    assert!((c.coef - 0.007).abs() < 1e-15);
    for _ in 0..10 {
        c.end_window(0.9).unwrap();
    }
    assert_eq!(c.coef, 0.0);
}

/// §5.7: the KL-in-reward penalty is the estimator applied to (ℓᵒ, ℓʳ), zero on padding.
#[test]
fn kl_in_reward_penalty() {
    use grpo_core::kl::{KlEstimator, kl_reward_penalty};
    let o = Owned::random(4, 0.3, false, true);
    let k = kl_reward_penalty(o.old.view(), o.refp.view(), o.mask.view(), KlEstimator::K1).unwrap();
    for ((i, j), m) in o.mask.indexed_iter() {
        let expect = if *m != 0.0 {
            o.old[[i, j]] - o.refp[[i, j]]
        } else {
            0.0
        };
        assert_eq!(k[[i, j]], expect);
    }
    assert!(
        kl_reward_penalty(
            o.old.view(),
            o.refp.view(),
            o.mask.view(),
            KlEstimator::Full
        )
        .is_err()
    );
}

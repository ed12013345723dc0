//! Finite-difference checks of every gradient the anchor functions return
//! (`grad_log_prob`, `grad_loss_mat`, `grad_log_prob_of_masked_sum`,
//! `grad_entropy`), in f64 on seeded random batches.
//!
//! Where the anchor detaches a weight that depends on the log-ratio (CISPO's
//! clipped ratio, VESPO's φ, REINFORCE/GPG have no ratio at all), the finite
//! difference shifts `log_prob` and `old_log_prob` together, which keeps the
//! detached weight fixed and isolates the gradient through the explicit `ℓ`.
//! GSPO is checked where its straight-through gradient equals the gradient of
//! its value (advantage and IS weight constant over each row).

use grpo_core::compat::{trl, verl};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-6;

fn normal(rng: &mut ChaCha8Rng, b: usize, t: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((b, t), |_| {
        // sum of uniforms: cheap, symmetric, enough for test inputs
        let s: f64 = (0..6).map(|_| rng.random::<f64>() - 0.5).sum();
        s * scale
    })
}

fn mask(lengths: &[usize], t: usize) -> Array2<f64> {
    Array2::from_shape_fn((lengths.len(), t), |(i, s)| {
        f64::from(u8::from(s < lengths[i]))
    })
}

struct Batch {
    old: Array2<f64>,
    lp: Array2<f64>,
    adv: Array2<f64>,
    m: Array2<f64>,
    isw: Array2<f64>,
}

fn batch(seed: u64, seq_adv: bool) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b, t) = (4, 7);
    let m = mask(&[7, 3, 0, 5], t);
    let old = normal(&mut rng, b, t, 1.0) - 1.5;
    let lp = &old + &normal(&mut rng, b, t, 0.5);
    let adv = if seq_adv {
        let row = normal(&mut rng, b, 1, 1.5);
        Array2::from_shape_fn((b, t), |(i, _)| row[[i, 0]])
    } else {
        normal(&mut rng, b, t, 1.5)
    };
    let isw = Array2::from_shape_fn((b, t), |_| 0.5 + rng.random::<f64>());
    Batch {
        old,
        lp,
        adv,
        m,
        isw,
    }
}

/// Central differences of `f` at `lp` (shifting `old` too when `shift_old`), compared
/// with `grad` entry by entry.
fn check(
    what: &str,
    lp: &Array2<f64>,
    old: &Array2<f64>,
    shift_old: bool,
    grad: &Array2<f64>,
    f: impl Fn(&Array2<f64>, &Array2<f64>) -> f64,
) {
    for ((i, s), &g) in grad.indexed_iter() {
        let (mut lp_p, mut lp_m) = (lp.clone(), lp.clone());
        let (mut old_p, mut old_m) = (old.clone(), old.clone());
        lp_p[[i, s]] += H;
        lp_m[[i, s]] -= H;
        if shift_old {
            old_p[[i, s]] += H;
            old_m[[i, s]] -= H;
        }
        let fd = (f(&lp_p, &old_p) - f(&lp_m, &old_m)) / (2.0 * H);
        let tol = 1e-3 * g.abs().max(fd.abs()) + 1e-7;
        assert!(
            (fd - g).abs() <= tol,
            "{what}: [{i},{s}] analytic {g} vs finite difference {fd}"
        );
    }
}

type LossFn =
    fn(&verl::LossInputs<'_>, &verl::ActorParams) -> grpo_core::Result<verl::PolicyLossOutput>;

#[test]
fn verl_policy_loss_gradients_match_finite_differences() {
    let losses: [(&str, LossFn, bool); 8] = [
        ("vanilla", verl::compute_policy_loss_vanilla, false),
        ("gspo", verl::compute_policy_loss_gspo, false),
        ("sapo", verl::compute_policy_loss_sapo, false),
        ("cispo", verl::compute_policy_loss_cispo, true),
        ("gpg", verl::compute_policy_loss_gpg, true),
        ("geo_mean", verl::compute_policy_loss_geo_mean, false),
        ("kl_cov", verl::compute_policy_loss_kl_cov, false),
        ("reinforce", verl::compute_policy_loss_reinforce, true),
    ];
    let modes = [
        "token-mean",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    ];
    for seed in 0..4u64 {
        let x = batch(seed, seed % 2 == 0);
        for (name, f, shift_old) in losses {
            for (k, mode) in modes.iter().enumerate() {
                let p = verl::ActorParams {
                    loss_agg_mode: Some(mode.to_string()),
                    clip_ratio_high: Some(0.28),
                    kl_cov_ratio: Some(0.1),
                    ppo_kl_coef: Some(0.3),
                    ..Default::default()
                };
                let with_isw = k % 2 == 1;
                // GSPO's token gradient (sg(log s_i) + ℓ − sg ℓ) is the gradient of its value only
                // when the per-token factors (A, IS weight) are constant over a row.
                if name == "gspo" && (with_isw || seed % 2 == 1) {
                    continue;
                }
                let eval = |lp: &Array2<f64>, old: &Array2<f64>| {
                    let inp = verl::LossInputs {
                        old_log_prob: old.view(),
                        log_prob: lp.view(),
                        advantages: x.adv.view(),
                        response_mask: x.m.view(),
                        rollout_is_weights: with_isw.then(|| x.isw.view()),
                    };
                    f(&inp, &p).unwrap()
                };
                let out = eval(&x.lp, &x.old);
                assert!(out.grad_log_prob.iter().all(|g| g.is_finite()));
                for ((i, s), g) in out.grad_log_prob.indexed_iter() {
                    if x.m[[i, s]] == 0.0 {
                        assert_eq!(*g, 0.0, "{name}: gradient on padding");
                    }
                }
                check(
                    &format!("{name}/{mode}/seed {seed}"),
                    &x.lp,
                    &x.old,
                    shift_old,
                    &out.grad_log_prob,
                    |lp, old| eval(lp, old).pg_loss,
                );
            }
        }
    }
}

#[test]
fn verl_agg_loss_and_kl_penalty_gradients_match_finite_differences() {
    let x = batch(11, false);
    for mode in [
        "token-mean",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    ] {
        let p = verl::AggParams {
            loss_agg_mode: mode.into(),
            dp_size: 2.0,
            batch_num_tokens: None,
            global_batch_size: None,
            loss_scale_factor: None,
        };
        let (_, g) = verl::agg_loss(x.lp.view(), x.m.view(), &p).unwrap();
        check(mode, &x.lp, &x.old, false, &g, |lm, _| {
            verl::agg_loss(lm.view(), x.m.view(), &p).unwrap().0
        });
    }
    let rf = &x.lp + &batch(12, false).adv.mapv(|a| a * 0.5);
    for name in ["kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3"] {
        let p = verl::KlPenaltyParams {
            kl_penalty: name.into(),
        };
        let (_, g) = verl::kl_penalty(x.lp.view(), rf.view(), Some(x.m.view()), &p).unwrap();
        check(name, &x.lp, &x.old, false, &g, |lp, _| {
            let (kl, _) = verl::kl_penalty(lp.view(), rf.view(), Some(x.m.view()), &p).unwrap();
            (&kl * &x.m).sum()
        });
    }
    // straight-through names: gradient is the k2 gradient u = ℓ − ℓʳ
    let p = verl::KlPenaltyParams {
        kl_penalty: "k3+".into(),
    };
    let (_, g) = verl::kl_penalty(x.lp.view(), rf.view(), None, &p).unwrap();
    let u = &x.lp - &rf;
    for (a, b) in g.iter().zip(u.iter()) {
        assert!((a - b).abs() < 1e-15);
    }
}

#[test]
fn trl_grpo_loss_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for seed in 0..3u64 {
        let x = batch(100 + seed, true);
        let adv_b = Array2::from_shape_fn((4, 1), |(i, _)| x.adv[[i, 0]]);
        let rf = &x.lp + &batch(200 + seed, false).adv.mapv(|a| a * 0.2);
        let ent = Array2::from_shape_fn((4, 7), |_| 3.0 * rng.random::<f64>());
        for lt in [
            "grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo",
        ] {
            for level in ["token", "sequence"] {
                for (beta, bias) in [(0.0, true), (0.05, true), (0.05, false)] {
                    let detached = matches!(lt, "cispo" | "vespo");
                    if detached && beta != 0.0 {
                        continue; // mixed detached/non-detached: no single FD direction
                    }
                    let p = trl::GrpoLossParams {
                        loss_type: lt.into(),
                        importance_sampling_level: level.into(),
                        beta,
                        use_bias_correction_kl: bias,
                        epsilon_high: Some(if lt == "cispo" { 1.1 } else { 0.28 }),
                        delta: (lt == "dapo").then_some(1.3),
                        entropy_coef: 0.02,
                        top_entropy_quantile: 0.7,
                        gradient_accumulation_steps: 2.0,
                        steps_per_generation: Some(3.0),
                        max_completion_length: 9.0,
                        ..Default::default()
                    };
                    let eval = |lp: &Array2<f64>, old: &Array2<f64>, h: &Array2<f64>| {
                        let inp = trl::GrpoLossInputs {
                            log_prob: lp.view(),
                            old_log_prob: Some(old.view()),
                            ref_log_prob: Some(rf.view()),
                            advantages: adv_b.view(),
                            response_mask: x.m.view(),
                            entropy: Some(h.view()),
                            importance_sampling_ratio: None,
                            sampling_per_token_logps: None,
                        };
                        trl::grpo_loss(&inp, &p).unwrap()
                    };
                    let out = eval(&x.lp, &x.old, &ent);
                    let what = format!("trl {lt}/{level}/beta {beta}/bias {bias}/seed {seed}");
                    check(
                        &what,
                        &x.lp,
                        &x.old,
                        detached,
                        &out.grad_log_prob,
                        |lp, old| eval(lp, old, &ent).loss,
                    );
                    check(
                        &format!("{what} entropy"),
                        &ent,
                        &x.old,
                        false,
                        &out.grad_entropy,
                        |h, _| eval(&x.lp, &x.old, h).loss,
                    );
                }
            }
        }
    }
}

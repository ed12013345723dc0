//! The anchors' quirks, checked with values computed by hand: singleton groups,
//! padded-width divisors, forced aggregations, batch-wide GPG α, TRL's
//! normalisers, KL clamps, and the equivalences between verl and TRL that
//! `algorithms.md` §1.2 states for a single micro-batch.

use grpo_core::CoreError;
use grpo_core::compat::eval::eval;
use grpo_core::compat::{trl, verl};
use ndarray::{Array2, array};
use serde_json::{Value, json};

type LossFn =
    fn(&verl::LossInputs<'_>, &verl::ActorParams) -> grpo_core::Result<verl::PolicyLossOutput>;

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn singleton_groups_follow_each_anchor() {
    let r = array![[0.0, 2.0], [1.0, 0.0], [3.0, 0.0]];
    let m = array![[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let idx = ids(&["g", "g", "solo"]);
    let p = verl::GrpoParams::default();
    let e = verl::EpsilonParams { epsilon: 1e-6 };
    // GRPO loop and vectorised: singleton => mu = 0, sigma = 1 => A = R/(1+eps), not 0
    let a = verl::compute_grpo_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap();
    close(a.advantages[[2, 0]], 3.0 / (1.0 + 1e-6), 1e-12);
    let a = verl::compute_grpo_vectorized_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap();
    close(a.advantages[[2, 1]], 3.0 / (1.0 + 1e-6), 1e-6);
    // RLOO loop keeps the score, RLOO vectorised gives 0
    let a = verl::compute_rloo_outcome_advantage(r.view(), m.view(), &idx, &e).unwrap();
    close(a.advantages[[2, 0]], 3.0, 0.0);
    let a = verl::compute_rloo_vectorized_outcome_advantage(r.view(), m.view(), &idx, &e).unwrap();
    assert_eq!(a.advantages[[2, 0]], 0.0);
    // pairs: RLOO = n/(n-1) (R - mu) = 2 * (2 - 1.5) = 1
    close(a.advantages[[0, 0]], 1.0, 1e-12);
    // pass@k refuses singletons (verl raises)
    let err = verl::compute_grpo_passk_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::GroupTooSmall {
                size: 1,
                min: 2,
                ..
            }
        ),
        "{err}"
    );
    // OPO / RF++-baseline / GPG: singleton baseline 0
    let a = verl::compute_opo_outcome_advantage(r.view(), m.view(), &idx, &e).unwrap();
    close(a.advantages[[2, 0]], 3.0, 0.0);
    // OPO pair baseline: (2*2 + 1*1)/3 = 5/3
    close(a.advantages[[0, 0]], 2.0 - 5.0 / 3.0, 1e-12);
}

#[test]
fn grpo_vectorized_floors_the_variance_but_the_loop_does_not() {
    let r = array![[1.0], [1.0004], [1.0002]];
    let m = Array2::ones((3, 1));
    let idx = ids(&["a", "a", "a"]);
    let p = verl::GrpoParams::default();
    let lp = verl::compute_grpo_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap();
    let vp = verl::compute_grpo_vectorized_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap();
    // loop: std = 2e-4 => A ~ -1 ; vectorised: std = sqrt(max(4e-8, 1e-6)) = 1e-3 => A ~ -0.2
    close(lp.advantages[[0, 0]], -0.0002 / (0.0002 + 1e-6), 1e-6);
    assert!(
        vp.advantages[[0, 0]].abs() < 0.25,
        "{}",
        vp.advantages[[0, 0]]
    );
}

#[test]
fn gpg_alpha_is_batch_wide_and_the_argument_is_ignored() {
    let r = array![[1.0], [0.0], [0.0], [0.0]];
    let m = Array2::ones((4, 1));
    let idx = ids(&["a", "a", "b", "b"]);
    let p = verl::GpgParams {
        epsilon: 1e-6,
        f_norm: 1.0,
        alpha: 123.0,
    };
    let a = verl::compute_gpg_outcome_advantage(r.view(), m.view(), &idx, &p).unwrap();
    // alpha = 4 / 1 non-zero reward; A = 4 * (1 - 0.5)
    close(a.advantages[[0, 0]], 2.0, 1e-12);
    close(a.advantages[[2, 0]], 0.0, 0.0);
}

#[test]
fn sum_norm_divides_by_the_padded_width_unless_a_scale_factor_is_given() {
    let lm = array![[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]];
    let m = array![[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
    let mut lm_pad = Array2::zeros((2, 6));
    lm_pad.slice_mut(ndarray::s![.., ..3]).assign(&lm);
    let mut m_pad = Array2::zeros((2, 6));
    m_pad.slice_mut(ndarray::s![.., ..3]).assign(&m);
    let p = |f: Option<f64>| verl::AggParams {
        loss_agg_mode: "seq-mean-token-sum-norm".into(),
        dp_size: 1.0,
        batch_num_tokens: None,
        global_batch_size: None,
        loss_scale_factor: f,
    };
    let (a, _) = verl::agg_loss(lm.view(), m.view(), &p(None)).unwrap();
    let (b, _) = verl::agg_loss(lm_pad.view(), m_pad.view(), &p(None)).unwrap();
    close(a, 6.0 / 3.0, 1e-12);
    close(b, 6.0 / 6.0, 1e-12);
    let (a, _) = verl::agg_loss(lm.view(), m.view(), &p(Some(4.0))).unwrap();
    let (b, _) = verl::agg_loss(lm_pad.view(), m_pad.view(), &p(Some(4.0))).unwrap();
    close(a, 1.5, 1e-12);
    close(b, 1.5, 1e-12);
    // token-mean over an all-masked batch would be 0/0 in verl: named error here
    let z = Array2::zeros((2, 3));
    let mut q = p(None);
    q.loss_agg_mode = "token-mean".into();
    assert!(verl::agg_loss(lm.view(), z.view(), &q).is_err());
}

fn loss_inputs() -> (Array2<f64>, Array2<f64>, Array2<f64>, Array2<f64>) {
    let old = array![
        [-1.0, -2.0, -0.5, -1.2],
        [-0.3, -0.9, -2.0, -1.0],
        [-1.5, -0.4, -0.8, -0.6]
    ];
    let lp = array![
        [-0.9, -2.1, -0.45, -1.3],
        [-0.35, -0.8, -1.9, -1.1],
        [-1.45, -0.42, -0.85, -0.5]
    ];
    let adv = array![
        [0.7, 0.7, 0.7, 0.7],
        [-0.4, -0.4, -0.4, -0.4],
        [1.2, 1.2, 1.2, 1.2]
    ];
    let m = array![
        [1.0, 1.0, 1.0, 0.0],
        [1.0, 1.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 1.0]
    ];
    (old, lp, adv, m)
}

#[test]
fn gspo_and_sapo_ignore_loss_agg_mode() {
    let (old, lp, adv, m) = loss_inputs();
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: m.view(),
        rollout_is_weights: None,
    };
    let fs: [LossFn; 2] = [
        verl::compute_policy_loss_gspo,
        verl::compute_policy_loss_sapo,
    ];
    for f in fs {
        let a = f(
            &x,
            &verl::ActorParams {
                loss_agg_mode: Some("token-mean".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let b = f(
            &x,
            &verl::ActorParams {
                loss_agg_mode: Some("seq-mean-token-sum".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.pg_loss, b.pg_loss);
        let v = verl::compute_policy_loss_vanilla(
            &x,
            &verl::ActorParams {
                loss_agg_mode: Some("token-mean".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(a.pg_loss, v.pg_loss);
    }
}

#[test]
fn geo_mean_averages_over_all_rows_including_empty_ones() {
    let (old, lp, adv, m) = loss_inputs();
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: m.view(),
        rollout_is_weights: None,
    };
    let a = verl::compute_policy_loss_geo_mean(&x, &verl::ActorParams::default()).unwrap();
    let grow = |a: &Array2<f64>| {
        ndarray::concatenate![ndarray::Axis(0), a.view(), Array2::zeros((1, 4)).view()]
    };
    let (old2, lp2, adv2, m2) = (grow(&old), grow(&lp), grow(&adv), grow(&m));
    let y = verl::LossInputs {
        old_log_prob: old2.view(),
        log_prob: lp2.view(),
        advantages: adv2.view(),
        response_mask: m2.view(),
        rollout_is_weights: None,
    };
    let b = verl::compute_policy_loss_geo_mean(&y, &verl::ActorParams::default()).unwrap();
    close(b.pg_loss, a.pg_loss * 3.0 / 4.0, 1e-12);
}

#[test]
fn trl_single_micro_batch_equivalences_with_verl() {
    let (old, lp, adv, m) = loss_inputs();
    let adv_b = array![[0.7], [-0.4], [1.2]];
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: m.view(),
        rollout_is_weights: None,
    };
    let t = |lt: &str, extra: Value| {
        let mut p = json!({ "loss_type": lt, "epsilon": 0.2 });
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let p: trl::GrpoLossParams = serde_json::from_value(p).unwrap();
        let inp = trl::GrpoLossInputs {
            log_prob: lp.view(),
            old_log_prob: Some(old.view()),
            ref_log_prob: None,
            advantages: adv_b.view(),
            response_mask: m.view(),
            entropy: None,
            importance_sampling_ratio: None,
            sampling_per_token_logps: None,
        };
        trl::grpo_loss(&inp, &p).unwrap()
    };
    let v = |mode: &str, f: Option<f64>| {
        verl::compute_policy_loss_vanilla(
            &x,
            &verl::ActorParams {
                loss_agg_mode: Some(mode.into()),
                loss_scale_factor: f,
                ..Default::default()
            },
        )
        .unwrap()
    };
    // dapo == bnpo == verl token-mean (ratios stay below the dual-clip c = 3)
    let tm = v("token-mean", None);
    for lt in ["dapo", "bnpo"] {
        let o = t(lt, json!({}));
        close(o.loss, tm.pg_loss, 1e-12);
        for (a, b) in o.grad_log_prob.iter().zip(tm.grad_log_prob.iter()) {
            close(*a, *b, 1e-12);
        }
    }
    // grpo == verl seq-mean-token-mean up to verl's +1e-8
    close(
        t("grpo", json!({})).loss,
        v("seq-mean-token-mean", None).pg_loss,
        1e-8,
    );
    // dr_grpo == seq-mean-token-sum-norm with C = B * max_completion_length
    close(
        t("dr_grpo", json!({"max_completion_length": 10})).loss,
        v("seq-mean-token-sum-norm", Some(30.0)).pg_loss,
        1e-12,
    );
    // dapo rescaling (trl 1.16): loss * S / GA with num_items fixed
    let base = t("dapo", json!({"num_items_in_batch": 9}));
    let scaled = t(
        "dapo",
        json!({"num_items_in_batch": 9, "gradient_accumulation_steps": 2, "steps_per_generation": 8}),
    );
    close(scaled.loss, base.loss * 4.0, 1e-12);
    // dr_grpo does not depend on the padded width: add a padding column
    let pad = |a: &Array2<f64>| {
        ndarray::concatenate![ndarray::Axis(1), a.view(), Array2::zeros((3, 2)).view()]
    };
    let (oldp, lpp, mp) = (pad(&old), pad(&lp), pad(&m));
    let p: trl::GrpoLossParams = serde_json::from_value(json!({"loss_type": "dr_grpo"})).unwrap();
    let inp = trl::GrpoLossInputs {
        log_prob: lpp.view(),
        old_log_prob: Some(oldp.view()),
        ref_log_prob: None,
        advantages: adv_b.view(),
        response_mask: mp.view(),
        entropy: None,
        importance_sampling_ratio: None,
        sampling_per_token_logps: None,
    };
    close(
        trl::grpo_loss(&inp, &p).unwrap().loss,
        t("dr_grpo", json!({})).loss,
        1e-15,
    );
}

#[test]
fn trl_delta_equals_verl_dual_clip_for_negative_advantages() {
    // delta >= 1 + eps_high: TRL two-sided clip == verl dual-clip with c = delta
    let old = array![[-1.0, -1.0, -1.0]];
    let lp = array![[0.5, -0.9, -1.5]]; // ratios e^1.5 > 4, e^0.1, e^-0.5
    let adv = array![[-1.0, -1.0, -1.0]];
    let m = array![[1.0, 1.0, 1.0]];
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: m.view(),
        rollout_is_weights: None,
    };
    let v = verl::compute_policy_loss_vanilla(
        &x,
        &verl::ActorParams {
            clip_ratio_c: 4.0,
            ..Default::default()
        },
    )
    .unwrap();
    let p: trl::GrpoLossParams =
        serde_json::from_value(json!({"loss_type": "bnpo", "delta": 4.0})).unwrap();
    let inp = trl::GrpoLossInputs {
        log_prob: lp.view(),
        old_log_prob: Some(old.view()),
        ref_log_prob: None,
        advantages: adv.view(),
        response_mask: m.view(),
        entropy: None,
        importance_sampling_ratio: None,
        sampling_per_token_logps: None,
    };
    let t = trl::grpo_loss(&inp, &p).unwrap();
    close(t.loss, v.pg_loss, 1e-12);
    close(v.pg_loss, (4.0 + 0.1f64.exp() + 0.8) / 3.0, 1e-12);
    assert_eq!(t.grad_log_prob[[0, 0]], 0.0);
    close(v.pg_clipfrac_lower.unwrap(), 1.0 / 3.0, 1e-8);
}

#[test]
fn low_var_kl_clamps_value_and_kills_gradient() {
    let lp = array![[-1.0, -30.0, -1.0]];
    let rf = array![[24.0, -1.0, -4.0]];
    let p = verl::KlPenaltyParams {
        kl_penalty: "low_var_kl".into(),
    };
    let (kl, g) = verl::kl_penalty(lp.view(), rf.view(), None, &p).unwrap();
    assert_eq!(kl[[0, 0]], 10.0);
    assert_eq!(g[[0, 0]], 0.0);
    assert_eq!(kl[[0, 1]], 10.0);
    close(kl[[0, 2]], (-3f64).exp() + 3.0 - 1.0, 1e-12);
    close(g[[0, 2]], 1.0 - (-3f64).exp(), 1e-12);
}

#[test]
fn anchor_errors_are_named() {
    let e = verl::masked_whiten(
        array![[1.0, 2.0]].view(),
        array![[1.0, 0.0]].view(),
        &verl::WhitenParams { shift_mean: true },
    )
    .unwrap_err();
    assert!(e.to_string().contains("mask"), "{e}");
    let (old, lp, adv, m) = loss_inputs();
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: m.view(),
        rollout_is_weights: None,
    };
    let e = verl::compute_policy_loss_vanilla(
        &x,
        &verl::ActorParams {
            clip_ratio_c: 1.0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, CoreError::InvalidParam { ref name, .. } if name == "clip_ratio_c"),
        "{e}"
    );
    let req = json!({"fn": "verl.compute_policy_loss_vanilla", "inputs": {
        "old_log_prob": [[0.0, 0.0]], "log_prob": [[0.0, null]], "advantages": [[1.0, 1.0]], "response_mask": [[1.0, 1.0]]}});
    let e = eval(&req).unwrap_err().to_string();
    assert!(
        e.starts_with("field inputs.log_prob") && e.contains("row 0, column 1"),
        "{e}"
    );
    let req = json!({"fn": "trl.grpo_loss", "params": {"beta": 0.1}, "inputs": {
        "per_token_logps": [[0.0]], "advantages": [1.0], "completion_mask": [[1.0]]}});
    let e = eval(&req).unwrap_err().to_string();
    assert!(e.starts_with("field inputs.ref_log_prob"), "{e}");
    let req = json!({"fn": "trl.grpo_loss", "params": {"loss_type": "ppo"}, "inputs": {
        "log_prob": [[0.0]], "advantages": [1.0], "response_mask": [[1.0]]}});
    let e = eval(&req).unwrap_err().to_string();
    assert!(e.starts_with("field params.loss_type"), "{e}");
    let req = json!({"fn": "verl.compute_grpo_outcome_advantage", "inputs": {
        "rewards": [1.0, 2.0], "response_mask": [[1.0], [1.0]], "index": [1, [2]]}});
    let e = eval(&req).unwrap_err().to_string();
    assert!(
        e.starts_with("field inputs.index") && e.contains("element 1"),
        "{e}"
    );
}

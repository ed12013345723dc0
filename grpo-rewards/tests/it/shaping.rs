//! Shaping rules: the invariants `algorithms.md` section 7 states, plus
//! config selection by name.

use std::collections::BTreeMap;

use grpo_rewards::shaping::{
    Combine, CosineParams, OverlongMode, RewardSpec, Sample, Shaper, components,
    cosine_length_reward, dapo_overlong_penalty, format_reward, otc_factor, otc_grpo_rewards,
    prorl_stop_penalty, rapo_absolute, rapo_relative, tag_pattern,
};
use proptest::prelude::*;

#[test]
fn format_rewards() {
    let re = tag_pattern(&["think", "answer"]).unwrap();
    assert_eq!(
        format_reward(&re, "<think>a\nb</think>\n<answer>4</answer>"),
        1.0
    );
    assert_eq!(
        format_reward(&re, "<think>a</think><answer>4</answer> extra"),
        0.0
    );
    assert_eq!(format_reward(&re, "<answer>4</answer>"), 0.0);
    assert!(tag_pattern(&["bad tag"]).is_err());
}

#[test]
fn dapo_overlong_points() {
    // DAPO recipe: L_max 20480, L_buf 4096, f 1
    let p = |l, m| dapo_overlong_penalty(l, 20_480, 4_096, 1.0, m);
    assert_eq!(p(16_384, OverlongMode::Verl), 0.0);
    assert!((p(18_432, OverlongMode::Verl) + 0.5).abs() < 1e-12);
    assert_eq!(p(20_480, OverlongMode::Verl), -1.0);
    assert!((p(24_576, OverlongMode::Verl) + 2.0).abs() < 1e-12);
    assert_eq!(p(24_576, OverlongMode::OpenRlhf), -1.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn overlong_is_monotone_and_zero_below_expected(a in 0usize..30_000, b in 0usize..30_000) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for m in [OverlongMode::Verl, OverlongMode::OpenRlhf] {
            let (x, y) = (dapo_overlong_penalty(lo, 20_480, 4_096, 1.0, m), dapo_overlong_penalty(hi, 20_480, 4_096, 1.0, m));
            prop_assert!(y <= x);
            prop_assert!(x <= 0.0);
            if lo <= 16_384 { prop_assert_eq!(x, 0.0); }
        }
    }

    #[test]
    fn cosine_orders_lengths(a in 0usize..1000, b in 0usize..1000) {
        let p = CosineParams::default();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(cosine_length_reward(lo, true, &p) >= cosine_length_reward(hi, true, &p));
        prop_assert!(cosine_length_reward(lo, false, &p) <= cosine_length_reward(hi, false, &p));
        prop_assert!(cosine_length_reward(hi, true, &p) > cosine_length_reward(hi, false, &p));
    }

    #[test]
    fn otc_factor_bounds(m in 0usize..50, n in 0usize..50) {
        let f = otc_factor(m, Some(n), 1.0);
        prop_assert!((0.0..=1.0 + 1e-12).contains(&f));
        if m == n { prop_assert!((f - 1.0).abs() < 1e-12); }
    }
}

#[test]
fn cosine_endpoints() {
    let p = CosineParams::default();
    assert_eq!(cosine_length_reward(0, true, &p), 1.0);
    assert!((cosine_length_reward(1000, true, &p) - 0.5).abs() < 1e-12);
    assert_eq!(cosine_length_reward(0, false, &p), -1.0);
    assert!((cosine_length_reward(1000, false, &p) + 0.5).abs() < 1e-12);
}

#[test]
fn otc_values() {
    // OTC-PPO: 1 at m = 0, cos(mπ/(2m+c)) otherwise, tends to 0
    assert_eq!(otc_factor(0, None, 1.0), 1.0);
    assert!((otc_factor(1, None, 1.0) - (std::f64::consts::PI / 3.0).cos()).abs() < 1e-12);
    assert!(otc_factor(1000, None, 1.0) < 0.01);
    // OTC-GRPO: n = fewest calls among correct ones; wrong answers get 0
    let r = otc_grpo_rewards(&[1, 2, 4, 0], &[1.0, 1.0, 1.0, 0.0], 1.0, 1.0);
    assert!((r[0] - 1.0).abs() < 1e-12);
    let f = 2.0 * 1.0 * 2.0 / 3.0;
    assert!((r[1] - (f * std::f64::consts::PI / 2.0).sin()).abs() < 1e-12);
    assert!(r[2] < r[1]);
    assert_eq!(r[3], 0.0);
}

#[test]
fn rapo_rewards() {
    assert!((rapo_absolute(0.5, 0.5) - (1.0 + 1e-5)).abs() < 1e-12);
    assert!(rapo_absolute(0.5, 0.7) < rapo_absolute(0.5, 0.6));
    let preds = vec![vec![0.8, 0.9], vec![0.2, 0.3]];
    let rel = rapo_relative(&preds, &[0.9, 0.1]);
    // image 0 is better and predicted higher: high fidelity; bounded by sqrt(1+ε)+sqrt(ε)
    for row in &rel {
        for f in row {
            assert!(*f <= (1.0f64 + 1e-6).sqrt() + 1e-3 + 1e-9);
        }
    }
    let wrong = rapo_relative(&[vec![0.2, 0.3], vec![0.8, 0.9]], &[0.9, 0.1]);
    assert!(rel[0][0] > wrong[0][0]);
}

#[test]
fn prorl_stop() {
    assert_eq!(prorl_stop_penalty(1.0, false, -0.5), 1.0);
    assert_eq!(prorl_stop_penalty(1.0, true, 0.5), 0.5);
    assert_eq!(prorl_stop_penalty(1.0, true, -0.5), -0.5);
}

#[test]
fn weighted_components_and_selection_by_name() {
    let shapers: Vec<Shaper> = serde_json::from_value(serde_json::json!([
        {"type": "format"},
        {"type": "dapo_overlong", "max_len": 100, "buffer": 20},
        {"type": "otc", "c": 1.0},
        {"type": "cosine_length", "max_len": 50}
    ]))
    .unwrap();
    let s = Sample {
        text: "<think>x</think><answer>1</answer>",
        len_tokens: 90,
        correctness: 1.0,
        tool_calls: 0,
        ..Sample::default()
    };
    let c = components(&shapers, &s).unwrap();
    assert_eq!(c["format"], 1.0);
    assert!((c["overlong"] + 0.5).abs() < 1e-12);
    assert_eq!(c["efficiency"], 1.0);
    assert_eq!(c["accuracy"], 1.0);
    assert!(c.contains_key("cosine_length"));
    let spec = RewardSpec {
        weights: BTreeMap::from([
            ("accuracy".into(), 1.0),
            ("format".into(), 0.5),
            ("overlong".into(), 1.0),
        ]),
        ..RewardSpec::default()
    };
    assert!((spec.combine(&c) - 1.0).abs() < 1e-12);
    let prod = RewardSpec {
        weights: BTreeMap::from([("accuracy".into(), 1.0), ("efficiency".into(), 2.0)]),
        combine: Combine::Product,
        ceiling: Some(1.5),
        ..RewardSpec::default()
    };
    assert_eq!(prod.combine(&c), 1.5);
    // NaN components are skipped in a sum (TRL nansum)
    let mut with_nan = c.clone();
    with_nan.insert("format".into(), f64::NAN);
    assert!((spec.combine(&with_nan) - 0.5).abs() < 1e-12);
    assert!(serde_json::from_value::<Shaper>(serde_json::json!({"type": "nope"})).is_err());
    let bad = Shaper::Format {
        pattern: Some("(".into()),
        tags: None,
    };
    assert!(bad.apply(&s).is_err());
}

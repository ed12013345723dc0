//! Property tests for every registered filter and sampler (algorithms.md §6),
//! driven by the registry: each name has an example config that parses and
//! runs; outputs are valid indices; results are a pure function of the seed;
//! and the invariants of DAPO, PF-PPO, VAS, SPO sampling, the curriculum and
//! Scaf-GRPO hold.

use std::collections::BTreeSet;

use grpo_core::advantage;
use grpo_core::batch::ScoredBatch;
use grpo_core::filter::{self, DynamicSamplingBuffer, FillStatus, FilterConfig};
use grpo_core::sampler::{self, PromptPool, PromptSampler, SamplerConfig, scaf};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::adv_support::*;

pub(crate) fn filter_examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "dynamic_sampling",
            json!({"type": "dynamic_sampling", "metric": "reward"}),
        ),
        ("mask_truncated", json!({"type": "mask_truncated"})),
        (
            "advantage_threshold",
            json!({"type": "advantage_threshold", "metric": "reward", "success_threshold": 0.5}),
        ),
        (
            "rejection_sampling",
            json!({"type": "rejection_sampling", "metric": "reward"}),
        ),
        (
            "max_samples",
            json!({"type": "max_samples", "max_samples": 2}),
        ),
        (
            "pf_ppo",
            json!({"type": "pf_ppo", "weight": {"method": "pow", "p": 2.0}}),
        ),
    ]
}

pub(crate) fn sampler_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("uniform", json!({"type": "uniform"})),
        (
            "vas",
            json!({"type": "vas", "alpha": 0.8, "beta": 0.2, "update_freq": 2, "momentum": 0.5}),
        ),
        ("spo_priority", json!({"type": "spo_priority"})),
        (
            "difficulty_curriculum",
            json!({"type": "difficulty_curriculum", "buckets": 3, "advance_threshold": 0.6}),
        ),
        ("scaf_grpo", json!({"type": "scaf_grpo"})),
    ]
}

fn variants<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_value::<T>(json!({"type": "__nope__"}))
        .unwrap_err()
        .to_string();
    err.split("expected one of")
        .nth(1)
        .unwrap()
        .split(',')
        .map(|s| {
            s.trim()
                .trim_matches('`')
                .split('`')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn registry_examples_and_variants_agree() {
    let freg: BTreeSet<String> = filter::registry()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    let fex: BTreeSet<String> = filter_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(freg, fex);
    assert_eq!(freg, variants::<FilterConfig>());
    let sreg: BTreeSet<String> = sampler::registry()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    let sex: BTreeSet<String> = sampler_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(sreg, sex);
    assert_eq!(sreg, variants::<SamplerConfig>());
    for (n, v) in filter_examples() {
        assert_eq!(serde_json::from_value::<FilterConfig>(v).unwrap().name(), n);
    }
    for (n, v) in sampler_examples() {
        assert_eq!(
            serde_json::from_value::<SamplerConfig>(v).unwrap().name(),
            n
        );
    }
    assert!(
        serde_json::from_value::<FilterConfig>(
            json!({"type": "max_samples", "max_samples": 2, "x": 1})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<SamplerConfig>(json!({"type": "vas", "alpha": 1.0})).is_err(),
        "β is required"
    );
}

fn pool(n: usize, seed: u64) -> PromptPool {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    PromptPool {
        pass_rate: (0..n)
            .map(|_| [0.0, 0.25, 0.5, 1.0, rng.random::<f64>()][rng.random_range(0..5)])
            .collect(),
        diversity: Some((0..n).map(|_| rng.random()).collect()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_filter_runs_and_is_seeded(spec in batch_spec(), seed in any::<u64>()) {
        let b = build(&spec);
        for (name, v) in filter_examples() {
            let f: FilterConfig = serde_json::from_value(v).unwrap();
            let s1 = f.select(&b, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            let s2 = f.select(&b, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            prop_assert_eq!(&s1, &s2, "{} is not a function of the seed", name);
            prop_assert!(s1.rows.iter().all(|&r| r < b.rows()));
            if s1.rows.is_empty() {
                // an empty batch cannot exist: applying an all-dropping selection is a named error
                prop_assert!(s1.apply(&b).is_err());
                continue;
            }
            let out = s1.apply(&b).unwrap();
            prop_assert_eq!(out.rows(), s1.rows.len());
            match name {
                "dynamic_sampling" => {
                    // kept groups have non-zero variance, dropped ones zero; order preserved
                    for (_, rows) in out.groups().iter() {
                        prop_assert!(rows.iter().any(|&i| out.reward[i] != out.reward[rows[0]]));
                    }
                    let kept_ids: Vec<usize> = out.groups().ids;
                    let orig: Vec<usize> = b.groups().ids.into_iter().filter(|g| kept_ids.contains(g)).collect();
                    prop_assert_eq!(kept_ids, orig);
                    prop_assert_eq!(s1.dropped_groups.len() + out.groups().len(), b.groups().len());
                }
                "mask_truncated" => {
                    for (i, t) in b.truncated.as_ref().unwrap().iter().enumerate() {
                        let l: f64 = out.mask.row(i).sum();
                        prop_assert_eq!(l == 0.0, *t);
                    }
                }
                "max_samples" => {
                    prop_assert!(out.groups().rows.iter().all(|r| r.len() <= 2));
                    prop_assert_eq!(out.groups().len(), b.groups().len());
                }
                "rejection_sampling" => prop_assert!(out.reward.iter().all(|r| *r != 0.0)),
                "advantage_threshold" => {
                    for (_, rows) in out.groups().iter() {
                        let s = rows.iter().filter(|&&i| out.reward[i] >= 0.5).count();
                        prop_assert!(s > 0 && s < rows.len());
                    }
                }
                "pf_ppo" => prop_assert_eq!(s1.rows.len(), b.rows()),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn dynamic_sampling_buffer_fills_exactly(specs in prop::collection::vec(batch_spec(), 1..6), target in 1usize..4) {
        let mut buf = DynamicSamplingBuffer::new(target, 0, "reward").unwrap();
        let mut status = FillStatus::NeedMore;
        for s in &specs {
            status = buf.push(&build(s)).unwrap();
            if status == FillStatus::Full { break; }
        }
        if status == FillStatus::Full {
            let out = buf.take().unwrap();
            prop_assert_eq!(out.groups().len(), target);
            for (_, rows) in out.groups().iter() {
                prop_assert!(rows.iter().any(|&i| out.reward[i] != out.reward[rows[0]]));
            }
        } else {
            prop_assert!(buf.take().is_err());
        }
    }

    #[test]
    fn every_sampler_draws_valid_seeded_indices(n in 1usize..40, k in 1usize..50, seed in any::<u64>()) {
        let p = pool(n, seed);
        for (name, v) in sampler_examples() {
            let c: SamplerConfig = serde_json::from_value(v).unwrap();
            let mut s1 = PromptSampler::new(c.clone()).unwrap();
            let mut s2 = PromptSampler::new(c).unwrap();
            for _ in 0..3 {
                let a = s1.draw(&p, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
                let b = s2.draw(&p, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
                prop_assert_eq!(&a, &b, "{} not seeded", name);
                prop_assert_eq!(a.len(), k, "{}", name);
                prop_assert!(a.iter().all(|&i| i < n));
                if k <= n && matches!(name, "uniform" | "scaf_grpo" | "spo_priority") {
                    let set: BTreeSet<usize> = a.iter().copied().collect();
                    prop_assert_eq!(set.len(), k, "{} draws without replacement", name);
                }
            }
            // sampler state round-trips
            let text = serde_json::to_string(&s1).unwrap();
            let back: PromptSampler = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, s1);
        }
    }

    #[test]
    fn vas_invariants(n in 2usize..30, k in 1usize..40, seed in any::<u64>()) {
        let p = pool(n, seed);
        // λ = 0 ⇒ uniform
        let mut v0 = PromptSampler::new(serde_json::from_value(json!({"type": "vas", "alpha": 1.0, "beta": 0.0, "mixture_ratio": 0.0})).unwrap()).unwrap();
        let mut u = PromptSampler::new(serde_json::from_value(json!({"type": "uniform"})).unwrap()).unwrap();
        prop_assert_eq!(v0.draw(&p, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap(), u.draw(&p, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap());
        // λ = 1, β = 0: prompts with P ∈ {0, 1} (OVS = 0, the minimum) are never drawn when some prompt has OVS > 0
        let mut v1 = PromptSampler::new(serde_json::from_value(json!({"type": "vas", "alpha": 1.0, "beta": 0.0, "mixture_ratio": 1.0})).unwrap()).unwrap();
        let d = v1.draw(&p, k, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        if p.pass_rate.iter().any(|&x| sampler::ovs(x) > 0.0) {
            prop_assert!(d.iter().all(|&i| sampler::ovs(p.pass_rate[i]) > 0.0));
        }
        prop_assert_eq!(sampler::ovs(0.0), 0.0);
        prop_assert_eq!(sampler::ovs(1.0), 0.0);
        prop_assert!(sampler::ovs(0.5) >= sampler::ovs(p.pass_rate[0]));
    }

    #[test]
    fn curriculum_draws_only_released_buckets(n in 1usize..30, seed in any::<u64>()) {
        let p = pool(n, seed);
        let cfg: grpo_core::sampler::CurriculumConfig = serde_json::from_value(json!({"buckets": 3, "advance_threshold": 0.6})).unwrap();
        let mut s = PromptSampler::new(SamplerConfig::DifficultyCurriculum(cfg.clone())).unwrap();
        let d = s.draw(&p, 10, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let stage = s.state.stage;
        let any_released = p.pass_rate.iter().any(|&x| PromptSampler::bucket(&cfg, x) <= stage);
        if any_released {
            prop_assert!(d.iter().all(|&i| PromptSampler::bucket(&cfg, p.pass_rate[i]) <= stage));
        }
    }

    #[test]
    fn scaf_augmented_group_has_one_positive(g in 2usize..12, seed in any::<u64>()) {
        let c: grpo_core::sampler::ScafGrpoConfig = serde_json::from_value(json!({})).unwrap();
        let mut r = vec![0.0; g];
        prop_assert!(!scaf::needs_hint(&c, 10, 100, &r), "exemption period");
        prop_assert!(scaf::needs_hint(&c, 15, 100, &r));
        let i = scaf::augment_group(&mut r, 1.0, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert!(!scaf::needs_hint(&c, 50, 100, &r), "groups with a success are untouched");
        let b = ScoredBatch::from_outcome(&r, &vec![0; g], &vec![1; g]).unwrap();
        let a = advantage::compute(&serde_json::from_value(json!({"type": "grpo"})).unwrap(), &b, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let sigma = 1.0 / (g as f64).sqrt();
        for k in 0..g {
            let x = a.advantages[[k, 0]];
            if k == i {
                prop_assert!((x - (1.0 - 1.0 / g as f64) / (sigma + 1e-6)).abs() < 1e-9);
            } else {
                prop_assert!((x + (1.0 / g as f64) / (sigma + 1e-6)).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn pf_ppo_weight_rules() {
    use filter::{PfPpoWeight, pf_ppo_weights};
    let s = [0.0, 1.0, -2.0, 0.5];
    let w = pf_ppo_weights(&PfPpoWeight::Pow { p: 2.0 }, &s);
    assert!((w[2] - 4.0).abs() < 1e-7 && w[0] >= 1e-8);
    let w = pf_ppo_weights(&PfPpoWeight::MaxMin, &s);
    assert!(w[1] > 0.9 && w[2] > 0.9 && w[0] < 1e-7 && w[3] < 1e-7);
    let w = pf_ppo_weights(&PfPpoWeight::MaxRandom, &s);
    assert!((w[1] - 0.4).abs() < 1e-7 && (w[0] - 0.1).abs() < 1e-7);
}

#[test]
fn dynamic_sampling_gives_up_after_the_limit() {
    let flat = ScoredBatch::from_outcome(&[1.0, 1.0], &[0, 0], &[1, 1]).unwrap();
    let mut buf = DynamicSamplingBuffer::new(1, 2, "reward").unwrap();
    assert_eq!(buf.push(&flat).unwrap(), FillStatus::NeedMore);
    assert!(buf.push(&flat).is_err());
}

#[test]
fn spo_priority_weights_have_a_floor() {
    // all prompts solved or failed: sampling still works (floor 0.05) and covers the pool
    let p = PromptPool {
        pass_rate: vec![0.0, 1.0, 0.0, 1.0],
        diversity: None,
    };
    let mut s =
        PromptSampler::new(serde_json::from_value(json!({"type": "spo_priority"})).unwrap())
            .unwrap();
    let d = s.draw(&p, 4, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let set: BTreeSet<usize> = d.into_iter().collect();
    assert_eq!(set.len(), 4);
}

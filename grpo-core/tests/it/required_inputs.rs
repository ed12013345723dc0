//! The declared inputs of every registry item agree with what the item reads.
//!
//! For every advantage estimator, loss (and modifier/term over several bases),
//! filter and sampler: with every optional input present the item runs; with
//! exactly one input removed it fails for lack of data iff that input is in
//! `required_inputs()`; when it runs, its result is unchanged unless the input
//! is in `optional_inputs()` (no undeclared reads), and each declared optional
//! input changes the result for at least one test batch. Every registry name
//! of those kinds has an example, so a new item cannot skip these checks.

use std::collections::{BTreeMap, BTreeSet};

use grpo_core::CoreError;
use grpo_core::Input;
use grpo_core::advantage::{self, AdvantageConfig, AdvantageOutput, AdvantageState};
use grpo_core::batch::ScoredBatch;
use grpo_core::filter::{FilterConfig, Selection};
use grpo_core::kl::{KlController, KlControllerConfig, KlEstimator};
use grpo_core::loss::{LossConfig, LossInputs, LossOutput};
use grpo_core::registry::{self, Kind};
use grpo_core::sampler::{PromptPool, PromptSampler, SamplerConfig};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::adv_support::{BatchSpec, advantage_examples, build};
use crate::loss_props::{self, Owned};
use crate::sampler_properties::{filter_examples, sampler_examples};

/// Inputs held by a `ScoredBatch` (the rest live in `LossInputs`).
const BATCH_SIDE: &[Input] = &[
    Input::OldLogProb,
    Input::RewardComponents,
    Input::SumSqProb,
    Input::BaselineReward,
    Input::PromptKey,
    Input::Steps,
    Input::Budgets,
    Input::Values,
    Input::IsWeight,
    Input::Truncated,
    Input::TokenRewards,
];

fn batch_side(i: Input) -> bool {
    BATCH_SIDE.contains(&i)
}

fn names(kind: Kind) -> BTreeSet<String> {
    registry::all()
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.name.to_string())
        .collect()
}

/// A data-shortage error: `MissingInput`, or the `UnknownName` a batch gives for
/// a reward component it does not have (filters reading a component `metric`).
fn is_missing(e: &CoreError) -> bool {
    matches!(e, CoreError::MissingInput { .. })
        || matches!(e, CoreError::UnknownName { kind, .. } if kind == "reward component")
}

/// The batch with one input removed (`None` for an input a batch does not hold).
fn batch_without(b: &ScoredBatch, i: Input) -> Option<ScoredBatch> {
    let mut b = b.clone();
    match i {
        Input::OldLogProb => b.old_log_prob = None,
        Input::RewardComponents => b.components.clear(),
        Input::SumSqProb => b.sum_sq_prob = None,
        Input::BaselineReward => b.baseline_reward = None,
        Input::PromptKey => b.prompt_key = None,
        Input::Steps => b.steps = None,
        Input::Budgets => b.budgets = None,
        Input::Values => b.values = None,
        Input::IsWeight => b.is_weight = None,
        Input::Truncated => b.truncated = None,
        Input::TokenRewards => b.token_rewards = None,
        Input::RefLogProb
        | Input::RolloutLogProb
        | Input::Entropy
        | Input::GroupIndex
        | Input::Rewards
        | Input::Scores
        | Input::TokenIds
        | Input::Instability
        | Input::FullKl => return None,
    }
    Some(b)
}

/// Loss inputs with one input removed (`None` for an input that lives in a batch).
fn loss_without<'a>(x: &LossInputs<'a>, i: Input) -> Option<LossInputs<'a>> {
    let mut x = x.clone();
    match i {
        Input::RefLogProb => x.ref_log_prob = None,
        Input::RolloutLogProb => x.rollout_log_prob = None,
        Input::Entropy => x.entropy = None,
        Input::GroupIndex => x.index = None,
        Input::Rewards => x.rewards = None,
        Input::Scores => x.scores = None,
        Input::TokenIds => x.token_ids = None,
        Input::Instability => x.instability = None,
        Input::FullKl => x.full_kl = None,
        _ => return None,
    }
    Some(x)
}

/// Full test batches: every extra set, plus token rewards that differ from the
/// outcome placement.
fn full_batches() -> Vec<ScoredBatch> {
    [
        (vec![3, 2, 4], 5, 1u64),
        (vec![2, 3], 4, 2),
        (vec![4, 4], 6, 3),
    ]
    .into_iter()
    .map(|(group_sizes, t, seed)| {
        let spec = BatchSpec {
            constant_groups: vec![false; group_sizes.len()],
            group_sizes,
            t,
            seed,
            binary: false,
        };
        let b = build(&spec);
        let tr = Array2::from_shape_fn(b.mask.dim(), |(i, j)| {
            0.1 * ((i * 7 + j * 3) % 5) as f64 - 0.2
        });
        b.with_token_rewards(tr).unwrap()
    })
    .collect()
}

fn adv_run(c: &AdvantageConfig, b: &ScoredBatch) -> Result<AdvantageOutput, CoreError> {
    advantage::compute(c, b, &mut ChaCha8Rng::seed_from_u64(11))
}

fn adv_configs() -> Vec<(String, AdvantageConfig)> {
    let mut v: Vec<(String, Value)> = advantage_examples()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    // requirements or reads that depend on parameters
    for extra in [
        json!({"type": "oblr", "weight": "length"}),
        json!({"type": "bnpo", "r_min": -1.0, "r_max": 4.0, "decompose": false}),
        json!({"type": "gdpo"}),
        json!({"type": "optimal_token_baseline", "align": "valid_index"}),
        json!({"type": "spo", "rho": {"type": "constant", "value": 0.9}}),
        json!({"type": "gigpo", "gamma": 0.9, "mode": "mean_norm"}),
    ] {
        v.push((format!("variant {extra}"), extra));
    }
    v.into_iter()
        .map(|(n, v)| (n, serde_json::from_value(v).unwrap()))
        .collect()
}

#[test]
fn every_advantage_registry_name_has_an_example() {
    let ex: BTreeSet<String> = advantage_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(ex, names(Kind::Advantage));
}

#[test]
fn advantage_required_inputs_match_behaviour() {
    let batches = full_batches();
    for (label, c) in adv_configs() {
        let req = c.required_inputs();
        let opt = c.optional_inputs();
        assert!(req.is_disjoint(&opt), "{label}: required ∩ optional");
        for i in req.iter().chain(&opt) {
            assert!(batch_side(*i), "{label}: declares loss-side input {i}");
        }
        assert_eq!(
            c.is_stateful(),
            c.initial_state() != AdvantageState::None,
            "{label}: is_stateful"
        );
        let mut changed: BTreeSet<Input> = BTreeSet::new();
        for b in &batches {
            let full = adv_run(&c, b).unwrap_or_else(|e| panic!("{label} with all inputs: {e}"));
            for &i in Input::ALL {
                let Some(b2) = batch_without(b, i) else {
                    continue;
                };
                match adv_run(&c, &b2) {
                    Err(e) => {
                        assert!(
                            req.contains(&i),
                            "{label}: fails without undeclared `{}`: {e}",
                            i.name()
                        );
                        assert!(
                            matches!(e, CoreError::MissingInput { .. }),
                            "{label}: without `{}` fails with {e:?}, not MissingInput",
                            i.name()
                        );
                    }
                    Ok(out) => {
                        assert!(
                            !req.contains(&i),
                            "{label}: runs without required `{}`",
                            i.name()
                        );
                        if out != full {
                            assert!(
                                opt.contains(&i),
                                "{label}: result depends on undeclared `{}`",
                                i.name()
                            );
                            changed.insert(i);
                        }
                    }
                }
            }
        }
        assert_eq!(
            changed, opt,
            "{label}: declared optional inputs that never change the result"
        );
    }
}

/// Loss configs: one per registered name, the property-test variants, every KL
/// estimator, and wrappers over bases with requirements of their own.
fn loss_configs() -> Vec<(String, LossConfig)> {
    let mut out = loss_props::all_configs();
    let ex = |n: &str| loss_props::example(n).unwrap();
    let tm = json!({"type": "token_mean"});
    let mut extra = Vec::new();
    for est in KlEstimator::ALL {
        extra.push(json!({"type": "kl_penalty", "coef": 0.1, "estimator": est.name(), "agg": tm, "base": ex("ppo_clip")}));
    }
    extra.extend([
        json!({"type": "rollout_correction", "level": "token", "mode": "truncate", "c_min": 0.8, "c_max": 1.2, "base": ex("gtpo")}),
        json!({"type": "kl_penalty", "coef": 0.1, "estimator": "full", "agg": tm, "base": ex("gtpo")}),
        json!({"type": "kl_penalty", "coef": 0.1, "estimator": "k2", "agg": tm, "base": ex("dagrpo_loss")}),
        json!({"type": "entropy_bonus", "coef": 0.01, "agg": tm, "base": ex("p3o")}),
        json!({"type": "entropy_bonus", "coef": 0.01, "agg": tm, "base": ex("disco")}),
        json!({"type": "llds", "lambda": 0.2, "gate": "action", "threshold": 0.0, "base": ex("reg_grpo")}),
        json!({"type": "off_policy_mask", "threshold": 0.0, "base": ex("rollout_correction")}),
        json!({"type": "rollout_correction", "level": "sequence", "mode": "mask", "c_max": 3.0, "base": ex("off_policy_mask")}),
        json!({"type": "top_entropy_mask", "quantile": 0.5, "base": ex("capo_mask")}),
    ]);
    for v in extra {
        let c: LossConfig = serde_json::from_value(v.clone()).unwrap();
        out.push((format!("extra {v}"), c));
    }
    out
}

/// The parts of a loss output that the loss math produces (metrics excluded:
/// every loss reports the mean entropy when it is given).
fn loss_value(o: &LossOutput) -> (f64, Array2<f64>, Option<Array2<f64>>, Option<Array2<f64>>) {
    (
        o.loss,
        o.grad_logp.clone(),
        o.grad_entropy.clone(),
        o.grad_full_kl.clone(),
    )
}

fn loss_run(c: &LossConfig, x: &LossInputs<'_>) -> Result<LossOutput, CoreError> {
    c.compute(x, &mut ChaCha8Rng::seed_from_u64(7))
}

#[test]
fn loss_required_inputs_match_behaviour() {
    // every registered loss has an example (all_configs panics otherwise)
    let covered: BTreeSet<String> = loss_props::all_configs()
        .iter()
        .map(|(_, c)| c.name().to_string())
        .collect();
    assert_eq!(covered, names(Kind::Loss));
    let owned: Vec<Owned> = (0..4u64)
        .map(|s| Owned::random(100 + s, 0.4, s % 2 == 1, false))
        .collect();
    let mut by_name: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (label, c) in loss_configs() {
        *by_name.entry(c.name()).or_default() += 1;
        let req = c.required_inputs();
        let opt = c.optional_inputs();
        assert!(req.is_disjoint(&opt), "{label}: required ∩ optional");
        for i in req.iter().chain(&opt) {
            assert!(!batch_side(*i), "{label}: declares batch-side input {i}");
        }
        let mut changed: BTreeSet<Input> = BTreeSet::new();
        for o in &owned {
            let x = o.view();
            let full = loss_run(&c, &x).unwrap_or_else(|e| panic!("{label} with all inputs: {e}"));
            for &i in Input::ALL {
                let Some(x2) = loss_without(&x, i) else {
                    continue;
                };
                match loss_run(&c, &x2) {
                    Err(e) => {
                        assert!(
                            req.contains(&i),
                            "{label}: fails without undeclared `{}`: {e}",
                            i.name()
                        );
                        assert!(
                            matches!(e, CoreError::MissingInput { .. }),
                            "{label}: without `{}` fails with {e:?}, not MissingInput",
                            i.name()
                        );
                    }
                    Ok(out) => {
                        assert!(
                            !req.contains(&i),
                            "{label}: runs without required `{}`",
                            i.name()
                        );
                        if loss_value(&out) != loss_value(&full) {
                            assert!(
                                opt.contains(&i),
                                "{label}: result depends on undeclared `{}`",
                                i.name()
                            );
                            changed.insert(i);
                        }
                    }
                }
            }
        }
        assert_eq!(
            changed, opt,
            "{label}: declared optional inputs that never change the result"
        );
    }
    for wrapper in [
        "rollout_correction",
        "off_policy_mask",
        "top_entropy_mask",
        "capo_mask",
        "kl_penalty",
        "entropy_bonus",
        "llds",
    ] {
        assert!(
            by_name[wrapper] >= 2,
            "{wrapper}: test it over more than one base"
        );
    }
}

#[test]
fn kl_penalty_requirement_follows_the_estimator() {
    let ppo = loss_props::example("ppo_clip").unwrap();
    for est in KlEstimator::ALL {
        let c: LossConfig = serde_json::from_value(json!({"type": "kl_penalty", "coef": 0.1, "estimator": est.name(), "agg": {"type": "token_mean"}, "base": ppo})).unwrap();
        let want = if est == KlEstimator::Full {
            Input::FullKl
        } else {
            Input::RefLogProb
        };
        assert_eq!(
            c.required_inputs(),
            BTreeSet::from([want]),
            "{}",
            est.name()
        );
    }
    let c: LossConfig = serde_json::from_value(json!({"type": "rollout_correction", "level": "token", "mode": "truncate", "base": loss_props::example("gtpo").unwrap()})).unwrap();
    assert_eq!(
        c.required_inputs(),
        BTreeSet::from([
            Input::RolloutLogProb,
            Input::Entropy,
            Input::GroupIndex,
            Input::TokenIds
        ])
    );
}

fn filter_configs() -> Vec<(String, FilterConfig)> {
    let mut v: Vec<(String, Value)> = filter_examples()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    for extra in [
        json!({"type": "dynamic_sampling", "metric": "accuracy"}),
        json!({"type": "advantage_threshold", "metric": "accuracy", "success_threshold": 0.5}),
        json!({"type": "rejection_sampling", "metric": "format"}),
        json!({"type": "pf_ppo", "weight": {"method": "max_min"}}),
    ] {
        v.push((format!("variant {extra}"), extra));
    }
    v.into_iter()
        .map(|(n, v)| (n, serde_json::from_value(v).unwrap()))
        .collect()
}

fn filter_run(c: &FilterConfig, b: &ScoredBatch) -> Result<Selection, CoreError> {
    c.select(b, &mut ChaCha8Rng::seed_from_u64(5))
}

#[test]
fn filter_required_inputs_match_behaviour() {
    let ex: BTreeSet<String> = filter_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(ex, names(Kind::Filter));
    let batches = full_batches();
    for (label, c) in filter_configs() {
        let req = c.required_inputs();
        for i in &req {
            assert!(batch_side(*i), "{label}: declares loss-side input {i}");
        }
        for b in &batches {
            let full = filter_run(&c, b).unwrap_or_else(|e| panic!("{label} with all inputs: {e}"));
            for &i in Input::ALL {
                let Some(b2) = batch_without(b, i) else {
                    continue;
                };
                match filter_run(&c, &b2) {
                    Err(e) => {
                        assert!(
                            req.contains(&i),
                            "{label}: fails without undeclared `{}`: {e}",
                            i.name()
                        );
                        assert!(
                            is_missing(&e),
                            "{label}: without `{}` fails with {e:?}",
                            i.name()
                        );
                    }
                    Ok(sel) => {
                        assert!(
                            !req.contains(&i),
                            "{label}: runs without required `{}`",
                            i.name()
                        );
                        assert_eq!(
                            sel,
                            full,
                            "{label}: selection depends on undeclared `{}`",
                            i.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn samplers_read_no_batch_input_and_declare_their_pool_needs() {
    let ex: BTreeSet<String> = sampler_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(ex, names(Kind::Sampler));
    let mut configs: Vec<SamplerConfig> = sampler_examples()
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).unwrap())
        .collect();
    configs
        .push(serde_json::from_value(json!({"type": "vas", "alpha": 1.0, "beta": 0.0})).unwrap());
    let full = PromptPool {
        pass_rate: vec![0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.3],
        diversity: Some(vec![0.1, 0.9, 0.4, 0.2, 0.7, 0.3, 0.5]),
    };
    let bare = PromptPool {
        diversity: None,
        ..full.clone()
    };
    for c in configs {
        assert!(c.required_inputs().is_empty(), "{}", c.name());
        let draw = |pool: &PromptPool| {
            PromptSampler::new(c.clone())
                .unwrap()
                .draw(pool, 4, &mut ChaCha8Rng::seed_from_u64(3))
        };
        let with = draw(&full).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        match draw(&bare) {
            Err(e) => {
                assert!(
                    c.needs_diversity(),
                    "{}: undeclared diversity: {e}",
                    c.name()
                );
                assert!(matches!(e, CoreError::MissingInput { .. }), "{e:?}");
            }
            Ok(without) => {
                assert!(!c.needs_diversity(), "{}: runs without diversity", c.name());
                assert_eq!(with, without, "{}: draw depends on diversity", c.name());
            }
        }
    }
}

#[test]
fn kl_controllers_read_no_batch_input() {
    let examples = [
        json!({"type": "fixed", "kl_coef": 0.1}),
        json!({"type": "adaptive", "init_kl_coef": 0.2, "target_kl": 0.1, "horizon": 10000.0}),
        json!({"type": "grpo_d", "schedule": "cosine", "beta_min": 0.0, "beta_max": 0.1, "warmup_steps": 0, "total_steps": 10}),
        json!({"type": "disco_constrained", "beta": 1000.0, "delta": 1e-4}),
    ];
    let configs: Vec<KlControllerConfig> = examples
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let covered: BTreeSet<String> = examples
        .iter()
        .map(|v| v["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(covered, names(Kind::KlController));
    for c in configs {
        assert!(c.required_inputs().is_empty());
        let after = |kl: f64| {
            let mut k = KlController::new(c.clone()).unwrap();
            k.update(kl, 1).unwrap()
        };
        assert_eq!(
            after(0.01) != after(0.5),
            c.uses_measured_kl(),
            "{c:?}: uses_measured_kl"
        );
    }
    // every KL estimator name is one kl_penalty accepts
    let est: BTreeSet<String> = KlEstimator::ALL
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(est, names(Kind::Kl));
}

#[test]
fn input_names_and_descriptions() {
    let mut seen = BTreeSet::new();
    for (k, &i) in Input::ALL.iter().enumerate() {
        assert!(seen.insert(i.name()), "duplicate name {}", i.name());
        assert!(!i.describe().is_empty() && !i.describe().contains('\n'));
        assert_eq!(i.to_string(), i.name());
        if k > 0 {
            assert!(Input::ALL[k - 1] < i, "ALL is in Ord order");
        }
    }
    assert_eq!(Input::ALL.len(), 20);
    assert_eq!(Input::GroupIndex.name(), "index");
    assert_eq!(Input::RewardComponents.name(), "components");
    assert_eq!(
        serde_json::to_value(Input::RefLogProb).unwrap(),
        json!("ref_log_prob")
    );
}

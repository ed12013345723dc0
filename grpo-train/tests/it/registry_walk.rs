//! Walks grpo-core's registry through the real trainer: every advantage estimator, loss,
//! aggregation mode, KL estimator, KL controller, filter and sampler either trains for two
//! GRPO steps on a tiny model (finite loss, weights changed, its metrics present) or is
//! refused when the config is validated, naming the input it needs and why the trainer does
//! not supply it. Anchors (`verl.*`, `trl.*`) are cross-check functions, not trainable items.

use std::collections::BTreeMap;

use grpo_core::registry::{self, Kind};
use grpo_train::config::{self, RunConfigFile};
use grpo_train::train;
use serde_json::Value;

use crate::common::{TINY, metrics, quiet};

/// Items refused at load, with a word their error must contain (the missing input or the
/// reason).
const REFUSED: &[(&str, &str)] = &[
    ("gae", "values"),
    ("optimal_token_baseline", "sum_sq_prob"),
    ("brpo", "budgets"),
    ("gigpo", "steps"),
    ("salt", "steps"),
    ("hrpo", "steps"),
    ("capo_mask", "instability"),
    ("full", "full_kl"),
    ("scaf_grpo", "hint"),
];

/// The tiny run every item is tried in: the shared tiny config without SFT (so only GRPO
/// moves the weights) and without weight decay, two reward components with variance even
/// under a random policy (the task's correctness and DAPO's overlong penalty on lengths 2..6).
fn base_table() -> toml::Table {
    let mut t: toml::Table = toml::from_str(TINY).unwrap();
    t.remove("sft");
    t.remove("checkpoint");
    let extra: toml::Table = toml::from_str(
        r#"
seed = 11
grpo = { steps = 2 }
rollout = { prompts_per_step = 3, group_size = 4, max_new_tokens = 6, temperature = 1.0 }
optim = { lr = 1e-2, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.0, grad_clip = 1.0 }
eval = { every = 0, num_prompts = 2, pass_k = 0 }

[[reward]]
name = "correct"
source = { type = "task" }

[[reward]]
name = "length"
weight = 0.5
source = { type = "dapo_overlong", max_len = 6, buffer = 5 }
"#,
    )
    .unwrap();
    t.extend(extra);
    set(&mut t, "task.eval_size", 4.into());
    t
}

fn example(name: &str) -> toml::Value {
    let text = registry::example(name).unwrap_or_else(|| panic!("no example for `{name}`"));
    let v: Value = serde_json::from_str(text).unwrap();
    toml::Value::try_from(v).unwrap()
}

fn set(table: &mut toml::Table, path: &str, v: toml::Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap();
    }
    cur.insert(parts[parts.len() - 1].to_string(), v);
}

fn ppo_with(agg: toml::Value) -> toml::Value {
    let mut t = example("ppo_clip");
    t.as_table_mut().unwrap().insert("agg".into(), agg);
    t
}

/// The run config that tries item `name` of `kind`.
fn config_for(kind: Kind, name: &str, out: &std::path::Path) -> RunConfigFile {
    let mut t = base_table();
    set(
        &mut t,
        "output_dir",
        toml::Value::String(out.display().to_string()),
    );
    set(&mut t, "name", toml::Value::String(name.replace('.', "_")));
    let frozen = |t: &mut toml::Table| set(t, "reference.mode", "frozen".into());
    match kind {
        Kind::Advantage => {
            set(&mut t, "algorithm.advantage", example(name));
            match name {
                // SPO's tracker needs rewards in [0, 1]: correctness alone; single stream.
                "spo" => {
                    t.remove("reward");
                    set(&mut t, "rollout.group_size", 1.into());
                }
                "bnpo" => {
                    let mut a = example(name);
                    a.as_table_mut()
                        .unwrap()
                        .insert("r_min".into(), (-1.0).into());
                    set(&mut t, "algorithm.advantage", a);
                }
                _ => {}
            }
        }
        Kind::Loss => {
            set(&mut t, "algorithm.loss", example(name));
            if name == "gtpo" {
                // A random policy's rows are high-entropy: raise GTPO's entropy gate so
                // their advantages are not all zeroed.
                let mut l = example(name);
                l.as_table_mut()
                    .unwrap()
                    .insert("entropy_max".into(), 10.0.into());
                set(&mut t, "algorithm.loss", l);
            }
            if name == "disco" {
                // DisCO needs binary rewards: one 0/1 component that a random policy
                // sometimes earns (a digit anywhere in the completion).
                let r: toml::Value = toml::from_str::<toml::Table>(
                    "reward = [{ name = \"correct\", source = { type = \"format\", pattern = \".*[0-9].*\" } }]",
                )
                .unwrap()["reward"]
                    .clone();
                t.insert("reward".into(), r);
            }
            if name == "kl_penalty" {
                frozen(&mut t);
            }
        }
        Kind::Aggregation => set(&mut t, "algorithm.loss", ppo_with(example(name))),
        Kind::Kl => {
            frozen(&mut t);
            set(&mut t, "algorithm.kl.estimator", example(name));
            set(&mut t, "algorithm.kl.controller", example("fixed"));
        }
        Kind::KlController => {
            frozen(&mut t);
            set(&mut t, "algorithm.kl.estimator", "k3".into());
            set(&mut t, "algorithm.kl.controller", example(name));
        }
        Kind::Filter => {
            let mut f = example(name);
            if name == "advantage_threshold" {
                // Rewards are <= 1 and the overlong penalty is negative: split groups at 0.
                f.as_table_mut()
                    .unwrap()
                    .insert("success_threshold".into(), (-0.05).into());
            }
            set(&mut t, "algorithm.filter.rule", f);
        }
        Kind::Sampler => {
            set(&mut t, "algorithm.sampler.rule", example(name));
            set(&mut t, "algorithm.sampler.pool_size", 6.into());
        }
        Kind::Anchor => unreachable!(),
    }
    RunConfigFile::deserialize_table(t)
}

trait FromTable {
    fn deserialize_table(t: toml::Table) -> Self;
}

impl FromTable for RunConfigFile {
    fn deserialize_table(t: toml::Table) -> Self {
        let text = toml::to_string(&t).unwrap();
        config::parse(&text, "walk.toml", &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

fn weights(dir: &std::path::Path) -> Vec<f32> {
    grpo_model::Model::load(&dir.join("checkpoint"))
        .unwrap()
        .weights
}

#[test]
fn every_registry_item_trains_or_is_refused_at_load_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let refused: BTreeMap<&str, &str> = REFUSED.iter().copied().collect();
    // The untrained model of the base config, for "a weight changed".
    let mut base = config_for(Kind::Aggregation, "token_mean", tmp.path());
    base.name = "untrained".into();
    base.grpo.steps = 0;
    let s = train(base, &quiet()).unwrap();
    let w0 = weights(&s.run_dir);

    let mut trained = Vec::new();
    let mut rejected = Vec::new();
    for e in registry::all() {
        if e.kind == Kind::Anchor {
            assert!(registry::example(e.name).is_none(), "{}", e.name);
            continue;
        }
        let cfg = config_for(e.kind, e.name, tmp.path());
        match cfg.validate() {
            Err(err) => {
                let msg = err.to_string();
                let want = refused.get(e.name).unwrap_or_else(|| {
                    panic!("`{}` ({:?}) was refused at load: {msg}", e.name, e.kind)
                });
                assert!(msg.contains(want), "`{}`: {msg}", e.name);
                rejected.push(e.name);
            }
            Ok(()) => {
                assert!(
                    !refused.contains_key(e.name),
                    "`{}` should be refused at load",
                    e.name
                );
                let dir = cfg.run_dir();
                let s = train(cfg, &quiet())
                    .unwrap_or_else(|err| panic!("`{}` ({:?}) failed: {err}", e.name, e.kind));
                let m = metrics(&s.run_dir);
                let steps: Vec<_> = m
                    .iter()
                    .filter(|r| r["stage"] == "grpo" && r.contains_key("reward/mean"))
                    .collect();
                assert_eq!(steps.len(), 2, "`{}`", e.name);
                let mut any_update = false;
                for r in &steps {
                    assert!(r.contains_key("reward/correct"), "`{}`: {r:?}", e.name);
                    assert!(matches!(e.name, "spo" | "disco") || r.contains_key("reward/length"));
                    if let Some(l) = r.get("loss") {
                        assert!(
                            l.as_f64().is_some_and(f64::is_finite),
                            "`{}`: {r:?}",
                            e.name
                        );
                        any_update |= r["optimizer_steps"].as_u64().unwrap_or(0) > 0;
                    }
                    match e.kind {
                        Kind::Kl | Kind::KlController => {
                            assert!(r.contains_key("kl_coef"), "`{}`: {r:?}", e.name)
                        }
                        Kind::Filter => assert!(r.contains_key("filtered_frac")),
                        _ => {}
                    }
                }
                assert!(any_update, "`{}`: no optimiser step ran", e.name);
                assert!(weights(&dir) != w0, "`{}`: no weight changed", e.name);
                trained.push(e.name);
            }
        }
    }
    let mut expect: Vec<&str> = REFUSED.iter().map(|(n, _)| *n).collect();
    expect.sort();
    rejected.sort();
    assert_eq!(rejected, expect);
    // Everything else trained: 26 estimators + 28 losses + 4 aggregations + 10 KL
    // estimators + 4 controllers + 6 filters + 5 samplers, minus the refused.
    assert_eq!(trained.len() + rejected.len(), 83, "{trained:?}");
}

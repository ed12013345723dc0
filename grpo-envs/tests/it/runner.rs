//! Runner tests: masks, exact prefixes, spans, reward placement, end reasons, views.

use grpo_envs::testing::{ByteRenderer, ScriptedSampler, scripted_logprob};
use grpo_envs::{
    EndReason, EpisodeRunner, EpisodeSpec, FinishReason, ObservationStyle, Owner, RunConfig,
    TaskSpec, ViewKind, envs,
};

use crate::common::{check_invariants, oracle_episode, run_with};

fn fl() -> serde_json::Value {
    serde_json::json!({"slippery": false})
}

#[test]
fn mask_is_exactly_the_sampled_ids_and_never_retokenised() {
    let ep = oracle_episode("frozenlake", &fl(), 3);
    check_invariants(&ep);
    assert!(ep.end.success(), "{:?}", ep.end);
    let row = &ep.rows(ViewKind::Interleaved).unwrap()[0];
    // Every masked id is exactly what the sampler produced, with its log-prob.
    let sampled: Vec<u32> = ep
        .transcript
        .segments
        .iter()
        .filter(|s| s.owner == Owner::Policy)
        .flat_map(|s| s.ids.clone())
        .collect();
    let masked: Vec<u32> = row
        .response_ids
        .iter()
        .zip(&row.mask)
        .filter(|(_, m)| **m == 1)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(sampled, masked);
    for ((id, m), lp) in row.response_ids.iter().zip(&row.mask).zip(&row.logprobs) {
        if *m == 1 {
            assert_eq!(*lp, scripted_logprob(*id));
        } else {
            assert_eq!(*lp, 0.0);
        }
    }
    // The stop string ended each turn, so the runner added the turn close as scaffold.
    assert!(
        ep.transcript
            .segments
            .iter()
            .any(|s| s.owner == Owner::Scaffold && s.text == "<|end|>\n")
    );
    assert_eq!(
        row.prompt_ids.len() + row.response_ids.len(),
        ep.transcript.len()
    );
}

#[test]
fn step_records_carry_keys_spans_and_prefix_hashes() {
    let ep = oracle_episode("sokoban", &serde_json::json!({}), 11);
    check_invariants(&ep);
    assert!(ep.end.success());
    assert_eq!(ep.steps.len(), ep.counts.turns);
    for w in ep.steps.windows(2) {
        assert_eq!(w[0].state_key_after, w[1].state_key_before);
        assert_ne!(w[0].prefix_key, w[1].prefix_key);
        assert!(w[0].span.end <= w[1].span.start);
    }
    let text = &ep.turn_texts[0];
    let a = ep.steps[0].action_span.clone().unwrap();
    let ids = &ep.transcript.ids()[a];
    // The action span maps to exactly the ids of the direction word.
    let word = grpo_envs::parse::last_tag(text, "answer").unwrap().content;
    assert_eq!(ByteRenderer::text(ids), word);
    assert!(matches!(
        ep.steps.last().unwrap().end,
        Some(EndReason::Terminated { success: true })
    ));
    // gym-sokoban: 10 for solving, +1 box on target, -0.1 per step.
    let n = ep.steps.len() as f64;
    assert!(
        (ep.step_rewards.anchor - (10.0 + 1.0 - 0.1 * n)).abs() < 1e-9,
        "{:?}",
        ep.step_rewards
    );
    assert_eq!(ep.outcome.get("success"), 1.0);
}

#[test]
fn end_reasons() {
    // Turn limit: always bump into the wall.
    let cfg = RunConfig {
        max_turns: Some(3),
        ..RunConfig::default()
    };
    let ep = run_with("frozenlake", &fl(), 3, cfg, |_, _| {
        "<answer>Up</answer>".into()
    });
    assert_eq!(ep.end, EndReason::TurnLimit);
    assert_eq!(ep.steps.len(), 3);
    assert_eq!(ep.total_reward(), 0.0);
    // Per-turn length cap: Length finish, and the env explains the bad action.
    let cfg = RunConfig {
        max_tokens_per_turn: Some(5),
        max_turns: Some(2),
        ..RunConfig::default()
    };
    let ep = run_with("frozenlake", &fl(), 3, cfg, |_, _| {
        "<answer>Down</answer>".into()
    });
    assert_eq!(ep.steps[0].finish, FinishReason::Length);
    assert!(!ep.steps[0].action_valid);
    let obs: String = ep
        .transcript
        .segments
        .iter()
        .filter(|s| s.owner == Owner::Env)
        .map(|s| s.text.clone())
        .collect();
    assert!(obs.contains("cut at the per-turn token limit"), "{obs}");
    assert!(ep.rows(ViewKind::StepWise).unwrap()[0].truncated);
    // Response budget.
    let cfg = RunConfig {
        max_response_tokens: 60,
        ..RunConfig::default()
    };
    let ep = run_with("frozenlake", &fl(), 3, cfg, |_, _| {
        "<answer>Up</answer>".into()
    });
    assert_eq!(ep.end, EndReason::PolicyTokenBudget);
    // Context limit.
    let cfg = RunConfig {
        max_context_tokens: 800,
        ..RunConfig::default()
    };
    let ep = run_with("frozenlake", &fl(), 3, cfg, |_, _| {
        "<answer>Up</answer>".into()
    });
    assert_eq!(ep.end, EndReason::ContextLimit);
    assert!(ep.transcript.len() <= 800);
    // Terminated (hole or goal) comes from the env.
    let ep = oracle_episode("frozenlake", &fl(), 5);
    assert_eq!(ep.end, EndReason::Terminated { success: true });
}

#[test]
fn inline_style_has_no_scaffold_between_turns() {
    let cfg = RunConfig {
        style: ObservationStyle::Inline,
        ..RunConfig::default()
    };
    let ep = run_with("frozenlake", &fl(), 3, cfg, |m, _| {
        m.oracle_action().unwrap_or_default()
    });
    check_invariants(&ep);
    assert!(
        ep.transcript
            .segments
            .iter()
            .all(|s| s.owner != Owner::Scaffold)
    );
    assert!(ep.transcript.segments.iter().any(|s| s.owner == Owner::Env));
}

#[test]
fn batch_matches_single_runs_and_requests_are_batched() {
    let runner = EpisodeRunner::new(RunConfig::default());
    let specs = |n: u64| -> Vec<EpisodeSpec> {
        (0..n)
            .map(|i| EpisodeSpec {
                env: envs::make("frozenlake", &fl()).unwrap(),
                task: TaskSpec::seed(100 + i / 2),
                group: (i / 2) as usize,
                sample: (i % 2) as usize,
            })
            .collect()
    };
    let mut s = ScriptedSampler::new(|c| {
        if c.turn % 2 == 0 {
            "<answer>Down</answer>".into()
        } else {
            "<answer>Right</answer>".into()
        }
    });
    let batch = runner
        .run_batch(specs(4), &ByteRenderer, &mut s, 10)
        .unwrap();
    assert_eq!(batch.len(), 4);
    // First call carries all four sessions.
    assert!(
        s.requests
            .iter()
            .take(4)
            .map(|r| r.session)
            .collect::<Vec<_>>()
            == vec![10, 11, 12, 13]
    );
    for (k, ep) in batch.iter().enumerate() {
        let mut s1 = ScriptedSampler::new(|c| {
            if c.turn % 2 == 0 {
                "<answer>Down</answer>".into()
            } else {
                "<answer>Right</answer>".into()
            }
        });
        let single = runner
            .run_one(specs(4).remove(k), &ByteRenderer, &mut s1, 10 + k as u64)
            .unwrap();
        assert_eq!(ep.transcript, single.transcript);
        assert_eq!(ep.end, single.end);
    }
    // Same group, same seed, same policy: identical episodes.
    assert_eq!(batch[0].transcript.ids(), batch[1].transcript.ids());
}

#[test]
fn bad_env_input_never_panics() {
    let env_names: Vec<&str> = envs::list()
        .iter()
        .map(|e| e.name)
        .filter(|n| *n != "qa")
        .collect();
    let junk = [
        "",
        "<answer></answer>",
        "<answer>",
        "<tool_call>{not json</tool_call>",
        "<tool_call>{\"name\":\"nope\",\"arguments\":{}}</tool_call>",
        "<tool_call>{\"name\":\"calculator\",\"arguments\":{\"expression\":7}}</tool_call>",
        "<search></search>",
        "{\"action_type\": \"click\", \"index\": 9999}",
        "[99]",
        "\u{0}\u{ffff}ééé",
    ];
    for name in env_names {
        for (k, j) in junk.iter().enumerate() {
            let cfg = RunConfig {
                max_turns: Some(3),
                ..RunConfig::default()
            };
            let j = j.to_string();
            let ep = run_with(
                name,
                &serde_json::Value::Null,
                k as u64,
                cfg,
                move |_, _| j.clone(),
            );
            assert!(
                !matches!(ep.end, EndReason::EnvError { .. }),
                "{name}: {:?}",
                ep.end
            );
            check_invariants(&ep);
        }
    }
}

#[test]
fn step_records_form_gigpo_anchor_groups_and_salt_prefixes() {
    // G = 4 trajectories of one Sokoban instance with seeded random policies.
    let runner = EpisodeRunner::new(RunConfig {
        max_turns: Some(6),
        ..RunConfig::default()
    });
    let specs: Vec<EpisodeSpec> = (0..4)
        .map(|k| EpisodeSpec {
            env: envs::make("sokoban", &serde_json::Value::Null).unwrap(),
            task: TaskSpec::seed(21),
            group: 0,
            sample: k,
        })
        .collect();
    let dirs = ["Up", "Down", "Left", "Right"];
    let mut s = ScriptedSampler::new(move |c| {
        let k = grpo_envs::seed::derive_seed(c.session, "dir", &[(c.turn / 2) as u64]) % 4;
        format!("<answer>{}</answer>", dirs[k as usize])
    });
    let eps = runner.run_batch(specs, &ByteRenderer, &mut s, 0).unwrap();
    let mut groups: std::collections::BTreeMap<String, usize> = Default::default();
    let mut prefixes: std::collections::BTreeMap<u64, std::collections::BTreeSet<String>> =
        Default::default();
    for ep in &eps {
        check_invariants(ep);
        for st in &ep.steps {
            *groups
                .entry(st.state_key_before.clone().unwrap())
                .or_default() += 1;
            prefixes
                .entry(st.prefix_key)
                .or_default()
                .insert(format!("{:?}{:?}", st.state_key_before, st.action_key));
        }
    }
    // All four share the initial state: an anchor group of size >= 4.
    assert!(groups.values().any(|&n| n >= 4), "{groups:?}");
    // A prefix key identifies one (state, action) node.
    assert!(prefixes.values().all(|v| v.len() == 1));
    // Policies that move identically in their first turn share the first prefix key.
    let firsts: std::collections::BTreeSet<u64> =
        eps.iter().map(|e| e.steps[0].prefix_key).collect();
    let first_actions: std::collections::BTreeSet<_> =
        eps.iter().map(|e| e.steps[0].action_key.clone()).collect();
    assert_eq!(firsts.len(), first_actions.len());
}

mod props {
    use proptest::prelude::*;

    use crate::common::{check_invariants, run_with};
    use grpo_envs::{EndReason, RunConfig, envs};

    const FRAGS: [&str; 12] = [
        "<answer>",
        "</answer>",
        "Up",
        "Left",
        "<tool_call>",
        "</tool_call>",
        "{\"name\":\"lookup\",\"arguments\":{\"table\":\"items\",\"key\":\"K-1\"}}",
        "<search>founder</search>",
        "{\"action_type\":\"click\",\"index\":1}",
        "[4]",
        "[bet]",
        "é\u{0}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_turns_never_panic_and_keep_invariants(
            env_idx in 0usize..14,
            seed in 0u64..1000,
            turns in proptest::collection::vec(proptest::collection::vec(0usize..12, 0..6), 1..5),
            per_turn in 4usize..64,
        ) {
            let names: Vec<&str> = envs::list().iter().map(|e| e.name).filter(|n| *n != "qa").collect();
            let name = names[env_idx % names.len()];
            let texts: Vec<String> = turns.iter().map(|t| t.iter().map(|&i| FRAGS[i]).collect()).collect();
            let cfg = RunConfig { max_turns: Some(texts.len()), max_tokens_per_turn: Some(per_turn), ..RunConfig::default() };
            let ep = run_with(name, &serde_json::Value::Null, seed, cfg, move |_, k| texts.get(k).cloned().unwrap_or_default());
            prop_assert!(!matches!(ep.end, EndReason::EnvError { .. }), "{:?}", ep.end);
            check_invariants(&ep);
            prop_assert!(ep.total_reward().is_finite());
            for st in &ep.steps {
                prop_assert!(st.policy_tokens <= per_turn);
            }
        }
    }
}

#[test]
fn every_multi_turn_env_forms_anchor_groups_at_shared_states() {
    use crate::common::{oracle_episode, run_with};
    use grpo_envs::Env;
    for info in envs::list().into_iter().filter(|i| i.multi_turn) {
        let p = serde_json::Value::Null;
        let seed = 3;
        // G = 4 on one instance: two oracle runs, two that waste their first turn.
        let mut eps = vec![
            oracle_episode(info.name, &p, seed),
            oracle_episode(info.name, &p, seed),
        ];
        for _ in 0..2 {
            eps.push(run_with(
                info.name,
                &p,
                seed,
                RunConfig::default(),
                |m: &mut dyn Env, k| {
                    if k == 0 {
                        "???".into()
                    } else {
                        m.oracle_action().unwrap_or_default()
                    }
                },
            ));
        }
        // Every multi-turn env exposes canonical state keys.
        let initial = eps[0].steps[0]
            .state_key_before
            .clone()
            .unwrap_or_else(|| panic!("{} has no state keys", info.name));
        let mut groups: std::collections::BTreeMap<&str, usize> = Default::default();
        for ep in &eps {
            for st in &ep.steps {
                if let Some(k) = &st.state_key_before {
                    *groups.entry(k.as_str()).or_default() += 1;
                }
            }
        }
        // 4 first steps + the 2 repeated visits after a wasted turn (more when
        // slippery ice or a game returns to the start).
        assert!(
            groups[initial.as_str()] >= 6,
            "{}: {}",
            info.name,
            groups[initial.as_str()]
        );
        // The oracle runs are identical, so every later anchor state has a group of >= 2.
        for st in &eps[0].steps {
            let k = st.state_key_before.as_deref().unwrap();
            assert!(groups[k] >= 2, "{}: singleton {k:?}", info.name);
        }
    }
}

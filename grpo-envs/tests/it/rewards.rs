//! Exact reward values per family, ours and the anchor's, on scripted episodes:
//! the oracle (optimal) policy, and the same policy with one bad turn spliced in,
//! so each anchor's constants (gym-sokoban's −0.1/+1/+10, RAGEN's −0.1 invalid
//! turn, verl's −0.05 per unhelpful tool call, TinyZero's 0/0.1/1, Search-R1's
//! EM, MasHost's accuracy − cost − rationality) are checked, not just "> 0".

use grpo_envs::{EndReason, Env, Episode, RunConfig};

use crate::common::{check_invariants, oracle_episode, run_with};

const EPS: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < EPS
}

/// The oracle policy, except that turn `bad_turn` plays `bad` instead.
fn oracle_with(
    name: &str,
    params: &serde_json::Value,
    seed: u64,
    bad_turn: usize,
    bad: &str,
) -> Episode {
    let bad = bad.to_string();
    let cfg = RunConfig {
        max_turns: Some(60),
        ..RunConfig::default()
    };
    run_with(name, params, seed, cfg, move |mirror: &mut dyn Env, k| {
        if k == bad_turn {
            bad.clone()
        } else {
            mirror.oracle_action().unwrap_or_default()
        }
    })
}

#[test]
fn sokoban_pays_gym_sokoban_step_rewards() {
    let p = serde_json::Value::Null; // one box, one action per turn
    for seed in 0..6 {
        let ep = oracle_episode("sokoban", &p, seed);
        check_invariants(&ep);
        let n = ep.counts.turns as f64;
        // −0.1 per step, +1 when the box reaches its target, +10 for solving.
        let want = -0.1 * n + 1.0 + 10.0;
        assert!(
            close(ep.step_rewards.total, want),
            "seed {seed}: {:?}",
            ep.step_rewards
        );
        assert!(close(ep.step_rewards.anchor, want));
        assert!(close(ep.step_rewards.get("solved"), 10.0));
        assert!(close(ep.outcome.total, 1.0) && close(ep.outcome.get("success"), 1.0));
        assert!(close(ep.total_reward(), want + 1.0));
        // Only the last step carries the solve bonus.
        assert!(
            ep.steps[..ep.steps.len() - 1]
                .iter()
                .all(|s| s.reward.get("solved") == 0.0)
        );

        // An unparsable turn costs RAGEN's −0.1 in ours and the anchor, and changes nothing else.
        let bad = oracle_with("sokoban", &p, seed, 0, "<answer>Jump</answer>");
        assert!(!bad.steps[0].action_valid);
        assert!(close(bad.steps[0].reward.total, -0.1) && close(bad.steps[0].reward.anchor, -0.1));
        assert!(close(bad.steps[0].reward.get("invalid_action"), -0.1));
        assert_eq!(bad.steps[0].state_key_before, bad.steps[0].state_key_after);
        assert!(close(bad.step_rewards.total, want - 0.1));
        assert_eq!(bad.end, EndReason::Terminated { success: true });
    }
}

#[test]
fn frozenlake_pays_one_at_the_goal_and_penalises_invalid_turns() {
    let p = serde_json::json!({"slippery": false});
    for seed in 0..6 {
        let ep = oracle_episode("frozenlake", &p, seed);
        assert!(
            close(ep.outcome.total, 1.0) && close(ep.outcome.anchor, 1.0),
            "{:?}",
            ep.outcome
        );
        assert!(close(ep.step_rewards.total, 0.0) && close(ep.step_rewards.anchor, 0.0));
        let bad = oracle_with("frozenlake", &p, seed, 0, "I would go left");
        assert!(close(bad.steps[0].reward.get("invalid_action"), -0.1));
        assert!(close(bad.step_rewards.anchor, -0.1));
        assert!(close(bad.total_reward(), 0.9) && close(bad.anchor_reward(), 0.9));
    }
}

#[test]
fn search_qa_is_exact_match_on_the_answer() {
    let p = serde_json::Value::Null;
    for seed in 0..4 {
        let ep = oracle_episode("search-qa", &p, seed);
        assert!(close(ep.outcome.get("success"), 1.0) && close(ep.outcome.anchor, 1.0));
        let wrong = run_with("search-qa", &p, seed, RunConfig::default(), |_, _| {
            "<answer>Nobody Anyone</answer>".into()
        });
        assert_eq!(wrong.end, EndReason::Terminated { success: false });
        assert!(close(wrong.outcome.get("success"), 0.0) && close(wrong.outcome.anchor, 0.0));
    }
}

#[test]
fn tool_envs_take_five_hundredths_per_unhelpful_call_in_the_anchor_only() {
    let unknown = r#"<tool_call>{"name": "nope", "arguments": {}}</tool_call>"#;
    for name in ["lookup", "calc"] {
        let p = serde_json::Value::Null;
        for seed in 0..4 {
            let ep = oracle_episode(name, &p, seed);
            assert!(
                close(ep.outcome.total, 1.0) && close(ep.outcome.anchor, 1.0),
                "{name}: {:?}",
                ep.outcome
            );
            // A failed call first: ours unchanged, the anchor loses 0.05.
            let bad = oracle_with(name, &p, seed, 0, unknown);
            assert_eq!(bad.end, EndReason::Terminated { success: true }, "{name}");
            assert!(!bad.steps[0].tool_calls[0].ok);
            assert!(close(bad.outcome.total, 1.0), "{name}: {:?}", bad.outcome);
            assert!(close(bad.outcome.anchor, 0.95), "{name}: {:?}", bad.outcome);
            // Repeating the first turn's (good) calls: each repeat is unhelpful.
            let first = ep.turn_texts[0].clone();
            let rep = run_with(name, &p, seed, RunConfig::default(), move |m, k| {
                if k == 1 {
                    first.clone()
                } else {
                    m.oracle_action().unwrap_or_default()
                }
            });
            if rep.steps[0].tool_calls.is_empty() {
                continue; // the oracle answered at once: nothing to repeat
            }
            assert_eq!(rep.end, EndReason::Terminated { success: true }, "{name}");
            assert!(close(rep.outcome.total, 1.0));
            let repeats = rep.steps[0].tool_calls.len() as f64;
            assert_eq!(rep.steps[1].tool_calls.len() as f64, repeats);
            assert!(
                close(rep.outcome.anchor, 1.0 - 0.05 * repeats),
                "{name}: {:?}",
                rep.outcome
            );
        }
    }
}

#[test]
fn arith_chain_pays_tinyzero_zero_tenth_one() {
    let p = serde_json::Value::Null;
    let ep = oracle_episode("arith-chain", &p, 3);
    assert!(close(ep.outcome.total, 1.0) && close(ep.outcome.anchor, 1.0));
    let wrong = run_with("arith-chain", &p, 3, RunConfig::default(), |_, _| {
        "<answer>123456789</answer>".into()
    });
    assert!(close(wrong.outcome.anchor, 0.1) && close(wrong.outcome.get("success"), 0.0));
    assert!(close(wrong.outcome.get("format"), 0.1));
    let none = run_with("arith-chain", &p, 3, RunConfig::default(), |_, _| {
        "42".into()
    });
    assert!(close(none.outcome.anchor, 0.0) && close(none.outcome.total, 0.0));
}

#[test]
fn synthgui_success_and_per_step_reference_match() {
    let p = serde_json::json!({"step_reward": true});
    for seed in 0..6 {
        let ep = oracle_episode("synthgui", &p, seed);
        assert!(close(ep.outcome.total, 1.0) && close(ep.outcome.anchor, 1.0));
        // Every oracle action is the planner's reference: type 0.5 + target 0.5.
        for s in &ep.steps {
            assert!(
                close(s.reward.get("step_match"), 1.0),
                "seed {seed}: {:?}",
                s.reward
            );
        }
        // Malformed JSON: no step reward, an explanatory observation, no progress.
        let bad = oracle_with("synthgui", &p, seed, 0, "{\"action_type\": ");
        assert!(!bad.steps[0].action_valid);
        assert!(close(bad.steps[0].reward.total, 0.0));
        assert_eq!(bad.steps[0].state_key_before, bad.steps[0].state_key_after);
        assert_eq!(bad.end, EndReason::Terminated { success: true });
    }
}

#[test]
fn team_builder_reward_is_accuracy_minus_cost_minus_rationality() {
    let p = serde_json::Value::Null;
    for seed in 0..6 {
        let ep = oracle_episode("team-builder", &p, seed);
        let built = ep
            .turn_texts
            .iter()
            .filter(|t| t.contains("add_role") || t.contains("connect"))
            .count() as f64;
        let o = &ep.outcome;
        assert!(close(o.get("accuracy"), 1.0), "{o:?}");
        assert!(
            close(o.get("cost"), -0.02 * built),
            "{o:?} after {built} build actions"
        );
        assert!(close(o.get("rationality"), 0.0), "{o:?}");
        assert!(close(o.total, 1.0 - 0.02 * built) && close(o.anchor, o.total));
    }
    // Running an empty graph: no answer, no cost.
    let empty = run_with("team-builder", &p, 0, RunConfig::default(), |_, _| {
        "run {}".into()
    });
    assert!(close(empty.outcome.total, 0.0), "{:?}", empty.outcome);
}

#[test]
fn gui_critic_pays_format_judgement_and_suggestion() {
    let p = serde_json::Value::Null;
    let (mut saw_correct, mut saw_incorrect) = (false, false);
    for seed in 0..16 {
        let ep = oracle_episode("synthgui-critic", &p, seed);
        let o = &ep.outcome;
        let label_correct = ep.turn_texts[0].contains("<judgement>correct</judgement>");
        assert!(
            close(o.get("judgement"), 1.0) && close(o.get("format"), 0.1),
            "{o:?}"
        );
        let want = if label_correct { 1.1 } else { 1.6 };
        assert!(
            close(o.total, want) && close(o.anchor, want),
            "seed {seed}: {o:?}"
        );
        saw_correct |= label_correct;
        saw_incorrect |= !label_correct;
        // The opposite verdict: format only.
        let flipped = if label_correct {
            "<judgement>incorrect</judgement>".to_string()
        } else {
            "<judgement>correct</judgement>".to_string()
        };
        let wrong = run_with(
            "synthgui-critic",
            &p,
            seed,
            RunConfig::default(),
            move |_, _| flipped.clone(),
        );
        assert!(
            close(wrong.outcome.total, 0.1),
            "seed {seed}: {:?}",
            wrong.outcome
        );
        // No verdict at all: nothing.
        let none = run_with("synthgui-critic", &p, seed, RunConfig::default(), |_, _| {
            "looks fine".into()
        });
        assert!(close(none.outcome.total, 0.0) && !none.steps[0].action_valid);
    }
    assert!(
        saw_correct && saw_incorrect,
        "both labels occur in 16 seeds"
    );
}

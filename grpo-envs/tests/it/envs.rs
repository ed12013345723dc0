//! Per-env tests: oracle solvability, determinism, reward correctness.

use grpo_envs::{EndReason, TaskSpec, Turn, envs};

use crate::common::{check_invariants, oracle_episode};

/// Envs whose oracle must always succeed, with their params.
fn solvable() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "arithmetic",
            serde_json::json!({"ops": "+-*", "difficulty": 4}),
        ),
        ("arith-chain", serde_json::Value::Null),
        ("countdown", serde_json::Value::Null),
        (
            "countdown",
            serde_json::json!({"attempts": 3, "min_numbers": 4, "max_numbers": 5}),
        ),
        (
            "frozenlake",
            serde_json::json!({"slippery": false, "size": 6}),
        ),
        ("sokoban", serde_json::Value::Null),
        (
            "sokoban",
            serde_json::json!({"dim": [7, 7], "boxes": 2, "max_turns": 40}),
        ),
        ("lookup", serde_json::Value::Null),
        ("calc", serde_json::Value::Null),
        ("search-qa", serde_json::Value::Null),
        (
            "search-qa",
            serde_json::json!({"world_seed": 1, "size": {"countries": 6, "cities": 20, "people": 40, "companies": 20}}),
        ),
        ("synthgui", serde_json::Value::Null),
        ("synthgui", serde_json::json!({"step_reward": true})),
        ("synthgui-critic", serde_json::Value::Null),
        ("team-builder", serde_json::Value::Null),
    ]
}

#[test]
fn oracle_policies_solve_every_seed() {
    for (name, params) in solvable() {
        for seed in 0..8 {
            let ep = oracle_episode(name, &params, seed);
            check_invariants(&ep);
            assert_eq!(
                ep.end,
                EndReason::Terminated { success: true },
                "{name} seed {seed}"
            );
            assert!(
                ep.total_reward() > 0.0 && ep.anchor_reward() > 0.0,
                "{name} seed {seed}: {:?}",
                ep.outcome
            );
            assert_eq!(ep.counts.invalid_actions, 0, "{name}");
        }
    }
}

#[test]
fn resets_are_deterministic_per_seed_and_differ_across_seeds() {
    for info in envs::list() {
        if info.name == "qa" {
            continue;
        }
        let mut a = envs::make(info.name, &serde_json::Value::Null).unwrap();
        let mut b = envs::make(info.name, &serde_json::Value::Null).unwrap();
        let ra = a.reset(&TaskSpec::seed(42)).unwrap();
        let rb = b.reset(&TaskSpec::seed(42)).unwrap();
        assert_eq!(ra, rb, "{}", info.name);
        assert_eq!(a.state_key(), b.state_key());
        let distinct: std::collections::HashSet<String> = (0..6)
            .map(|s| {
                let r = a.reset(&TaskSpec::seed(s)).unwrap();
                r.messages
                    .iter()
                    .map(|m| m.content.clone())
                    .collect::<String>()
            })
            .collect();
        assert!(
            distinct.len() >= 3,
            "{} generates too few distinct instances",
            info.name
        );
    }
}

#[test]
fn slippery_frozenlake_follows_the_noise_stream() {
    let p = serde_json::json!({"slippery": true});
    let play = |noise: u64| {
        let mut e = envs::make("frozenlake", &p).unwrap();
        e.reset(&TaskSpec {
            seed: 1,
            noise_seed: Some(noise),
            record: None,
        })
        .unwrap();
        let mut keys = Vec::new();
        for t in 0..6 {
            let o = e.step(&Turn::text(t, "<answer>Right</answer>"));
            match o {
                Ok(o) => keys.push(o.state_key),
                Err(_) => break,
            }
        }
        keys
    };
    assert_eq!(play(5), play(5));
    assert!((0..10).any(|n| play(n) != play(5)));
}

#[test]
fn countdown_multi_turn_feedback_and_decay() {
    let p = serde_json::json!({"attempts": 3, "decay": 0.5});
    let mut e = envs::make("countdown", &p).unwrap();
    e.reset(&TaskSpec::seed(4)).unwrap();
    let good = e.oracle_action().unwrap();
    let o = e.step(&Turn::text(0, "<answer>1 + 2</answer>")).unwrap();
    assert!(!o.end_signal().is_done());
    assert!(
        o.observation[0].content.contains("do not match"),
        "{:?}",
        o.observation
    );
    let o = e.step(&Turn::text(1, &good)).unwrap();
    assert!(o.end_signal().is_done());
    let v = grpo_envs::EpisodeView {
        turns: &[],
        tool_calls: &[],
        ended_by_limit: false,
    };
    assert_eq!(e.final_reward(&v).total, 0.5);
    assert_eq!(e.final_reward(&v).anchor, 1.0);
}

#[test]
fn frozenlake_hole_ends_with_failure() {
    // Find a seed whose map has a hole adjacent to the start, walk into it.
    for seed in 0..200 {
        let mut e = envs::make("frozenlake", &serde_json::json!({"slippery": false})).unwrap();
        e.reset(&TaskSpec::seed(seed)).unwrap();
        let grid = e.render_debug().unwrap();
        let rows: Vec<Vec<char>> = grid.lines().map(|l| l.chars().collect()).collect();
        let dir = if rows[0][1] == 'O' {
            "Right"
        } else if rows[1][0] == 'O' {
            "Down"
        } else {
            continue;
        };
        let o = e
            .step(&Turn::text(0, &format!("<answer>{dir}</answer>")))
            .unwrap();
        assert_eq!(
            o.end,
            Some(grpo_envs::EndSignal::Terminated { success: false })
        );
        let v = grpo_envs::EpisodeView {
            turns: &[],
            tool_calls: &[],
            ended_by_limit: false,
        };
        assert_eq!(e.final_reward(&v).total, 0.0);
        return;
    }
    panic!("no seed with a hole next to the start");
}

#[test]
fn calc_python_tool_runs_in_the_sandbox_with_errors_and_timeouts_as_observations() {
    let Ok(exec) = grpo_envs::exec::SandboxExecutor::detect() else {
        eprintln!("skipping: no python3");
        return;
    };
    use grpo_envs::tool::PythonExecutor;
    let probe = exec.run("print(6*7)", "", std::time::Duration::from_secs(10));
    if probe.stdout.trim() != "42" {
        eprintln!("skipping: sandbox unavailable here: {}", probe.stderr);
        return;
    }
    let p = serde_json::json!({"python": true, "tool_timeout_s": 2.0, "max_calls_per_turn": 1});
    let mut e = envs::make("calc", &p).unwrap();
    let r = e.reset(&TaskSpec::seed(5)).unwrap();
    assert!(r.tools.iter().any(|t| t.name == "python"), "{:?}", r.tools);
    let call = |code: &str| {
        format!(
            "<tool_call>{}</tool_call>",
            serde_json::json!({"name": "python", "arguments": {"code": code}})
        )
    };
    let o = e.step(&Turn::text(0, &call("print(6*7)"))).unwrap();
    assert!(o.tool_calls[0].ok, "{:?}", o.tool_calls);
    assert!(
        o.observation.iter().any(|m| m.content.contains("42")),
        "{:?}",
        o.observation
    );
    let o = e
        .step(&Turn::text(1, &call("raise ValueError('boom')")))
        .unwrap();
    assert!(!o.tool_calls[0].ok);
    assert!(
        o.observation.iter().any(|m| m.content.contains("boom")),
        "{:?}",
        o.observation
    );
    assert!(!o.end_signal().is_done());
    let t = std::time::Instant::now();
    let o = e
        .step(&Turn::text(2, &call("while True:\n    pass")))
        .unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(!o.tool_calls[0].ok);
    assert!(
        o.observation
            .iter()
            .any(|m| m.content.contains("timed out")),
        "{:?}",
        o.observation
    );
    // The oracle still solves the problem afterwards.
    let gold = e.oracle_action().unwrap();
    assert!(!gold.is_empty());
    e.step(&Turn::text(3, &gold)).unwrap();
    let Err(bad) = envs::make("calc", &serde_json::json!({"tool_timeout_s": 0})) else {
        panic!("a zero tool timeout was accepted");
    };
    assert!(bad.to_string().contains("tool_timeout_s"), "{bad}");
}

#[test]
fn over_long_invalid_turns_are_told_they_were_cut() {
    use grpo_envs::FinishReason;
    let mut checked = 0;
    for info in envs::list().into_iter().filter(|i| i.multi_turn) {
        let mut e = envs::make(info.name, &serde_json::Value::Null).unwrap();
        e.reset(&TaskSpec::seed(1)).unwrap();
        let key_before = e.state_key();
        let turn = Turn {
            index: 0,
            text: "Let me think about this very carefully and at great length, first",
            finish: &FinishReason::Length,
        };
        let o = e.step(&turn).unwrap();
        assert!(!o.action_valid, "{}", info.name);
        // State keys hold no counters: a turn that changed nothing keeps the key
        // (so GiGPO anchor groups are not split by wasted turns).
        assert_eq!(e.state_key(), key_before, "{}", info.name);
        let said: String = o.observation.iter().map(|m| m.content.as_str()).collect();
        assert!(
            said.contains("cut at the per-turn token limit"),
            "{}: {said}",
            info.name
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
}

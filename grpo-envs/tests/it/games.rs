//! Multi-agent games: self-play transcripts per seat, bots, forfeits.

use grpo_envs::envs::games::{
    BotKind, KuhnPoker, MultiAgentEnv, SelfPlayConfig, TicTacToe, play_self, run_self_play,
};
use grpo_envs::testing::{ByteRenderer, ScriptedSampler};
use grpo_envs::{EndReason, Owner, RunConfig, ViewKind};

use crate::common::{check_invariants, run_with};

fn first_free(context: &str) -> String {
    let board = context.rsplit("Board:").next().unwrap_or("");
    let cell = board
        .split(|c: char| !c.is_ascii_digit())
        .find(|t| t.len() == 1)
        .unwrap_or("0");
    format!("I play [{cell}]")
}

#[test]
fn tictactoe_self_play_keeps_one_transcript_per_seat() {
    let mut g = TicTacToe::default();
    let mut s = ScriptedSampler::new(|c| first_free(c.context));
    let eps = run_self_play(
        &mut g,
        5,
        0,
        &ByteRenderer,
        &mut s,
        &SelfPlayConfig::default(),
        100,
    )
    .unwrap();
    assert_eq!(eps.len(), 2);
    // First-free-cell play: X 0, O 1, X 2, O 3, X 4, O 5, X 6 wins on the 2-4-6 diagonal.
    assert_eq!(eps[0].outcome.total, 1.0);
    assert_eq!(eps[1].outcome.total, -1.0);
    assert_eq!(eps[0].steps.len(), 4);
    assert_eq!(eps[1].steps.len(), 3);
    for (k, ep) in eps.iter().enumerate() {
        assert_eq!(ep.seat, k);
        assert!(matches!(ep.end, EndReason::Terminated { .. }));
        check_invariants(ep);
        assert!(
            ep.rows(ViewKind::Interleaved)
                .unwrap()
                .iter()
                .all(|r| r.seat == k)
        );
    }
    // O's transcript shows X's moves only through env-owned observations.
    let o_env: String = eps[1]
        .transcript
        .segments
        .iter()
        .filter(|s| s.owner == Owner::Env)
        .map(|s| s.text.clone())
        .collect();
    assert!(o_env.contains("X | O | X"), "{o_env}");
}

#[test]
fn invalid_moves_forfeit_after_the_allowance() {
    let mut g = KuhnPoker::default();
    let mut s = ScriptedSampler::new(|_| "[raise]".to_string());
    let cfg = SelfPlayConfig {
        error_allowance: 1,
        ..Default::default()
    };
    let eps = run_self_play(&mut g, 1, 0, &ByteRenderer, &mut s, &cfg, 0).unwrap();
    // Seat 0 acts first: two invalid moves and it loses.
    assert_eq!(eps[0].outcome.total, -1.0);
    assert_eq!(eps[1].outcome.total, 1.0);
    assert_eq!(eps[0].counts.invalid_actions, 2);
    let obs: String = eps[0]
        .transcript
        .segments
        .iter()
        .filter(|s| s.owner == Owner::Env)
        .map(|s| s.text.clone())
        .collect();
    assert!(obs.contains("Invalid move"), "{obs}");
}

#[test]
fn minimax_policy_never_loses_against_bots() {
    for bot in ["optimal", "random"] {
        for seed in 0..6 {
            let p = serde_json::json!({"bot": bot});
            let ep = run_with("tictactoe", &p, seed, RunConfig::default(), |m, _| {
                m.oracle_action().unwrap_or_default()
            });
            check_invariants(&ep);
            assert!(
                ep.total_reward() >= 0.0,
                "{bot} seed {seed}: {:?}",
                ep.outcome
            );
            if bot == "optimal" {
                assert_eq!(ep.total_reward(), 0.0, "minimax vs minimax is a draw");
            }
        }
    }
}

#[test]
fn kuhn_vs_bot_rewards_are_zero_sum_outcomes() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..30 {
        let ep = run_with(
            "kuhn-poker",
            &serde_json::Value::Null,
            seed,
            RunConfig::default(),
            |m, _| m.oracle_action().unwrap_or_default(),
        );
        check_invariants(&ep);
        let r = ep.total_reward();
        assert!([-1.0, 0.0, 1.0].contains(&r));
        assert!(ep.end.is_terminal());
        seen.insert(r as i64);
    }
    assert!(seen.len() >= 2, "outcomes never vary: {seen:?}");
}

#[test]
fn text_level_self_play_matches_bots() {
    let mut g = KuhnPoker::default();
    let mut r = grpo_envs::seed::rng(3);
    let mut shadow = KuhnPoker::default();
    shadow.reset(9);
    let res = play_self(&mut g, 9, 0, 100, |_, _| {
        let m = shadow.bot_move(BotKind::Random, &mut r);
        shadow.apply(&m).unwrap();
        m
    });
    assert_eq!(res.returns.iter().sum::<f64>(), 0.0);
    assert!(res.moves.iter().all(|m| m.2));
}

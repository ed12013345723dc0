//! Multi-turn sessions over the toy model: a cached continuation equals a fresh prefill of
//! the whole transcript, only uncached tokens are prefilled, sessions are independent of
//! each other and of the block budget, closing frees blocks, bad calls are named errors.

use grpo_rollout::{Engine, EngineConfig, GenerateStats, Request, RolloutError, SamplingParams};

use crate::engine::{BS, Letters, toy};

#[test]
fn continuation_equals_fresh_prefill_of_the_transcript() {
    let m = toy();
    let engine = Engine::new(&m, EngineConfig::default());
    let mut sessions = engine.sessions();
    let mut p = SamplingParams::greedy(5);
    p.ignore_eos = true;
    let s = sessions.open(vec![2, 7, 1], p.clone()).unwrap();
    let t1 = sessions.generate(&[s], Some(&Letters)).remove(0).unwrap();
    assert_eq!(t1.ids.len(), 5);
    let after1 = sessions.stats().prefill_tokens;
    assert_eq!(after1, 3);
    sessions.append(s, &[4, 4, 9]).unwrap();
    let transcript = sessions.transcript(s).unwrap().to_vec();
    assert_eq!(transcript.len(), 3 + 5 + 3);
    let t2 = sessions.generate(&[s], Some(&Letters)).remove(0).unwrap();
    // Only the last sampled token and the environment tokens were prefilled.
    assert_eq!(sessions.stats().prefill_tokens - after1, 1 + 3);
    let fresh = engine
        .generate(
            &[Request {
                prompt_ids: transcript,
                params: p,
            }],
            Some(&Letters),
            &mut GenerateStats::default(),
        )
        .remove(0)
        .unwrap();
    assert_eq!(t2, fresh[0]);
    assert!(sessions.blocks_in_use() > 0);
    let all = sessions.close(s).unwrap();
    assert_eq!(all.len(), 3 + 5 + 3 + 5);
    assert_eq!(sessions.blocks_in_use(), 0, "closing frees the blocks");
    assert!(matches!(
        sessions.append(s, &[1]),
        Err(RolloutError::SessionClosed(0))
    ));
}

/// Runs `turns` turns of sampled sessions (one per prompt), appending fixed environment
/// tokens after each, and returns every turn's ids and log-probs.
type Turns = Vec<Vec<(Vec<u32>, Vec<f32>)>>;

fn play(cfg: EngineConfig, prompts: &[Vec<u32>], turns: usize) -> (Turns, GenerateStats) {
    let m = toy();
    let engine = Engine::new(&m, cfg);
    let mut sessions = engine.sessions();
    let ids: Vec<_> = prompts
        .iter()
        .map(|p| {
            // The seed belongs to the episode (its first token), not to its list position.
            sessions
                .open(
                    p.clone(),
                    SamplingParams::sampled(1, 1.0, 4, 100 + p[0] as u64),
                )
                .unwrap()
        })
        .collect();
    let mut out = vec![Vec::new(); prompts.len()];
    for turn in 0..turns {
        for (i, r) in sessions.generate(&ids, None).into_iter().enumerate() {
            let c = r.unwrap();
            out[i].push((c.ids, c.logprobs));
        }
        for &s in &ids {
            sessions.append(s, &[turn as u32, 10]).unwrap();
        }
    }
    (out, *sessions.stats())
}

#[test]
fn sessions_do_not_depend_on_each_other_or_the_budget() {
    let prompts: Vec<Vec<u32>> = vec![vec![1], vec![2, 3, 4, 5, 6], vec![7, 8]];
    let (together, stats) = play(EngineConfig::default(), &prompts, 3);
    assert_eq!(stats.preemptions, 0);
    for (i, p) in prompts.iter().enumerate() {
        let (alone, _) = play(EngineConfig::default(), std::slice::from_ref(p), 3);
        assert_eq!(alone[0], together[i]);
    }
    // Two blocks for three sessions: idle caches are dropped and recomputed.
    let (tight, stats) = play(
        EngineConfig {
            max_batch: 64,
            max_cached_tokens: 2 * BS,
        },
        &prompts,
        3,
    );
    assert_eq!(tight, together);
    assert!(stats.preemptions > 0 && stats.recomputed_tokens > 0);
}

#[test]
fn bad_session_calls_are_named_errors() {
    let m = toy();
    let engine = Engine::new(&m, EngineConfig::default());
    let mut sessions = engine.sessions();
    let e = sessions
        .open(vec![1], SamplingParams::sampled(2, 1.0, 4, 0))
        .unwrap_err();
    assert!(e.to_string().contains("n = 2"), "{e}");
    assert!(sessions.open(vec![], SamplingParams::greedy(4)).is_err());
    let s = sessions
        .open(vec![1, 2], SamplingParams::greedy(4))
        .unwrap();
    let e = sessions.append(s, &[99]).unwrap_err();
    assert!(e.to_string().contains("99"), "{e}");
    let e = sessions.append(s, &[1; 40]).unwrap_err();
    assert!(e.to_string().contains("context"), "{e}");
    let out = sessions.generate(&[s, s], None);
    assert!(out[0].is_ok());
    assert!(out[1].as_ref().unwrap_err().to_string().contains("twice"));
    sessions.close(s).unwrap();
    assert!(sessions.close(s).is_err());
    assert!(sessions.generate(&[s], None)[0].is_err());
}

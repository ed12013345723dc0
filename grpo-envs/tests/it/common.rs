//! Shared helpers: run an env with its own oracle (a mirror instance plans each turn).

use grpo_envs::testing::{ByteRenderer, ScriptedSampler};
use grpo_envs::{Env, Episode, EpisodeRunner, EpisodeSpec, RunConfig, TaskSpec, Turn, envs};

/// Runs `name` on `seed` with the oracle policy: a mirror env (same config and
/// task) proposes each turn and is stepped with the same text.
pub fn oracle_episode(name: &str, params: &serde_json::Value, seed: u64) -> Episode {
    run_with(name, params, seed, RunConfig::default(), |mirror, _| {
        mirror.oracle_action().unwrap_or_default()
    })
}

/// Runs `name` with a policy closure that sees a mirror env.
pub fn run_with(
    name: &str,
    params: &serde_json::Value,
    seed: u64,
    cfg: RunConfig,
    mut policy: impl FnMut(&mut dyn Env, usize) -> String,
) -> Episode {
    let env = envs::make(name, params).unwrap();
    let mut mirror = envs::make(name, params).unwrap();
    let task = TaskSpec::seed(seed);
    mirror.reset(&task).unwrap();
    let mut sampler = ScriptedSampler::new(move |ctx| {
        let a = policy(mirror.as_mut(), ctx.turn);
        let _ = mirror.step(&Turn::text(ctx.turn, &a));
        a
    });
    EpisodeRunner::new(cfg)
        .run_one(
            EpisodeSpec {
                env,
                task,
                group: 0,
                sample: 0,
            },
            &ByteRenderer,
            &mut sampler,
            0,
        )
        .unwrap()
}

/// Checks the transcript invariants every episode must satisfy.
pub fn check_invariants(ep: &Episode) {
    let t = &ep.transcript;
    let mask = t.loss_mask();
    let owners = t.owners();
    assert_eq!(mask.len(), t.len());
    for (m, o) in mask.iter().zip(&owners) {
        assert_eq!(*m == 1, *o == grpo_envs::Owner::Policy);
    }
    // Step spans are exactly the policy segments, in order.
    for s in &ep.steps {
        assert_eq!(
            t.policy_span(s.turn),
            Some(s.span.clone())
                .filter(|r| !r.is_empty())
                .or(t.policy_span(s.turn))
        );
        assert!(mask[s.span.clone()].iter().all(|&m| m == 1));
        if let Some(a) = &s.answer_span {
            assert!(a.start >= s.span.start && a.end <= s.span.end);
        }
    }
    // Rewards land only on policy positions.
    for (i, r) in ep.token_rewards().iter().enumerate() {
        if *r != 0.0 {
            assert_eq!(mask[i], 1, "reward on non-policy position {i}");
        }
    }
    // Views agree on the policy ids.
    let step_rows = ep.rows(grpo_envs::ViewKind::StepWise).unwrap();
    let sw: Vec<u32> = step_rows
        .iter()
        .flat_map(|r| r.response_ids.clone())
        .collect();
    let inter = ep.rows(grpo_envs::ViewKind::Interleaved).unwrap();
    let il: Vec<u32> = inter[0]
        .response_ids
        .iter()
        .zip(&inter[0].mask)
        .filter(|(_, m)| **m == 1)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(sw, il);
}

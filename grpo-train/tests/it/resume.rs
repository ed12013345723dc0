//! `--resume` is bit-exact on CPU: a run interrupted after a checkpoint and
//! resumed ends with the same weights, optimiser state, trainer state and
//! metrics (timings aside) as the same run done straight through.

use std::path::Path;

use grpo_train::{TrainOptions, train};

use crate::common::{metrics, quiet, tiny, without_timing};

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn assert_same_run(straight: &Path, resumed: &Path) {
    let a = straight.join("checkpoint");
    let b = resumed.join("checkpoint");
    for f in [
        "model.safetensors",
        "optimizer.bin",
        "trainer_state.json",
        "tokenizer.json",
    ] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs");
    }
    let (ma, mb) = (metrics(straight), metrics(resumed));
    assert_eq!(ma.len(), mb.len(), "metrics line counts differ");
    for (i, (x, y)) in ma.iter().zip(&mb).enumerate() {
        assert_eq!(
            without_timing(x),
            without_timing(y),
            "metrics line {} differs",
            i + 1
        );
    }
}

/// Interrupts (as if killed) after global step `stop_after`, resumes, and
/// compares with `straight`.
fn interrupted(out: &Path, straight: &Path, extra: &[&str], stop_after: usize) {
    let cfg = tiny(out, extra);
    let run_dir = cfg.run_dir();
    let first = train(
        cfg.clone(),
        &TrainOptions {
            stop_after: Some(stop_after),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(first.stopped_at, Some(stop_after));
    assert!(first.final_eval.is_none());
    // The interrupted run wrote metrics past its last checkpoint (which
    // resume must drop) and no final plot.
    assert!(!run_dir.join("plot.png").exists());
    let before = metrics(&run_dir).len();
    let second = train(
        cfg,
        &TrainOptions {
            resume: Some(run_dir.clone()),
            ..quiet()
        },
    )
    .unwrap();
    assert!(second.final_eval.is_some());
    assert!(metrics(&run_dir).len() > before);
    assert_same_run(straight, &run_dir);
}

#[test]
fn resume_mid_sft_and_mid_grpo_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    // A frozen reference with a KL penalty, so the reference policy must be
    // restored too; μ = 2 with minibatches so several updates happen per step.
    let extra = [
        "reference.mode=\"frozen\"",
        "grpo.mu=2",
        "grpo.minibatch_size=8",
        "algorithm.loss={ type = \"kl_penalty\", coef = 0.05, estimator = \"k3\", agg = { type = \"token_mean\" }, base = { type = \"ppo_clip\", eps_low = 0.2, eps_high = 0.28, agg = { type = \"token_mean\" } } }",
    ];
    let straight_cfg = tiny(&tmp.path().join("straight"), &extra);
    let straight = straight_cfg.run_dir();
    let s = train(straight_cfg, &quiet()).unwrap();
    assert!(s.final_eval.is_some() && s.stopped_at.is_none());

    // Killed at SFT step 3: resumes from the SFT step-2 checkpoint.
    interrupted(&tmp.path().join("mid_sft"), &straight, &extra, 3);
    // Killed at GRPO step 3 (global 4 + 3): resumes from the GRPO step-2 checkpoint.
    interrupted(&tmp.path().join("mid_grpo"), &straight, &extra, 7);
    // Stopped exactly at the end of SFT: resumes at GRPO step 0.
    interrupted(&tmp.path().join("at_sft_end"), &straight, &extra, 4);
}

#[test]
fn resume_without_checkpoint_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(tmp.path(), &[]);
    let e = train(
        cfg,
        &TrainOptions {
            resume: Some(tmp.path().join("nothing-here")),
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no checkpoint"), "{e}");
}

/// Every piece of stateful method state survives a resume bit for bit: SPO's per-prompt
/// tracker and its KL-adaptive memory, the VAS sampler's pool statistics and smoothed scores,
/// the adaptive KL controller's coefficient and R²VPO's dual variable.
#[test]
fn resume_keeps_stateful_method_state_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "reference.mode=\"frozen\"",
        "algorithm.advantage={ type = \"spo\" }",
        "algorithm.loss={ type = \"r2vpo\", eta = 0.1, delta_v = 0.05, agg = { type = \"token_mean\" } }",
        "algorithm.schedule={ r2vpo_dual_lr = 0.5 }",
        "algorithm.kl={ estimator = \"k3\", controller = { type = \"adaptive\", init_kl_coef = 0.01, target_kl = 0.05, horizon = 10.0 } }",
        "algorithm.sampler={ rule = { type = \"vas\", alpha = 1.0, beta = 0.5, update_freq = 1, momentum = 0.5 }, pool_size = 12 }",
    ];
    let straight_cfg = tiny(&tmp.path().join("straight"), &extra);
    let straight = straight_cfg.run_dir();
    train(straight_cfg, &quiet()).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&read(&straight.join("checkpoint/trainer_state.json"))).unwrap();
    assert!(
        state["kl_controller"]["value"].as_f64().is_some(),
        "{state}"
    );
    assert!(state["r2vpo_eta"].as_f64().is_some(), "{state}");
    assert!(
        !state["spo_memory"].as_object().unwrap().is_empty(),
        "{state}"
    );
    assert_eq!(state["sampler"]["pass_rate"].as_array().unwrap().len(), 12);
    // Killed at GRPO step 3 (global 4 + 3): resumes from the GRPO step-2 checkpoint.
    interrupted(&tmp.path().join("mid_grpo"), &straight, &extra, 7);
}

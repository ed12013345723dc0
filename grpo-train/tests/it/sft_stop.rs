//! `sft.stop_at_accuracy`: the warm start checks greedy accuracy on training-distribution
//! prompts every `check_every` steps and ends at the first check that reaches the target.

use grpo_train::metrics::Record;
use grpo_train::train;

use crate::common::{metrics, quiet, tiny, without_timing};

fn checks(m: &[Record]) -> Vec<(u64, f64)> {
    m.iter()
        .filter_map(|r| {
            Some((
                r.get("step")?.as_u64()?,
                r.get("sft/check_accuracy")?.as_f64()?,
            ))
        })
        .collect()
}

fn sft_steps(m: &[Record]) -> usize {
    m.iter()
        .filter(|r| r["stage"] == "sft" && r.contains_key("loss"))
        .count()
}

#[test]
fn sft_stops_at_the_first_check_that_reaches_the_target() {
    let base = [
        "model.hidden_size=64",
        "model.intermediate_size=128",
        "sft.steps=200",
        "sft.batch_size=32",
        "sft.lr=5e-3",
        "sft.check_every=25",
        "sft.check_size=100",
        "grpo.steps=1",
        "checkpoint.every=0",
        "checkpoint.sft_every=0",
        "eval.every=0",
    ];
    // 1. An unreachable target: all 200 steps run, a check every 25 steps (not after the last).
    let tmp = tempfile::tempdir().unwrap();
    let mut ov = base.to_vec();
    ov.push("sft.stop_at_accuracy=1.0");
    let cfg = tiny(tmp.path(), &ov);
    let dir = cfg.run_dir();
    train(cfg, &quiet()).unwrap();
    let full = metrics(&dir);
    assert_eq!(sft_steps(&full), 200);
    let c = checks(&full);
    assert_eq!(
        c.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![25, 50, 75, 100, 125, 150, 175]
    );
    let (best_step, best) = c
        .iter()
        .copied()
        .fold((0, 0.0), |a, x| if x.1 > a.1 { x } else { a });
    assert!(
        best > 0.0,
        "the tiny model never answered a check prompt; make the test's SFT stronger: {c:?}"
    );
    let first_hit = c.iter().find(|x| x.1 >= best).unwrap().0;
    assert!(first_hit <= best_step);

    // 2. Target = the best accuracy seen: the same run stops at the first check reaching it,
    //    with identical metrics up to there, then goes on to evaluate and GRPO.
    let tmp2 = tempfile::tempdir().unwrap();
    let target = format!("sft.stop_at_accuracy={best}");
    let mut ov = base.to_vec();
    ov.push(&target);
    let cfg = tiny(tmp2.path(), &ov);
    let dir2 = cfg.run_dir();
    let s = train(cfg, &quiet()).unwrap();
    let early = metrics(&dir2);
    assert_eq!(sft_steps(&early), first_hit as usize);
    let upto = early
        .iter()
        .position(|r| r.contains_key("eval/accuracy"))
        .unwrap();
    assert_eq!(early[upto]["stage"], "sft");
    assert_eq!(early[upto]["step"], first_hit);
    for (a, b) in early[..upto].iter().zip(&full) {
        assert_eq!(without_timing(a), without_timing(b));
    }
    assert!(s.after_sft.is_some());
    assert!(
        early
            .iter()
            .any(|r| r["stage"] == "grpo" && r.contains_key("reward/mean"))
    );
}

#[test]
fn bad_stop_settings_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    for (ov, key) in [
        ("sft.stop_at_accuracy=0.0", "sft.stop_at_accuracy"),
        ("sft.stop_at_accuracy=1.5", "sft.stop_at_accuracy"),
    ] {
        let cfg = tiny(tmp.path(), &[ov]);
        let e = train(cfg, &quiet()).unwrap_err().to_string();
        assert!(e.contains(key), "{ov}: {e}");
    }
    let cfg = tiny(
        tmp.path(),
        &["sft.stop_at_accuracy=0.5", "sft.check_every=0"],
    );
    let e = train(cfg, &quiet()).unwrap_err().to_string();
    assert!(e.contains("sft.check_every"), "{e}");
}

//! A tiny model trains on toy addition: SFT loss falls, and metrics.jsonl,
//! the checkpoint, plot.png and the TensorBoard event file are well formed.

use std::path::Path;

use serde_json::Value;

use grpo_train::train;

use crate::common::{metrics, quiet, tiny};

fn has(r: &grpo_train::metrics::Record, keys: &[&str]) {
    for k in keys {
        assert!(r.contains_key(*k), "missing `{k}` in {r:?}");
    }
}

/// Walks TFRecord framing (u64 length, u32 crc, data, u32 crc) to the end of the file.
fn tfrecord_count(path: &Path) -> usize {
    let b = std::fs::read(path).unwrap();
    let (mut i, mut n) = (0usize, 0usize);
    while i < b.len() {
        assert!(i + 12 <= b.len(), "truncated record header");
        let len = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) as usize;
        i += 12 + len + 4;
        assert!(i <= b.len(), "truncated record");
        n += 1;
    }
    n
}

#[test]
fn tiny_run_learns_and_writes_well_formed_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(
        tmp.path(),
        &[
            "sft.steps=30",
            "sft.batch_size=16",
            "grpo.steps=3",
            "eval.every=2",
        ],
    );
    let dir = cfg.run_dir();
    let s = train(cfg, &quiet()).unwrap();
    assert_eq!(s.run_dir, dir);
    assert!(s.after_sft.is_some());
    let fe = s.final_eval.unwrap();
    assert!((0.0..=1.0).contains(&fe.accuracy));
    assert!(fe.pass_at_k.is_some());
    let shown = s.to_string();
    assert!(
        shown.contains("after SFT") && shown.contains("plot"),
        "{shown}"
    );

    // metrics.jsonl: every line parses (read_jsonl fails otherwise), keys per kind.
    let m = metrics(&dir);
    let sft: Vec<_> = m
        .iter()
        .filter(|r| r["stage"] == "sft" && r.contains_key("loss"))
        .collect();
    let grpo: Vec<_> = m
        .iter()
        .filter(|r| r["stage"] == "grpo" && r.contains_key("reward/mean"))
        .collect();
    let evals: Vec<_> = m
        .iter()
        .filter(|r| r.contains_key("eval/accuracy"))
        .collect();
    assert_eq!(sft.len(), 30);
    assert_eq!(grpo.len(), 3);
    for (i, r) in sft.iter().enumerate() {
        has(
            r,
            &["step", "loss", "grad_norm", "lr", "tokens", "time/step"],
        );
        assert_eq!(r["step"], Value::from(i + 1));
    }
    for (i, r) in grpo.iter().enumerate() {
        has(
            r,
            &[
                "step",
                "reward/mean",
                "reward/std",
                "accuracy",
                "reward/format",
                "response_length/mean",
                "filtered_frac",
                "lr",
                "time/rollout",
                "time/reward",
                "time/score",
                "time/backward",
                "time/optim",
                "tokens_per_sec",
            ],
        );
        assert_eq!(r["step"], Value::from(i + 1));
        let acc = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    // Evals: end of SFT, GRPO step 2, end of GRPO.
    let stages: Vec<_> = evals
        .iter()
        .map(|r| (r["stage"].as_str().unwrap(), r["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(stages, [("sft", 30), ("grpo", 2), ("grpo", 3)]);
    for r in &evals {
        has(r, &["eval/pass@k", "eval/k", "eval/format", "eval/prompts"]);
    }

    // SFT learns: the loss over the last five steps is well below the first.
    let loss: Vec<f64> = sft.iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    let tail = loss[25..].iter().sum::<f64>() / 5.0;
    assert!(
        tail < 0.85 * loss[0],
        "SFT loss did not fall: first {}, last five mean {tail}",
        loss[0]
    );

    // Checkpoint: loads back; trainer state says done.
    let ck = dir.join("checkpoint");
    assert_eq!(s.checkpoint, ck);
    let model = grpo_model::Model::load(&ck).unwrap();
    assert!(!model.weights.is_empty());
    assert!(model.weights.iter().all(|w| w.is_finite()));
    grpo_model::tokenizer::Tokenizer::from_dir(&ck).unwrap();
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(st["stage"], "done");
    assert_eq!(
        std::fs::metadata(ck.join("optimizer.bin")).unwrap().len(),
        8 * model.weights.len() as u64
    );
    // No temporary checkpoint directories left behind.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.starts_with(".checkpoint"), "{name} left behind");
    }

    // The config was recorded and parses back.
    grpo_train::config::load(&dir.join("config.toml"), &[])
        .unwrap()
        .validate()
        .unwrap();

    // plot.png is a PNG.
    let png = std::fs::read(&s.plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // One TensorBoard event file with a version record plus one record per metrics line.
    let tb: Vec<_> = std::fs::read_dir(dir.join("tb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tb.len(), 1);
    assert!(
        tb[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.out.tfevents.")
    );
    assert_eq!(tfrecord_count(&tb[0]), 1 + m.len());
}

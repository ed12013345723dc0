//! `grpo train` and `grpo eval` through the binary: a tiny run, refusal of an
//! existing run directory (exit code 2, nothing touched), config errors with
//! line and column, and eval's JSON summary.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const TINY: &[&str] = &[
    "model.hidden_size=32",
    "model.intermediate_size=64",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.num_kv_heads=1",
    "model.max_position_embeddings=32",
    "task.min_digits=1",
    "task.max_digits=1",
    "task.eval_size=8",
    "sft.steps=3",
    "sft.batch_size=4",
    "grpo.steps=1",
    "rollout.prompts_per_step=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=6",
    "eval.num_prompts=4",
    "eval.pass_k=2",
    "name=\"cli\"",
];

fn grpo(args: &[&str], extra: &[String]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_grpo"));
    c.args(args);
    for s in extra {
        c.arg("--set").arg(s);
    }
    c.output().unwrap()
}

fn sets(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    v.push(format!("output_dir=\"{}\"", out.display()));
    v
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Logs written to a pipe (as `grpo train 2> train.log` does) carry no ANSI escape codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_grpo"));
    c.arg("train")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info");
    for s in sets(tmp.path()) {
        c.arg("--set").arg(s);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("INFO"), "no log lines on stderr: {err}");
    assert!(!err.contains('\x1b'), "ANSI escape in piped logs: {err:?}");
}

#[test]
fn train_refuses_existing_dir_then_eval_reports_json() {
    let tmp = tempfile::tempdir().unwrap();
    let ov = sets(tmp.path());
    let o = grpo(&["train", "--quiet"], &ov);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = tmp.path().join("cli");
    let ck = run_dir.join("checkpoint");
    assert!(ck.join("config.json").exists());
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        shown.contains("after GRPO") && shown.contains("checkpoint"),
        "{shown}"
    );

    // A second run into the same directory is refused and changes nothing.
    let before = std::fs::read(run_dir.join("metrics.jsonl")).unwrap();
    let o = grpo(&["train", "--quiet"], &ov);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("already exists") && msg.contains("--overwrite"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(run_dir.join("metrics.jsonl")).unwrap(),
        before
    );

    // Eval with the run's own config (found next to the checkpoint).
    let o = grpo(&["eval", "--model", ck.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompts"], 4);
    assert_eq!(v["k"], 2);
    let acc = v["accuracy"].as_f64().unwrap();
    let pk = v["pass_at_k"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&pk));
    assert!(v["config"].as_str().unwrap().ends_with("config.toml"));
    // Greedy eval is deterministic and matches the run's final eval line.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last_eval: Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|r| r.get("eval/accuracy").is_some())
        .unwrap();
    assert_eq!(last_eval["eval/accuracy"].as_f64().unwrap(), acc);

    // Overrides apply; pass_k = 0 gives null pass@k.
    let o = grpo(
        &["eval", "--model", ck.to_str().unwrap()],
        &["eval.pass_k=0".into(), "eval.num_prompts=3".into()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompts"], 3);
    assert!(v["pass_at_k"].is_null());

    // A directory without config.json is refused by name.
    let o = grpo(&["eval", "--model", tmp.path().to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("config.json"), "{}", text(&o));
}

#[test]
fn train_config_error_names_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "name = \"x\"\nseed = 1\n[grpo]\nsteps = 1\nmu = -\n").unwrap();
    let o = grpo(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("bad.toml:5:"), "{}", text(&o));
}

//! Bad input gives clear errors and touches nothing: config errors with line
//! and column, a model directory without config.json, a dataset without the
//! configured column, an existing output directory.

use std::path::Path;

use grpo_train::config::{self, DEFAULT_CONFIG};
use grpo_train::{TrainError, TrainOptions, train};

use crate::common::{TINY, quiet, tiny};

#[test]
fn config_errors_name_the_key_line_and_column() {
    // Unknown key inside a section: line 3, column 1.
    let text = "name = \"x\"\n[grpo]\nstepz = 3\n";
    let e = config::parse(text, "bad.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml:3:1") && e.contains("stepz"), "{e}");
    // Wrong type: the value's position.
    let text = TINY.replace("group_size = 4", "group_size = \"four\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("group_size"))
        .unwrap()
        + 1;
    let e = config::parse(&text, "t.toml", &[]).unwrap_err().to_string();
    assert!(e.contains(&format!("t.toml:{line}:14")), "{e}");
    // Missing required field: named.
    let text = TINY.replace("prompts_per_step = 4\n", "");
    let e = config::parse(&text, "t.toml", &[]).unwrap_err().to_string();
    assert!(
        e.contains("prompts_per_step") && e.contains("t.toml"),
        "{e}"
    );
    // Unknown registry name inside an algorithm table.
    let text = TINY.replace("type = \"grpo\"", "type = \"grpq\"");
    let e = config::parse(&text, "t.toml", &[]).unwrap_err().to_string();
    assert!(e.contains("grpq") && e.contains("t.toml:"), "{e}");
    // Syntax error.
    let e = config::parse("name = \n", "s.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("s.toml:1:"), "{e}");
    // Invalid values caught by validate name their key.
    for (ov, key) in [
        ("rollout.temperature=0.0", "rollout.temperature"),
        ("grpo.mu=0", "grpo.mu"),
        ("optim.schedule=\"linear\"", "optim.schedule"),
        ("reference.mode=\"sometimes\"", "reference.mode"),
        ("sft.thought_dropout=1.5", "sft.thought_dropout"),
        ("name=\"a/b\"", "name"),
    ] {
        let c = config::parse(DEFAULT_CONFIG, "d", &[ov.to_string()]).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{ov}: {e}");
    }
    // A bad override value is reported against the override.
    let e = config::parse(DEFAULT_CONFIG, "d", &["grpo.steps=\"many\"".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--set") || e.contains("overrides"), "{e}");
}

#[test]
fn model_path_without_config_json_fails_before_creating_the_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("not-a-model");
    std::fs::create_dir(&empty).unwrap();
    let cfg = tiny(
        tmp.path(),
        &[&format!(
            "model={{ source = \"checkpoint\", path = \"{}\" }}",
            empty.display()
        )],
    );
    let run_dir = cfg.run_dir();
    let e = train(cfg, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("not-a-model") && e.contains("model.path"),
        "{e}"
    );
    assert!(
        !run_dir.exists(),
        "a failed start must not create the run dir"
    );
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
}

#[test]
fn dataset_with_a_missing_column_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let train_p = tmp.path().join("train.jsonl");
    let test_p = tmp.path().join("test.jsonl");
    write(&train_p, "{\"question\": \"1+1?\", \"solution\": \"2\"}\n");
    write(
        &test_p,
        "{\"question\": \"2+2?\", \"answer\": \"#### 4\"}\n",
    );
    let cfg = tiny(
        tmp.path(),
        &[&format!(
            "task={{ type = \"dataset\", train = \"{}\", test = \"{}\", prompt_column = \"question\", answer_column = \"answer\", verifier = \"math\" }}",
            train_p.display(),
            test_p.display()
        )],
    );
    let run_dir = cfg.run_dir();
    let e = train(cfg, &quiet()).unwrap_err().to_string();
    assert!(e.contains("task.train") && e.contains("answer"), "{e}");
    assert!(!run_dir.exists());
}

#[test]
fn existing_output_dir_is_refused_unless_overwrite_or_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(tmp.path(), &[]);
    let run_dir = cfg.run_dir();
    std::fs::create_dir_all(&run_dir).unwrap();
    write(&run_dir.join("precious.txt"), "keep me");
    let e = train(cfg.clone(), &quiet()).unwrap_err();
    assert!(
        matches!(e, TrainError::OutputExists(ref p) if p == &run_dir),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("--overwrite") && msg.contains("--resume"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("precious.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&run_dir).unwrap().count(), 1);
    // --overwrite replaces it.
    let cfg = tiny(
        tmp.path(),
        &[
            "sft.steps=1",
            "grpo.steps=1",
            "eval.pass_k=0",
            "eval.num_prompts=2",
        ],
    );
    train(
        cfg,
        &TrainOptions {
            overwrite: true,
            ..quiet()
        },
    )
    .unwrap();
    assert!(!run_dir.join("precious.txt").exists());
    assert!(run_dir.join("checkpoint/config.json").exists());
}

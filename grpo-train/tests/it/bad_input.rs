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

/// Algorithm and reward mistakes are refused when the config is loaded, at the file, line
/// and column of the key, naming the item, the missing input and what would provide it.
#[test]
fn algorithm_and_reward_mistakes_are_refused_at_load_with_their_location() {
    let check = |text: &str, want: &[&str]| {
        let e = config::parse_validated(text, "r.toml", &[])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        for w in want {
            assert!(e.contains(w), "missing {w:?} in: {e}");
        }
    };
    let line_of = |text: &str, pat: &str| text.lines().position(|l| l.contains(pat)).unwrap() + 1;
    // An estimator whose input the trainer cannot supply.
    let t = TINY.replace(
        "advantage = { type = \"grpo\" }",
        "advantage = { type = \"gae\", gamma = 1.0, lam = 1.0 }",
    );
    let l = line_of(&t, "type = \"gae\"");
    check(
        &t,
        &[&format!("r.toml:{l}:1"), "gae", "values", "value model"],
    );
    // A KL penalty in the loss without a reference policy.
    let t = TINY.replace(
        "loss = { type = \"ppo_clip\", eps_low = 0.2, eps_high = 0.28, agg = { type = \"token_mean\" } }",
        "loss = { type = \"kl_penalty\", coef = 0.1, estimator = \"k3\", agg = { type = \"token_mean\" }, base = { type = \"ppo_clip\", eps_low = 0.2, agg = { type = \"token_mean\" } } }",
    );
    check(&t, &["kl_penalty", "ref_log_prob", "[reference]"]);
    // [algorithm.kl] without a reference.
    let t = TINY.replace(
        "[optim]",
        "kl = { estimator = \"k3\", controller = { type = \"fixed\", kl_coef = 0.01 } }\n\n[optim]",
    );
    check(&t, &["algorithm.kl", "reference"]);
    // Unknown reward type and non-finite weight.
    let t = format!("{TINY}\n[[reward]]\nsource = {{ type = \"sentiment\" }}\n");
    let e = config::parse(&t, "r.toml", &[]).unwrap_err().to_string();
    assert!(e.contains("sentiment") && e.contains("r.toml:"), "{e}");
    let t = format!("{TINY}\n[[reward]]\nweight = nan\nsource = {{ type = \"task\" }}\n");
    let l = line_of(&t, "weight = nan");
    check(&t, &[&format!("r.toml:{l}:1"), "weight", "finite"]);
    // A filter reading a component the run does not have.
    let t = TINY.replace(
        "[optim]",
        "filter = { rule = { type = \"dynamic_sampling\", metric = \"acc\" } }\n\n[optim]",
    );
    check(
        &t,
        &["acc", "not a reward component", "known: reward, correct"],
    );
    // GDPO weights that do not match the components.
    let t = TINY.replace(
        "advantage = { type = \"grpo\" }",
        "advantage = { type = \"gdpo\", weights = [1.0, 2.0] }",
    );
    check(&t, &["gdpo has 2 weights", "1 reward components"]);
    // SPO with a shaping reward that leaves [0, 1]; DisCO with non-binary rewards.
    let shaped = format!(
        "{TINY}\n[[reward]]\nsource = {{ type = \"task\" }}\n[[reward]]\nsource = {{ type = \"dapo_overlong\", max_len = 6, buffer = 2 }}\n"
    );
    check(
        &shaped.replace("type = \"grpo\"", "type = \"spo\""),
        &["spo", "[0, 1]"],
    );
    check(
        &shaped.replace(
            "loss = { type = \"ppo_clip\", eps_low = 0.2, eps_high = 0.28, agg = { type = \"token_mean\" } }",
            "loss = { type = \"disco\", score = \"l_ratio\", variant = \"disco\", tau = 10.0, delta = 0.0001, beta = 1000.0, kl_type = \"k3\" }",
        ),
        &["disco", "binary"],
    );
    // A group of one for an estimator that compares completions.
    check(
        &TINY.replace("group_size = 4", "group_size = 1"),
        &["group_size", "grpo"],
    );
    // A sampler over a generated task without a pool size; Scaf-GRPO's hints.
    let t = TINY.replace(
        "[optim]",
        "sampler = { rule = { type = \"vas\", alpha = 1.0, beta = 0.0 } }\n\n[optim]",
    );
    check(&t, &["pool_size"]);
    let t = TINY.replace(
        "[optim]",
        "sampler = { rule = { type = \"scaf_grpo\" }, pool_size = 8 }\n\n[optim]",
    );
    check(&t, &["scaf_grpo", "hint"]);
}

/// A `[model]` too large to allocate is an error naming its size, not a panic.
#[test]
fn an_unallocatable_model_is_an_error_naming_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    for (ov, want) in [
        ("model.hidden_size=1000000000", "parameters needs"),
        (
            "model.intermediate_size=9223372036854775807",
            "parameters needs",
        ),
    ] {
        let mut cfg = tiny(
            tmp.path(),
            &[ov, "model.num_heads=1", "model.num_kv_heads=1"],
        );
        cfg.name = "huge".into();
        let e = train(cfg, &quiet()).unwrap_err().to_string();
        assert!(e.contains(want), "{ov}: {e}");
        assert!(!tmp.path().join("huge").exists());
    }
}

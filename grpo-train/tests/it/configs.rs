//! Every example config under `configs/` loads and validates, round-trips
//! through TOML, and each algorithm family runs for two GRPO steps on a tiny
//! model (sizes overridden with `--set`-style overrides).

use std::path::{Path, PathBuf};

use grpo_train::config::{self, RunConfigFile};
use grpo_train::train;

use crate::common::{metrics, quiet, tiny_overrides};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

const RUNNABLE: &[&str] = &[
    "grpo",
    "dr_grpo",
    "dapo",
    "gspo",
    "rloo",
    "reinforce_pp",
    "cispo",
    "gmpo",
    "bnpo",
    "kl_k3",
    "gdpo_multi_reward",
    "spo",
    "unlikeliness",
    "gtpo",
    "disco",
    "risk_po",
    "r2vpo",
    "mdpo",
    "oblr",
    "vas",
    "rollout_correction",
    "kl_adaptive",
];

#[test]
fn every_example_config_loads_validates_and_round_trips() {
    let mut names = Vec::new();
    for e in std::fs::read_dir(configs_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let c = config::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            c.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(
                c.name,
                p.file_stem().unwrap().to_string_lossy(),
                "{}: name should match the file",
                p.display()
            );
            let back: RunConfigFile = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
            names.push(c.name);
        }
    }
    for n in RUNNABLE.iter().chain(&["gsm8k", "default"]) {
        assert!(names.iter().any(|m| m == n), "configs/{n}.toml is missing");
    }
}

#[test]
fn algorithm_family_configs_run_two_grpo_steps() {
    let tmp = tempfile::tempdir().unwrap();
    for name in RUNNABLE {
        let path = configs_dir().join(format!("{name}.toml"));
        let cfg = config::load(&path, &tiny_overrides(tmp.path())).unwrap();
        let dir = cfg.run_dir();
        let s = train(cfg, &quiet()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(s.final_eval.is_some(), "{name}");
        let m = metrics(&dir);
        let grpo: Vec<_> = m
            .iter()
            .filter(|r| r["stage"] == "grpo" && r.contains_key("reward/mean"))
            .collect();
        assert_eq!(grpo.len(), 2, "{name}");
        for r in grpo {
            // Either the batch was trained on (a finite loss) or every group was filtered.
            let filtered = r["filtered_frac"].as_f64().unwrap();
            assert!(
                filtered == 1.0 || r["loss"].as_f64().is_some_and(f64::is_finite),
                "{name}: {r:?}"
            );
        }
        grpo_model::Model::load(&dir.join("checkpoint")).unwrap();
    }
}

/// Every data file an example config names is inside the repository and present: a user who
/// clones the repository alone can run each config (paths are relative to the repository root,
/// where `cargo xtask train` runs).
#[test]
fn example_configs_read_data_only_from_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let mut checked = 0;
    for e in std::fs::read_dir(configs_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let c = config::load(&p, &[]).unwrap();
        if let config::TaskSection::Dataset { train, test, .. } = &c.task {
            for f in [train, test] {
                assert!(
                    f.is_relative(),
                    "{}: {} is absolute",
                    p.display(),
                    f.display()
                );
                let full = root.join(f);
                let real = full.canonicalize().unwrap_or_else(|e| {
                    panic!("{}: data file {} missing: {e}", p.display(), full.display())
                });
                assert!(
                    real.starts_with(&root),
                    "{}: {} points outside the repository",
                    p.display(),
                    f.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "no dataset config checked");
}

#[test]
fn gsm8k_config_points_at_the_vendored_data() {
    let c = config::load(&configs_dir().join("gsm8k.toml"), &[]).unwrap();
    match &c.task {
        config::TaskSection::Dataset { train, test, .. } => {
            assert_eq!(train, Path::new("data/gsm8k/train.jsonl"));
            assert_eq!(test, Path::new("data/gsm8k/test.jsonl"));
        }
        other => panic!("gsm8k.toml task is {other:?}"),
    }
    assert!(matches!(c.model, config::ModelSection::Checkpoint { .. }));
}

/// The code, tool-call and GUI example configs: their verifiers read the rows' columns (a
/// gold completion scores 1, a wrong one 0), and each trains for two GRPO steps on its own
/// data with a tiny model.
#[test]
fn dataset_verifier_configs_score_their_rows_and_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    for (name, wrong) in [
        ("code", " x * 100\n"),
        (
            "toolcall",
            "[get_weather(city=\"Atlantis\", unit=\"celsius\")]\n",
        ),
        (
            "gui",
            "<answer>[{'action': 'click', 'point': [1, 1], 'input_text': 'no input text'}]</answer>\n",
        ),
    ] {
        let mut cfg = config::load(&configs_dir().join(format!("{name}.toml")), &[]).unwrap();
        // Paths in the configs are relative to the repository root.
        if let config::TaskSection::Dataset { train, test, .. } = &mut cfg.task {
            *train = root.join(&*train);
            *test = root.join(&*test);
        }
        let task = grpo_train::task::TaskSource::new(&cfg.task, 1).unwrap();
        for inst in task.eval_set() {
            let good = task.score(inst, &inst.gold_completion);
            assert_eq!(good.correct, 1.0, "{name}: gold {:?}", inst.gold_completion);
            assert_eq!(task.score(inst, wrong).correct, 0.0, "{name}: {wrong:?}");
        }
        for ov in [
            format!("output_dir=\"{}\"", tmp.path().display()),
            "model.hidden_size=32".into(),
            "model.intermediate_size=64".into(),
            "model.num_layers=1".into(),
            "model.num_heads=2".into(),
            "model.num_kv_heads=1".into(),
            "sft={ steps = 2, batch_size = 4, lr = 3e-3 }".into(),
            "grpo.steps=2".into(),
            "rollout.prompts_per_step=2".into(),
            "rollout.group_size=2".into(),
            "eval={ every = 0, num_prompts = 2, pass_k = 0 }".into(),
        ] {
            let mut t: toml::Table = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
            config::apply_override(&mut t, &ov).unwrap();
            cfg = config::parse(&toml::to_string(&t).unwrap(), name, &[]).unwrap();
        }
        cfg.validate().unwrap();
        let dir = cfg.run_dir();
        train(cfg, &quiet()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = metrics(&dir);
        let steps = m
            .iter()
            .filter(|r| r["stage"] == "grpo" && r.contains_key("reward/correct"))
            .count();
        assert_eq!(steps, 2, "{name}");
    }
}

/// `task.chat_template = true`: chat-message prompts are rendered as the conversation and
/// text prompts as one user message, with the checkpoint's template; the verifier still finds
/// each row (its gold answer) after rendering.
#[test]
fn chat_prompts_are_rendered_with_the_template_and_still_verified() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tok =
        grpo_model::tokenizer::Tokenizer::from_dir(&root.join("fixtures/chat/qwen2.5")).unwrap();
    let f = dir.path().join("chat.jsonl");
    std::fs::write(
        &f,
        concat!(
            r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}], "gold": "5"}"#,
            "\n",
            r#"{"prompt": "What is 4+4?", "gold": "8"}"#,
            "\n"
        ),
    )
    .unwrap();
    let section = config::TaskSection::Dataset {
        train: f.clone(),
        test: f,
        prompt_column: "prompt".into(),
        answer_column: "gold".into(),
        verifier: "math".into(),
        verifier_options: None,
        columns: Vec::new(),
        stop: None,
        chat_template: true,
    };
    let mut task = grpo_train::task::TaskSource::new(&section, 1).unwrap();
    task.apply_chat_template(&tok).unwrap();
    let p: Vec<&str> = task.eval_set().iter().map(|i| i.prompt.as_str()).collect();
    assert!(
        p[0].contains("<|im_start|>system\nBe brief.<|im_end|>")
            && p[0].contains("<|im_start|>user\nWhat is 2+3?<|im_end|>")
            && p[0].ends_with("<|im_start|>assistant\n"),
        "{:?}",
        p[0]
    );
    assert!(
        p[1].contains("<|im_start|>user\nWhat is 4+4?<|im_end|>") && p[1].ends_with("assistant\n"),
        "{:?}",
        p[1]
    );
    for (inst, gold) in task.eval_set().iter().zip(["5", "8"]) {
        let s = task.score(inst, &format!("The answer is \\boxed{{{gold}}}."));
        assert_eq!(s.correct, 1.0);
    }
}

/// Gradient accumulation sums minibatches into one optimiser step; gradient checkpointing
/// (`grpo.recompute`) gives the same result as the plain forward.
#[test]
fn gradient_accumulation_and_recompute_are_config_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let mut ov: Vec<String> = crate::common::tiny_overrides(tmp.path());
        ov.push(format!("name=\"{name}\""));
        ov.push("sft={ steps = 1, batch_size = 4, lr = 3e-3 }".into());
        ov.push("grpo.minibatch_size=4".into());
        ov.push("rollout.prompts_per_step=4".into());
        ov.push("rollout.group_size=4".into());
        ov.push("algorithm.drop_zero_variance_groups=false".into());
        ov.extend(extra.iter().map(|s| s.to_string()));
        let cfg = config::load(&configs_dir().join("grpo.toml"), &ov).unwrap();
        let dir = cfg.run_dir();
        train(cfg, &quiet()).unwrap();
        let m = metrics(&dir);
        let steps: Vec<_> = m
            .into_iter()
            .filter(|r| r["stage"] == "grpo" && r.contains_key("reward/mean"))
            .collect();
        (
            steps,
            grpo_model::Model::load(&dir.join("checkpoint"))
                .unwrap()
                .weights,
        )
    };
    let (plain, w_plain) = run("plain", &[]);
    let (accum, _) = run("accum", &["grpo.gradient_accumulation_steps=2"]);
    let (recomp, w_recomp) = run("recomp", &["grpo.recompute=true"]);
    for r in &plain {
        assert_eq!(r["optimizer_steps"], 4, "{r:?}");
    }
    for r in &accum {
        assert_eq!(r["optimizer_steps"], 2, "{r:?}");
    }
    assert_eq!(plain.len(), recomp.len());
    for (a, b) in w_plain.iter().zip(&w_recomp) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
}

/// A dataset task reads Parquet as well as JSONL: the same rows, the same verdicts.
#[test]
fn parquet_dataset_tasks_load_like_jsonl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let section = |file: PathBuf| config::TaskSection::Dataset {
        train: file.clone(),
        test: file,
        prompt_column: "question".into(),
        answer_column: "answer".into(),
        verifier: "math".into(),
        verifier_options: None,
        columns: Vec::new(),
        stop: None,
        chat_template: false,
    };
    let pq = grpo_train::task::TaskSource::new(
        &section(root.join("grpo-envs/tests/data/gsm8k_test_head.zstd.parquet")),
        1,
    )
    .unwrap();
    let js =
        grpo_train::task::TaskSource::new(&section(root.join("data/gsm8k/test.jsonl")), 1).unwrap();
    assert_eq!(pq.eval_set().len(), 50);
    assert_eq!(pq.eval_set(), &js.eval_set()[..50]);
    let inst = &pq.eval_set()[0];
    assert_eq!(
        pq.score(inst, &format!("\\boxed{{{}}}", inst.answer))
            .correct,
        1.0
    );
}

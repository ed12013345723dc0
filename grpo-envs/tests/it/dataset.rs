//! Dataset loader tests on the public data sets vendored in `data/`.

use std::path::{Path, PathBuf};

use grpo_envs::dataset::{ColumnMap, Cursor, load_jsonl};

/// A file of the repository's vendored public data (`data/` at the root); a missing
/// file is a test failure naming its path, never a silent skip.
fn repo_data(p: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(p);
    assert!(path.exists(), "missing test data file {}", path.display());
    path
}

#[test]
fn loads_gsm8k() {
    let p = repo_data("gsm8k/test.jsonl");
    let recs = load_jsonl(p, &ColumnMap::gsm8k()).unwrap();
    assert_eq!(recs.len(), 1319);
    assert_eq!(recs[0].answer, "18");
    assert!(recs[0].prompt.starts_with("Janet"));
    assert!(
        recs.iter()
            .all(|r| grpo_envs::rational::Rational::parse_number(&r.answer).is_some())
    );
}

#[test]
fn loads_humaneval() {
    let p = repo_data("humaneval/HumanEval.jsonl");
    let recs = load_jsonl(p, &ColumnMap::humaneval()).unwrap();
    assert_eq!(recs.len(), 164);
    assert_eq!(recs[0].id, "HumanEval/0");
    assert_eq!(recs[0].extra["entry_point"], "has_close_elements");
    assert!(
        recs[0].extra["test"]
            .as_str()
            .unwrap()
            .contains("def check")
    );
}

#[test]
fn bad_records_name_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.jsonl");
    std::fs::write(
        &p,
        "{\"question\":\"q\",\"answer\":\"x #### 3\"}\n\n{\"question\":\"q\"}\n",
    )
    .unwrap();
    let err = load_jsonl(&p, &ColumnMap::gsm8k()).unwrap_err().to_string();
    assert!(err.contains(":3:") && err.contains("`answer`"), "{err}");
    std::fs::write(&p, "not json\n").unwrap();
    let err = load_jsonl(&p, &ColumnMap::gsm8k()).unwrap_err().to_string();
    assert!(err.contains(":1:"), "{err}");
    std::fs::write(
        &p,
        "{\"problem\":\"p\",\"solution\":\"so \\\\boxed{\\\\frac{1}{2}}\"}\n",
    )
    .unwrap();
    let r = load_jsonl(&p, &ColumnMap::math()).unwrap();
    assert_eq!(r[0].answer, "\\frac{1}{2}");
    let c: ColumnMap =
        serde_json::from_str(r#"{"prompt":"q","answer":"a","extra":["k"]}"#).unwrap();
    std::fs::write(&p, "{\"q\":\"p\",\"a\":5,\"k\":[1]}\n").unwrap();
    let r = load_jsonl(&p, &c).unwrap();
    assert_eq!(r[0].answer, "5");
    assert!(serde_json::from_str::<ColumnMap>(r#"{"prompt":"q","answer":"a","bogus":1}"#).is_err());
}

#[test]
fn bfcl_and_code_contest_records_map_by_preset() {
    let dir = tempfile::tempdir().unwrap();
    // BFCL v3 layout: `question` is a list of turns, each a list of messages.
    let p = dir.path().join("bfcl.jsonl");
    std::fs::write(
        &p,
        concat!(
            r#"{"id":"simple_0","question":[[{"role":"user","content":"Area of a triangle with base 10 and height 5?"}]],"#,
            r#""function":[{"name":"calculate_triangle_area","description":"area","parameters":{"type":"dict","properties":{"base":{"type":"integer"},"height":{"type":"integer"}},"required":["base","height"]}}],"#,
            r#""ground_truth":[{"calculate_triangle_area":{"base":[10],"height":[5]}}]}"#,
            "\n",
            r#"{"id":"simple_1","question":"What is 2+2?","function":[],"ground_truth":"4"}"#,
            "\n",
            r#"{"id":"bad","question":[[{"role":"robot","content":"x"}]],"function":[],"ground_truth":"4"}"#,
            "\n",
        ),
    )
    .unwrap();
    let err = load_jsonl(&p, &ColumnMap::bfcl()).unwrap_err().to_string();
    assert!(
        err.contains(":3:") && err.contains("`question`") && err.contains("unknown role `robot`"),
        "{err}"
    );
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let recs = load_jsonl(&p, &ColumnMap::bfcl()).unwrap();
    assert_eq!(recs[0].id, "simple_0");
    assert_eq!(
        recs[0].prompt,
        "Area of a triangle with base 10 and height 5?"
    );
    assert_eq!(recs[0].messages.len(), 1);
    assert_eq!(
        recs[0].answer,
        r#"[{"calculate_triangle_area":{"base":[10],"height":[5]}}]"#
    );
    assert_eq!(
        recs[0].extra["function"][0]["name"],
        "calculate_triangle_area"
    );
    assert_eq!(recs[1].prompt, "What is 2+2?");
    assert!(recs[1].messages.is_empty());

    let p = dir.path().join("cc.jsonl");
    std::fs::write(
        &p,
        r#"{"name":"1A_theatre","description":"Cover an n x m square with a x a flagstones.","solution":"print(1)","tests":{"input":["6 6 4\n"],"output":["4\n"]}}"#,
    )
    .unwrap();
    let recs = load_jsonl(&p, &ColumnMap::code_contest()).unwrap();
    assert_eq!(recs[0].id, "1A_theatre");
    assert_eq!(recs[0].answer, "print(1)");
    assert_eq!(recs[0].extra["tests"]["output"][0], "4\n");
}

#[test]
fn loads_gsm8k_train() {
    let p = repo_data("gsm8k/train.jsonl");
    let recs = load_jsonl(p, &ColumnMap::gsm8k()).unwrap();
    assert_eq!(recs.len(), 7473);
    assert!(
        recs.iter()
            .all(|r| grpo_envs::rational::Rational::parse_number(&r.answer).is_some())
    );
}

#[test]
fn cursor_resumes_mid_epoch() {
    let mut a = Cursor::new(9, 1319);
    let _ = a.take(2000);
    let saved = serde_json::to_string(&a).unwrap();
    let next_a = a.take(50);
    let mut b: Cursor = serde_json::from_str(&saved).unwrap();
    assert_eq!(next_a, b.take(50));
}

#[test]
fn qa_env_scores_gsm8k_with_both_verifiers() {
    use grpo_envs::{EpisodeView, TaskSpec, Turn, envs};
    let p = repo_data("gsm8k/test.jsonl");
    for verifier in ["numeric", "math"] {
        let params = serde_json::json!({"path": p, "columns": "gsm8k", "verifier": verifier});
        let mut env = envs::make("qa", &params).unwrap();
        let v = EpisodeView {
            turns: &[],
            tool_calls: &[],
            ended_by_limit: false,
        };
        for seed in 0..20u64 {
            env.reset(&TaskSpec::seed(seed)).unwrap();
            let gold = env.oracle_action().unwrap();
            env.step(&Turn::text(0, &gold)).unwrap();
            assert_eq!(
                env.final_reward(&v).total,
                1.0,
                "{verifier} seed {seed}: {gold}"
            );
            env.reset(&TaskSpec::seed(seed)).unwrap();
            env.step(&Turn::text(0, "The answer is \\boxed{123456789}."))
                .unwrap();
            assert_eq!(env.final_reward(&v).total, 0.0, "{verifier} seed {seed}");
        }
    }
}

#[test]
fn qa_env_runs_humaneval_tests_in_the_sandbox() {
    use grpo_envs::tool::PythonExecutor;
    use grpo_envs::{EpisodeView, TaskSpec, Turn, envs};
    let p = repo_data("humaneval/HumanEval.jsonl");
    let Ok(exec) = grpo_envs::exec::SandboxExecutor::detect() else {
        eprintln!("skipping: no python3");
        return;
    };
    let probe = exec.run("print(6*7)", "", std::time::Duration::from_secs(10));
    if probe.stdout.trim() != "42" {
        eprintln!("skipping: sandbox unavailable here: {}", probe.stderr);
        return;
    }
    let params = serde_json::json!({"path": p, "columns": "humaneval", "verifier": "code"});
    let mut env = envs::make("qa", &params).unwrap();
    let v = EpisodeView {
        turns: &[],
        tool_calls: &[],
        ended_by_limit: false,
    };
    for seed in [0u64, 2] {
        env.reset(&TaskSpec::seed(seed)).unwrap();
        let gold = env.oracle_action().unwrap();
        env.step(&Turn::text(0, &gold)).unwrap();
        assert_eq!(env.final_reward(&v).total, 1.0, "seed {seed}");
        env.reset(&TaskSpec::seed(seed)).unwrap();
        env.step(&Turn::text(0, "```python\n    return None\n```"))
            .unwrap();
        assert_eq!(env.final_reward(&v).total, 0.0, "seed {seed}");
    }
}

//! `grpo generate` end to end on a committed parity fixture: greedy output
//! equals transformers' `generate`, bad lines are reported by line number and
//! never stop the others.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(name)
}

#[test]
fn greedy_generate_matches_fixture_and_bad_lines_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let parity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("qwen3").join("parity.json")).unwrap(),
    )
    .unwrap();
    let case = &parity["generate"][0];
    let n = case["greedy_ids"].as_array().unwrap().len();
    let input = dir.path().join("in.jsonl");
    let lines = [
        serde_json::json!({ "prompt_ids": case["prompt_ids"] }).to_string(),
        "{not json".to_string(),
        serde_json::json!({ "prompt_ids": [] }).to_string(),
        serde_json::json!({ "prompt_ids": [999999] }).to_string(),
        serde_json::json!({ "prompt_ids": case["prompt_ids"] }).to_string(),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_grpo"))
        .args(["generate", "--model"])
        .arg(fixture("qwen3"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&out_path)
        .args(["--temperature", "0", "--max-new-tokens", &n.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad lines make the command fail at the end"
    );
    let text = std::fs::read_to_string(&out_path).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    for i in [0, 4] {
        let c = &rows[i]["completions"][0];
        assert_eq!(c["ids"], case["greedy_ids"], "line {}", i + 1);
        assert_eq!(c["logprobs"].as_array().unwrap().len(), n);
        assert!(c["finish_reason"] == "length" || c["finish_reason"] == "eos");
    }
    assert!(rows[1]["error"].as_str().unwrap().starts_with("line 2:"));
    assert!(
        rows[2]["error"].as_str().unwrap().contains("empty"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3]["error"].as_str().unwrap().contains("999999"),
        "{}",
        rows[3]
    );
}

#[test]
fn invalid_sampling_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"prompt_ids\": [1, 2]}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_grpo"))
        .args(["generate", "--model"])
        .arg(fixture("qwen3"))
        .arg("--input")
        .arg(&input)
        .args(["--top-p", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--top-p: 1.5"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "a bad flag fails before any line runs"
    );
}

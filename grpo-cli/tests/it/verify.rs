//! `grpo verify`: runs the binary on small JSONL files for each verifier.

use std::process::Command;

use serde_json::{Value, json};

fn run(kind: &str, lines: &[Value]) -> (bool, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text + "\n").unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_grpo"))
        .args(["verify", kind, "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let out = std::fs::read_to_string(&output).unwrap();
    let vals = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (st.status.success(), vals)
}

#[test]
fn verify_math_lines_and_bad_lines() {
    let (ok, out) = run(
        "math",
        &[
            json!({"gold": "\\frac{1}{2}", "pred": "so the answer is $\\boxed{0.5}$"}),
            json!({"gold": "3", "pred": "#### 4"}),
            json!({"gold": "\\frac{1}{3}", "pred": "$0.333$", "options": {"float_rounding": 3}}),
            json!({"pred": "no gold"}),
            json!({"gold": "2", "pred": "$2$"}),
        ],
    );
    assert!(!ok, "a bad line makes the exit status non-zero");
    assert_eq!(out.len(), 5);
    assert_eq!(out[0]["correct"], true);
    assert_eq!(out[0]["reward"], 1.0);
    assert_eq!(out[0]["extracted"], "0.5");
    assert!(out[0]["reason"].is_string());
    assert_eq!(out[1]["correct"], false);
    assert_eq!(out[2]["correct"], true);
    assert!(out[3]["error"].as_str().unwrap().starts_with("line 4"));
    assert_eq!(
        out[4]["correct"], true,
        "processing continues after a bad line"
    );
}

#[test]
fn verify_toolcall_and_gui() {
    let funcs = json!([{"name": "f", "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}]);
    let (ok, out) = run(
        "toolcall",
        &[
            json!({"functions": funcs, "possible_answer": [{"f": {"a": [1]}}], "model_output_text": "[f(a=1)]"}),
            json!({"functions": funcs, "possible_answer": [{"f": {"a": [1]}}], "model_output_text": "[f(a='1')]"}),
            json!({"functions": funcs, "possible_answer": [], "model_output_text": "no call"}),
        ],
    );
    assert!(ok);
    assert_eq!(out[0]["valid"], true);
    assert_eq!(out[0]["error_type"], Value::Null);
    assert_eq!(out[1]["error_type"], "type_error");
    assert_eq!(out[2]["valid"], true);
    let (ok, out) = run(
        "gui",
        &[json!({
            "gold": {"action": "click", "bbox": [0, 0, 10, 10]},
            "pred": "<think>x</think><answer>[{'action': 'click', 'coordinate': [5, 5]}]</answer>",
            "profile": "ui_r1"
        })],
    );
    assert!(ok);
    assert_eq!(out[0]["reward"], 3.0);
    assert_eq!(out[0]["type_match"], true);
    assert_eq!(out[0]["components"]["coordinate"], 1.0);
}

#[test]
fn verify_code_runs_or_reports_an_error_line() {
    // the code verifier needs python3 and the sandbox; the line must come back
    // either as a result with the documented fields or as an error line
    let (_ok, out) = run(
        "code",
        &[
            json!({"language": "python", "program": "print(input())", "tests": {"inputs": ["hi\n"], "outputs": ["hi\n"]}}),
        ],
    );
    assert_eq!(out.len(), 1);
    assert!(
        out[0].get("passed").is_some() || out[0].get("error").is_some(),
        "{}",
        out[0]
    );
}

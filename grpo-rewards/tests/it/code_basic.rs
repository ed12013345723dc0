//! Code verifier: test shapes, scoring and the `verify code` JSON contract.

use grpo_rewards::code::verify_json;
use serde_json::{Value, json};

fn run(v: Value) -> Value {
    verify_json(&v).unwrap()
}

fn statuses(out: &Value) -> Vec<String> {
    out["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stdio_pairs_pass_and_fail() {
    let out = run(json!({
        "language": "python",
        "program": "a, b = map(int, input().split())\nprint(a + b)\n",
        "tests": {"inputs": ["1 2\n", "3 4\n", "5 5\n"], "outputs": ["3\n", "7\n", "11\n"]},
        "options": {"timeout_s": 2}
    }));
    eprintln!("{out:#}");
    assert_eq!(statuses(&out), ["pass", "pass", "wrong_answer"]);
    assert_eq!(out["passed"], 2);
    assert_eq!(out["total"], 3);
    assert!((out["reward"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    let iso: Vec<&str> = out["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(iso.contains(&"pid_ns"), "{iso:?}");
}

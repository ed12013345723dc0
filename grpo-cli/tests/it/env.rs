//! `grpo env list` and `grpo env play` (turns read from stdin).

use std::io::Write;
use std::process::{Command, Stdio};

fn grpo(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grpo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn list_names_every_family() {
    let (ok, out, _) = grpo(&["env", "list"], "");
    assert!(ok);
    for name in [
        "countdown",
        "sokoban",
        "frozenlake",
        "search-qa",
        "calc",
        "synthgui",
        "tictactoe",
        "kuhn-poker",
        "team-builder",
        "arithmetic",
        "qa",
        "lookup",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{out}"
        );
    }
}

#[test]
fn play_frozenlake_with_hints_reaches_the_goal() {
    // `:hint` prints the oracle move; a scripted player feeds it back. Here we
    // play a non-slippery lake by always taking the hint, line by line.
    let args = [
        "env",
        "play",
        "frozenlake",
        "--seed",
        "3",
        "--params",
        r#"{"slippery": false}"#,
        "--json",
    ];
    let mut input = String::new();
    for _ in 0..12 {
        let (_, out, _) = grpo(&args, &format!("{input}:hint\n"));
        let hint = out
            .lines()
            .rev()
            .find_map(|l| l.split_once("[hint] ").map(|x| x.1))
            .unwrap()
            .to_string();
        input.push_str(&hint);
        input.push('\n');
        let (_, out, _) = grpo(&args, &input);
        if out.contains("episode over: success") {
            let s = summary(&out);
            assert_eq!(s["total"], 1.0);
            assert_eq!(s["anchor"], 1.0);
            return;
        }
    }
    panic!("hints did not reach the goal");
}

#[test]
fn play_reports_bad_input_and_keeps_going() {
    let (ok, out, err) = grpo(
        &["env", "play", "sokoban", "--seed", "1", "--json"],
        "hello\n<answer>Jump</answer>\n:quit\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("no <answer>"), "{out}");
    assert!(out.contains("`Jump` is not a direction"), "{out}");
    let s = summary(&out);
    assert_eq!(s["end"], "quit");
    // RAGEN's format penalty, twice.
    assert!((s["anchor"].as_f64().unwrap() + 0.2).abs() < 1e-9);
}

#[test]
fn play_countdown_single_turn_scores_tinyzero_style() {
    let (ok, out, _) = grpo(
        &["env", "play", "countdown", "--seed", "2", "--json"],
        "<answer>1 + 2</answer>\n",
    );
    assert!(ok);
    let s = summary(&out);
    assert_eq!(s["end"], "failure");
    assert_eq!(s["anchor"], 0.1);
}

#[test]
fn play_gsm8k_qa_from_vendored_data() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/gsm8k/test.jsonl");
    assert!(path.exists(), "missing test data file {}", path.display());
    let params = serde_json::json!({"path": path, "columns": "gsm8k"}).to_string();
    // Seed 0 → record 0 (Janet's ducks, answer 18).
    let (ok, out, err) = grpo(
        &[
            "env", "play", "qa", "--seed", "0", "--params", &params, "--json",
        ],
        "9 eggs * $2 = \\boxed{18}\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("Janet"));
    assert_eq!(summary(&out)["total"], 1.0);
}

#[test]
fn unknown_env_and_bad_params_are_errors() {
    let (ok, _, err) = grpo(&["env", "play", "chess"], "");
    assert!(!ok && err.contains("unknown environment `chess`"), "{err}");
    let (ok, _, err) = grpo(
        &["env", "play", "sokoban", "--params", r#"{"boxes": 9}"#],
        "",
    );
    assert!(!ok && err.contains("sokoban.boxes"), "{err}");
    let (ok, _, err) = grpo(
        &["env", "play", "sokoban", "--params", r#"{"bogus": 1}"#],
        "",
    );
    assert!(!ok && err.contains("bogus"), "{err}");
}

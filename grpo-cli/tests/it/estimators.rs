//! `grpo estimators list` and `grpo estimators eval`, run as the built binary.

use std::process::Command;

fn grpo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_grpo"))
}

#[test]
fn list_prints_one_registry_name_per_line_and_json_details() {
    let out = grpo().args(["estimators", "list"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text.lines().collect();
    let registry: Vec<_> = grpo_core::registry::all()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, registry);
    assert!(names.contains(&"verl.compute_grpo_outcome_advantage"));
    assert!(names.contains(&"trl.grpo_loss"));

    let out = grpo()
        .args(["estimators", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), registry.len());
    let trl = arr.iter().find(|e| e["name"] == "trl.grpo_loss").unwrap();
    assert_eq!(trl["kind"], "anchor");
    assert!(trl["summary"].as_str().unwrap().contains("TRL"));
}

#[test]
fn eval_writes_one_line_per_input_and_survives_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let lines = [
        // 1: GRPO, two groups; group "b" is a singleton (verl: A = R / (1 + eps))
        r#"{"fn":"verl.compute_grpo_outcome_advantage","case":"ok","inputs":{"rewards":[1,0,2],"response_mask":[[1,1],[1,0],[1,1]],"index":["a","a","b"]}}"#,
        // 2: not JSON
        "{not json",
        // 3: unknown parameter
        r#"{"fn":"verl.agg_loss","params":{"loss_agg_mode":"token-mean","bogus":1},"inputs":{"loss_mat":[[1]],"loss_mask":[[1]]}}"#,
        // 4: blank
        "",
        // 5: shape mismatch names the input
        r#"{"fn":"verl.compute_policy_loss_vanilla","inputs":{"old_log_prob":[[0,0]],"log_prob":[[0]],"advantages":[[1,1]],"response_mask":[[1,1]]}}"#,
        // 6: unknown fn
        r#"{"fn":"verl.nope","inputs":{}}"#,
        // 7: TRL loss on-policy: loss = -mean(A) over tokens
        r#"{"fn":"trl.grpo_loss","params":{"loss_type":"dapo"},"inputs":{"log_prob":[[-1,-2]],"advantages":[0.5],"response_mask":[[1,1]]}}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = grpo()
        .args(["estimators", "eval", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("5 of 7 input line(s) failed"), "{stderr}");
    let text = std::fs::read_to_string(&output).unwrap();
    let got: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), lines.len());

    let adv = &got[0]["outputs"]["advantages"];
    let a0 = adv[0][1].as_f64().unwrap();
    let want = 0.5 / (0.5f64.sqrt() + 1e-6);
    assert!((a0 - want).abs() < 1e-12, "{a0} vs {want}");
    assert_eq!(adv[1][1].as_f64().unwrap(), 0.0, "padding stays 0");
    assert!(
        (adv[2][0].as_f64().unwrap() - 2.0 / (1.0 + 1e-6)).abs() < 1e-12,
        "singleton quirk"
    );

    let err = |i: usize| {
        got[i]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("line {} not an error: {}", i + 1, got[i]))
            .to_string()
    };
    assert!(err(1).starts_with("line 2: "), "{}", err(1));
    assert!(
        err(2).starts_with("line 3: field params") && err(2).contains("bogus"),
        "{}",
        err(2)
    );
    assert!(err(3).starts_with("line 4: "), "{}", err(3));
    assert!(
        err(4).starts_with("line 5: field inputs.log_prob"),
        "{}",
        err(4)
    );
    assert!(
        err(5).starts_with("line 6: field fn") && err(5).contains("verl.nope"),
        "{}",
        err(5)
    );
    let loss = got[6]["outputs"]["loss"].as_f64().unwrap();
    assert!((loss + 0.5).abs() < 1e-12, "{loss}");
    let g = &got[6]["outputs"]["grad_log_prob"];
    assert!((g[0][0].as_f64().unwrap() + 0.25).abs() < 1e-12);
}

#[test]
fn eval_reads_stdin_and_writes_stdout() {
    use std::io::Write;
    let mut child = grpo()
        .args(["estimators", "eval", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"fn":"verl.AdaptiveKLController","params":{"init_kl_coef":0.1,"target_kl":0.1,"horizon":100},"inputs":{"updates":[[0.2,10],[0.1,10]]}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vals = v["outputs"]["values_after_each_update"].as_array().unwrap();
    // error clipped to +0.2: 0.1 * (1 + 0.2 * 10/100) = 0.102, then unchanged at target
    assert!((vals[0].as_f64().unwrap() - 0.102).abs() < 1e-12);
    assert!((vals[1].as_f64().unwrap() - 0.102).abs() < 1e-12);
}

#[test]
fn eval_missing_input_file_is_an_error_exit() {
    let out = grpo()
        .args(["estimators", "eval", "--input", "/nonexistent/x.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open input file"));
}

#[test]
fn eval_reproduces_every_known_answer_case_end_to_end() {
    // The torch-generated anchor cases of grpo-core, run through the binary.
    let cases = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grpo-core/tests/data/compat_anchor_cases.jsonl"
    ));
    let mut requests = String::new();
    let mut expected = Vec::new();
    for line in cases.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        expected.push(v.as_object_mut().unwrap().remove("expected").unwrap());
        requests.push_str(&v.to_string());
        requests.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.jsonl");
    std::fs::write(&input, requests).unwrap();
    let out = grpo()
        .args(["estimators", "eval", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    fn flat(v: &serde_json::Value, out: &mut Vec<f64>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            x => out.push(x.as_f64().unwrap()),
        }
    }
    for (i, (got, want)) in lines.iter().zip(&expected).enumerate() {
        for (k, w) in want.as_object().unwrap() {
            let g = &got["outputs"][k];
            let (mut gv, mut wv) = (Vec::new(), Vec::new());
            flat(g, &mut gv);
            flat(w, &mut wv);
            assert_eq!(gv.len(), wv.len(), "line {}: {k}", i + 1);
            for (a, b) in gv.iter().zip(&wv) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "line {}: {k}: {a} vs {b}",
                    i + 1
                );
            }
        }
    }
}

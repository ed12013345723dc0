//! The rules every JSONL command shares, driven through the binary: a key the
//! command does not read (on a line, or in a nested `options`) fails that line
//! naming the key and the accepted ones; per-line parameters apply to their
//! line; exit status 0 when every line succeeded, 2 with the count on stderr
//! when any failed (the good lines are still written).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(name)
}

/// What one run of a JSONL command left behind.
struct Run {
    code: Option<i32>,
    stderr: String,
    rows: Vec<Value>,
}

impl Run {
    fn error(&self, i: usize) -> &str {
        self.rows[i]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("row {i} is not an error: {}", self.rows[i]))
    }
}

/// Runs `grpo <args> --input IN --output OUT` over `lines` (one JSON text each).
fn run(args: &[&str], lines: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_grpo"))
        .args(args)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let rows = read_rows(&output);
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        rows,
    }
}

/// `{"error": "..."}` and nothing else (a tool-call verdict has an `error` field too).
fn is_error_line(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("error").is_some_and(Value::is_string))
}

fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn parity() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("qwen3").join("parity.json")).unwrap())
        .unwrap()
}

fn generate_args() -> Vec<String> {
    vec![
        "generate".into(),
        "--quiet".into(),
        "--model".into(),
        fixture("qwen3").display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn generate_honours_per_line_parameters_and_refuses_unknown_keys() {
    let parity = parity();
    let case = &parity["generate"][0];
    let prompt = &case["prompt_ids"];
    let greedy_len = case["greedy_ids"].as_array().unwrap().len();
    let sampled = json!({
        "prompt_ids": prompt, "n": 3, "max_tokens": 4, "temperature": 1.0, "top_k": 50,
        "seed": 7, "logprobs": 2, "ignore_eos": true,
    });
    let lines = [
        sampled.to_string(),
        // The flags say temperature 1 and 16 tokens; the line says greedy, greedy_len tokens.
        json!({"prompt_ids": prompt, "temperature": 0, "max_tokens": greedy_len}).to_string(),
        json!({"prompt_ids": prompt, "max_tokens": 4, "typo_temperature": 0}).to_string(),
        // Same seed on another line: the same samples (the default seed would differ).
        sampled.to_string(),
        json!({"prompt_ids": prompt, "max_tokens": 2, "min_tokens": 3}).to_string(),
        json!({"prompt_ids": prompt, "prompt": "both"}).to_string(),
        json!({"prompt_ids": prompt, "logprobs": 2, "top_logprobs": 3}).to_string(),
        json!({"prompt_ids": prompt, "temperature": "hot"}).to_string(),
    ];
    let mut args = generate_args();
    args.extend(["--max-new-tokens", "16", "--temperature", "1"].map(String::from));
    let r = run(&strs(&args), &lines);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("5 of 8 input line(s) failed"),
        "{}",
        r.stderr
    );
    assert_eq!(r.rows.len(), 8);

    let comps = r.rows[0]["completions"].as_array().unwrap();
    assert_eq!(comps.len(), 3, "n = 3 from the line");
    for c in comps {
        assert_eq!(c["ids"].as_array().unwrap().len(), 4, "max_tokens = 4: {c}");
        assert_eq!(c["finish_reason"], "length");
        let top = c["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 4, "one list per generated token");
        for (i, alts) in top.iter().enumerate() {
            let alts = alts.as_array().unwrap();
            assert_eq!(alts.len(), 2, "logprobs = 2 alternatives");
            assert!(alts[0]["logprob"].as_f64() >= alts[1]["logprob"].as_f64());
            let sampled_id = &c["ids"][i];
            if let Some(a) = alts.iter().find(|a| &a["id"] == sampled_id) {
                assert_eq!(a["logprob"], c["logprobs"][i]);
            }
        }
    }
    assert_ne!(
        comps[0]["ids"], comps[1]["ids"],
        "temperature 1 samples differ"
    );
    assert_eq!(
        r.rows[3], r.rows[0],
        "the line's seed, not --seed + line index"
    );

    let greedy = &r.rows[1]["completions"][0];
    assert_eq!(greedy["ids"], case["greedy_ids"]);
    assert!(greedy.get("top_logprobs").is_none());

    let e = r.error(2);
    assert!(
        e.starts_with("line 3: unknown key `typo_temperature`"),
        "{e}"
    );
    assert!(e.contains("temperature") && e.contains("max_tokens"), "{e}");
    let e = r.error(4);
    assert!(e.contains("`min_tokens`: 3 exceeds max_tokens 2"), "{e}");
    assert!(r.error(5).contains("exactly one"), "{}", r.error(5));
    assert!(r.error(6).contains("disagree"), "{}", r.error(6));
    assert!(r.error(7).contains("`temperature`"), "{}", r.error(7));
}

#[test]
fn score_refuses_unknown_keys_and_scores_each_line() {
    let parity = parity();
    let s = &parity["sequences"][0];
    let n = s["completion_ids"].as_array().unwrap().len();
    let good = json!({"prompt_ids": s["prompt_ids"], "completion_ids": s["completion_ids"]});
    let lines = [
        good.to_string(),
        json!({"prompt_ids": s["prompt_ids"], "completion_ids": s["completion_ids"],
               "temperature": 0.5})
        .to_string(),
        json!({"prompt_ids": s["prompt_ids"], "completion_ids": [1, 2]}).to_string(),
    ];
    let model = fixture("qwen3").display().to_string();
    let r = run(&["score", "--model", &model], &lines);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("1 of 3 input line(s) failed"),
        "{}",
        r.stderr
    );
    assert_eq!(r.rows[0]["logprobs"].as_array().unwrap().len(), n);
    let e = r.error(1);
    assert!(e.starts_with("line 2: unknown key `temperature`"), "{e}");
    assert!(
        e.contains("prompt_ids, completion_ids, prompt, completion"),
        "{e}"
    );
    assert_eq!(r.rows[2]["logprobs"].as_array().unwrap().len(), 2);
}

#[test]
fn verify_refuses_unknown_keys_on_the_line_and_in_options() {
    // Per-line options apply to their line: 0.333 is 1/3 only at 3 decimal places.
    let r = run(
        &["verify", "math"],
        &[
            json!({"gold": "\\frac{1}{3}", "pred": "$0.333$", "options": {"float_rounding": 3}})
                .to_string(),
            json!({"gold": "\\frac{1}{3}", "pred": "$0.333$"}).to_string(),
            json!({"gold": "1", "pred": "1", "typo_option": 3}).to_string(),
            json!({"gold": "1", "pred": "1", "options": {"float_roundin": 3}}).to_string(),
            json!({"gold": "1", "pred": "1", "options": 3}).to_string(),
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("3 of 5 input line(s) failed"),
        "{}",
        r.stderr
    );
    assert_eq!(r.rows[0]["correct"], true);
    assert_eq!(r.rows[1]["correct"], false);
    let e = r.error(2);
    assert!(e.starts_with("line 3: unknown key `typo_option`"), "{e}");
    assert!(e.contains("gold, pred, options"), "{e}");
    let e = r.error(3);
    assert!(e.contains("`float_roundin` in `options`"), "{e}");
    assert!(e.contains("float_rounding"), "{e}");
    assert!(r.error(4).contains("`options`"), "{}", r.error(4));

    let funcs = json!([{"name": "f", "parameters": {"type": "dict",
        "properties": {"a": {"type": "integer"}}, "required": ["a"]}}]);
    let tool = |extra: Value| {
        let mut v = json!({"functions": funcs, "possible_answer": [{"f": {"a": [1]}}],
                           "model_output_text": "[f(a=1.0)]"});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v.to_string()
    };
    let r = run(
        &["verify", "toolcall"],
        &[
            tool(json!({})),
            tool(json!({"options": {"int_as_float": false}})),
            tool(json!({"id": "simple_0"})),
            tool(json!({"options": {"strict": true}})),
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("2 of 4 input line(s) failed"),
        "{}",
        r.stderr
    );
    assert!(r.rows[0]["valid"].is_boolean(), "{}", r.rows[0]);
    assert!(r.rows[1]["valid"].is_boolean(), "{}", r.rows[1]);
    assert!(r.error(2).contains("unknown key `id`"), "{}", r.error(2));
    assert!(r.error(2).contains("model_output_text"), "{}", r.error(2));
    let e = r.error(3);
    assert!(
        e.contains("`strict` in `options`") && e.contains("int_as_float"),
        "{e}"
    );

    let gui = json!({
        "gold": {"action": "click", "bbox": [0, 0, 10, 10]},
        "pred": "<answer>[{'action': 'click', 'coordinate': [5, 5]}]</answer>",
        "profile": "ui_r1",
    });
    let with = |k: &str, v: Value| {
        let mut g = gui.clone();
        g[k] = v;
        g.to_string()
    };
    let r = run(
        &["verify", "gui"],
        &[
            gui.to_string(),
            with("screen", json!([100, 100])),
            with("options", json!({"widht": 100})),
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(r.rows[0]["reward"].is_number(), "{}", r.rows[0]);
    assert!(
        r.error(1).contains("unknown key `screen`"),
        "{}",
        r.error(1)
    );
    assert!(
        r.error(2).contains("`widht` in `options`"),
        "{}",
        r.error(2)
    );
    assert!(r.error(2).contains("width"), "{}", r.error(2));

    // The code verifier needs python and the sandbox; unknown keys fail before either.
    let r = run(
        &["verify", "code"],
        &[
            json!({"program": "print(1)", "tests": [], "lang": "python"}).to_string(),
            json!({"program": "print(1)", "tests": [], "options": {"timeout": 1}}).to_string(),
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("2 of 2 input line(s) failed"),
        "{}",
        r.stderr
    );
    assert!(r.error(0).contains("unknown key `lang`"), "{}", r.error(0));
    assert!(r.error(0).contains("language"), "{}", r.error(0));
    let e = r.error(1);
    assert!(
        e.contains("`timeout` in `options`") && e.contains("timeout_s"),
        "{e}"
    );
}

#[test]
fn estimators_eval_refuses_unknown_keys_and_applies_per_line_params() {
    let agg = |mode: &str| {
        json!({"fn": "verl.agg_loss", "params": {"loss_agg_mode": mode},
               "inputs": {"loss_mat": [[1.0, 3.0], [2.0, 0.0]], "loss_mask": [[1, 1], [1, 0]]}})
    };
    let mut typo = agg("token-mean");
    typo["parms"] = json!({});
    let mut bad_param = agg("token-mean");
    bad_param["params"]["loss_agg_mod"] = json!("x");
    let r = run(
        &["estimators", "eval"],
        &[
            agg("token-mean").to_string(),
            agg("seq-mean-token-sum").to_string(),
            typo.to_string(),
            bad_param.to_string(),
        ],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("2 of 4 input line(s) failed"),
        "{}",
        r.stderr
    );
    // token-mean: (1 + 3 + 2) / 3; seq-mean-token-sum: (4 + 2) / 2.
    let loss = |i: usize| r.rows[i]["outputs"]["loss"].as_f64().unwrap();
    assert!((loss(0) - 2.0).abs() < 1e-12, "{}", r.rows[0]);
    assert!((loss(1) - 3.0).abs() < 1e-12, "{}", r.rows[1]);
    let e = r.error(2);
    assert!(
        e.contains("parms") && e.contains("fn, params, inputs"),
        "{e}"
    );
    assert!(r.error(3).contains("loss_agg_mod"), "{}", r.error(3));
}

#[test]
fn every_jsonl_command_exits_0_when_all_lines_succeed_and_2_with_the_count_otherwise() {
    let parity = parity();
    let s = &parity["sequences"][0];
    let model = fixture("qwen3").display().to_string();
    let gen_args = generate_args();
    let gui = json!({"gold": {"action": "click", "bbox": [0, 0, 10, 10]},
                     "pred": "<answer>[{'action': 'click', 'coordinate': [5, 5]}]</answer>",
                     "profile": "ui_r1"});
    let cases: Vec<(Vec<&str>, Value)> = vec![
        (
            strs(&gen_args),
            json!({"prompt_ids": s["prompt_ids"], "max_tokens": 2}),
        ),
        (
            vec!["score", "--model", &model],
            json!({"prompt_ids": s["prompt_ids"], "completion_ids": s["completion_ids"]}),
        ),
        (vec!["verify", "math"], json!({"gold": "2", "pred": "$2$"})),
        (
            vec!["verify", "toolcall"],
            json!({"functions": [{"name": "f", "parameters": {"type": "dict",
                       "properties": {"a": {"type": "integer"}}, "required": ["a"]}}],
                   "possible_answer": [{"f": {"a": [1]}}], "model_output_text": "[f(a=1)]"}),
        ),
        (vec!["verify", "gui"], gui),
        (
            vec!["estimators", "eval"],
            json!({"fn": "verl.agg_loss", "params": {"loss_agg_mode": "token-mean"},
                   "inputs": {"loss_mat": [[1.0]], "loss_mask": [[1]]}}),
        ),
    ];
    for (args, good) in cases {
        let r = run(&args, &[good.to_string(), good.to_string()]);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
        assert_eq!(r.rows.len(), 2, "{args:?}");
        assert!(!r.rows.iter().any(is_error_line), "{args:?}: {:?}", r.rows);

        let mut bad = good.clone();
        bad["no_such_key"] = json!(1);
        let r = run(&args, &[bad.to_string(), good.to_string()]);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("1 of 2 input line(s) failed"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.error(0).contains("unknown key `no_such_key`"), "{args:?}");
        assert!(
            !is_error_line(&r.rows[1]),
            "{args:?}: good line still written"
        );
    }
}

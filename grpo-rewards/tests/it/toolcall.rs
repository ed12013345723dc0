//! Tool-call checker: cases built from BFCL v4 data (`tests/data/bfcl_cases.jsonl`)
//! and hand-written cases for BFCL's documented rules.

use grpo_rewards::toolcall::{ErrorKind, ToolCallConfig, check, parse_tool_calls, verify_json};
use serde_json::{Value, json};

#[test]
fn bfcl_generated_cases() {
    let cfg = ToolCallConfig::default();
    let mut total = 0;
    let mut bad = Vec::new();
    for line in include_str!("../data/bfcl_cases.jsonl").lines().skip(1) {
        let e: Value = serde_json::from_str(line).unwrap();
        for c in e["cases"].as_array().unwrap() {
            total += 1;
            let text = c["text"].as_str().unwrap();
            let v = check(&e["functions"], &e["possible_answer"], text, &cfg).unwrap();
            let want_valid = c["valid"].as_bool().unwrap();
            let want_kind: Option<ErrorKind> =
                serde_json::from_value(c.get("error_type").cloned().unwrap_or(Value::Null))
                    .unwrap();
            let kind_ok = want_kind.is_none() || v.error_type == want_kind;
            if v.valid != want_valid || !kind_ok {
                bad.push(format!(
                    "{} {}: {:?} {:?} {:?}\n  {text}",
                    e["id"], c["kind"], v.valid, v.error_type, v.error
                ));
            }
        }
    }
    assert!(total >= 300, "{total}");
    assert!(
        bad.is_empty(),
        "{} of {total} failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn funcs() -> Value {
    json!([{
        "name": "book_flight",
        "parameters": {"type": "dict", "properties": {
            "city": {"type": "string"},
            "date": {"type": "string"},
            "seats": {"type": "integer"},
            "price": {"type": "float"},
            "direct": {"type": "boolean"},
            "stops": {"type": "array", "items": {"type": "string"}},
            "prefs": {"type": "dict", "properties": {"meal": {"type": "string"}, "row": {"type": "integer"}}},
            "class": {"type": "string", "enum": ["economy", "business"]}
        }, "required": ["city", "seats"]}
    }, {
        "name": "cancel_flight",
        "parameters": {"type": "dict", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
    }])
}

fn run(answer: Value, text: &str) -> (bool, Option<ErrorKind>) {
    let v = check(&funcs(), &answer, text, &ToolCallConfig::default()).unwrap();
    (v.valid, v.error_type)
}

/// (possible answer, model output, valid, error kind) following BFCL's rules.
#[test]
fn documented_rules() {
    let ans = json!([{"book_flight": {"city": ["New York, NY", "NYC"], "seats": [2], "date": ["April 1, 2024", ""],
        "price": [100.0, ""], "direct": [true, ""], "stops": [["Boston", "Chicago"], ""],
        "prefs": [{"meal": ["veg"], "row": [10, ""]}, ""], "class": ["economy", ""]}}]);
    let cases: Vec<(&str, bool, Option<ErrorKind>)> = vec![
        ("[book_flight(city='New York, NY', seats=2)]", true, None),
        ("[book_flight(city='new york ny', seats=2)]", true, None),
        ("[book_flight(city='NYC', seats=2)]", true, None),
        (
            "[book_flight(city='LA', seats=2)]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        (
            "[book_flight(city='NYC', seats=2, date='april 12024')]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, date='2024-04-01')]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        ("[book_flight(city='NYC', seats=2, price=100)]", true, None),
        (
            "[book_flight(city='NYC', seats=2, price=100.5)]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        (
            "[book_flight(city='NYC', seats=2.0)]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats='2')]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats=True)]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats=2, direct=1)]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats=2, direct=True)]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, stops=['Boston', 'Chicago'])]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, stops=('boston', 'chicago'))]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, stops=['Chicago', 'Boston'])]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        (
            "[book_flight(city='NYC', seats=2, stops=[1, 2])]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats=2, prefs={'meal': 'veg'})]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, prefs={'meal': 'veg', 'row': 10})]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, prefs={'meal': 'meat'})]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        (
            "[book_flight(city='NYC', seats=2, prefs={'meal': 'veg', 'row': 'ten'})]",
            false,
            Some(ErrorKind::TypeError),
        ),
        (
            "[book_flight(city='NYC', seats=2, class='economy')]",
            true,
            None,
        ),
        (
            "[book_flight(city='NYC', seats=2, class='first')]",
            false,
            Some(ErrorKind::ValueMismatch),
        ),
        (
            "[book_flight(city='NYC')]",
            false,
            Some(ErrorKind::MissingRequired),
        ),
        (
            "[book_flight(city='NYC', seats=2, pets=1)]",
            false,
            Some(ErrorKind::UnexpectedParam),
        ),
        (
            "[cancel_flight(id=2)]",
            false,
            Some(ErrorKind::WrongFunction),
        ),
        (
            "[book_flight(city='NYC', seats=2), cancel_flight(id=2)]",
            false,
            Some(ErrorKind::WrongCount),
        ),
        ("[]", false, Some(ErrorKind::WrongCount)),
        (
            "[book_flight(city='NYC', seats=2",
            false,
            Some(ErrorKind::ParseError),
        ),
        ("book_flight(city='NYC', seats=2)", true, None),
        (
            "```python\n[book_flight(city='NYC', seats=2)]\n```",
            true,
            None,
        ),
        (
            "<tool_call>{\"name\": \"book_flight\", \"arguments\": {\"city\": \"NYC\", \"seats\": 2}}</tool_call>",
            true,
            None,
        ),
        (
            "<tool_call>{\"name\": \"book_flight\", \"arguments\": \"{\\\"city\\\": \\\"NYC\\\", \\\"seats\\\": 2}\"}</tool_call>",
            true,
            None,
        ),
        (
            "<tool_call>{\"name\": \"book_flight\", \"arguments\": {\"city\": \"NYC\"</tool_call>",
            false,
            Some(ErrorKind::ParseError),
        ),
        (
            "[{\"book_flight\": {\"city\": \"NYC\", \"seats\": 2}}]",
            true,
            None,
        ),
        (
            "{\"name\": \"book_flight\", \"parameters\": {\"city\": \"NYC\", \"seats\": 2}}",
            true,
            None,
        ),
    ];
    for (text, valid, kind) in cases {
        let got = run(ans.clone(), text);
        assert_eq!(got, (valid, kind), "{text}");
    }
    // a schema-valid optional parameter absent from the possible answer is unexpected (BFCL)
    let narrow = json!([{"book_flight": {"city": ["NYC"], "seats": [2]}}]);
    assert_eq!(
        run(
            narrow.clone(),
            "[book_flight(city='NYC', seats=2, direct=True)]"
        ),
        (false, Some(ErrorKind::UnexpectedParam))
    );
    // a parameter listed without "" may not be omitted
    let must = json!([{"book_flight": {"city": ["NYC"], "seats": [2], "direct": [true]}}]);
    assert_eq!(
        run(must, "[book_flight(city='NYC', seats=2)]"),
        (false, Some(ErrorKind::MissingOptional))
    );
}

#[test]
fn parallel_is_order_free_and_uses_a_matching() {
    let ans = json!([
        {"cancel_flight": {"id": [1, 2]}},
        {"cancel_flight": {"id": [1]}}
    ]);
    // greedy first-fit would give id=1 to the first expected call and fail; a matching succeeds
    assert_eq!(
        run(ans.clone(), "[cancel_flight(id=1), cancel_flight(id=2)]"),
        (true, None)
    );
    assert_eq!(
        run(ans.clone(), "[cancel_flight(id=2), cancel_flight(id=1)]"),
        (true, None)
    );
    assert!(!run(ans.clone(), "[cancel_flight(id=2), cancel_flight(id=2)]").0);
    assert_eq!(
        run(ans, "[cancel_flight(id=1)]"),
        (false, Some(ErrorKind::WrongCount))
    );
}

#[test]
fn irrelevance_and_options() {
    for answer in [Value::Null, json!([])] {
        assert_eq!(run(answer.clone(), "I can't help with that."), (true, None));
        assert_eq!(
            run(answer.clone(), "[cancel_flight(id=1)]"),
            (false, Some(ErrorKind::WrongCount))
        );
    }
    let strict = ToolCallConfig {
        standardize_strings: false,
        int_as_float: false,
        ..ToolCallConfig::default()
    };
    let ans = json!([{"book_flight": {"city": ["NYC"], "seats": [2], "price": [100.0, ""]}}]);
    assert!(
        !check(
            &funcs(),
            &ans,
            "[book_flight(city='nyc', seats=2)]",
            &strict
        )
        .unwrap()
        .valid
    );
    assert!(
        !check(
            &funcs(),
            &ans,
            "[book_flight(city='NYC', seats=2, price=100)]",
            &strict
        )
        .unwrap()
        .valid
    );
    assert!(
        check(
            &funcs(),
            &ans,
            "[book_flight(city='NYC', seats=2, price=100.0)]",
            &strict
        )
        .unwrap()
        .valid
    );
    // dotted names
    let f = json!([{"name": "math.gcd", "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}]);
    let a = json!([{"math.gcd": {"a": [4]}}]);
    assert!(
        !check(&f, &a, "[math_gcd(a=4)]", &ToolCallConfig::default())
            .unwrap()
            .valid
    );
    let alias = ToolCallConfig {
        dot_underscore_alias: true,
        ..ToolCallConfig::default()
    };
    assert!(check(&f, &a, "[math_gcd(a=4)]", &alias).unwrap().valid);
}

#[test]
fn parser_rejects_code_and_reads_literals() {
    assert!(parse_tool_calls("[f(a=os.system('ls'))]").is_err());
    assert!(parse_tool_calls("[f(a=1+2)]").is_err());
    let c = parse_tool_calls("[f(a=-1.5e3, b=\"it's\", c=None, d={'x': [1, (2, 3)]})]").unwrap();
    assert_eq!(c[0].arguments["a"], json!(-1500.0));
    assert_eq!(c[0].arguments["b"], json!("it's"));
    assert_eq!(c[0].arguments["d"], json!({"x": [1, [2, 3]]}));
    assert_eq!(parse_tool_calls("").unwrap(), vec![]);
}

#[test]
fn json_entry_point_uses_bfcl_field_names() {
    let out = verify_json(&json!({
        "functions": funcs(),
        "possible_answer": [{"cancel_flight": {"id": [7]}}],
        "model_output_text": "[cancel_flight(id=7)]"
    }))
    .unwrap();
    assert_eq!(out["valid"], true);
    assert_eq!(out["error_type"], Value::Null);
    let out = verify_json(&json!({
        "functions": funcs(),
        "possible_answer": [{"cancel_flight": {"id": [7]}}],
        "model_output_text": "[cancel_flight(id=8)]"
    }))
    .unwrap();
    assert_eq!(out["error_type"], "value_mismatch");
    assert!(verify_json(&json!({"functions": []})).is_err());
}

//! Dataset loader tests on the shared public data sets.

use std::path::Path;

use grpo_envs::dataset::{ColumnMap, Cursor, load_jsonl};

fn shared(p: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(p);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not present", path.display());
        None
    }
}

#[test]
fn loads_gsm8k() {
    let Some(p) = shared("gsm8k/test.jsonl") else {
        return;
    };
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
    let Some(p) = shared("humaneval/HumanEval.jsonl") else {
        return;
    };
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
fn cursor_resumes_mid_epoch() {
    let mut a = Cursor::new(9, 1319);
    let _ = a.take(2000);
    let saved = serde_json::to_string(&a).unwrap();
    let next_a = a.take(50);
    let mut b: Cursor = serde_json::from_str(&saved).unwrap();
    assert_eq!(next_a, b.take(50));
}

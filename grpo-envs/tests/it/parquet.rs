//! Parquet loader tests (feature `parquet`) on the committed fixtures in
//! `tests/data/` (written by `tests/data/make_parquet.py` from the first rows of
//! the JSONL sets in `data/`): a Parquet row gives the same record as the JSONL line
//! it came from, in the same cursor order; Snappy, Zstd and nested columns read;
//! broken files and bad maps give errors naming the file, row and column.

use std::path::{Path, PathBuf};

use grpo_envs::dataset::{AnswerExtract, ColumnMap, Cursor, TaskRecord, load_jsonl, load_parquet};
use grpo_envs::{EnvError, load_tasks};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A file of the repository's vendored public data (`data/` at the root); a missing
/// file is a test failure naming its path, never a silent skip.
fn repo_data(p: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(p);
    assert!(path.exists(), "missing test data file {}", path.display());
    path
}

/// Records equal except the default id, which is `line-N` vs `row-N` with the same N.
fn assert_same_rows(parquet: &[TaskRecord], jsonl: &[TaskRecord]) {
    assert_eq!(parquet.len(), jsonl.len());
    for (i, (p, j)) in parquet.iter().zip(jsonl).enumerate() {
        assert_eq!(p.prompt, j.prompt, "row {}", i + 1);
        assert_eq!(p.answer, j.answer, "row {}", i + 1);
        assert_eq!(p.extra, j.extra, "row {}", i + 1);
        match j.id.strip_prefix("line-") {
            Some(n) => assert_eq!(p.id, format!("row-{n}")),
            None => assert_eq!(p.id, j.id),
        }
    }
}

fn assert_same_cursor_order(parquet: &[TaskRecord], jsonl: &[TaskRecord]) {
    for seed in [0u64, 7, 1234] {
        let mut a = Cursor::new(seed, parquet.len());
        let mut b = Cursor::new(seed, jsonl.len());
        for (da, db) in a
            .take(2 * parquet.len() + 3)
            .into_iter()
            .zip(b.take(2 * jsonl.len() + 3))
        {
            assert_eq!(da, db, "seed {seed}");
            assert_eq!(parquet[da.index].prompt, jsonl[db.index].prompt);
            assert_eq!(parquet[da.index].answer, jsonl[db.index].answer);
        }
    }
}

#[test]
fn gsm8k_parquet_rows_equal_their_jsonl_lines_in_both_codecs() {
    let src = repo_data("gsm8k/test.jsonl");
    let mut jsonl = load_jsonl(&src, &ColumnMap::gsm8k()).unwrap();
    jsonl.truncate(50);
    // Raw columns too, so the whole answer text (not just the number) is compared.
    let raw = ColumnMap {
        extract: AnswerExtract::Raw,
        extra: vec!["answer".into(), "question".into()],
        ..ColumnMap::gsm8k()
    };
    let mut jsonl_raw = load_jsonl(&src, &raw).unwrap();
    jsonl_raw.truncate(50);
    for codec in ["snappy", "zstd"] {
        let p = fixture(&format!("gsm8k_test_head.{codec}.parquet"));
        let got = load_parquet(&p, &ColumnMap::gsm8k()).unwrap();
        assert_eq!(got.len(), 50, "{codec}");
        assert_eq!(got[0].answer, "18");
        assert_same_rows(&got, &jsonl);
        assert_same_cursor_order(&got, &jsonl);
        assert_same_rows(&load_parquet(&p, &raw).unwrap(), &jsonl_raw);
        // The extension dispatch reaches the same loader.
        assert_eq!(load_tasks(&p, &ColumnMap::gsm8k()).unwrap(), got);
    }
}

#[test]
fn humaneval_parquet_rows_equal_their_jsonl_lines_in_both_codecs() {
    let src = repo_data("humaneval/HumanEval.jsonl");
    let mut jsonl = load_jsonl(&src, &ColumnMap::humaneval()).unwrap();
    jsonl.truncate(20);
    for codec in ["snappy", "zstd"] {
        let p = fixture(&format!("humaneval_head.{codec}.parquet"));
        let got = load_tasks(&p, &ColumnMap::humaneval()).unwrap();
        // An id column is mapped: the records are identical, ids included.
        assert_eq!(got, jsonl, "{codec}");
        assert_eq!(got[0].id, "HumanEval/0");
        assert_same_cursor_order(&got, &jsonl);
    }
}

fn chat_map() -> ColumnMap {
    ColumnMap {
        id: Some("idx".into()),
        prompt: "question".into(),
        answer: "answer".into(),
        extract: AnswerExtract::Gsm8k,
        extra: vec![
            "messages".into(),
            "tags".into(),
            "meta".into(),
            "score".into(),
            "solved".into(),
            "final".into(),
        ],
    }
}

#[test]
fn nested_and_typed_columns_read_like_their_jsonl_twin() {
    let map = chat_map();
    let got = load_parquet(fixture("gsm8k_chat.parquet"), &map).unwrap();
    let twin = load_jsonl(fixture("gsm8k_chat.jsonl"), &map).unwrap();
    // Three row groups (4 + 4 + 2 rows) read in order; every column equal, ids included.
    assert_eq!(got.len(), 10);
    assert_eq!(got, twin);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.id, i.to_string());
        let msgs = r.extra["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0]["role"], "user");
        assert_eq!(msgs[0]["content"], r.prompt.as_str());
        assert_eq!(msgs[1]["role"], "assistant");
        assert_eq!(r.extra["final"], r.answer.as_str());
        assert_eq!(r.extra["meta"]["line"], i + 1);
        assert_eq!(r.extra["solved"], i % 2 == 0);
        assert_eq!(r.extra["score"].is_null(), i % 3 == 0, "row {}", i + 1);
        assert_eq!(r.extra["tags"][0], "gsm8k");
    }
    // A non-string answer column is rendered as canonical JSON, as for JSONL.
    let m = ColumnMap {
        answer: "meta".into(),
        extract: AnswerExtract::Raw,
        ..chat_map()
    };
    let a = load_parquet(fixture("gsm8k_chat.parquet"), &m).unwrap();
    assert_eq!(a, load_jsonl(fixture("gsm8k_chat.jsonl"), &m).unwrap());
    assert!(a[0].answer.contains("\"line\":1"), "{}", a[0].answer);
}

#[test]
fn conversational_prompt_columns_keep_their_messages() {
    use grpo_envs::{Role, TaskSpec, envs};
    let map = ColumnMap {
        prompt: "prompt".into(),
        ..chat_map()
    };
    let got = load_parquet(fixture("gsm8k_chat.parquet"), &map).unwrap();
    assert_eq!(got, load_jsonl(fixture("gsm8k_chat.jsonl"), &map).unwrap());
    let text = load_parquet(fixture("gsm8k_chat.parquet"), &chat_map()).unwrap();
    for (c, t) in got.iter().zip(&text) {
        // The text prompt is the last user message; the conversation is kept.
        assert_eq!(c.prompt, t.prompt);
        assert_eq!(c.answer, t.answer);
        assert!(t.messages.is_empty());
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].role, Role::System);
        assert_eq!(c.messages[1].role, Role::User);
        assert_eq!(c.messages[1].content, t.prompt);
    }
    // The QA env presents the conversation (system prompt included).
    let params = serde_json::json!({
        "path": fixture("gsm8k_chat.parquet"),
        "columns": {"prompt": "prompt", "answer": "answer", "extract": "gsm8k"},
    });
    let mut env = envs::make("qa", &params).unwrap();
    let reset = env.reset(&TaskSpec::seed(3)).unwrap();
    assert_eq!(reset.messages.len(), 2);
    assert_eq!(reset.messages[0].role, Role::System);
    assert!(reset.messages[1].content.starts_with(&got[3].prompt));
}

#[test]
fn missing_and_mistyped_columns_are_named() {
    let p = fixture("gsm8k_chat.parquet");
    let err = load_parquet(
        &p,
        &ColumnMap {
            prompt: "nope".into(),
            ..chat_map()
        },
    )
    .unwrap_err();
    assert!(matches!(err, EnvError::MissingColumn { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("gsm8k_chat.parquet")
            && msg.contains("`nope`")
            && msg.contains("question, answer, prompt, messages"),
        "{msg}"
    );
    let err = load_parquet(
        &p,
        &ColumnMap {
            extra: vec!["gone".into()],
            ..chat_map()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`gone`") && err.contains("extra"), "{err}");

    // Prompt columns must hold text: an int64 or a list column is refused up front.
    let err = load_parquet(
        &p,
        &ColumnMap {
            prompt: "idx".into(),
            ..chat_map()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gsm8k_chat.parquet") && err.contains("`idx`") && err.contains("INT64"),
        "{err}"
    );
    let err = load_parquet(
        &p,
        &ColumnMap {
            prompt: "meta".into(),
            ..chat_map()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`meta`") && err.contains("a struct"), "{err}");
    // A list column is accepted as a prompt only when each row is a conversation.
    let err = load_parquet(
        &p,
        &ColumnMap {
            prompt: "tags".into(),
            ..chat_map()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::BadRow { row: 1, column, .. } if column == "tags"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("[0]: not a {role, content} message"),
        "{err}"
    );

    // Row-level problems name the 1-based row and the column.
    let err = load_parquet(
        &p,
        &ColumnMap {
            answer: "final".into(),
            ..chat_map()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::BadRow { row: 1, column, .. } if column == "final"),
        "{err:?}"
    );
    assert!(err.to_string().contains("row 1: column `final`"), "{err}");
    let m = ColumnMap {
        answer: "score".into(),
        extract: AnswerExtract::Raw,
        ..chat_map()
    };
    let err = load_parquet(&p, &m).unwrap_err().to_string();
    assert!(
        err.contains("row 1: column `score`") && err.contains("null"),
        "{err}"
    );
    // The same map on the JSONL twin fails on the same record.
    let jerr = load_jsonl(fixture("gsm8k_chat.jsonl"), &m)
        .unwrap_err()
        .to_string();
    assert!(jerr.contains(":1:") && jerr.contains("`score`"), "{jerr}");
}

#[test]
fn corrupt_and_truncated_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixture("gsm8k_test_head.snappy.parquet")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut cases = vec![
        ("truncated.parquet", good[..good.len() / 2].to_vec()),
        ("no_footer.parquet", good[..good.len() - 8].to_vec()),
        ("empty.parquet", Vec::new()),
        ("text.parquet", b"question,answer\nq,a\n".to_vec()),
    ];
    // Magic and footer intact, column data overwritten with garbage.
    let mut garbled = good.clone();
    for b in &mut garbled[4..good.len() / 2] {
        *b = 0xA5;
    }
    cases.push(("garbled_pages.parquet", garbled));
    // Footer length pointing before the start of the file.
    let mut bad_len = good.clone();
    let n = bad_len.len();
    bad_len[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("bad_footer_len.parquet", bad_len));
    for (name, bytes) in cases {
        let p = write(name, &bytes);
        let err = load_tasks(&p, &ColumnMap::gsm8k()).unwrap_err();
        assert!(matches!(err, EnvError::BadFile { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = load_parquet(dir.path().join("absent.parquet"), &ColumnMap::gsm8k())
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.parquet"), "{err}");
}

#[test]
fn parquet_content_is_detected_by_its_magic_whatever_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shard-00000");
    std::fs::copy(fixture("gsm8k_test_head.zstd.parquet"), &p).unwrap();
    let got = load_tasks(&p, &ColumnMap::gsm8k()).unwrap();
    assert_eq!(
        got,
        load_parquet(fixture("gsm8k_test_head.zstd.parquet"), &ColumnMap::gsm8k()).unwrap()
    );
}

#[test]
fn qa_env_runs_on_a_parquet_task_file() {
    use grpo_envs::{EpisodeView, TaskSpec, Turn, envs};
    let p = fixture("gsm8k_test_head.snappy.parquet");
    let params = serde_json::json!({"path": p, "columns": "gsm8k", "verifier": "numeric"});
    let mut env = envs::make("qa", &params).unwrap();
    let v = EpisodeView {
        turns: &[],
        tool_calls: &[],
        ended_by_limit: false,
    };
    for seed in 0..10u64 {
        env.reset(&TaskSpec::seed(seed)).unwrap();
        let gold = env.oracle_action().unwrap();
        env.step(&Turn::text(0, &gold)).unwrap();
        assert_eq!(env.final_reward(&v).total, 1.0, "seed {seed}: {gold}");
    }
}

#[test]
fn random_byte_flips_never_panic_or_abort() {
    use rand::{Rng, SeedableRng};
    let files = [
        ("gsm8k_chat.parquet", chat_map()),
        ("gsm8k_test_head.snappy.parquet", ColumnMap::gsm8k()),
        ("gsm8k_test_head.zstd.parquet", ColumnMap::gsm8k()),
        ("humaneval_head.snappy.parquet", ColumnMap::humaneval()),
        ("humaneval_head.zstd.parquet", ColumnMap::humaneval()),
    ];
    let cases: usize = std::env::var("PARQUET_FLIP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flipped.parquet");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for (name, map) in files {
        let good = std::fs::read(fixture(name)).unwrap();
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..cases {
            let mut bytes = good.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            std::fs::write(&p, &bytes).unwrap();
            match load_parquet(&p, &map) {
                Ok(r) => {
                    assert!(r.len() <= 50, "{name}");
                    ok += 1
                }
                Err(e) => {
                    assert!(e.to_string().contains("flipped.parquet"), "{name}: {e}");
                    refused += 1
                }
            }
        }
        eprintln!("{name}: {cases} random byte flips: {ok} read, {refused} refused");
    }
}

#[test]
fn a_directory_of_shards_loads_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("gsm8k_test_head.zstd.parquet");
    std::fs::copy(&a, dir.path().join("train-00001-of-00002.parquet")).unwrap();
    std::fs::copy(&a, dir.path().join("train-00000-of-00002.parquet")).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a shard").unwrap();
    let got = load_tasks(dir.path(), &ColumnMap::gsm8k()).unwrap();
    let one = load_parquet(&a, &ColumnMap::gsm8k()).unwrap();
    assert_eq!(got.len(), 2 * one.len());
    assert_eq!(got[0].id, "train-00000-of-00002.parquet:row-1");
    assert_eq!(got[one.len()].id, "train-00001-of-00002.parquet:row-1");
    assert_eq!(got[one.len() + 4].prompt, one[4].prompt);
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), got.len());
    // A bad shard is named.
    std::fs::write(
        dir.path().join("train-00002-of-00002.parquet"),
        b"PAR1 junk",
    )
    .unwrap();
    let err = load_tasks(dir.path(), &ColumnMap::gsm8k())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-00002-of-00002.parquet"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = load_tasks(empty.path(), &ColumnMap::gsm8k())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no .parquet, .jsonl or .json"), "{err}");
}

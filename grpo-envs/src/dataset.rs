//! Dataset loaders: JSONL and (with the `parquet` feature) Parquet task files
//! (GSM8K, MATH, code-contest, HumanEval and BFCL-style records) mapped to
//! [`TaskRecord`]s by one [`ColumnMap`], and a resumable, seeded [`Cursor`] that
//! visits every record once per epoch in a seeded order.
//!
//! Both formats produce a `serde_json` object per row and share the mapping
//! code, so a Parquet row and the JSONL line it was converted from give the
//! same record (ids default to `line-N` for JSONL and `row-N` for Parquet when
//! the map names no id column).

use std::io::BufRead;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EnvError, Result};
use crate::message::{Message, Role};
use crate::seed::{derive_seed, rng};

#[cfg(feature = "parquet")]
mod parquet;
#[cfg(feature = "parquet")]
pub use parquet::{field_to_json, load_parquet};

/// One task: an id, the prompt text, the gold answer and any extra fields
/// (tests, entry point, tool schemas…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Record id (from the id column, else `line-N`).
    pub id: String,
    /// Prompt / question text.
    pub prompt: String,
    /// Gold answer (after extraction).
    pub answer: String,
    /// Extra columns named in the map.
    #[serde(default)]
    pub extra: serde_json::Map<String, Value>,
    /// The prompt as chat messages when the prompt column holds a conversation
    /// (TRL's conversational `prompt`, BFCL's `question`); empty for text prompts.
    /// `prompt` is then the content of the last user message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
}

/// How the gold answer is extracted from its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerExtract {
    /// The column as-is (strings; other JSON values as canonical JSON).
    #[default]
    Raw,
    /// GSM8K: the text after the last `####`.
    Gsm8k,
    /// MATH: the content of the last `\boxed{…}`.
    Boxed,
}

/// Which columns hold what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// Id column (optional).
    #[serde(default)]
    pub id: Option<String>,
    /// Prompt column.
    pub prompt: String,
    /// Answer column.
    pub answer: String,
    /// Answer extraction.
    #[serde(default)]
    pub extract: AnswerExtract,
    /// Extra columns copied into [`TaskRecord::extra`] (missing ones are errors).
    #[serde(default)]
    pub extra: Vec<String>,
}

impl ColumnMap {
    /// GSM8K: `question`, `answer` after `####`.
    pub fn gsm8k() -> Self {
        ColumnMap {
            id: None,
            prompt: "question".into(),
            answer: "answer".into(),
            extract: AnswerExtract::Gsm8k,
            extra: Vec::new(),
        }
    }
    /// MATH (Hendrycks): `problem`, boxed answer of `solution`.
    pub fn math() -> Self {
        ColumnMap {
            id: None,
            prompt: "problem".into(),
            answer: "solution".into(),
            extract: AnswerExtract::Boxed,
            extra: vec![],
        }
    }
    /// HumanEval: `task_id`, `prompt`, `canonical_solution`; `test` and `entry_point` kept.
    pub fn humaneval() -> Self {
        ColumnMap {
            id: Some("task_id".into()),
            prompt: "prompt".into(),
            answer: "canonical_solution".into(),
            extract: AnswerExtract::Raw,
            extra: vec!["test".into(), "entry_point".into()],
        }
    }
    /// Code-contest style: `name`, `description`, `solution`; `tests` kept.
    pub fn code_contest() -> Self {
        ColumnMap {
            id: Some("name".into()),
            prompt: "description".into(),
            answer: "solution".into(),
            extract: AnswerExtract::Raw,
            extra: vec!["tests".into()],
        }
    }
    /// BFCL style: `id`, `question`, `ground_truth` (JSON); `function` (tool schemas) kept.
    pub fn bfcl() -> Self {
        ColumnMap {
            id: Some("id".into()),
            prompt: "question".into(),
            answer: "ground_truth".into(),
            extract: AnswerExtract::Raw,
            extra: vec!["function".into()],
        }
    }
    /// A preset by name (`gsm8k`, `math`, `humaneval`, `code_contest`, `bfcl`).
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "gsm8k" => Self::gsm8k(),
            "math" => Self::math(),
            "humaneval" => Self::humaneval(),
            "code_contest" => Self::code_contest(),
            "bfcl" => Self::bfcl(),
            other => {
                return Err(EnvError::param(
                    "columns",
                    format!(
                        "unknown preset `{other}` (gsm8k, math, humaneval, code_contest, bfcl)"
                    ),
                ));
            }
        })
    }
}

/// The content of the last `\boxed{…}` (balanced braces).
pub fn last_boxed(s: &str) -> Option<&str> {
    let start = s.rfind("\\boxed")?;
    let rest = &s[start + "\\boxed".len()..];
    let open = rest.find('{')?;
    if !rest[..open].trim().is_empty() {
        return None;
    }
    let body = &rest[open + 1..];
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::tool::canonical_json(other),
    }
}

/// Maps one parsed JSON object to a record; `line` is 1-based. Without an id
/// column the id is `line-N`.
pub fn map_record(v: &Value, map: &ColumnMap, path: &str, line: usize) -> Result<TaskRecord> {
    map_fields(v, map, || format!("line-{line}")).map_err(|(field, reason)| EnvError::BadRecord {
        path: path.to_string(),
        line,
        field,
        reason,
    })
}

/// The column mapping shared by every file format: `Err((column, reason))`.
pub(crate) fn map_fields(
    v: &Value,
    map: &ColumnMap,
    default_id: impl FnOnce() -> String,
) -> std::result::Result<TaskRecord, (String, String)> {
    let bad = |field: &str, reason: &str| (field.to_string(), reason.to_string());
    let obj = v
        .as_object()
        .ok_or_else(|| bad("<record>", "not a JSON object"))?;
    let get = |f: &str| obj.get(f).ok_or_else(|| bad(f, "missing"));
    let (prompt, messages) = match get(&map.prompt)? {
        Value::String(s) => (s.clone(), Vec::new()),
        Value::Null => return Err(bad(&map.prompt, "null, not a string")),
        Value::Array(items) => {
            let messages = conversation(items).map_err(|e| bad(&map.prompt, &e))?;
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .ok_or_else(|| bad(&map.prompt, "the conversation has no user message"))?;
            (last_user, messages)
        }
        other => {
            return Err(bad(
                &map.prompt,
                &format!(
                    "not a string or a list of chat messages (found {})",
                    json_kind(other)
                ),
            ));
        }
    };
    let answer_value = get(&map.answer)?;
    if answer_value.is_null() {
        return Err(bad(&map.answer, "null (no gold answer)"));
    }
    let raw = as_text(answer_value);
    let answer = match map.extract {
        AnswerExtract::Raw => raw,
        AnswerExtract::Gsm8k => raw
            .rsplit_once("####")
            .map(|(_, a)| a.trim().replace(',', ""))
            .ok_or_else(|| bad(&map.answer, "no `####` final answer"))?,
        AnswerExtract::Boxed => last_boxed(&raw)
            .map(|s| s.trim().to_string())
            .ok_or_else(|| bad(&map.answer, "no \\boxed{…} answer"))?,
    };
    let id = match &map.id {
        Some(c) => as_text(get(c)?),
        None => default_id(),
    };
    let mut extra = serde_json::Map::new();
    for c in &map.extra {
        extra.insert(c.clone(), get(c)?.clone());
    }
    Ok(TaskRecord {
        id,
        prompt,
        answer,
        extra,
        messages,
    })
}

/// A prompt given as chat messages: a list of `{role, content}` objects (TRL's
/// conversational format, HF chat columns), or a list of such lists (BFCL's
/// `question`: one list per user turn), of which the first turn is the prompt
/// (later BFCL turns follow the model's answers and are not part of it).
fn conversation(items: &[Value]) -> std::result::Result<Vec<Message>, String> {
    let items = match items.first() {
        Some(Value::Array(first)) => first.as_slice(),
        _ => items,
    };
    if items.is_empty() {
        return Err("empty conversation".into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let obj = m.as_object().ok_or_else(|| {
                format!("[{i}]: not a {{role, content}} message ({})", json_kind(m))
            })?;
            let role = match obj.get("role").and_then(Value::as_str) {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("tool") => Role::Tool,
                Some(other) => {
                    return Err(format!(
                        "[{i}].role: unknown role `{other}` (system, user, assistant, tool)"
                    ));
                }
                None => return Err(format!("[{i}].role: missing or not a string")),
            };
            let content = match obj.get("content") {
                Some(Value::String(c)) => c.clone(),
                Some(Value::Null) | None if role == Role::Assistant => String::new(),
                Some(other) => {
                    return Err(format!(
                        "[{i}].content: not a string (found {})",
                        json_kind(other)
                    ));
                }
                None => return Err(format!("[{i}].content: missing")),
            };
            let mut msg = Message::new(role, content);
            msg.name = obj.get("name").and_then(Value::as_str).map(str::to_string);
            Ok(msg)
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads a JSONL file (blank lines skipped); errors name the file, line and field.
pub fn load_jsonl(path: impl AsRef<Path>, map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| EnvError::Io {
        context: format!("opening {name}"),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| EnvError::Io {
            context: format!("reading {name} line {}", i + 1),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| EnvError::BadRecord {
            path: name.clone(),
            line: i + 1,
            field: "<json>".into(),
            reason: e.to_string(),
        })?;
        out.push(map_record(&v, map, &name, i + 1)?);
    }
    tracing::debug!(path = %name, records = out.len(), "loaded task file");
    Ok(out)
}

/// Loads a task file: `.parquet` (or any file starting with the Parquet magic
/// `PAR1`) through [`load_parquet`] when the `parquet` feature is on, everything
/// else as JSONL. Both formats go through the same [`ColumnMap`].
///
/// A directory is a sharded split (Hugging Face's `train-00000-of-00004.parquet`
/// layout): every `.parquet`, `.jsonl` and `.json` file in it is loaded in file
/// name order and concatenated; default ids are then prefixed by the file name.
pub fn load_tasks(path: impl AsRef<Path>, map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    let p = path.as_ref();
    if p.is_dir() {
        return load_shards(p, map);
    }
    let is_parquet = match p.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("parquet") => true,
        Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json") => false,
        _ => starts_with_parquet_magic(p),
    };
    if is_parquet {
        load_parquet_file(p, map)
    } else {
        load_jsonl(p, map)
    }
}

fn load_shards(dir: &Path, map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    let entries = std::fs::read_dir(dir).map_err(|e| EnvError::Io {
        context: format!("listing {}", dir.display()),
        source: e,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EnvError::Io {
            context: format!("listing {}", dir.display()),
            source: e,
        })?;
        let path = entry.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("parquet" | "jsonl" | "json")) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(EnvError::param(
            "path",
            format!(
                "{}: directory has no .parquet, .jsonl or .json task files",
                dir.display()
            ),
        ));
    }
    let mut out = Vec::new();
    for f in &files {
        let mut recs = load_tasks(f, map)?;
        if map.id.is_none() {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            for r in &mut recs {
                r.id = format!("{}:{}", name.as_deref().unwrap_or(""), r.id);
            }
        }
        out.append(&mut recs);
    }
    tracing::debug!(dir = %dir.display(), shards = files.len(), records = out.len(), "loaded sharded task files");
    Ok(out)
}

fn starts_with_parquet_magic(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| &head == b"PAR1")
        .unwrap_or(false)
}

#[cfg(feature = "parquet")]
fn load_parquet_file(p: &Path, map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    load_parquet(p, map)
}

#[cfg(not(feature = "parquet"))]
fn load_parquet_file(p: &Path, _map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    Err(EnvError::param(
        "path",
        format!(
            "{}: Parquet task files need grpo-envs built with the `parquet` feature \
             (the `grpo` CLI has it); or convert the file to JSONL",
            p.display()
        ),
    ))
}

/// A resumable, seeded cursor over `len` records: each epoch visits every index
/// once in an order drawn from `(seed, epoch)`. Its state is three numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Base seed.
    pub seed: u64,
    /// Number of records.
    pub len: usize,
    /// Current epoch.
    pub epoch: u64,
    /// Position within the epoch.
    pub pos: usize,
    #[serde(skip)]
    order: Vec<usize>,
}

/// One position drawn from a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    /// Record index.
    pub index: usize,
    /// Epoch of the draw.
    pub epoch: u64,
    /// Instance seed for the task: `derive(seed, "task", epoch, index)`.
    pub instance_seed: u64,
}

impl Cursor {
    /// A cursor at the start of epoch 0.
    pub fn new(seed: u64, len: usize) -> Self {
        Cursor {
            seed,
            len,
            epoch: 0,
            pos: 0,
            order: Vec::new(),
        }
    }
    fn ensure_order(&mut self) {
        if self.order.len() != self.len {
            let mut order: Vec<usize> = (0..self.len).collect();
            let mut r = rng(derive_seed(self.seed, "epoch", &[self.epoch]));
            for i in (1..order.len()).rev() {
                let j = r.random_range(0..=i);
                order.swap(i, j);
            }
            self.order = order;
        }
    }
    /// The next draw (`None` when `len == 0`).
    pub fn next_draw(&mut self) -> Option<Draw> {
        if self.len == 0 {
            return None;
        }
        if self.pos >= self.len {
            self.epoch += 1;
            self.pos = 0;
            self.order.clear();
        }
        self.ensure_order();
        let index = self.order[self.pos];
        self.pos += 1;
        Some(Draw {
            index,
            epoch: self.epoch,
            instance_seed: derive_seed(self.seed, "task", &[self.epoch, index as u64]),
        })
    }
    /// The next `n` draws.
    pub fn take(&mut self, n: usize) -> Vec<Draw> {
        (0..n).filter_map(|_| self.next_draw()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed() {
        assert_eq!(
            last_boxed(r"so \boxed{\frac{1}{2}} done"),
            Some(r"\frac{1}{2}")
        );
        assert_eq!(last_boxed("none"), None);
        assert_eq!(last_boxed(r"\boxed{open"), None);
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn parquet_without_the_feature_names_the_feature() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        std::fs::write(&p, b"PAR1").unwrap();
        let err = load_tasks(&p, &ColumnMap::gsm8k()).unwrap_err().to_string();
        assert!(
            err.contains("t.parquet") && err.contains("`parquet` feature"),
            "{err}"
        );
    }

    #[test]
    fn null_and_non_string_prompts_are_named() {
        let map = ColumnMap::gsm8k();
        let v = serde_json::json!({"question": null, "answer": "#### 1"});
        let err = map_record(&v, &map, "f", 2).unwrap_err().to_string();
        assert!(
            err.contains("f:2") && err.contains("`question`") && err.contains("null"),
            "{err}"
        );
        let v = serde_json::json!({"question": [1], "answer": "#### 1"});
        let err = map_record(&v, &map, "f", 3).unwrap_err().to_string();
        assert!(
            err.contains("[0]: not a {role, content} message (a number)"),
            "{err}"
        );
        let v = serde_json::json!({"question": 7, "answer": "#### 1"});
        let err = map_record(&v, &map, "f", 3).unwrap_err().to_string();
        assert!(err.contains("found a number"), "{err}");
        let v = serde_json::json!({"question": [{"role": "system", "content": "s"}], "answer": "#### 1"});
        let err = map_record(&v, &map, "f", 3).unwrap_err().to_string();
        assert!(err.contains("no user message"), "{err}");
        let v =
            serde_json::json!({"question": [{"role": "user", "content": 5}], "answer": "#### 1"});
        let err = map_record(&v, &map, "f", 3).unwrap_err().to_string();
        assert!(err.contains("[0].content: not a string"), "{err}");
        let v = serde_json::json!({"question": "q", "answer": null});
        let err = map_record(&v, &map, "f", 4).unwrap_err().to_string();
        assert!(err.contains("`answer`") && err.contains("null"), "{err}");
    }

    #[test]
    fn cursor_is_a_permutation_and_resumes() {
        let mut c = Cursor::new(3, 10);
        let first: Vec<usize> = c.take(10).iter().map(|d| d.index).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let mut a = Cursor::new(3, 10);
        a.take(13);
        let json = serde_json::to_string(&a).unwrap();
        let mut b: Cursor = serde_json::from_str(&json).unwrap();
        assert_eq!(a.take(9), b.take(9));
        assert_ne!(
            first,
            Cursor::new(4, 10)
                .take(10)
                .iter()
                .map(|d| d.index)
                .collect::<Vec<_>>()
        );
    }
}

//! The trainer's view of a task: a stream of training instances addressed by
//! a cursor (so a resumed run sees the same data), a fixed held-out set
//! disjoint from training prompts, and a verifier turning a completion into
//! named reward components.

use std::collections::HashSet;

use grpo_envs::seed::derive_seed;
use grpo_envs::task::{ArithmeticTask, Task, TaskInstance};

use crate::config::TaskSection;
use crate::error::{Result, TrainError};

/// Reward components of one completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// 1 when the final answer is correct.
    pub correct: f64,
    /// 1 when the completion follows the task's format.
    pub format: f64,
    /// Partial credit of a wrong answer (already weighted; 0 unless the task's
    /// `partial_credit` is set).
    pub partial: f64,
}

impl Score {
    /// The scalar reward GRPO optimises: correctness plus any partial credit (format is
    /// logged separately).
    pub fn reward(&self) -> f64 {
        self.correct + self.partial
    }
}

/// Fraction of `gold`'s digits that `answer` has right, compared from the least
/// significant digit over the longer of the two (a missing or extra digit is wrong).
pub fn digit_credit(answer: &str, gold: &str) -> f64 {
    let (a, g) = (answer.as_bytes(), gold.as_bytes());
    let n = a.len().max(g.len());
    if n == 0 {
        return 0.0;
    }
    let right = a
        .iter()
        .rev()
        .zip(g.iter().rev())
        .filter(|(x, y)| x == y)
        .count();
    right as f64 / n as f64
}

/// A task source for training and evaluation.
pub struct TaskSource {
    kind: Kind,
    eval: Vec<TaskInstance>,
    eval_prompts: HashSet<String>,
    seed: u64,
}

enum Kind {
    Arithmetic {
        task: ArithmeticTask,
        min_digits: u32,
        max_digits: u32,
        partial_credit: f64,
    },
    Dataset {
        train: Vec<TaskInstance>,
        verifier: Box<grpo_rewards::verifier::VerifierConfig>,
        /// Per prompt: the row's extra columns and its chat messages (if it had them).
        rows: std::collections::HashMap<String, RowData>,
        /// The verifier's sandbox options (code).
        code_options: serde_json::Value,
        /// Where completions end (a token of the tokenizer), if set.
        stop: Option<String>,
    },
}

/// What a dataset row carries besides prompt and answer.
#[derive(Debug, Clone, Default)]
struct RowData {
    extra: serde_json::Map<String, serde_json::Value>,
    messages: Vec<grpo_envs::Message>,
}

impl TaskSource {
    /// Builds the task from its config section and the run seed.
    pub fn new(section: &TaskSection, seed: u64) -> Result<Self> {
        match section {
            TaskSection::Arithmetic {
                min_digits,
                max_digits,
                ops,
                eval_size,
                partial_credit,
                equal_digits,
            } => {
                if *min_digits == 0 || min_digits > max_digits || *max_digits > 18 {
                    return Err(TrainError::Config {
                        location: Some("task.min_digits / task.max_digits".into()),
                        message: format!(
                            "need 1 <= min_digits <= max_digits <= 18, got {min_digits}..={max_digits}"
                        ),
                    });
                }
                if let Some(bad) = ops.iter().find(|o| !matches!(o.as_str(), "+" | "-" | "*")) {
                    return Err(TrainError::Config {
                        location: Some("task.ops".into()),
                        message: format!("unknown operator {bad:?} (use \"+\", \"-\", \"*\")"),
                    });
                }
                let task = ArithmeticTask::with_ops(&ops.concat()).with_equal_digits(*equal_digits);
                let mut src = TaskSource {
                    kind: Kind::Arithmetic {
                        task,
                        min_digits: *min_digits,
                        max_digits: *max_digits,
                        partial_credit: *partial_credit,
                    },
                    eval: Vec::new(),
                    eval_prompts: HashSet::new(),
                    seed,
                };
                let mut k = 0u64;
                while src.eval.len() < *eval_size && k < 100 * (*eval_size as u64 + 1) {
                    let inst = src.arith_instance(derive_seed(seed, "eval", &[k]));
                    k += 1;
                    if src.eval_prompts.insert(inst.prompt.clone()) {
                        src.eval.push(inst);
                    }
                }
                Ok(src)
            }
            TaskSection::Dataset {
                train,
                test,
                prompt_column,
                answer_column,
                verifier,
                verifier_options,
                columns,
                stop,
                chat_template: _,
            } => {
                let bad = |key: &str, m: String| TrainError::Config {
                    location: Some(key.to_string()),
                    message: m,
                };
                let needed: &[&[&str]] = match verifier.as_str() {
                    "math" | "gui" => &[],
                    "code" => &[&["test", "entry_point"], &["tests"]],
                    "toolcall" => &[&["functions", "possible_answer"]],
                    other => {
                        return Err(bad(
                            "task.verifier",
                            format!(
                                "unknown verifier `{other}` for a dataset task (available: math, \
                                 code, toolcall, gui)"
                            ),
                        ));
                    }
                };
                if !needed.is_empty()
                    && !needed
                        .iter()
                        .any(|set| set.iter().all(|c| columns.iter().any(|x| x == c)))
                {
                    return Err(bad(
                        "task.columns",
                        format!(
                            "the `{verifier}` verifier needs the columns {} in task.columns",
                            needed
                                .iter()
                                .map(|set| set.join(" + "))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                }
                // The verifier with its options (`verifier_options`), as `grpo verify` takes them.
                let mut opts = verifier_options.clone().unwrap_or_default();
                let code_options = if verifier == "code" {
                    let o = serde_json::to_value(&opts).unwrap_or_default();
                    opts = toml::Table::new();
                    o
                } else {
                    serde_json::Value::Null
                };
                opts.insert("type".into(), toml::Value::String(verifier.clone()));
                let verifier_cfg: grpo_rewards::verifier::VerifierConfig = toml::Value::Table(opts)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        bad("task.verifier_options", e.message().to_string())
                    })?;
                let map = grpo_envs::ColumnMap {
                    id: None,
                    prompt: prompt_column.clone(),
                    answer: answer_column.clone(),
                    extract: if answer_column == "answer" && verifier == "math" {
                        grpo_envs::dataset::AnswerExtract::Gsm8k
                    } else {
                        grpo_envs::dataset::AnswerExtract::Raw
                    },
                    extra: columns.clone(),
                };
                let mut rows = std::collections::HashMap::new();
                let mut load = |path: &std::path::Path, key: &str| -> Result<Vec<TaskInstance>> {
                    let recs =
                        grpo_envs::load_tasks(path, &map).map_err(|e| bad(key, e.to_string()))?;
                    if recs.is_empty() {
                        return Err(bad(key, format!("{} has no rows", path.display())));
                    }
                    Ok(recs
                        .into_iter()
                        .map(|r| {
                            rows.insert(
                                r.prompt.clone(),
                                RowData {
                                    extra: r.extra,
                                    messages: r.messages,
                                },
                            );
                            let mut gold = if verifier == "math" {
                                format!("The answer is \\boxed{{{}}}.", r.answer)
                            } else {
                                r.answer.clone()
                            };
                            // SFT demonstrations end where sampling stops.
                            if let Some(st) = stop
                                && !gold.ends_with(st.as_str())
                            {
                                gold.push_str(st);
                            }
                            TaskInstance {
                                gold_completion: gold,
                                prompt: r.prompt,
                                answer: r.answer,
                            }
                        })
                        .collect())
                };
                let train = load(train, "task.train")?;
                let eval = load(test, "task.test")?;
                let eval_prompts = eval.iter().map(|i| i.prompt.clone()).collect();
                Ok(TaskSource {
                    kind: Kind::Dataset {
                        train,
                        verifier: Box::new(verifier_cfg),
                        rows,
                        code_options,
                        stop: stop.clone(),
                    },
                    eval,
                    eval_prompts,
                    seed,
                })
            }
        }
    }

    /// Renders every prompt with `tok`'s chat template (`task.chat_template = true`): a row's
    /// chat messages as the conversation, a text prompt as one user message, with the
    /// generation prompt appended. The verifiers still see each row's data.
    pub fn apply_chat_template(&mut self, tok: &grpo_model::tokenizer::Tokenizer) -> Result<()> {
        let Kind::Dataset { train, rows, .. } = &mut self.kind else {
            return Err(TrainError::Config {
                location: Some("task.chat_template".into()),
                message: "only dataset tasks have chat prompts".into(),
            });
        };
        let template = tok
            .chat_template()
            .map_err(|e| TrainError::Other(e.to_string()))?
            .ok_or_else(|| TrainError::Config {
                location: Some("task.chat_template".into()),
                message: "the model's tokenizer has no chat template".into(),
            })?;
        let mut rendered = std::collections::HashMap::new();
        let mut render = |inst: &mut TaskInstance| -> Result<()> {
            let row = rows.get(&inst.prompt).cloned().unwrap_or_default();
            let messages = if row.messages.is_empty() {
                serde_json::json!([{"role": "user", "content": inst.prompt}])
            } else {
                serde_json::to_value(&row.messages).map_err(|e| TrainError::Other(e.to_string()))?
            };
            let text = template
                .render(&messages, None, true)
                .map_err(|e| TrainError::Other(format!("chat template: {e}")))?;
            rendered.insert(text.clone(), row);
            inst.prompt = text;
            Ok(())
        };
        for inst in train.iter_mut() {
            render(inst)?;
        }
        for inst in self.eval.iter_mut() {
            render(inst)?;
        }
        *rows = rendered;
        self.eval_prompts = self.eval.iter().map(|i| i.prompt.clone()).collect();
        Ok(())
    }

    fn arith_instance(&self, s: u64) -> TaskInstance {
        match &self.kind {
            Kind::Arithmetic {
                task,
                min_digits,
                max_digits,
                ..
            } => {
                let span = u64::from(max_digits - min_digits + 1);
                let d = min_digits + (derive_seed(s, "difficulty", &[]) % span) as u32;
                task.generate(s, d)
            }
            Kind::Dataset { train, .. } => train[(s as usize) % train.len().max(1)].clone(),
        }
    }

    /// The training instance at `cursor`, skipping held-out prompts; returns
    /// the instance and the next cursor.
    /// If a long run of candidates are all held out (a dataset whose train
    /// and test files overlap almost entirely), the candidate is used anyway
    /// rather than looping forever.
    pub fn train_instance(&self, mut cursor: u64) -> (TaskInstance, u64) {
        let mut skipped = 0usize;
        loop {
            let inst = match &self.kind {
                Kind::Arithmetic { .. } => {
                    self.arith_instance(derive_seed(self.seed, "train", &[cursor]))
                }
                Kind::Dataset { train, .. } => {
                    // A seeded permutation per epoch, so a resumed run sees the same order.
                    let n = train.len().max(1) as u64;
                    let (epoch, i) = (cursor / n, cursor % n);
                    let j = permute(i, n, derive_seed(self.seed, "epoch", &[epoch]));
                    train[j as usize].clone()
                }
            };
            cursor += 1;
            if !self.eval_prompts.contains(&inst.prompt) || skipped >= 10_000 {
                return (inst, cursor);
            }
            skipped += 1;
        }
    }

    /// The fixed prompt pool of a sampler: the first `size` training instances of the data
    /// stream (a dataset's whole training split when `size` is `None`), held-out prompts
    /// excluded.
    pub fn pool(&self, size: Option<usize>) -> Vec<TaskInstance> {
        let n = match (&self.kind, size) {
            (_, Some(n)) => n,
            (Kind::Dataset { train, .. }, None) => train.len(),
            (Kind::Arithmetic { .. }, None) => 0,
        };
        let mut out = Vec::with_capacity(n);
        let mut cursor = 0;
        while out.len() < n {
            let (inst, next) = self.train_instance(cursor);
            cursor = next;
            out.push(inst);
        }
        out
    }

    /// `n` instances from the *training* distribution, drawn from their own seeded stream
    /// (the data cursor does not move) and never from the held-out set: what SFT's
    /// `stop_at_accuracy` checks against, so the reported held-out accuracy is never used to
    /// make a training decision. Deterministic per seed.
    pub fn check_set(&self, n: usize) -> Vec<TaskInstance> {
        let mut out = Vec::with_capacity(n);
        let mut k = 0u64;
        let tries = 100 * (n as u64 + 1);
        while out.len() < n && k < tries {
            let inst = match &self.kind {
                Kind::Arithmetic { .. } => {
                    self.arith_instance(derive_seed(self.seed, "check", &[k]))
                }
                Kind::Dataset { train, .. } => {
                    let len = train.len().max(1) as u64;
                    if k >= len {
                        break;
                    }
                    let j = permute(k, len, derive_seed(self.seed, "check", &[]));
                    train[j as usize].clone()
                }
            };
            k += 1;
            if !self.eval_prompts.contains(&inst.prompt) {
                out.push(inst);
            }
        }
        out
    }

    /// The held-out instances.
    pub fn eval_set(&self) -> &[TaskInstance] {
        &self.eval
    }

    /// Scores a completion.
    pub fn score(&self, inst: &TaskInstance, completion: &str) -> Score {
        match &self.kind {
            Kind::Arithmetic {
                task,
                partial_credit,
                ..
            } => {
                let v = task.verify(inst, completion);
                let partial = match ArithmeticTask::parse_completion(completion) {
                    Some((_, ans)) if v.reward < 1.0 && *partial_credit > 0.0 => {
                        partial_credit * digit_credit(ans, &inst.answer)
                    }
                    _ => 0.0,
                };
                Score {
                    correct: v.reward,
                    format: v.format,
                    partial,
                }
            }
            Kind::Dataset { verifier, .. } => match self.verify(verifier, inst, completion) {
                Ok((correct, format)) => Score {
                    correct,
                    format,
                    partial: 0.0,
                },
                Err(_) => Score {
                    correct: 0.0,
                    format: 0.0,
                    partial: 0.0,
                },
            },
        }
    }

    /// Scores `completion` with `verifier` on the row of `inst`: (reward, format), where
    /// format says an answer could be read at all. `Err` for bad task data (a verifier
    /// failure), which callers turn into reward 0 with the reason.
    pub fn verify(
        &self,
        verifier: &grpo_rewards::verifier::VerifierConfig,
        inst: &TaskInstance,
        completion: &str,
    ) -> std::result::Result<(f64, f64), String> {
        use grpo_rewards::verifier::{Verifier, VerifierConfig};
        let (row, code_options) = match &self.kind {
            Kind::Dataset {
                rows, code_options, ..
            } => (
                rows.get(&inst.prompt).cloned().unwrap_or_default(),
                code_options.clone(),
            ),
            Kind::Arithmetic { .. } => (RowData::default(), serde_json::Value::Null),
        };
        // The stop text ends a completion; it is not part of the answer.
        let completion = match self.stop_text() {
            Some(st) if !st.is_empty() => completion.strip_suffix(st).unwrap_or(completion),
            _ => completion,
        };
        let col = |k: &str| row.extra.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let record = match verifier {
            VerifierConfig::Math(_) => {
                serde_json::json!({"gold": inst.answer, "pred": completion})
            }
            VerifierConfig::Code => {
                let tests = if row.extra.contains_key("entry_point") {
                    serde_json::json!({"test": col("test"), "entry_point": col("entry_point")})
                } else {
                    col("tests")
                };
                let mut r = serde_json::json!({
                    "language": "python",
                    "program": format!("{}{}", inst.prompt, completion),
                    "tests": tests,
                });
                if !code_options.is_null() {
                    r["options"] = code_options;
                }
                r
            }
            VerifierConfig::Toolcall(_) => serde_json::json!({
                "functions": col("functions"),
                "possible_answer": col("possible_answer"),
                "model_output_text": completion,
            }),
            VerifierConfig::Gui { .. } => {
                let gold = if row.extra.contains_key("gold") {
                    col("gold")
                } else {
                    serde_json::from_str(&inst.answer)
                        .unwrap_or_else(|_| serde_json::Value::String(inst.answer.clone()))
                };
                serde_json::json!({"gold": gold, "pred": completion})
            }
        };
        let v = verifier.verify_json(&record).map_err(|e| e.to_string())?;
        let reward = match verifier {
            VerifierConfig::Toolcall(_) => f64::from(u8::from(v["valid"] == true)),
            _ => v["reward"].as_f64().unwrap_or(0.0),
        };
        let format = match verifier {
            VerifierConfig::Math(_) => f64::from(u8::from(!v["extracted"].is_null())),
            _ => 1.0,
        };
        Ok((reward, format))
    }

    /// Whether rows carry column `name` (dataset tasks listing it in `task.columns`).
    pub fn has_column(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Dataset { rows, .. } => rows
                .values()
                .next()
                .is_some_and(|r| r.extra.contains_key(name)),
            Kind::Arithmetic { .. } => false,
        }
    }

    /// Whether this is a dataset task (verifier components can read its rows).
    pub fn is_dataset(&self) -> bool {
        matches!(self.kind, Kind::Dataset { .. })
    }

    /// The gold answer as a number, when it is one (commas as thousands separators allowed).
    pub fn gold_number(&self, inst: &TaskInstance) -> Option<f64> {
        parse_number(&inst.answer)
    }

    /// The number a completion answers: the arithmetic task's answer field; for datasets the
    /// last number in the text (GSM8K's convention). `None` when there is none.
    pub fn answer_number(&self, completion: &str) -> Option<f64> {
        match &self.kind {
            Kind::Arithmetic { .. } => {
                ArithmeticTask::parse_completion(completion).and_then(|(_, ans)| parse_number(ans))
            }
            Kind::Dataset { .. } => last_number(completion),
        }
    }

    /// Every character the task's prompts and gold completions use (for a
    /// character tokenizer built for a new model).
    pub fn alphabet(&self) -> String {
        match &self.kind {
            Kind::Arithmetic { .. } => ArithmeticTask::VOCAB.to_string(),
            Kind::Dataset { train, .. } => {
                // Every character of the prompts and gold completions, for a character
                // tokenizer (small models trained from scratch on a dataset).
                let mut set = std::collections::BTreeSet::new();
                for i in train.iter().chain(&self.eval) {
                    set.extend(i.prompt.chars());
                    set.extend(i.gold_completion.chars());
                }
                set.into_iter().collect()
            }
        }
    }

    /// The completion terminator the sampler stops at, if the task has one.
    pub fn stop_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Arithmetic { .. } => Some("\n"),
            Kind::Dataset { stop, .. } => stop.as_deref(),
        }
    }
}

/// A number literal (sign, `,` separators, decimals, `a/b`; grpo-envs' rule), finite only.
fn parse_number(s: &str) -> Option<f64> {
    grpo_envs::rational::Rational::parse_number(s)
        .map(|r| r.to_f64())
        .filter(|x| x.is_finite())
}

/// The last number in `text` (digits with optional sign, `,` separators and one `.`).
fn last_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut end = b.len();
    while end > 0 && !b[end - 1].is_ascii_digit() {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let mut start = end;
    while start > 0 && (b[start - 1].is_ascii_digit() || matches!(b[start - 1], b',' | b'.')) {
        start -= 1;
    }
    while start < end && !b[start].is_ascii_digit() {
        start += 1;
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    parse_number(&text[start..end])
}

/// A bijection of `0..n` keyed by `key` (cycle-walking over a power-of-two
/// Feistel-like mix), used to shuffle dataset rows per epoch without storing
/// a permutation.
fn permute(i: u64, n: u64, key: u64) -> u64 {
    let bits = 64 - (n.max(2) - 1).leading_zeros();
    let mask = (1u64 << bits) - 1;
    let mut x = i;
    loop {
        for r in 0..4u64 {
            let k = derive_seed(key, "round", &[r]);
            x = (x ^ (k & mask)).wrapping_mul(2 * (k >> 32) + 1) & mask;
            x ^= x >> (bits / 2).max(1);
        }
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> TaskSection {
        TaskSection::Arithmetic {
            min_digits: 1,
            max_digits: 2,
            ops: vec!["+".into()],
            eval_size: 50,
            partial_credit: 0.0,
            equal_digits: false,
        }
    }

    #[test]
    fn eval_set_is_disjoint_from_training_and_deterministic() {
        let a = TaskSource::new(&section(), 7).unwrap();
        let b = TaskSource::new(&section(), 7).unwrap();
        assert_eq!(a.eval_set(), b.eval_set());
        assert_eq!(a.eval_set().len(), 50);
        let mut cursor = 0;
        for _ in 0..500 {
            let (inst, next) = a.train_instance(cursor);
            assert!(!a.eval_prompts.contains(&inst.prompt));
            assert_eq!(b.train_instance(cursor).0, inst);
            cursor = next;
        }
    }

    #[test]
    fn check_set_is_training_distribution_and_disjoint_from_eval() {
        let a = TaskSource::new(&section(), 7).unwrap();
        let c = a.check_set(40);
        assert_eq!(c.len(), 40);
        assert_eq!(c, TaskSource::new(&section(), 7).unwrap().check_set(40));
        assert!(c.iter().all(|i| !a.eval_prompts.contains(&i.prompt)));
        // Its own stream: not simply the first training instances.
        let (first, _) = a.train_instance(0);
        assert_ne!(c[0], first);
        assert_ne!(c, TaskSource::new(&section(), 8).unwrap().check_set(40));
    }

    #[test]
    fn partial_credit_counts_digits_from_the_right_and_never_reaches_one() {
        assert_eq!(digit_credit("156", "156"), 1.0);
        assert!((digit_credit("146", "156") - 2.0 / 3.0).abs() < 1e-12);
        assert!((digit_credit("56", "156") - 2.0 / 3.0).abs() < 1e-12);
        assert!((digit_credit("1156", "156") - 0.75).abs() < 1e-12);
        assert_eq!(digit_credit("651", "156"), 1.0 / 3.0);
        assert_eq!(digit_credit("", "156"), 0.0);
        let mut sec = section();
        if let TaskSection::Arithmetic { partial_credit, .. } = &mut sec {
            *partial_credit = 0.5;
        }
        let a = TaskSource::new(&sec, 1).unwrap();
        let inst = &a.eval_set()[0];
        assert_eq!(a.score(inst, &inst.gold_completion).reward(), 1.0);
        // Wrong last digit: partial credit below the weight; malformed: nothing.
        let mut wrong: Vec<char> = inst.answer.chars().collect();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == '9' { '0' } else { '9' };
        let wrong: String = wrong.into_iter().collect();
        let scratch: String = wrong.chars().rev().collect();
        let s = a.score(inst, &format!("{scratch};{wrong}\n"));
        assert_eq!(s.correct, 0.0);
        let want = 0.5 * (inst.answer.len() - 1) as f64 / inst.answer.len() as f64;
        assert!((s.reward() - want).abs() < 1e-12, "{s:?}");
        assert_eq!(a.score(inst, "garbage").reward(), 0.0);
        // Off by default.
        let plain = TaskSource::new(&section(), 1).unwrap();
        let s = plain.score(inst, &format!("{scratch};{wrong}\n"));
        assert_eq!((s.format, s.reward()), (1.0, 0.0));
    }

    #[test]
    fn numbers_are_parsed_from_answers_and_text() {
        assert_eq!(parse_number("1,234"), Some(1234.0));
        assert_eq!(parse_number("-3.5"), Some(-3.5));
        assert_eq!(parse_number("x1"), None);
        assert_eq!(last_number("so 12 apples, then -7.5 left."), Some(-7.5));
        assert_eq!(last_number("total is 1,200"), Some(1200.0));
        assert_eq!(last_number("none"), None);
    }

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 7, 100, 1000] {
            let mut seen: Vec<u64> = (0..n).map(|i| permute(i, n, 42)).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn gsm8k_dataset_loads_and_verifies() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/gsm8k");
        let s = TaskSection::Dataset {
            train: dir.join("train.jsonl"),
            test: dir.join("test.jsonl"),
            prompt_column: "question".into(),
            answer_column: "answer".into(),
            verifier: "math".into(),
            verifier_options: None,
            columns: Vec::new(),
            stop: None,
            chat_template: false,
        };
        let src = TaskSource::new(&s, 3).unwrap();
        assert!(src.eval_set().len() > 1000);
        let (inst, _) = src.train_instance(0);
        let good = format!("Let me think. The answer is \\boxed{{{}}}.", inst.answer);
        assert_eq!(src.score(&inst, &good).correct, 1.0);
        assert_eq!(
            src.score(&inst, "The answer is \\boxed{-123456789}.")
                .correct,
            0.0
        );
        let bad = TaskSection::Dataset {
            train: dir.join("missing.jsonl"),
            test: dir.join("test.jsonl"),
            prompt_column: "question".into(),
            answer_column: "answer".into(),
            verifier: "math".into(),
            verifier_options: None,
            columns: Vec::new(),
            stop: None,
            chat_template: false,
        };
        assert!(
            TaskSource::new(&bad, 1)
                .err()
                .unwrap()
                .to_string()
                .contains("task.train")
        );
    }

    #[test]
    fn gold_completions_score_one_and_bad_config_is_named() {
        let a = TaskSource::new(&section(), 1).unwrap();
        for inst in a.eval_set() {
            assert_eq!(
                a.score(inst, &inst.gold_completion),
                Score {
                    correct: 1.0,
                    format: 1.0,
                    partial: 0.0,
                }
            );
        }
        let bad = TaskSection::Arithmetic {
            min_digits: 3,
            max_digits: 2,
            ops: vec!["+".into()],
            eval_size: 5,
            partial_credit: 0.0,
            equal_digits: false,
        };
        assert!(
            TaskSource::new(&bad, 1)
                .err()
                .unwrap()
                .to_string()
                .contains("task.min_digits")
        );
        let bad = TaskSection::Arithmetic {
            min_digits: 1,
            max_digits: 2,
            ops: vec!["/".into()],
            eval_size: 5,
            partial_credit: 0.0,
            equal_digits: false,
        };
        assert!(
            TaskSource::new(&bad, 1)
                .err()
                .unwrap()
                .to_string()
                .contains("task.ops")
        );
    }
}

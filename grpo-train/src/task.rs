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
        math: grpo_rewards::math::MathConfig,
    },
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
                chat_template: _,
            } => {
                if verifier != "math" {
                    return Err(TrainError::Config {
                        location: Some("task.verifier".into()),
                        message: format!(
                            "unknown verifier `{verifier}` for a dataset task (available: math)"
                        ),
                    });
                }
                let map = grpo_envs::ColumnMap {
                    id: None,
                    prompt: prompt_column.clone(),
                    answer: answer_column.clone(),
                    extract: if answer_column == "answer" {
                        grpo_envs::dataset::AnswerExtract::Gsm8k
                    } else {
                        grpo_envs::dataset::AnswerExtract::Raw
                    },
                    extra: Vec::new(),
                };
                let load = |path: &std::path::Path, key: &str| -> Result<Vec<TaskInstance>> {
                    let rows =
                        grpo_envs::load_tasks(path, &map).map_err(|e| TrainError::Config {
                            location: Some(key.to_string()),
                            message: e.to_string(),
                        })?;
                    if rows.is_empty() {
                        return Err(TrainError::Config {
                            location: Some(key.to_string()),
                            message: format!("{} has no rows", path.display()),
                        });
                    }
                    Ok(rows
                        .into_iter()
                        .map(|r| TaskInstance {
                            gold_completion: format!("The answer is \\boxed{{{}}}.", r.answer),
                            prompt: r.prompt,
                            answer: r.answer,
                        })
                        .collect())
                };
                let train = load(train, "task.train")?;
                let eval = load(test, "task.test")?;
                let eval_prompts = eval.iter().map(|i| i.prompt.clone()).collect();
                Ok(TaskSource {
                    kind: Kind::Dataset {
                        train,
                        math: grpo_rewards::math::MathConfig::default(),
                    },
                    eval,
                    eval_prompts,
                    seed,
                })
            }
        }
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
            Kind::Dataset { math, .. } => {
                match grpo_rewards::math::verify(&inst.answer, completion, math) {
                    Ok(v) => Score {
                        correct: v.reward,
                        format: f64::from(u8::from(v.extracted.is_some())),
                        partial: 0.0,
                    },
                    Err(_) => Score {
                        correct: 0.0,
                        format: 0.0,
                        partial: 0.0,
                    },
                }
            }
        }
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
            Kind::Dataset { .. } => String::new(),
        }
    }

    /// The completion terminator the sampler stops at, if the task has one.
    pub fn stop_text(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::Arithmetic { .. } => Some("\n"),
            Kind::Dataset { .. } => None,
        }
    }
}

/// A decimal number, with optional sign and `,` thousands separators; finite only.
fn parse_number(s: &str) -> Option<f64> {
    let t: String = s.trim().chars().filter(|&c| c != ',').collect();
    let t = t.strip_suffix('.').unwrap_or(&t);
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
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

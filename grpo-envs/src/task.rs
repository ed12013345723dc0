//! Procedurally generated single-turn tasks with a clean `generate`/`verify` API,
//! for trainers that do not need the multi-turn runner. The main one is
//! [`ArithmeticTask`]: multi-digit arithmetic over a tiny character vocabulary,
//! used by the default training run to train a tiny model from scratch.
//!
//! Format: prompt `"{a}{op}{b}="`, completion `"{scratch};{answer}\n"` where the
//! scratchpad is the answer's digits least-significant first (the order in which
//! carries are computed), e.g. `"347+85="` → `"234;432\n"`.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::seed::rng;

/// One generated task instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInstance {
    /// Prompt text.
    pub prompt: String,
    /// Gold answer.
    pub answer: String,
    /// A gold completion in the task's format (for SFT warm starts and tests).
    pub gold_completion: String,
}

/// The verifier's judgement of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The final answer equals the gold answer.
    pub correct: bool,
    /// The completion follows the format.
    pub format_ok: bool,
    /// Outcome reward component: 1 when correct, else 0.
    pub reward: f64,
    /// Format component: 1 when well-formatted, else 0.
    pub format: f64,
}

impl Verdict {
    /// `reward + format_weight * format`.
    pub fn total(&self, format_weight: f64) -> f64 {
        self.reward + format_weight * self.format
    }
}

/// A single-turn task family.
pub trait Task: Send + Sync {
    /// Stable name.
    fn name(&self) -> &str;
    /// Generates the instance for `(seed, difficulty)` (pure function of both).
    fn generate(&self, seed: u64, difficulty: u32) -> TaskInstance;
    /// Scores a completion against an instance's gold answer.
    fn verify(&self, instance: &TaskInstance, completion: &str) -> Verdict;
}

/// Multi-digit arithmetic. `difficulty` = number of digits of the larger operand
/// (clamped to 1..=18); both operands have at most that many digits. Operators
/// are drawn from `ops` (`+`, `-`, `*`); subtraction keeps results non-negative;
/// multiplication uses a one-digit right operand below difficulty 3 and up to
/// `difficulty / 2` digits above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArithmeticTask {
    /// Allowed operators.
    pub ops: String,
    /// For `+` and `-`, both operands have exactly `difficulty` digits (by default the
    /// second one has up to that many, its digit count drawn uniformly).
    #[serde(default)]
    pub equal_digits: bool,
}

impl Default for ArithmeticTask {
    fn default() -> Self {
        ArithmeticTask {
            ops: "+-".into(),
            equal_digits: false,
        }
    }
}

impl ArithmeticTask {
    /// Every character that can appear in a prompt or a gold completion.
    pub const VOCAB: &'static str = "0123456789+-*=;\n";

    /// The character vocabulary, in a fixed order.
    pub fn vocabulary() -> Vec<char> {
        Self::VOCAB.chars().collect()
    }

    /// A task with these operators (unknown characters are ignored; empty → `+`).
    pub fn with_ops(ops: &str) -> Self {
        let ops: String = ops.chars().filter(|c| "+-*".contains(*c)).collect();
        ArithmeticTask {
            ops: if ops.is_empty() { "+".into() } else { ops },
            equal_digits: false,
        }
    }

    /// The same task with both operands of `+` and `-` drawn with exactly `difficulty`
    /// digits.
    pub fn with_equal_digits(self, equal_digits: bool) -> Self {
        ArithmeticTask {
            equal_digits,
            ..self
        }
    }

    /// Splits a completion into `(scratch, answer)` if it has the format
    /// `digits;digits` with an optional trailing newline.
    pub fn parse_completion(completion: &str) -> Option<(&str, &str)> {
        let body = completion.strip_suffix('\n').unwrap_or(completion);
        let (scratch, ans) = body.split_once(';')?;
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        (digits(scratch) && digits(ans)).then_some((scratch, ans))
    }
}

fn draw_digits(r: &mut impl Rng, digits: u32) -> u128 {
    let hi = 10u128.pow(digits);
    r.random_range(0..hi)
}

impl Task for ArithmeticTask {
    fn name(&self) -> &str {
        "arithmetic"
    }
    fn generate(&self, seed: u64, difficulty: u32) -> TaskInstance {
        let d = difficulty.clamp(1, 18);
        let mut r = rng(seed);
        let ops: Vec<char> = self.ops.chars().filter(|c| "+-*".contains(*c)).collect();
        let op = if ops.is_empty() {
            '+'
        } else {
            ops[r.random_range(0..ops.len())]
        };
        // The larger operand has exactly d digits (d = 1 allows 0..=9).
        let d_digits = (if d == 1 { 0 } else { 10u128.pow(d - 1) })..10u128.pow(d);
        let mut a = r.random_range(d_digits.clone());
        let mut b = match op {
            '*' => draw_digits(&mut r, if d < 3 { 1 } else { d / 2 }),
            _ if self.equal_digits => r.random_range(d_digits),
            _ => {
                let db = r.random_range(1..=d);
                draw_digits(&mut r, db)
            }
        };
        if op == '-' && b > a {
            std::mem::swap(&mut a, &mut b);
        }
        let v = match op {
            '+' => a + b,
            '-' => a - b,
            _ => a * b,
        };
        let answer = v.to_string();
        let scratch: String = answer.chars().rev().collect();
        TaskInstance {
            prompt: format!("{a}{op}{b}="),
            gold_completion: format!("{scratch};{answer}\n"),
            answer,
        }
    }
    fn verify(&self, instance: &TaskInstance, completion: &str) -> Verdict {
        match Self::parse_completion(completion) {
            Some((_, ans)) => {
                let correct =
                    ans.trim_start_matches('0') == instance.answer.trim_start_matches('0');
                Verdict {
                    correct,
                    format_ok: true,
                    reward: f64::from(u8::from(correct)),
                    format: 1.0,
                }
            }
            None => Verdict {
                correct: false,
                format_ok: false,
                reward: 0.0,
                format: 0.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_digits_draws_both_operands_with_the_difficulty_digits() {
        let t = ArithmeticTask::with_ops("+-").with_equal_digits(true);
        let mut short_b = 0;
        for seed in 0..300 {
            for d in 1..5u32 {
                let inst = t.generate(seed, d);
                let (a, b) = inst.prompt[..inst.prompt.len() - 1]
                    .split_once(['+', '-'])
                    .unwrap();
                assert_eq!((a.len(), b.len()), (d as usize, d as usize), "{inst:?}");
                assert!(t.verify(&inst, &inst.gold_completion).correct);
                // The default mode draws shorter second operands too.
                let p = ArithmeticTask::with_ops("+").generate(seed, 2).prompt;
                short_b += usize::from(p.split_once('+').unwrap().1.len() < 3);
            }
        }
        assert!(short_b > 100, "{short_b}");
    }

    #[test]
    fn gold_completions_verify_and_use_the_vocab() {
        let t = ArithmeticTask::with_ops("+-*");
        for seed in 0..200 {
            for d in 1..6 {
                let inst = t.generate(seed, d);
                assert_eq!(inst, t.generate(seed, d));
                let v = t.verify(&inst, &inst.gold_completion);
                assert!(v.correct && v.format_ok, "{inst:?}");
                assert!(
                    inst.prompt
                        .chars()
                        .chain(inst.gold_completion.chars())
                        .all(|c| ArithmeticTask::VOCAB.contains(c))
                );
            }
        }
    }

    #[test]
    fn wrong_and_malformed() {
        let t = ArithmeticTask::default();
        let inst = TaskInstance {
            prompt: "2+2=".into(),
            answer: "4".into(),
            gold_completion: "4;4\n".into(),
        };
        let v = t.verify(&inst, "5;5\n");
        assert!(!v.correct && v.format_ok && v.reward == 0.0 && v.format == 1.0);
        let v = t.verify(&inst, "four");
        assert!(!v.format_ok && v.total(0.1) == 0.0);
        assert_eq!(t.verify(&inst, "4;4").total(0.1), 1.1);
    }
}

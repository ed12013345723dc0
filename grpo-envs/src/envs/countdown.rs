//! Countdown (TinyZero; also RAGEN, TextArena): combine the given numbers with
//! `+ - * /` (each exactly once) to reach the target. Instances are built from a
//! random expression tree, so every instance is solvable.
//!
//! Anchor reward (TinyZero): 0 without an `<answer>`, 0.1 formatted but wrong
//! (numbers mismatch, wrong value, evaluation error), 1 correct. Ours: the same
//! split as components `success` (1) and `format` (0.1), evaluated exactly with
//! rationals on the policy's last answer span; the multi-turn variant
//! (`attempts` > 1) pays `decay^(k-1)` for a correct answer on attempt k.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{last_tag, truncation_note};
use crate::rational::{ExprOptions, Rational, eval_expr};
use crate::seed::{derive_seed, rng};

/// Countdown config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountdownConfig {
    /// Fewest numbers.
    pub min_numbers: usize,
    /// Most numbers (≤ 6).
    pub max_numbers: usize,
    /// Largest number drawn.
    pub max_value: u32,
    /// Largest target.
    pub max_target: i128,
    /// Attempts allowed (1 = single-turn).
    pub attempts: usize,
    /// Reward decay per extra attempt.
    pub decay: f64,
}

impl Default for CountdownConfig {
    fn default() -> Self {
        CountdownConfig {
            min_numbers: 3,
            max_numbers: 4,
            max_value: 99,
            max_target: 999,
            attempts: 1,
            decay: 1.0,
        }
    }
}

/// The Countdown env.
#[derive(Debug, Clone)]
pub struct CountdownEnv {
    cfg: CountdownConfig,
    numbers: Vec<i128>,
    target: i128,
    solution: String,
    tried: Vec<String>,
    attempt: usize,
    result: RewardBreakdown,
    done: bool,
}

/// Generates `(numbers, target, solution expression)` for a seed.
pub fn generate(cfg: &CountdownConfig, seed: u64) -> Option<(Vec<i128>, i128, String)> {
    for attempt in 0..200u64 {
        let mut r = rng(derive_seed(seed, "retry", &[attempt]));
        let n = r.random_range(cfg.min_numbers..=cfg.max_numbers);
        let nums: Vec<i128> = (0..n)
            .map(|_| i128::from(r.random_range(1..=cfg.max_value)))
            .collect();
        let mut items: Vec<(Rational, String)> = nums
            .iter()
            .map(|&v| (Rational::int(v), v.to_string()))
            .collect();
        let mut ok = true;
        while items.len() > 1 {
            let i = r.random_range(0..items.len());
            let (a, ea) = items.swap_remove(i);
            let j = r.random_range(0..items.len());
            let (b, eb) = items.swap_remove(j);
            let op = ['+', '-', '*', '/'][r.random_range(0..4)];
            let v = match op {
                '+' => a.checked_add(b),
                '-' => a.checked_sub(b),
                '*' => a.checked_mul(b),
                _ => a.checked_div(b),
            };
            match v {
                Some(v) if v.is_integer() && v.numer() > 0 => {
                    items.push((v, format!("({ea} {op} {eb})")))
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let (v, e) = items.pop()?;
        let target = v.numer();
        if target >= 1 && target <= cfg.max_target {
            let e = e
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .map(str::to_string)
                .unwrap_or(e);
            return Some((nums, target, e));
        }
    }
    None
}

/// Scores an expression: `Ok(true)` correct, `Ok(false)` well-formed but wrong,
/// `Err(msg)` with the reason otherwise (still "formatted" in TinyZero's sense).
pub fn check(numbers: &[i128], target: i128, expr: &str) -> std::result::Result<Rational, String> {
    let e = eval_expr(expr, ExprOptions::default()).map_err(|e| e.to_string())?;
    let mut used: Vec<Rational> = e.literals.clone();
    used.sort();
    let mut want: Vec<Rational> = numbers.iter().map(|&n| Rational::int(n)).collect();
    want.sort();
    if used != want {
        return Err(format!(
            "numbers used {:?} do not match the given numbers {:?}",
            e.literals.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            numbers
        ));
    }
    let _ = target;
    Ok(e.value)
}

impl CountdownEnv {
    /// A Countdown env.
    pub fn new(cfg: CountdownConfig) -> Result<Self> {
        if cfg.min_numbers < 2 || cfg.max_numbers > 6 || cfg.min_numbers > cfg.max_numbers {
            return Err(EnvError::param(
                "countdown.min_numbers/max_numbers",
                "need 2 <= min_numbers <= max_numbers <= 6",
            ));
        }
        if cfg.attempts == 0 {
            return Err(EnvError::param("countdown.attempts", "must be at least 1"));
        }
        Ok(CountdownEnv {
            cfg,
            numbers: Vec::new(),
            target: 0,
            solution: String::new(),
            tried: Vec::new(),
            attempt: 0,
            result: RewardBreakdown::zero(),
            done: false,
        })
    }
    /// The instance: numbers, target and a known solution.
    pub fn instance(&self) -> (&[i128], i128, &str) {
        (&self.numbers, self.target, &self.solution)
    }
}

impl Env for CountdownEnv {
    fn name(&self) -> &str {
        "countdown"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let (numbers, target, solution) =
            generate(&self.cfg, task.seed).ok_or_else(|| EnvError::Generation {
                env: "countdown".into(),
                seed: task.seed,
                reason: "no solvable instance within 200 retries".into(),
            })?;
        self.numbers = numbers;
        self.target = target;
        self.solution = solution;
        self.tried.clear();
        self.attempt = 0;
        self.result = RewardBreakdown::zero();
        self.done = false;
        let extra = if self.cfg.attempts > 1 {
            format!(" You have {} attempts.", self.cfg.attempts)
        } else {
            String::new()
        };
        Ok(Reset {
            messages: vec![Message::user(format!(
                "Using the numbers {:?}, create an equation that equals {}. You can use basic arithmetic operations (+, -, *, /) and each number must be used exactly once. Show your work in <think> </think> tags and return the final equation in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.{extra}",
                self.numbers, self.target
            ))],
            tools: vec![],
            stop: vec!["</answer>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        if self.done || self.numbers.is_empty() {
            return Err(EnvError::Protocol {
                env: "countdown".into(),
                reason: "step called after the episode ended or before reset".into(),
            });
        }
        self.attempt += 1;
        let last = self.attempt >= self.cfg.attempts;
        let Some(ans) = last_tag(turn.text, "answer") else {
            if last {
                self.done = true;
                self.result = RewardBreakdown::zero().anchor(0.0);
            }
            let mut o = StepOutcome::invalid(
                format!(
                    "No <answer>…</answer> found{}.",
                    truncation_note(turn.truncated())
                ),
                0.0,
            );
            o.end = Some(if last {
                EndSignal::Terminated { success: false }
            } else {
                EndSignal::Continue
            });
            o.state_key = self.state_key();
            return Ok(o);
        };
        let mut out = StepOutcome {
            action_valid: true,
            answer_span: Some(ans.span.clone()),
            action_span: Some(ans.span.clone()),
            action_key: Some(format!(
                "answer:{}",
                ans.content.split_whitespace().collect::<String>()
            )),
            ..Default::default()
        };
        let verdict = check(&self.numbers, self.target, ans.content);
        let correct = matches!(&verdict, Ok(v) if *v == Rational::int(self.target));
        let feedback = match &verdict {
            Ok(v) if correct => format!("Correct: {} = {}.", ans.content.trim(), v),
            Ok(v) => format!("Your expression evaluates to {v}, not {}.", self.target),
            Err(e) => format!("Invalid expression: {e}."),
        };
        if let Ok(v) = &verdict {
            self.tried.push(v.to_string());
        } else {
            out.action_valid = false;
        }
        if correct || last {
            self.done = true;
            let decay = self.cfg.decay.powi(self.attempt as i32 - 1);
            self.result = if correct {
                RewardBreakdown::zero().with("success", decay).anchor(1.0)
            } else {
                RewardBreakdown::zero().with("format", 0.1).anchor(0.1)
            };
            out.end = Some(EndSignal::Terminated { success: correct });
        } else {
            out.observation = vec![Message::env(format!(
                "{feedback} Attempts left: {}.",
                self.cfg.attempts - self.attempt
            ))];
            out.end = Some(EndSignal::Continue);
        }
        out.metrics.insert("attempts".into(), 1.0);
        out.state_key = self.state_key();
        Ok(out)
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result.clone()
    }
    fn state_key(&self) -> Option<String> {
        if self.cfg.attempts <= 1 {
            return None;
        }
        let mut t = self.tried.clone();
        t.sort();
        t.dedup();
        Some(format!(
            "{}|{:?}|{}",
            self.target,
            self.numbers,
            t.join(",")
        ))
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.attempts,
            max_tokens_per_turn: 1024,
            max_observation_tokens: 128,
        }
    }
    fn render_debug(&self) -> Option<String> {
        Some(format!("numbers {:?} target {}", self.numbers, self.target))
    }
    fn oracle_action(&self) -> Option<String> {
        (!self.done).then(|| format!("<answer>{}</answer>", self.solution))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_split() {
        let mut e = CountdownEnv::new(CountdownConfig::default()).unwrap();
        e.reset(&TaskSpec::seed(1)).unwrap();
        let (nums, target, sol) = (e.numbers.clone(), e.target, e.solution.clone());
        assert_eq!(check(&nums, target, &sol).unwrap(), Rational::int(target));
        let v = EpisodeView {
            turns: &[],
            tool_calls: &[],
            ended_by_limit: false,
        };
        let o = e
            .step(&Turn::text(
                0,
                &format!("<think>x</think><answer>{sol}</answer>"),
            ))
            .unwrap();
        assert_eq!(o.end, Some(EndSignal::Terminated { success: true }));
        assert_eq!(e.final_reward(&v).total, 1.0);
        e.reset(&TaskSpec::seed(1)).unwrap();
        e.step(&Turn::text(0, "<answer>1+1</answer>")).unwrap();
        let r = e.final_reward(&v);
        assert_eq!((r.total, r.anchor), (0.1, 0.1));
        e.reset(&TaskSpec::seed(1)).unwrap();
        e.step(&Turn::text(0, "I give up")).unwrap();
        assert_eq!(e.final_reward(&v).total, 0.0);
    }
}

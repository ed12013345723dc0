//! Single-turn arithmetic envs: [`ArithmeticEnv`] wraps the char-level
//! [`ArithmeticTask`] (the default training task), and [`ArithChainEnv`] asks for
//! the value of a nested expression (TinyZero's `arth`/`multiply` tasks).
//!
//! Anchor reward (TinyZero multiply): 0 unformatted, 0.1 formatted but wrong,
//! 1 correct. Ours: `success` 1/0 plus a `format` component (weight configurable).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::last_tag;
use crate::rational::{ExprOptions, Rational, eval_expr};
use crate::seed::rng;
use crate::task::{ArithmeticTask, Task, TaskInstance};

/// Config of [`ArithmeticEnv`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArithmeticConfig {
    /// Operators.
    pub ops: String,
    /// Digits of the larger operand.
    pub difficulty: u32,
    /// Weight of the format component in our reward.
    pub format_weight: f64,
}

impl Default for ArithmeticConfig {
    fn default() -> Self {
        ArithmeticConfig {
            ops: "+-".into(),
            difficulty: 3,
            format_weight: 0.1,
        }
    }
}

/// The char-level arithmetic task as a single-turn env (prompt is the raw task text).
#[derive(Debug, Clone)]
pub struct ArithmeticEnv {
    cfg: ArithmeticConfig,
    task: ArithmeticTask,
    inst: Option<TaskInstance>,
    result: RewardBreakdown,
}

impl ArithmeticEnv {
    /// A new env.
    pub fn new(cfg: ArithmeticConfig) -> Self {
        ArithmeticEnv {
            task: ArithmeticTask::with_ops(&cfg.ops),
            cfg,
            inst: None,
            result: RewardBreakdown::zero(),
        }
    }
}

impl Env for ArithmeticEnv {
    fn name(&self) -> &str {
        "arithmetic"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let inst = self.task.generate(task.seed, self.cfg.difficulty);
        let msg = Message::user(inst.prompt.clone());
        self.inst = Some(inst);
        self.result = RewardBreakdown::zero();
        Ok(Reset {
            messages: vec![msg],
            tools: vec![],
            stop: vec!["\n".into()],
            state_key: None,
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let inst = self.inst.as_ref().ok_or_else(|| EnvError::Protocol {
            env: "arithmetic".into(),
            reason: "step before reset".into(),
        })?;
        let v = self.task.verify(inst, turn.text);
        self.result = RewardBreakdown::zero()
            .with("success", v.reward)
            .with("format", self.cfg.format_weight * v.format)
            .anchor(if v.correct {
                1.0
            } else if v.format_ok {
                0.1
            } else {
                0.0
            });
        let answer_span = ArithmeticTask::parse_completion(turn.text).and_then(|(_, a)| {
            let start = turn.text.find(';')? + 1;
            Some(start..start + a.len())
        });
        Ok(StepOutcome {
            end: Some(EndSignal::Terminated { success: v.correct }),
            action_valid: v.format_ok,
            answer_span,
            ..Default::default()
        })
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result.clone()
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: 1,
            max_tokens_per_turn: 64,
            max_observation_tokens: 16,
        }
    }
    fn oracle_action(&self) -> Option<String> {
        self.inst.as_ref().map(|i| i.gold_completion.clone())
    }
}

/// Config of [`ArithChainEnv`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArithChainConfig {
    /// Number of binary operations.
    pub ops: usize,
    /// Largest literal.
    pub max_value: u32,
}

impl Default for ArithChainConfig {
    fn default() -> Self {
        ArithChainConfig {
            ops: 3,
            max_value: 20,
        }
    }
}

/// Evaluate a nested integer expression; answer in `<answer>`.
#[derive(Debug, Clone)]
pub struct ArithChainEnv {
    cfg: ArithChainConfig,
    expr: String,
    value: Option<Rational>,
    result: RewardBreakdown,
}

impl ArithChainEnv {
    /// A new env.
    pub fn new(cfg: ArithChainConfig) -> Self {
        ArithChainEnv {
            cfg,
            expr: String::new(),
            value: None,
            result: RewardBreakdown::zero(),
        }
    }
}

/// A random expression with `ops` operations over `1..=max` whose value is an integer.
pub fn chain_expression(seed: u64, ops: usize, max: u32) -> (String, Rational) {
    let mut r = rng(seed);
    loop {
        let mut e = r.random_range(1..=max.max(1)).to_string();
        for _ in 0..ops {
            let n = r.random_range(1..=max.max(1));
            let op = ['+', '-', '*'][r.random_range(0..3)];
            e = if r.random_bool(0.5) {
                format!("({e} {op} {n})")
            } else {
                format!("({n} {op} {e})")
            };
        }
        let e = e
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .map(str::to_string)
            .unwrap_or(e);
        if let Ok(v) = eval_expr(&e, ExprOptions::default()) {
            return (e, v.value);
        }
    }
}

impl Env for ArithChainEnv {
    fn name(&self) -> &str {
        "arith-chain"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let (e, v) = chain_expression(task.seed, self.cfg.ops, self.cfg.max_value);
        self.expr = e;
        self.value = Some(v);
        self.result = RewardBreakdown::zero();
        Ok(Reset {
            messages: vec![Message::user(format!(
                "Compute {}. Think in <think> </think> and give the final integer in <answer> </answer>.",
                self.expr
            ))],
            tools: vec![],
            stop: vec!["</answer>".into()],
            state_key: None,
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let gold = self.value.ok_or_else(|| EnvError::Protocol {
            env: "arith-chain".into(),
            reason: "step before reset".into(),
        })?;
        let ans = last_tag(turn.text, "answer");
        let correct = ans
            .as_ref()
            .and_then(|a| Rational::parse_number(a.content))
            .is_some_and(|v| v == gold);
        self.result = match (&ans, correct) {
            (_, true) => RewardBreakdown::zero().with("success", 1.0).anchor(1.0),
            (Some(_), false) => RewardBreakdown::zero().with("format", 0.1).anchor(0.1),
            (None, false) => RewardBreakdown::zero(),
        };
        Ok(StepOutcome {
            end: Some(EndSignal::Terminated { success: correct }),
            action_valid: ans.is_some(),
            answer_span: ans.map(|a| a.span),
            ..Default::default()
        })
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result.clone()
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: 1,
            max_tokens_per_turn: 512,
            max_observation_tokens: 64,
        }
    }
    fn oracle_action(&self) -> Option<String> {
        self.value.map(|v| format!("<answer>{v}</answer>"))
    }
}

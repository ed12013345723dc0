//! Tool-use plumbing shared by tool envs (Hermes tool-call turns: call limits,
//! errors as observations, records) and the calculator/Python env: templated
//! GSM-style word problems solved with a `calculator` tool (exact rationals) and
//! an optional `python` tool run through a [`PythonExecutor`] (grpo-rewards'
//! sandbox in the trainer).
//!
//! Anchor reward (verl GSM8K tool agent): outcome 1/0 minus 0.05 per call that
//! did not help (failed or repeated). Ours: `success` 1/0, tool counts as
//! metrics (`tool_calls`, `tool_errors`, `min_tool_calls`) for OTC shaping.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{Tagged, hermes_calls, last_tag, truncation_note};
use crate::rational::{ExprOptions, Rational, eval_expr};
use crate::seed::rng;
use crate::tool::{CalculatorTool, PythonExecutor, PythonTool, Tool, ToolCallRecord, ToolRegistry};

/// The result of handling one tool-using turn.
#[derive(Debug, Clone, Default)]
pub struct ToolTurn<'a> {
    /// Tool result messages (and error explanations), in call order.
    pub observations: Vec<Message>,
    /// Records of all calls (including failed ones).
    pub records: Vec<ToolCallRecord>,
    /// Successful calls' `(name, canonical args, output)`.
    pub ok_calls: Vec<(String, serde_json::Value, String)>,
    /// The final answer, if the turn gave one.
    pub answer: Option<Tagged<'a>>,
    /// Why the turn was invalid (no call and no answer).
    pub invalid: Option<String>,
}

/// Handles a Hermes tool-call turn: at most `max_calls` calls are executed (the
/// rest answered with an error); bad JSON, unknown tools and invalid arguments
/// become error observations. A turn with an `<answer>` ends the episode.
pub fn handle_tool_turn<'a>(
    reg: &mut ToolRegistry,
    turn: &Turn<'a>,
    max_calls: usize,
) -> ToolTurn<'a> {
    let mut out = ToolTurn {
        answer: last_tag(turn.text, "answer"),
        ..Default::default()
    };
    let calls = hermes_calls(turn.text);
    for (k, c) in calls.iter().enumerate() {
        match &c.call {
            Err(e) => {
                out.records
                    .push(ToolRegistry::record_parse_error("<unparsed>", e));
                out.observations
                    .push(Message::tool("error", format!("Error: {e}")));
            }
            Ok(_) if k >= max_calls => {
                let e =
                    format!("too many tool calls in one turn (at most {max_calls}); call ignored");
                out.records
                    .push(ToolRegistry::record_parse_error("<over-limit>", &e));
                out.observations
                    .push(Message::tool("error", format!("Error: {e}")));
            }
            Ok((name, args)) => {
                let (res, rec) = reg.call(name, args);
                if !res.is_error {
                    out.ok_calls
                        .push((name.clone(), args.clone(), res.content.clone()));
                }
                let body = if res.is_error {
                    format!("Error: {}", res.content)
                } else {
                    res.content
                };
                out.records.push(rec);
                out.observations.push(Message::tool(name.clone(), body));
            }
        }
    }
    if calls.is_empty() && out.answer.is_none() {
        let unclosed = crate::parse::has_unclosed(turn.text, "tool_call");
        out.invalid = Some(format!(
            "No tool call and no final answer found{}{}. Call a tool with <tool_call>{{\"name\": ..., \"arguments\": {{...}}}}</tool_call> or answer with <answer>...</answer>.",
            if unclosed {
                " (a <tool_call> was not closed)"
            } else {
                ""
            },
            truncation_note(turn.truncated())
        ));
    }
    out
}

/// Calculator/Python env config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalcConfig {
    /// Maximum turns.
    pub max_turns: usize,
    /// Maximum tool calls per turn.
    pub max_calls_per_turn: usize,
    /// Offer the `python` tool (needs an executor).
    pub python: bool,
    /// Wall-clock limit of one tool call in seconds (a Python program past it is
    /// killed and the model is told so).
    pub tool_timeout_s: f64,
}

impl Default for CalcConfig {
    fn default() -> Self {
        CalcConfig {
            max_turns: 4,
            max_calls_per_turn: 2,
            python: false,
            tool_timeout_s: 10.0,
        }
    }
}

/// A generated word problem: text, gold answer, and an expression computing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordProblem {
    /// Problem text.
    pub text: String,
    /// Gold answer (integer or two decimals).
    pub answer: String,
    /// An arithmetic expression for the answer.
    pub expression: String,
}

const NAMES: [&str; 8] = [
    "Mira", "Tobin", "Asha", "Ravi", "Lena", "Oskar", "Juno", "Pia",
];
const ITEMS: [&str; 8] = [
    "notebook", "pencil", "apple", "ticket", "candle", "marble", "stamp", "lemon",
];

/// Generates a word problem from a seed.
pub fn word_problem(seed: u64) -> WordProblem {
    let mut r = rng(seed);
    let name = NAMES[r.random_range(0..NAMES.len())];
    let item = ITEMS[r.random_range(0..ITEMS.len())];
    let item2 = ITEMS[(r.random_range(1..ITEMS.len())
        + ITEMS.iter().position(|i| *i == item).unwrap_or(0))
        % ITEMS.len()];
    let a = r.random_range(2..20u32);
    let b = r.random_range(2..20u32);
    let p = r.random_range(101..999u32); // cents
    let q = r.random_range(101..999u32);
    let (text, expression) = match r.random_range(0..3) {
        0 => {
            let cost = a * p + b * q;
            let bill = (cost / 10000 + 1) * 100;
            (
                format!(
                    "{name} buys {a} {item}s at ${}.{:02} each and {b} {item2}s at ${}.{:02} each, and pays with ${bill}. How much change does {name} get, in dollars?",
                    p / 100,
                    p % 100,
                    q / 100,
                    q % 100
                ),
                format!(
                    "{bill} - ({a} * {}.{:02} + {b} * {}.{:02})",
                    p / 100,
                    p % 100,
                    q / 100,
                    q % 100
                ),
            )
        }
        1 => {
            let days = r.random_range(3..30u32);
            (
                format!(
                    "{name} reads {a} pages every weekday and {b} pages on each weekend day. How many pages does {name} read in {days} full weeks?"
                ),
                format!("{days} * (5 * {a} + 2 * {b})"),
            )
        }
        _ => {
            let k = r.random_range(2..9u32);
            (
                format!(
                    "A box holds {a} {item}s. {name} fills {b} boxes, then gives away {k} {item}s to each of {k} friends. How many {item}s are left?"
                ),
                format!("{a} * {b} - {k} * {k}"),
            )
        }
    };
    let v = eval_expr(
        &expression,
        ExprOptions {
            decimals: true,
            unary_minus: true,
        },
    )
    .map(|e| e.value)
    .unwrap_or(Rational::int(0));
    let answer = if v.is_integer() {
        v.to_string()
    } else {
        v.to_fixed(2)
    };
    WordProblem {
        text,
        answer,
        expression,
    }
}

/// Calculator / Python tool env.
pub struct CalcEnv {
    cfg: CalcConfig,
    exec: Option<Arc<dyn PythonExecutor>>,
    reg: ToolRegistry,
    problem: Option<WordProblem>,
    values: BTreeSet<String>,
    calls: Vec<ToolCallRecord>,
    result: RewardBreakdown,
    done: bool,
}

impl std::fmt::Debug for CalcEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalcEnv").field("cfg", &self.cfg).finish()
    }
}

impl CalcEnv {
    /// A new env; the `python` tool is offered only when `cfg.python` and an
    /// executor is given (otherwise it is disabled and a warning is logged).
    pub fn new(cfg: CalcConfig, exec: Option<Arc<dyn PythonExecutor>>) -> Self {
        if cfg.python && exec.is_none() {
            tracing::warn!("calc env: `python` tool requested but no executor given; disabled");
        }
        CalcEnv {
            cfg,
            exec,
            reg: ToolRegistry::new(vec![]),
            problem: None,
            values: BTreeSet::new(),
            calls: Vec::new(),
            result: RewardBreakdown::zero(),
            done: false,
        }
    }
}

fn answer_matches(gold: &str, pred: &str) -> bool {
    match (
        Rational::parse_number(gold),
        Rational::parse_number(pred.trim()),
    ) {
        (Some(g), Some(p)) => g == p,
        _ => false,
    }
}

/// Anchor (verl GSM8K tool) penalty: 0.05 per failed or repeated call.
pub fn unhelpful_calls(calls: &[ToolCallRecord]) -> usize {
    let mut seen = BTreeSet::new();
    calls
        .iter()
        .filter(|c| !c.ok || !seen.insert(c.action_key()))
        .count()
}

impl Env for CalcEnv {
    fn name(&self) -> &str {
        "calc"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let p = word_problem(task.seed);
        let mut tools: Vec<Box<dyn Tool>> = vec![Box::new(CalculatorTool)];
        if let (true, Some(e)) = (self.cfg.python, &self.exec) {
            tools.push(Box::new(PythonTool::new(e.clone())));
        }
        self.reg = ToolRegistry::new(tools);
        // `envs::make` rejects non-positive limits; clamp for direct constructions.
        self.reg.timeout =
            std::time::Duration::from_secs_f64(self.cfg.tool_timeout_s.clamp(0.001, 3600.0));
        self.values.clear();
        self.calls.clear();
        self.done = false;
        self.result = RewardBreakdown::zero();
        let msg = Message::user(format!(
            "{}\nUse the tools by writing <tool_call>{{\"name\": \"calculator\", \"arguments\": {{\"expression\": \"...\"}}}}</tool_call>. Give the final number in <answer></answer>.",
            p.text
        ));
        self.problem = Some(p);
        Ok(Reset {
            messages: vec![
                Message::system("You are a careful assistant that uses tools for arithmetic."),
                msg,
            ],
            tools: self.reg.specs(),
            stop: vec!["</tool_call>".into(), "</answer>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let Some(p) = self.problem.clone() else {
            return Err(EnvError::Protocol {
                env: "calc".into(),
                reason: "step before reset".into(),
            });
        };
        if self.done {
            return Err(EnvError::Protocol {
                env: "calc".into(),
                reason: "step after the episode ended".into(),
            });
        }
        let tt = handle_tool_turn(&mut self.reg, turn, self.cfg.max_calls_per_turn);
        for (_, _, out) in &tt.ok_calls {
            self.values
                .insert(out.split_whitespace().next().unwrap_or("").to_string());
        }
        self.calls.extend(tt.records.iter().cloned());
        let mut o = StepOutcome {
            tool_calls: tt.records.clone(),
            action_valid: tt.invalid.is_none() && tt.records.iter().all(|r| r.ok),
            action_key: Some(
                tt.records
                    .iter()
                    .map(|r| r.action_key())
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            ..Default::default()
        };
        o.metrics
            .insert("tool_calls".into(), tt.records.len() as f64);
        o.metrics.insert(
            "tool_errors".into(),
            tt.records.iter().filter(|r| !r.ok).count() as f64,
        );
        if let Some(a) = &tt.answer {
            let ok = answer_matches(&p.answer, a.content);
            self.done = true;
            let penalty = 0.05 * unhelpful_calls(&self.calls) as f64;
            self.result = RewardBreakdown::zero()
                .with("success", f64::from(u8::from(ok)))
                .anchor(f64::from(u8::from(ok)) - penalty);
            o.answer_span = Some(a.span.clone());
            o.action_key = Some(format!("answer:{}", a.content.trim()));
            o.end = Some(EndSignal::Terminated { success: ok });
        } else {
            o.observation = tt.observations;
            if let Some(msg) = tt.invalid {
                o.observation.push(Message::env(msg));
            }
            o.end = Some(EndSignal::Continue);
        }
        o.state_key = self.state_key();
        Ok(o)
    }
    fn final_reward(&self, view: &EpisodeView<'_>) -> RewardBreakdown {
        if self.done {
            return self.result.clone();
        }
        let penalty = 0.05 * unhelpful_calls(view.tool_calls) as f64;
        RewardBreakdown::zero()
            .with("success", 0.0)
            .anchor(-penalty)
    }
    fn state_key(&self) -> Option<String> {
        Some(self.values.iter().cloned().collect::<Vec<_>>().join(","))
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 512,
            max_observation_tokens: 256,
        }
    }
    fn close(&mut self) {
        self.reg.end_episode();
    }
    fn render_debug(&self) -> Option<String> {
        self.problem
            .as_ref()
            .map(|p| format!("{} (answer {})", p.text, p.answer))
    }
    fn oracle_action(&self) -> Option<String> {
        let p = self.problem.as_ref()?;
        if self.values.is_empty() {
            Some(format!(
                "<tool_call>{{\"name\": \"calculator\", \"arguments\": {{\"expression\": \"{}\"}}}}</tool_call>",
                p.expression
            ))
        } else {
            Some(format!("<answer>{}</answer>", p.answer))
        }
    }
}

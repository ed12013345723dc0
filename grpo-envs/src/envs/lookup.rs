//! Lookup chain (verl GSM8K tool agent, OTC): a question about orders whose
//! lines and item prices are hidden behind a `lookup` tool over generated
//! tables; a `calculator` tool does the arithmetic. The minimal number of
//! lookups is known per question (OTC's optimal tool count).
//!
//! Anchor reward: outcome 1/0 minus 0.05 per unhelpful (failed or repeated)
//! call. Ours: `success` 1/0 on the exact amount (two decimals); metrics
//! `tool_calls`, `tool_errors`, `min_tool_calls` for OTC shaping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tools::{handle_tool_turn, unhelpful_calls};
use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::{Message, ToolSpec};
use crate::rational::Rational;
use crate::seed::rng;
use crate::tool::{CalculatorTool, Tool, ToolCallRecord, ToolContext, ToolRegistry, ToolResult};

/// Lookup env config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookupConfig {
    /// Number of items in the price table.
    pub items: usize,
    /// Number of orders.
    pub orders: usize,
    /// Maximum lines per order.
    pub max_lines: usize,
    /// Maximum turns.
    pub max_turns: usize,
    /// Maximum tool calls per turn.
    pub max_calls_per_turn: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            items: 12,
            orders: 6,
            max_lines: 3,
            max_turns: 8,
            max_calls_per_turn: 4,
        }
    }
}

/// Generated tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    /// Item code → price in cents.
    pub items: BTreeMap<String, i128>,
    /// Order id → lines (item code, quantity).
    pub orders: BTreeMap<String, Vec<(String, i128)>>,
}

impl Tables {
    fn order_total(&self, id: &str) -> Option<i128> {
        self.orders
            .get(id)?
            .iter()
            .map(|(c, q)| self.items.get(c).map(|p| p * q))
            .sum()
    }
}

struct LookupTool {
    tables: Arc<Tables>,
}

impl Tool for LookupTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "lookup".into(),
            description: "Look up a row: table `orders` (key like \"#417\") gives its lines; table `items` (key like \"K-17\") gives the unit price.".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "table": {"type": "string", "enum": ["orders", "items"]},
                    "key": {"type": "string"}
                },
                "required": ["table", "key"],
                "additionalProperties": false
            }),
        }
    }
    fn call(&mut self, args: &Value, _ctx: &ToolContext) -> ToolResult {
        let table = args["table"].as_str().unwrap_or("");
        let key = args["key"].as_str().unwrap_or("").trim();
        match table {
            "orders" => match self.tables.orders.get(key) {
                Some(lines) => {
                    let l: Vec<Value> = lines.iter().map(|(c, q)| serde_json::json!({"item": c, "quantity": q})).collect();
                    ToolResult::ok(serde_json::json!({"order": key, "lines": l}).to_string())
                }
                None => ToolResult::error(format!("no order `{key}`")),
            },
            _ => match self.tables.items.get(key) {
                Some(p) => ToolResult::ok(serde_json::json!({"item": key, "price": Rational::new(*p, 100).map(|r| r.to_fixed(2))}).to_string()),
                None => ToolResult::error(format!("no item `{key}`")),
            },
        }
    }
}

/// The lookup-chain env.
pub struct LookupEnv {
    cfg: LookupConfig,
    tables: Arc<Tables>,
    question: String,
    answer: String,
    needed: Vec<(String, String)>,
    known: BTreeSet<String>,
    reg: ToolRegistry,
    calls: Vec<ToolCallRecord>,
    result: RewardBreakdown,
    done: bool,
}

impl std::fmt::Debug for LookupEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupEnv")
            .field("question", &self.question)
            .finish()
    }
}

impl LookupEnv {
    /// A new env.
    pub fn new(cfg: LookupConfig) -> Self {
        LookupEnv {
            cfg,
            tables: Arc::new(Tables {
                items: BTreeMap::new(),
                orders: BTreeMap::new(),
            }),
            question: String::new(),
            answer: String::new(),
            needed: Vec::new(),
            known: BTreeSet::new(),
            reg: ToolRegistry::new(vec![]),
            calls: Vec::new(),
            result: RewardBreakdown::zero(),
            done: false,
        }
    }
    /// The minimal number of lookups for the current question.
    pub fn min_lookups(&self) -> usize {
        self.needed.len()
    }
}

impl Env for LookupEnv {
    fn name(&self) -> &str {
        "lookup"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let mut r = rng(task.seed);
        let mut items = BTreeMap::new();
        while items.len() < self.cfg.items.max(2) {
            items.insert(
                format!("K-{}", r.random_range(10..100)),
                r.random_range(50..5000i128),
            );
        }
        let codes: Vec<String> = items.keys().cloned().collect();
        let mut orders = BTreeMap::new();
        while orders.len() < self.cfg.orders.max(2) {
            let n = r.random_range(1..=self.cfg.max_lines.max(1));
            let mut lines: Vec<(String, i128)> = Vec::new();
            for _ in 0..n {
                let c = codes[r.random_range(0..codes.len())].clone();
                if !lines.iter().any(|(x, _)| *x == c) {
                    lines.push((c, r.random_range(1..6)));
                }
            }
            orders.insert(format!("#{}", r.random_range(100..1000)), lines);
        }
        let tables = Tables { items, orders };
        let ids: Vec<String> = tables.orders.keys().cloned().collect();
        let a = ids[r.random_range(0..ids.len())].clone();
        let (question, cents, order_ids) = if r.random_bool(0.5) {
            let t = tables.order_total(&a).unwrap_or(0);
            (format!("What is the total cost of order {a}?"), t, vec![a])
        } else {
            let mut b = ids[r.random_range(0..ids.len())].clone();
            if b == a {
                b = ids[(ids.iter().position(|x| *x == a).unwrap_or(0) + 1) % ids.len()].clone();
            }
            let d = tables.order_total(&a).unwrap_or(0) - tables.order_total(&b).unwrap_or(0);
            (
                format!(
                    "How much more does order {a} cost than order {b}? (The answer may be negative.)"
                ),
                d,
                vec![a, b],
            )
        };
        let mut needed: Vec<(String, String)> = order_ids
            .iter()
            .map(|o| ("orders".to_string(), o.clone()))
            .collect();
        let mut seen = BTreeSet::new();
        for o in &order_ids {
            for (c, _) in &tables.orders[o] {
                if seen.insert(c.clone()) {
                    needed.push(("items".into(), c.clone()));
                }
            }
        }
        self.tables = Arc::new(tables);
        self.answer = Rational::new(cents, 100)
            .map(|v| v.to_fixed(2))
            .unwrap_or_default();
        self.question = question;
        self.needed = needed;
        self.known.clear();
        self.calls.clear();
        self.done = false;
        self.result = RewardBreakdown::zero();
        self.reg = ToolRegistry::new(vec![
            Box::new(LookupTool {
                tables: self.tables.clone(),
            }),
            Box::new(CalculatorTool),
        ]);
        Ok(Reset {
            messages: vec![
                Message::system(
                    "You answer questions about a shop's orders. Use the tools: <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>. Give the final amount with two decimals in <answer></answer>.",
                ),
                Message::user(self.question.clone()),
            ],
            tools: self.reg.specs(),
            stop: vec!["</answer>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        if self.question.is_empty() || self.done {
            return Err(EnvError::Protocol {
                env: "lookup".into(),
                reason: "step before reset or after the end".into(),
            });
        }
        let tt = handle_tool_turn(&mut self.reg, turn, self.cfg.max_calls_per_turn);
        for (name, args, _) in &tt.ok_calls {
            if name == "lookup" {
                self.known.insert(format!(
                    "{}:{}",
                    args["table"].as_str().unwrap_or(""),
                    args["key"].as_str().unwrap_or("").trim()
                ));
            }
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
            let ok = matches!((Rational::parse_number(&self.answer), Rational::parse_number(a.content.trim())), (Some(g), Some(p)) if g == p);
            self.done = true;
            let pen = 0.05 * unhelpful_calls(&self.calls) as f64;
            self.result = RewardBreakdown::zero()
                .with("success", f64::from(u8::from(ok)))
                .anchor(f64::from(u8::from(ok)) - pen);
            o.answer_span = Some(a.span.clone());
            o.action_key = Some(format!("answer:{}", a.content.trim()));
            o.metrics
                .insert("min_tool_calls".into(), self.needed.len() as f64);
            o.end = Some(EndSignal::Terminated { success: ok });
        } else {
            o.observation = tt.observations;
            if let Some(m) = tt.invalid {
                o.observation.push(Message::env(m));
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
        RewardBreakdown::zero()
            .with("success", 0.0)
            .anchor(-0.05 * unhelpful_calls(view.tool_calls) as f64)
    }
    fn state_key(&self) -> Option<String> {
        Some(self.known.iter().cloned().collect::<Vec<_>>().join(","))
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
        Some(format!("{} (answer {})", self.question, self.answer))
    }
    fn oracle_action(&self) -> Option<String> {
        let calls: Vec<String> = self
            .needed
            .iter()
            .filter(|(t, k)| !self.known.contains(&format!("{t}:{k}")))
            .take(self.cfg.max_calls_per_turn)
            .map(|(t, k)| format!("<tool_call>{{\"name\": \"lookup\", \"arguments\": {{\"table\": \"{t}\", \"key\": \"{k}\"}}}}</tool_call>"))
            .collect();
        if calls.is_empty() {
            Some(format!("<answer>{}</answer>", self.answer))
        } else {
            Some(calls.join("\n"))
        }
    }
}

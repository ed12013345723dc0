//! MasHost-style team builder (experimental): the policy is a host that builds a
//! small graph of deterministic role agents for a generated order-total task,
//! then runs it. Actions (one per turn, optionally inside `<action>`):
//! `add_role {"role": R}` with R in parser / lookup / calculator / verifier /
//! summariser, `connect {"from": "in" | i, "to": j}`, `remove {"node": i}`, `run {}`.
//! Data flows input → parser (lines) → lookup (priced lines) → calculator
//! (total) → \[verifier\] → summariser (answer); the graph's answer comes from a
//! summariser sink, else a calculator sink.
//!
//! Reward (MasHost's three objectives; anchor and ours agree): `accuracy` 1/0
//! − `cost` λ_cost·(agents + edges) − `rationality` λ_rat·(roles whose output
//! is never used).

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{last_tag, truncation_note};
use crate::rational::Rational;
use crate::seed::rng;

/// Team-builder config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeamConfig {
    /// Cost per agent and per edge.
    pub lambda_cost: f64,
    /// Penalty per role whose output is never used.
    pub lambda_rationality: f64,
    /// Maximum turns.
    pub max_turns: usize,
    /// Maximum nodes.
    pub max_nodes: usize,
}

impl Default for TeamConfig {
    fn default() -> Self {
        TeamConfig {
            lambda_cost: 0.02,
            lambda_rationality: 0.1,
            max_turns: 14,
            max_nodes: 8,
        }
    }
}

const ROLES: [&str; 5] = ["parser", "lookup", "calculator", "verifier", "summariser"];

#[derive(Debug, Clone, PartialEq)]
enum Data {
    Question,
    Lines(Vec<(String, i128)>),
    Priced(Vec<(i128, i128)>),
    Number(i128),
    Answer(String),
}

/// The team-builder env.
#[derive(Debug, Clone)]
pub struct TeamBuilderEnv {
    cfg: TeamConfig,
    question: String,
    lines: Vec<(String, i128)>,
    catalogue: BTreeMap<String, i128>,
    answer: String,
    nodes: Vec<Option<&'static str>>,
    edges: Vec<(Option<usize>, usize)>,
    result: Option<RewardBreakdown>,
}

impl TeamBuilderEnv {
    /// A new env.
    pub fn new(cfg: TeamConfig) -> Self {
        TeamBuilderEnv {
            cfg,
            question: String::new(),
            lines: vec![],
            catalogue: BTreeMap::new(),
            answer: String::new(),
            nodes: vec![],
            edges: vec![],
            result: None,
        }
    }
    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|r| format!("{i}:{r}")))
            .collect();
        let edges: Vec<String> = self
            .edges
            .iter()
            .map(|(f, t)| format!("{}->{t}", f.map_or("in".to_string(), |x| x.to_string())))
            .collect();
        format!(
            "Graph: nodes [{}], edges [{}]",
            nodes.join(", "),
            edges.join(", ")
        )
    }
    fn live(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(Option::is_some)
    }
    /// Executes the graph: `(answer, used flags per node)`.
    fn execute(&self) -> (Option<String>, Vec<bool>) {
        let n = self.nodes.len();
        let mut out: Vec<Option<Data>> = vec![None; n];
        let mut used = vec![false; n];
        // Kahn's order; nodes in cycles never run.
        let mut indeg = vec![0usize; n];
        for (f, t) in &self.edges {
            if f.is_some() {
                indeg[*t] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| self.live(i) && indeg[i] == 0).collect();
        let mut order = Vec::new();
        while let Some(i) = ready.pop() {
            order.push(i);
            for (f, t) in &self.edges {
                if *f == Some(i) {
                    indeg[*t] -= 1;
                    if indeg[*t] == 0 {
                        ready.push(*t);
                    }
                }
            }
        }
        order.sort_by_key(|&i| i);
        let mut changed = true;
        let mut rounds = 0;
        while changed && rounds < n + 1 {
            changed = false;
            rounds += 1;
            for &i in &order {
                if out[i].is_some() {
                    continue;
                }
                let inputs: Vec<(Option<usize>, Data)> = self
                    .edges
                    .iter()
                    .filter(|(_, t)| *t == i)
                    .filter_map(|(f, _)| match f {
                        None => Some((None, Data::Question)),
                        Some(x) => out[*x].clone().map(|d| (Some(*x), d)),
                    })
                    .collect();
                let role = self.nodes[i].unwrap_or("");
                let mut consumed = None;
                let res = inputs.iter().find_map(|(src, d)| {
                    let r = match (role, d) {
                        ("parser", Data::Question) => Some(Data::Lines(self.lines.clone())),
                        ("lookup", Data::Lines(l)) => Some(Data::Priced(
                            l.iter()
                                .map(|(c, q)| (self.catalogue.get(c).copied().unwrap_or(0), *q))
                                .collect(),
                        )),
                        ("calculator", Data::Priced(p)) => {
                            Some(Data::Number(p.iter().map(|(a, b)| a * b).sum()))
                        }
                        ("verifier", Data::Number(x)) => Some(Data::Number(*x)),
                        ("summariser", Data::Number(x)) => Some(Data::Answer(
                            Rational::new(*x, 100)
                                .map(|r| r.to_fixed(2))
                                .unwrap_or_default(),
                        )),
                        _ => None,
                    };
                    if r.is_some() {
                        consumed = *src;
                    }
                    r
                });
                if let Some(r) = res {
                    out[i] = Some(r);
                    if let Some(s) = consumed {
                        used[s] = true;
                    }
                    changed = true;
                }
            }
        }
        let sinks: Vec<usize> = (0..n)
            .filter(|&i| self.live(i) && !self.edges.iter().any(|(f, _)| *f == Some(i)))
            .collect();
        let mut answer = None;
        for &s in &sinks {
            if let Some(Data::Answer(a)) = &out[s] {
                answer = Some(a.clone());
                used[s] = true;
            }
        }
        if answer.is_none() {
            for &s in &sinks {
                if let Some(Data::Number(x)) = &out[s] {
                    answer = Rational::new(*x, 100).map(|r| r.to_fixed(2));
                    used[s] = true;
                }
            }
        }
        (answer, used)
    }
    fn parse(text: &str) -> std::result::Result<(String, Value), String> {
        let body = last_tag(text, "action")
            .map(|t| t.content.to_string())
            .unwrap_or_else(|| text.to_string());
        let body = body.trim();
        let (name, rest) = match body.find('{') {
            Some(i) => (body[..i].trim(), body[i..].trim()),
            None => (body, "{}"),
        };
        if !["add_role", "connect", "remove", "run"].contains(&name) {
            return Err(format!(
                "unknown action `{name}`; use add_role, connect, remove or run"
            ));
        }
        let v: Value = serde_json::from_str(rest)
            .map_err(|e| format!("arguments of `{name}` are not valid JSON: {e}"))?;
        Ok((name.to_string(), v))
    }
    fn node_arg(&self, v: &Value, key: &str) -> std::result::Result<Option<usize>, String> {
        match v.get(key) {
            Some(Value::String(s)) if s == "in" => Ok(None),
            Some(x) => {
                let i = x
                    .as_u64()
                    .ok_or_else(|| format!("`{key}` must be \"in\" or a node number"))?
                    as usize;
                if self.live(i) {
                    Ok(Some(i))
                } else {
                    Err(format!("node {i} does not exist"))
                }
            }
            None => Err(format!("missing `{key}`")),
        }
    }
}

impl Env for TeamBuilderEnv {
    fn name(&self) -> &str {
        "team-builder"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let mut r = rng(task.seed);
        self.catalogue = (0..6)
            .map(|_| {
                (
                    format!("K-{}", r.random_range(10..100)),
                    r.random_range(50..3000i128),
                )
            })
            .collect();
        let codes: Vec<String> = self.catalogue.keys().cloned().collect();
        let n = r.random_range(1..=3usize).min(codes.len());
        self.lines = (0..n)
            .map(|i| (codes[i].clone(), r.random_range(1..6)))
            .collect();
        let total: i128 = self.lines.iter().map(|(c, q)| self.catalogue[c] * q).sum();
        self.answer = Rational::new(total, 100)
            .map(|v| v.to_fixed(2))
            .unwrap_or_default();
        let items: Vec<String> = self
            .lines
            .iter()
            .map(|(c, q)| format!("{q} x {c}"))
            .collect();
        self.question = format!(
            "An order contains {}. Prices are in the catalogue. What is the total cost?",
            items.join(" and ")
        );
        self.nodes.clear();
        self.edges.clear();
        self.result = None;
        Ok(Reset {
            messages: vec![Message::user(format!(
                "You are the host of a team of agents. Build a graph that answers the task, then run it.\nTask: {}\nRoles: parser (question -> order lines), lookup (lines -> prices), calculator (prices -> total), verifier (total -> total), summariser (total -> answer).\nActions, one per turn: add_role {{\"role\": R}}, connect {{\"from\": \"in\" or node, \"to\": node}}, remove {{\"node\": i}}, run {{}}. Every agent and edge costs {}; unused agents are penalised.\n{}",
                self.question,
                self.cfg.lambda_cost,
                self.describe()
            ))],
            tools: vec![],
            stop: vec!["</action>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        if self.question.is_empty() || self.result.is_some() {
            return Err(EnvError::Protocol {
                env: "team-builder".into(),
                reason: "step before reset or after run".into(),
            });
        }
        let (name, v) = match Self::parse(turn.text) {
            Ok(x) => x,
            Err(e) => {
                let mut o = StepOutcome::invalid(
                    format!(
                        "Invalid action: {e}{}.\n{}",
                        truncation_note(turn.truncated()),
                        self.describe()
                    ),
                    0.0,
                );
                o.state_key = self.state_key();
                return Ok(o);
            }
        };
        let applied: std::result::Result<(), String> = match name.as_str() {
            "add_role" => match v
                .get("role")
                .and_then(Value::as_str)
                .and_then(|r| ROLES.iter().find(|x| **x == r))
            {
                Some(r) if self.nodes.iter().flatten().count() < self.cfg.max_nodes => {
                    self.nodes.push(Some(r));
                    Ok(())
                }
                Some(_) => Err(format!("at most {} agents", self.cfg.max_nodes)),
                None => Err(format!("`role` must be one of {}", ROLES.join(", "))),
            },
            "connect" => match (self.node_arg(&v, "from"), self.node_arg(&v, "to")) {
                (Ok(f), Ok(Some(t))) if f != Some(t) => {
                    if !self.edges.contains(&(f, t)) {
                        self.edges.push((f, t));
                    }
                    Ok(())
                }
                (Ok(_), Ok(_)) => Err("`to` must be a node other than `from` (not \"in\")".into()),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            "remove" => match self.node_arg(&v, "node") {
                Ok(Some(i)) => {
                    self.nodes[i] = None;
                    self.edges.retain(|(f, t)| *f != Some(i) && *t != i);
                    Ok(())
                }
                Ok(None) => Err("cannot remove the input".into()),
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        if let Err(e) = applied {
            let mut o =
                StepOutcome::invalid(format!("Invalid action: {e}.\n{}", self.describe()), 0.0);
            o.state_key = self.state_key();
            return Ok(o);
        }
        let key = format!("{name}:{}", crate::tool::canonical_json(&v));
        if name == "run" {
            let (answer, used) = self.execute();
            let ok = answer.as_deref() == Some(self.answer.as_str());
            let agents = self.nodes.iter().flatten().count();
            let unused = (0..self.nodes.len())
                .filter(|&i| self.live(i) && !used[i])
                .count();
            let mut r = RewardBreakdown::zero();
            r.add("accuracy", f64::from(u8::from(ok)));
            r.add(
                "cost",
                -self.cfg.lambda_cost * (agents + self.edges.len()) as f64,
            );
            r.add("rationality", -self.cfg.lambda_rationality * unused as f64);
            let t = r.total;
            self.result = Some(r.anchor(t));
            let mut o = StepOutcome {
                action_valid: true,
                action_key: Some(key),
                end: Some(EndSignal::Terminated { success: ok }),
                state_key: self.state_key(),
                ..Default::default()
            };
            o.metrics.insert("agents".into(), agents as f64);
            o.metrics.insert("unused_agents".into(), unused as f64);
            return Ok(o);
        }
        Ok(StepOutcome {
            observation: vec![Message::env(self.describe())],
            action_valid: true,
            action_key: Some(key),
            end: Some(EndSignal::Continue),
            state_key: self.state_key(),
            ..Default::default()
        })
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result
            .clone()
            .unwrap_or_else(|| RewardBreakdown::zero().with("accuracy", 0.0))
    }
    fn state_key(&self) -> Option<String> {
        let mut edges: Vec<String> = self
            .edges
            .iter()
            .map(|(f, t)| {
                format!(
                    "{}>{}",
                    f.and_then(|x| self.nodes[x]).unwrap_or("in"),
                    self.nodes[*t].unwrap_or("?")
                )
            })
            .collect();
        edges.sort();
        let mut roles: Vec<&str> = self.nodes.iter().flatten().copied().collect();
        roles.sort();
        Some(format!("{}|{}", roles.join(","), edges.join(",")))
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 256,
            max_observation_tokens: 256,
        }
    }
    fn render_debug(&self) -> Option<String> {
        Some(format!(
            "{} (answer {})\n{}",
            self.question,
            self.answer,
            self.describe()
        ))
    }
    fn oracle_action(&self) -> Option<String> {
        let plan = ["parser", "lookup", "calculator", "summariser"];
        let k = self.nodes.len();
        if k < plan.len() {
            return Some(format!(
                "<action>add_role {{\"role\": \"{}\"}}</action>",
                plan[k]
            ));
        }
        let want: Vec<(Option<usize>, usize)> =
            vec![(None, 0), (Some(0), 1), (Some(1), 2), (Some(2), 3)];
        for (f, t) in want {
            if !self.edges.contains(&(f, t)) {
                let from = f.map_or("\"in\"".to_string(), |x| x.to_string());
                return Some(format!(
                    "<action>connect {{\"from\": {from}, \"to\": {t}}}</action>"
                ));
            }
        }
        Some("<action>run {}</action>".into())
    }
}

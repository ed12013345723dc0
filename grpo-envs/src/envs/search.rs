//! Search-QA with the Search-R1 protocol over a generated knowledge base
//! ([`super::kb`]) indexed by in-process BM25. The policy thinks, issues
//! `<search>query</search>`, receives `<information>Doc 1(Title: t) text …</information>`
//! (top-k, default 3), and ends with `<answer>…</answer>`; a turn with neither
//! gets Search-R1's corrective message.
//!
//! Anchor reward (Search-R1): exact match 0/1 after normalisation. Ours: EM on the
//! policy's answer span as `success`, optional v0.3-style `format` components,
//! metrics `retrieval_hit`, `searches` and `min_searches` (for OTC).

use std::collections::BTreeSet;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kb::{Bm25, Kb, KbSize};
use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::Message;
use crate::parse::{first_tag, normalize_answer, truncation_note};
use crate::seed::{derive_seed, rng};
use crate::tool::{ToolCallRecord, canonical_json};

/// Search-QA config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Documents per search.
    pub topk: usize,
    /// Maximum turns.
    pub max_turns: usize,
    /// World size.
    pub size: KbSize,
    /// Use one world for every task (questions drawn by the instance seed);
    /// `None` generates a world per instance.
    pub world_seed: Option<u64>,
    /// Only questions with at most this many hops.
    pub max_hops: usize,
    /// Add Search-R1 v0.3 format components (0.2 structure for wrong answers, −0.2 correct without structure).
    pub format_reward: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            topk: 3,
            max_turns: 4,
            size: KbSize::default(),
            world_seed: None,
            max_hops: 3,
            format_reward: false,
        }
    }
}

/// The Search-QA env.
#[derive(Debug, Clone)]
pub struct SearchEnv {
    cfg: SearchConfig,
    kb: Option<Kb>,
    index: Option<Bm25>,
    world: Option<u64>,
    q: usize,
    retrieved: BTreeSet<usize>,
    searches: usize,
    hit: bool,
    valid_turns: usize,
    turns: usize,
    result: Option<RewardBreakdown>,
}

const INVALID: &str = "My previous action is invalid. If I want to search, I should put the query between <search> and </search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.";

impl SearchEnv {
    /// A new env.
    pub fn new(cfg: SearchConfig) -> Self {
        SearchEnv {
            cfg,
            kb: None,
            index: None,
            world: None,
            q: 0,
            retrieved: BTreeSet::new(),
            searches: 0,
            hit: false,
            valid_turns: 0,
            turns: 0,
            result: None,
        }
    }
    /// The current question.
    pub fn question(&self) -> Option<&super::kb::Question> {
        self.kb.as_ref()?.questions.get(self.q)
    }
    fn info(&self, query: &str) -> (String, Vec<usize>) {
        let (Some(kb), Some(idx)) = (&self.kb, &self.index) else {
            return (String::new(), vec![]);
        };
        let hits = idx.search(query, self.cfg.topk);
        let mut s = String::from("<information>");
        for (i, (d, _)) in hits.iter().enumerate() {
            let doc = &kb.docs[*d];
            s.push_str(&format!(
                "Doc {}(Title: {}) {}\n",
                i + 1,
                doc.title,
                doc.text
            ));
        }
        if hits.is_empty() {
            s.push_str("No results.");
        }
        s.push_str("</information>");
        (s, hits.into_iter().map(|(d, _)| d).collect())
    }
}

impl Env for SearchEnv {
    fn name(&self) -> &str {
        "search-qa"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let world = self.cfg.world_seed.unwrap_or(task.seed);
        if self.world != Some(world) || self.kb.is_none() {
            let kb = Kb::generate(world, self.cfg.size);
            let texts: Vec<String> = kb
                .docs
                .iter()
                .map(|d| format!("{} {}", d.title, d.text))
                .collect();
            self.index = Some(Bm25::new(&texts));
            self.kb = Some(kb);
            self.world = Some(world);
        }
        let kb = self.kb.as_ref().ok_or_else(|| EnvError::Generation {
            env: "search-qa".into(),
            seed: task.seed,
            reason: "no world".into(),
        })?;
        let eligible: Vec<usize> = (0..kb.questions.len())
            .filter(|&i| kb.questions[i].hops <= self.cfg.max_hops)
            .collect();
        if eligible.is_empty() {
            return Err(EnvError::param(
                "search-qa.max_hops",
                "no question has that few hops",
            ));
        }
        let mut r = rng(derive_seed(task.seed, "question", &[]));
        self.q = eligible[r.random_range(0..eligible.len())];
        self.retrieved.clear();
        self.searches = 0;
        self.hit = false;
        self.valid_turns = 0;
        self.turns = 0;
        self.result = None;
        let q = &kb.questions[self.q];
        Ok(Reset {
            messages: vec![Message::user(format!(
                "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. You can search as many times as your want. If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: {}",
                q.text
            ))],
            tools: vec![],
            stop: vec!["</search>".into(), "</answer>".into()],
            state_key: self.state_key(),
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let Some(q) = self.question().cloned() else {
            return Err(EnvError::Protocol {
                env: "search-qa".into(),
                reason: "step before reset".into(),
            });
        };
        if self.result.is_some() {
            return Err(EnvError::Protocol {
                env: "search-qa".into(),
                reason: "step after the episode ended".into(),
            });
        }
        self.turns += 1;
        let s = first_tag(turn.text, "search");
        let a = first_tag(turn.text, "answer");
        // Search-R1 acts on whichever tag comes first.
        let search_first = match (&s, &a) {
            (Some(s), Some(a)) => s.outer.start < a.outer.start,
            (Some(_), None) => true,
            _ => false,
        };
        if search_first {
            let s = s
                .as_ref()
                .map(|t| t.content.trim().to_string())
                .unwrap_or_default();
            let span = first_tag(turn.text, "search").map(|t| t.span);
            if s.is_empty() {
                let mut o = StepOutcome::invalid(format!("Empty query. {INVALID}"), 0.0);
                o.state_key = self.state_key();
                return Ok(o);
            }
            self.valid_turns += 1;
            self.searches += 1;
            let (info, ids) = self.info(&s);
            self.retrieved.extend(ids.iter().copied());
            let gold = normalize_answer(&q.answer);
            if normalize_answer(&info).contains(&gold) {
                self.hit = true;
            }
            let mut terms = super::kb::tokenize(&s);
            terms.sort();
            terms.dedup();
            let rec = ToolCallRecord {
                name: "search".into(),
                arguments: canonical_json(&serde_json::json!({"query": s})),
                ok: true,
                error: None,
                latency_ms: 0.0,
                output_len: info.len(),
            };
            let mut o = StepOutcome {
                observation: vec![Message::env(info)],
                action_valid: true,
                action_span: span,
                action_key: Some(format!("search:{}", terms.join(" "))),
                tool_calls: vec![rec],
                end: Some(EndSignal::Continue),
                state_key: self.state_key(),
                ..Default::default()
            };
            o.metrics.insert("searches".into(), 1.0);
            return Ok(o);
        }
        if let Some(a) = a {
            self.valid_turns += 1;
            let correct = normalize_answer(a.content) == normalize_answer(&q.answer);
            let mut r = RewardBreakdown::zero().with("success", f64::from(u8::from(correct)));
            if self.cfg.format_reward {
                let structured = self.valid_turns == self.turns && turn.text.contains("<think>");
                match (correct, structured) {
                    (true, false) => {
                        r.add("format", -0.2);
                    }
                    (false, true) => {
                        r.add("format", 0.2);
                    }
                    _ => {}
                }
            }
            self.result = Some(r.anchor(f64::from(u8::from(correct))));
            let mut o = StepOutcome {
                action_valid: true,
                answer_span: Some(a.span.clone()),
                action_span: Some(a.span.clone()),
                action_key: Some(format!("answer:{}", normalize_answer(a.content))),
                end: Some(EndSignal::Terminated { success: correct }),
                state_key: self.state_key(),
                ..Default::default()
            };
            o.metrics
                .insert("retrieval_hit".into(), f64::from(u8::from(self.hit)));
            o.metrics.insert("min_searches".into(), q.plan.len() as f64);
            return Ok(o);
        }
        let mut o = StepOutcome::invalid(
            format!("{INVALID}{}", truncation_note(turn.truncated())),
            0.0,
        );
        o.state_key = self.state_key();
        Ok(o)
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result
            .clone()
            .unwrap_or_else(|| RewardBreakdown::zero().with("success", 0.0))
    }
    fn state_key(&self) -> Option<String> {
        Some(
            self.retrieved
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: self.cfg.max_turns,
            max_tokens_per_turn: 500,
            max_observation_tokens: 500,
        }
    }
    fn render_debug(&self) -> Option<String> {
        self.question()
            .map(|q| format!("{} (answer {}, hops {})", q.text, q.answer, q.hops))
    }
    fn oracle_action(&self) -> Option<String> {
        let q = self.question()?;
        let kb = self.kb.as_ref()?;
        // Search each hop's entity until its gold doc has been retrieved, then answer.
        for (query, gold) in q.plan.iter().zip(&q.gold_docs) {
            if !self.retrieved.contains(gold) {
                let _ = kb;
                return Some(format!(
                    "<think>I need {query}.</think><search>{query}</search>"
                ));
            }
        }
        Some(format!(
            "<think>Found it.</think><answer>{}</answer>",
            q.answer
        ))
    }
}

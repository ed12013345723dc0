//! Single-turn verifiable QA over any dataset ([`TaskRecord`]s from a JSONL or Parquet file
//! or given per task) with a verifier: numeric answers (GSM8K/MATH-style, exact
//! rationals), normalised exact match, or code (HumanEval-style tests run through a
//! [`PythonExecutor`]).
//!
//! Anchor reward (verl's GSM8K scorer): 1 correct, else `format_score` 0. Ours:
//! `success` 1/0 plus an optional `format` component for a well-formed final
//! answer. `numeric` is this crate's own light adapter (exact rationals);
//! `math` is grpo-rewards' Math-Verify-style verifier; `code` runs the record's
//! tests in grpo-rewards' sandbox.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dataset::{ColumnMap, TaskRecord, last_boxed, load_tasks};
use crate::env::{
    EndSignal, Env, EpisodeView, Limits, Reset, RewardBreakdown, StepOutcome, TaskSpec, Turn,
};
use crate::error::{EnvError, Result};
use crate::message::{Message, Role};
use crate::parse::{last_tag, normalize_answer};
use crate::rational::Rational;
use crate::tool::PythonExecutor;

/// Column map given as a preset name or in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    /// A preset (`gsm8k`, `math`, `humaneval`, `code_contest`, `bfcl`).
    Preset(String),
    /// An explicit map.
    Map(ColumnMap),
}

/// Which verifier scores answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifierKind {
    /// Numeric equality of the final answer.
    #[default]
    Numeric,
    /// Normalised exact match.
    Exact,
    /// Run the record's tests (`test`, `entry_point`) on prompt + completion
    /// (HumanEval style) in grpo-rewards' sandbox.
    Code,
    /// grpo-rewards' math verifier (Math-Verify semantics).
    Math,
}

/// QA config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaConfig {
    /// Task file (JSONL, or Parquet with the `parquet` feature).
    pub path: Option<String>,
    /// Column mapping.
    pub columns: Columns,
    /// Verifier.
    pub verifier: VerifierKind,
    /// Text appended to the question.
    pub instruction: Option<String>,
    /// Weight of the `format` component (0 = not reported).
    pub format_weight: f64,
    /// Time limit of code tests in seconds.
    pub code_timeout_s: f64,
}

impl Default for QaConfig {
    fn default() -> Self {
        QaConfig {
            path: None,
            columns: Columns::Preset("gsm8k".into()),
            verifier: VerifierKind::Numeric,
            instruction: None,
            format_weight: 0.0,
            code_timeout_s: 10.0,
        }
    }
}

/// A verifier callback `(gold, record, completion) -> (correct, well_formed)`.
pub type CustomVerifier = Arc<dyn Fn(&str, &TaskRecord, &str) -> (bool, bool) + Send + Sync>;

/// The verifier used by a [`QaEnv`].
#[derive(Clone)]
pub enum QaVerifier {
    /// Numeric final answer (own adapter).
    Numeric,
    /// Normalised exact match.
    Exact,
    /// Code tests through an executor.
    Code(Arc<dyn PythonExecutor>),
    /// Any other verifier (e.g. grpo-rewards' math verifier).
    Custom(CustomVerifier),
}

impl std::fmt::Debug for QaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QaVerifier::Numeric => "Numeric",
            QaVerifier::Exact => "Exact",
            QaVerifier::Code(_) => "Code",
            QaVerifier::Custom(_) => "Custom",
        })
    }
}

/// The final answer of a response: last `\boxed{}`, else last `<answer>`, else
/// text after the last `####`, else the last number. Returns the byte span too.
pub fn final_answer(text: &str) -> Option<(String, std::ops::Range<usize>)> {
    if let Some(b) = last_boxed(text) {
        let start = b.as_ptr() as usize - text.as_ptr() as usize;
        return Some((b.trim().to_string(), start..start + b.len()));
    }
    if let Some(t) = last_tag(text, "answer") {
        return Some((t.content.trim().to_string(), t.span));
    }
    if let Some(i) = text.rfind("####") {
        let rest = &text[i + 4..];
        let a = rest.trim();
        if !a.is_empty() {
            let start = i + 4 + (rest.len() - rest.trim_start().len());
            return Some((a.to_string(), start..start + a.len()));
        }
    }
    // Last number.
    let bytes = text.as_bytes();
    let mut end = None;
    for i in (0..bytes.len()).rev() {
        if bytes[i].is_ascii_digit() {
            end = Some(i + 1);
            break;
        }
    }
    let end = end?;
    let mut start = end;
    while start > 0
        && (bytes[start - 1].is_ascii_digit()
            || matches!(bytes[start - 1], b'.' | b',' | b'-' | b'/'))
    {
        start -= 1;
    }
    let s = text[start..end].trim_start_matches(['.', ',']);
    let start = end - s.len();
    Some((s.to_string(), start..end))
}

/// Numeric equality of two answers (commas, `$`, `%` and trailing units ignored).
pub fn numeric_equal(gold: &str, pred: &str) -> bool {
    let clean = |s: &str| -> Option<Rational> {
        let s = s.trim().trim_end_matches('%').replace("\\$", "");
        let s = s
            .strip_prefix("\\text{")
            .map(|x| x.trim_end_matches('}'))
            .unwrap_or(&s)
            .to_string();
        if let Some(r) = Rational::parse_number(&s) {
            return Some(r);
        }
        // "\frac{a}{b}"
        if let Some(rest) = s
            .strip_prefix("\\frac{")
            .or_else(|| s.strip_prefix("\\dfrac{"))
        {
            let (a, b) = rest.split_once("}{")?;
            let b = b.strip_suffix('}')?;
            return Rational::parse_number(a)?.checked_div(Rational::parse_number(b)?);
        }
        let first = s.split_whitespace().next()?;
        Rational::parse_number(first)
    };
    match (clean(gold), clean(pred)) {
        (Some(g), Some(p)) => g == p,
        _ => normalize_answer(gold) == normalize_answer(pred) && !gold.trim().is_empty(),
    }
}

/// Single-turn QA env.
#[derive(Debug, Clone)]
pub struct QaEnv {
    cfg: QaConfig,
    records: Arc<Vec<TaskRecord>>,
    verifier: QaVerifier,
    current: Option<TaskRecord>,
    result: RewardBreakdown,
}

impl QaEnv {
    /// A QA env over records with a verifier.
    pub fn new(cfg: QaConfig, records: Arc<Vec<TaskRecord>>, verifier: QaVerifier) -> Self {
        QaEnv {
            cfg,
            records,
            verifier,
            current: None,
            result: RewardBreakdown::zero(),
        }
    }
    /// Builds from a config, loading `path` (required unless tasks carry records).
    /// `code` runs tests in grpo-rewards' sandbox (an error when no `python3` is found).
    pub fn from_config(cfg: QaConfig) -> Result<Self> {
        let map = match &cfg.columns {
            Columns::Preset(p) => ColumnMap::preset(p)?,
            Columns::Map(m) => m.clone(),
        };
        let records = match &cfg.path {
            Some(p) => load_tasks(p, &map)?,
            None => Vec::new(),
        };
        let verifier = match cfg.verifier {
            VerifierKind::Numeric => QaVerifier::Numeric,
            VerifierKind::Exact => QaVerifier::Exact,
            VerifierKind::Code => {
                QaVerifier::Code(crate::exec::SandboxExecutor::detect()?.shared())
            }
            VerifierKind::Math => QaVerifier::Custom(crate::exec::math_verifier(
                grpo_rewards::math::MathConfig::default(),
            )),
        };
        Ok(Self::new(cfg, Arc::new(records), verifier))
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    fn instruction(&self) -> String {
        if let Some(i) = &self.cfg.instruction {
            return i.clone();
        }
        match self.verifier {
            QaVerifier::Code(_) => "Complete the function. Reply with the code of the function body continuation only, in a ```python block.".into(),
            _ => "Think step by step, then give the final answer in \\boxed{}.".into(),
        }
    }
}

fn code_block(text: &str) -> &str {
    if let Some(i) = text.find("```") {
        let rest = &text[i + 3..];
        let rest = rest.strip_prefix("python").unwrap_or(rest);
        let rest = rest.strip_prefix('\n').unwrap_or(rest);
        return rest.find("```").map_or(rest, |j| &rest[..j]);
    }
    text
}

impl Env for QaEnv {
    fn name(&self) -> &str {
        "qa"
    }
    fn reset(&mut self, task: &TaskSpec) -> Result<Reset> {
        let rec = match &task.record {
            Some(r) => r.clone(),
            None => {
                if self.records.is_empty() {
                    return Err(EnvError::param(
                        "qa.path",
                        "no records: give `path` (a JSONL or Parquet task file) or a record in the TaskSpec",
                    ));
                }
                self.records[(task.seed % self.records.len() as u64) as usize].clone()
            }
        };
        let messages = if rec.messages.is_empty() {
            vec![Message::user(format!(
                "{}\n\n{}",
                rec.prompt,
                self.instruction()
            ))]
        } else {
            // A conversational prompt is kept as given; the instruction follows
            // the last user message.
            let mut msgs = rec.messages.clone();
            if let Some(last) = msgs.iter_mut().rev().find(|m| m.role == Role::User) {
                last.content = format!("{}\n\n{}", last.content, self.instruction());
            }
            msgs
        };
        self.current = Some(rec);
        self.result = RewardBreakdown::zero();
        Ok(Reset {
            messages,
            tools: vec![],
            stop: vec![],
            state_key: None,
        })
    }
    fn step(&mut self, turn: &Turn<'_>) -> Result<StepOutcome> {
        let rec = self.current.clone().ok_or_else(|| EnvError::Protocol {
            env: "qa".into(),
            reason: "step before reset".into(),
        })?;
        let found = final_answer(turn.text);
        let (correct, formed, span) = match &self.verifier {
            QaVerifier::Numeric => match &found {
                Some((a, s)) => (numeric_equal(&rec.answer, a), true, Some(s.clone())),
                None => (false, false, None),
            },
            QaVerifier::Exact => match &found {
                Some((a, s)) => (
                    normalize_answer(a) == normalize_answer(&rec.answer),
                    true,
                    Some(s.clone()),
                ),
                None => (false, false, None),
            },
            QaVerifier::Custom(f) => {
                let (c, w) = f(&rec.answer, &rec, turn.text);
                (c, w, found.map(|(_, s)| s))
            }
            QaVerifier::Code(exec) => {
                let body = code_block(turn.text);
                let test = rec.extra.get("test").and_then(|t| t.as_str()).unwrap_or("");
                let entry = rec
                    .extra
                    .get("entry_point")
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                let program = format!("{}{}\n\n{}\n\ncheck({})\n", rec.prompt, body, test, entry);
                let out = exec.run(
                    &program,
                    "",
                    Duration::from_secs_f64(self.cfg.code_timeout_s),
                );
                (out.success && !out.timed_out, !body.trim().is_empty(), None)
            }
        };
        let mut r = RewardBreakdown::zero().with("success", f64::from(u8::from(correct)));
        if self.cfg.format_weight != 0.0 {
            r.add(
                "format",
                self.cfg.format_weight * f64::from(u8::from(formed)),
            );
        }
        self.result = r.anchor(f64::from(u8::from(correct)));
        Ok(StepOutcome {
            end: Some(EndSignal::Terminated { success: correct }),
            action_valid: formed,
            answer_span: span,
            ..Default::default()
        })
    }
    fn final_reward(&self, _view: &EpisodeView<'_>) -> RewardBreakdown {
        self.result.clone()
    }
    fn limits(&self) -> Limits {
        Limits {
            max_turns: 1,
            max_tokens_per_turn: 1024,
            max_observation_tokens: 64,
        }
    }
    fn oracle_action(&self) -> Option<String> {
        let r = self.current.as_ref()?;
        Some(match self.verifier {
            QaVerifier::Code(_) => format!("```python\n{}```", r.answer),
            _ => format!("The answer is \\boxed{{{}}}.", r.answer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(final_answer("so \\boxed{18} ok").unwrap().0, "18");
        assert_eq!(final_answer("x #### 1,234").unwrap().0, "1,234");
        assert_eq!(final_answer("I think 3 then 42.").unwrap().0, "42");
        assert!(numeric_equal("1234", "1,234"));
        assert!(numeric_equal("0.5", "\\frac{1}{2}"));
        assert!(numeric_equal("18", "$18"));
        assert!(!numeric_equal("18", "19"));
        let t = "The total is \\boxed{7}";
        let (_, s) = final_answer(t).unwrap();
        assert_eq!(&t[s], "7");
    }
}

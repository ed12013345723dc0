//! Math answer verification with Math-Verify semantics.
//!
//! [`verify`] extracts the final answer from a response (`\boxed{}` / `\fbox{}`,
//! "final answer is", "answer:", GSM8K `####`, LaTeX spans, plain numbers; see
//! [`extract`]), parses gold and prediction into one tree ([`expr::E`]) and
//! decides equivalence ([`compare`]): exact rationals, decimals rounded to
//! `float_rounding` places when one side is a decimal literal, symbolic
//! expressions by evaluation at fixed pseudo-random points (positive values,
//! so `\sqrt{1/n}` equals `1/\sqrt{n}`), sets order-free, tuples ordered,
//! intervals with their ends, matrices element-wise, relations up to a
//! constant factor, and gold-driven unwrapping of `x = 3` vs `3`.
//!
//! Options use Math-Verify's names (`gold_extraction`, `pred_extraction`,
//! `float_rounding`, `numeric_precision`, `strict`, `allow_set_relation_comp`,
//! `boxed_match_priority`, `malformed_operators`, lighteval's `language`) plus
//! `letters`, `letters_without_anchor` and `percent_accepts_bare`. A gold
//! that is a word or a primed symbol (`odd`, `f'`) is compared as text.
//!
//! ```
//! use grpo_rewards::math::{verify, MathConfig};
//! let v = verify("\\frac{1}{2}", "So the answer is $\\boxed{0.5}$.", &MathConfig::default()).unwrap();
//! assert!(v.correct);
//! assert_eq!(v.extracted.as_deref(), Some("0.5"));
//! ```

pub mod compare;
pub mod eval;
pub mod expr;
pub mod extract;
pub mod parse;
pub mod rat;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RewardError};

/// What to extract from a string (Math-Verify's extraction configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractionTarget {
    /// LaTeX: `\boxed{}`, `$...$`, `\[...\]`, `\(...\)`.
    Latex,
    /// Plain numbers and expressions.
    Expr,
    /// Multiple-choice letters (lighteval's `indices` / Math-Verify's `string`).
    #[serde(alias = "indices", alias = "string", alias = "native_letters")]
    Letters,
}

/// Options, named as in Math-Verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MathConfig {
    /// Extraction targets for the gold answer (lighteval: `gold_extraction_target`).
    #[serde(alias = "gold_extraction_target")]
    pub gold_extraction: Vec<ExtractionTarget>,
    /// Extraction targets for the prediction (lighteval: `pred_extraction_target`).
    #[serde(alias = "pred_extraction_target")]
    pub pred_extraction: Vec<ExtractionTarget>,
    /// Decimal places both sides are rounded to when one side is a decimal
    /// (lighteval: `precision`).
    #[serde(alias = "precision")]
    pub float_rounding: u32,
    /// Significant digits for numeric comparison of irrational values.
    pub numeric_precision: u32,
    /// Free symbols must match by name (`f(x)` != `f(y)`).
    pub strict: bool,
    /// Accept an inequality prediction for an interval gold.
    pub allow_set_relation_comp: bool,
    /// Priority of `\boxed{}` matches (0 = before everything, Math-Verify default 50).
    pub boxed_match_priority: i32,
    /// A bare number matches a percent gold (`28\%` vs `28`); off by default, as
    /// Math-Verify (`$28\%$` vs `$28$` is false) — NeMo-Skills / Qwen accept it.
    pub percent_accepts_bare: bool,
    /// Language of the answer anchors and punctuation (lighteval's `language`):
    /// ISO code or English name (`en`, `fr`, `zh`, `ja`, `de`, `es`, `it`, `pt`, `ru`,
    /// `ar`, `hi`).
    pub language: String,
    /// Multiple-choice strings extracted by the `letters` target (Math-Verify's
    /// `strings`); empty = the language's letters (A-E; А-Е in Russian).
    #[serde(alias = "strings")]
    pub letters: Vec<String>,
    /// Extract letters without an anchor phrase (`try_extract_without_anchor`).
    #[serde(alias = "try_extract_without_anchor")]
    pub letters_without_anchor: bool,
    /// Repair malformed operators (`\frac12`, `\sqrt3`) before parsing, as
    /// Math-Verify's `NormalizationConfig.malformed_operators` (default on; its
    /// README recommends off for predictions in rewards).
    pub malformed_operators: bool,
}

impl Default for MathConfig {
    fn default() -> Self {
        MathConfig {
            gold_extraction: vec![ExtractionTarget::Latex, ExtractionTarget::Expr],
            pred_extraction: vec![ExtractionTarget::Latex, ExtractionTarget::Expr],
            float_rounding: 6,
            numeric_precision: 15,
            strict: true,
            allow_set_relation_comp: false,
            boxed_match_priority: 0,
            percent_accepts_bare: false,
            malformed_operators: true,
            language: "en".into(),
            letters: Vec::new(),
            letters_without_anchor: true,
        }
    }
}

/// Outcome of one math verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathVerdict {
    /// Whether the prediction is equivalent to the gold answer.
    pub correct: bool,
    /// 1.0 when correct, else 0.0.
    pub reward: f64,
    /// The prediction substring that was compared (None when nothing parsed).
    pub extracted: Option<String>,
    /// The gold substring that was used.
    pub gold_extracted: String,
    /// Why: which rule decided, or why nothing was compared.
    pub reason: String,
}

impl MathConfig {
    fn extract_opts(&self) -> Result<extract::ExtractOpts> {
        let lang = extract::lang(&self.language).ok_or_else(|| RewardError::InvalidInput {
            field: "options.language".into(),
            reason: format!(
                "unknown language {:?} (en, fr, zh, ja, de, es, it, pt, ru, ar, hi)",
                self.language
            ),
        })?;
        let letters = if self.letters.is_empty() {
            lang.indices.iter().map(|s| s.to_string()).collect()
        } else {
            self.letters.clone()
        };
        Ok(extract::ExtractOpts {
            boxed_priority: self.boxed_match_priority,
            lang,
            letters,
            letters_without_anchor: self.letters_without_anchor,
        })
    }
}

fn first_parse(
    text: &str,
    targets: &[ExtractionTarget],
    o: &extract::ExtractOpts,
    malformed: bool,
) -> Option<(String, expr::E)> {
    for c in extract::candidates_with(text, targets, o) {
        if !malformed && parse::malformed_operator(&c.text) {
            continue;
        }
        if let Some(e) = parse::parse_math(&c.text) {
            return Some((c.text, e));
        }
    }
    None
}

static TEXT_WRAP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|boxed|fbox)\s*")
        .expect("static regex")
});

/// An answer compared as text: lowercased, without `$`, braces, `\text{}`-style
/// wrappers, surrounding punctuation and extra spaces.
fn text_norm(s: &str) -> String {
    let s = TEXT_WRAP.replace_all(s, "");
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '$' | '{' | '}'))
        .collect();
    let s = s
        .trim()
        .trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '!' | '*' | '"'))
        .trim();
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The answer of `text` as text: the first extracted candidate, else what
/// follows the last answer anchor, else the whole (short, one-line) text.
fn text_answer(
    text: &str,
    targets: &[ExtractionTarget],
    o: &extract::ExtractOpts,
) -> Option<String> {
    let raw = match extract::candidates_with(text, targets, o)
        .into_iter()
        .next()
    {
        Some(c) => c.text,
        None => {
            let lower = text.to_lowercase();
            match lower.rfind(&o.lang.answer.to_lowercase()) {
                Some(i) => {
                    let rest = &text[i + o.lang.answer.len()..];
                    let rest = rest.trim_start();
                    let rest = rest.strip_prefix("is").unwrap_or(rest);
                    rest.trim_start_matches([':', '：', ' '])
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                }
                None if text.len() <= 100 && !text.trim().contains('\n') => text.to_string(),
                None => return None,
            }
        }
    };
    let t = text_norm(&raw);
    (!t.is_empty()).then_some(t)
}

/// Verifies `pred` (a whole response or an answer) against `gold`.
///
/// Errors only when the gold answer cannot be parsed (bad task data); a
/// prediction that yields nothing is an incorrect verdict with a reason.
pub fn verify(gold: &str, pred: &str, cfg: &MathConfig) -> Result<MathVerdict> {
    let o = cfg.extract_opts()?;
    let mal = cfg.malformed_operators;
    let Some((gold_text, g)) = first_parse(gold, &cfg.gold_extraction, &o, true) else {
        // words and primed symbols (`odd`, `f'`): compared as text
        let Some(gt) = text_answer(gold, &cfg.gold_extraction, &o) else {
            return Err(RewardError::InvalidInput {
                field: "gold".into(),
                reason: format!("no parsable answer in {:?}", truncate(gold, 200)),
            });
        };
        let pt = text_answer(pred, &cfg.pred_extraction, &o);
        let ok = pt.as_deref() == Some(gt.as_str());
        return Ok(MathVerdict {
            correct: ok,
            reward: if ok { 1.0 } else { 0.0 },
            extracted: pt,
            gold_extracted: gt,
            reason: if ok {
                "equal as text".into()
            } else {
                "gold compared as text: differs".into()
            },
        });
    };
    let Some((pred_text, p)) = first_parse(pred, &cfg.pred_extraction, &o, mal) else {
        return Ok(MathVerdict {
            correct: false,
            reward: 0.0,
            extracted: None,
            gold_extracted: gold_text,
            reason: "no answer could be extracted from the prediction".into(),
        });
    };
    let (ok, why) = compare::equal(&g, &p, cfg);
    Ok(MathVerdict {
        correct: ok,
        reward: if ok { 1.0 } else { 0.0 },
        extracted: Some(pred_text),
        gold_extracted: gold_text,
        reason: why.to_string(),
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// JSON entry point used by `grpo verify math`: input
/// `{"gold", "pred", "options"?}`, output
/// `{"correct", "reward", "extracted", "reason"}`.
pub fn verify_json(v: &serde_json::Value) -> Result<serde_json::Value> {
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .ok_or_else(|| RewardError::InvalidInput {
                field: k.into(),
                reason: "missing or not a string".into(),
            })
    };
    let gold = field("gold")?;
    let pred = field("pred")?;
    let cfg: MathConfig = match v.get("options") {
        None | Some(serde_json::Value::Null) => MathConfig::default(),
        Some(o) => serde_json::from_value(o.clone()).map_err(|e| RewardError::InvalidInput {
            field: "options".into(),
            reason: e.to_string(),
        })?,
    };
    let r = verify(gold, pred, &cfg)?;
    Ok(serde_json::json!({
        "correct": r.correct,
        "reward": r.reward,
        "extracted": r.extracted,
        "reason": r.reason,
    }))
}

//! One entry point over all verifiers: the [`Verifier`] trait and a
//! serde-tagged [`VerifierConfig`] (`{"type": "math", ...}`) so run configs
//! and datasets can select a verifier and its options by name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RewardError};
use crate::gui::{GuiOptions, Profile};
use crate::math::MathConfig;
use crate::toolcall::ToolCallConfig;

/// A verifier that scores one JSON task record (the same record shapes as
/// `grpo verify`). Malformed model output is a verdict; `Err` is reserved
/// for bad task data.
pub trait Verifier: Send + Sync {
    /// Short name (`math`, `code`, `toolcall`, `gui`).
    fn name(&self) -> &'static str;
    /// Scores one record and returns the verifier's JSON verdict.
    fn verify_json(&self, record: &Value) -> Result<Value>;
}

/// A verifier selected by name with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VerifierConfig {
    /// Math answers; the fields are [`MathConfig`]'s (Math-Verify names).
    Math(MathConfig),
    /// Programs in the sandbox (per-record `options` as in `grpo verify code`).
    Code,
    /// Tool calls; the fields are [`ToolCallConfig`]'s.
    Toolcall(ToolCallConfig),
    /// GUI actions under one profile.
    Gui {
        /// The anchor profile.
        profile: Profile,
        /// Screen size, frames, scales.
        #[serde(default)]
        options: GuiOptions,
    },
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a Value> {
    v.get(k).ok_or_else(|| RewardError::InvalidInput {
        field: k.into(),
        reason: "missing".into(),
    })
}

fn str_field<'a>(v: &'a Value, k: &str) -> Result<&'a str> {
    field(v, k)?
        .as_str()
        .ok_or_else(|| RewardError::InvalidInput {
            field: k.into(),
            reason: "not a string".into(),
        })
}

impl Verifier for VerifierConfig {
    fn name(&self) -> &'static str {
        match self {
            VerifierConfig::Math(_) => "math",
            VerifierConfig::Code => "code",
            VerifierConfig::Toolcall(_) => "toolcall",
            VerifierConfig::Gui { .. } => "gui",
        }
    }

    fn verify_json(&self, record: &Value) -> Result<Value> {
        match self {
            VerifierConfig::Math(cfg) => {
                let r = crate::math::verify(
                    str_field(record, "gold")?,
                    str_field(record, "pred")?,
                    cfg,
                )?;
                Ok(serde_json::json!({
                    "correct": r.correct, "reward": r.reward, "extracted": r.extracted, "reason": r.reason
                }))
            }
            VerifierConfig::Code => crate::code::verify_json(record),
            VerifierConfig::Toolcall(cfg) => {
                let functions = record.get("functions").cloned().unwrap_or(Value::Null);
                let possible = record
                    .get("possible_answer")
                    .cloned()
                    .unwrap_or(Value::Null);
                let r = crate::toolcall::check(
                    &functions,
                    &possible,
                    str_field(record, "model_output_text")?,
                    cfg,
                )?;
                Ok(
                    serde_json::json!({"valid": r.valid, "error_type": r.error_type, "error": r.error}),
                )
            }
            VerifierConfig::Gui { profile, options } => {
                let s = crate::gui::score(
                    *profile,
                    field(record, "gold")?,
                    field(record, "pred")?,
                    options,
                )?;
                Ok(
                    serde_json::json!({"reward": s.reward, "components": s.components, "type_match": s.type_match}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_by_name_with_options() {
        let v: VerifierConfig =
            serde_json::from_value(json!({"type": "math", "float_rounding": 3})).unwrap();
        assert_eq!(v.name(), "math");
        let out = v
            .verify_json(&json!({"gold": "\\frac{1}{3}", "pred": "$0.333$"}))
            .unwrap();
        assert_eq!(out["correct"], true);
        let t: VerifierConfig = serde_json::from_value(json!({"type": "toolcall"})).unwrap();
        let out = t
            .verify_json(&json!({"functions": [], "possible_answer": [{"f": {"a": [1]}}], "model_output_text": "[f(a=1)]"}))
            .unwrap();
        assert_eq!(out["valid"], true);
        let g: VerifierConfig =
            serde_json::from_value(json!({"type": "gui", "profile": "ui_r1"})).unwrap();
        let out = g
            .verify_json(&json!({"gold": {"action": "click", "bbox": [0, 0, 9, 9]}, "pred": {"action": "click", "coordinate": [1, 1]}}))
            .unwrap();
        assert_eq!(out["reward"], 3.0);
        assert!(
            serde_json::from_value::<VerifierConfig>(json!({"type": "math", "nope": 1})).is_err()
        );
        assert!(serde_json::from_value::<VerifierConfig>(json!({"type": "chess"})).is_err());
    }
}

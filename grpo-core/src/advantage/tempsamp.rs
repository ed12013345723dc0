//! TempSamp-R1 soft advantage (algorithms.md §9.7) — **reconstructed**: the
//! abstract fixes "a non-linear soft advantage via an asymmetric
//! transformation" of rewards; the transform itself was not reached. We apply
//! `T(r) = μ + s₊·tanh((r−μ)/s₊)` above the group mean and
//! `μ + s₋·tanh((r−μ)/s₋)` below, then GRPO. Shapes `s₊`, `s₋` have no
//! verified defaults and are required.
//!
//! Ground-truth injection is data work: append the annotation as an extra row
//! of its group (with its reward) before calling the estimator.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, Scale, SingletonPolicy, group_normalise};
use crate::batch::ScoredBatch;
use crate::error::Result;

fn eps6() -> f64 {
    1e-6
}

/// TempSamp soft-advantage config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TempsampConfig {
    /// Saturation scale above the group mean (required, > 0).
    pub s_pos: f64,
    /// Saturation scale below the group mean (required, > 0).
    pub s_neg: f64,
    /// GRPO ε (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Groups of one row.
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// Soft-transformed rewards per row (group means are those of the raw rewards).
pub fn soft_rewards(c: &TempsampConfig, batch: &ScoredBatch) -> Result<Vec<f64>> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let mut out = r.clone();
    for (_, rows) in batch.groups().iter() {
        let mu = rows.iter().map(|&i| r[i]).sum::<f64>() / rows.len() as f64;
        for &i in rows {
            let d = r[i] - mu;
            let s = if d >= 0.0 { c.s_pos } else { c.s_neg };
            out[i] = mu + s * (d / s).tanh();
        }
    }
    Ok(out)
}

/// TempSamp soft advantage: GRPO on the transformed rewards.
pub fn tempsamp(c: &TempsampConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let soft = soft_rewards(c, batch)?;
    let a = group_normalise(
        &soft,
        &batch.groups(),
        Scale::GroupStd(c.epsilon),
        c.singleton,
        "tempsamp",
    )?;
    Ok(AdvantageOutput::outcome(batch, &a))
}

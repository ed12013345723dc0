//! Unlikeliness reward (algorithms.md §3.17, "Rewarding the Unlikely"): within
//! each group, rank rows by their length-normalised old log-likelihood
//! (ascending, stable sort: ties keep row order), shape
//! `R'_i = R_i·(1 − β_rank·rank_i/n)`, then GRPO on `R'`.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, Scale, SingletonPolicy, group_normalise};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

fn rank_penalty() -> f64 {
    0.25
}
fn eps6() -> f64 {
    1e-6
}

/// Unlikeliness config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlikelinessConfig {
    /// `β_rank` (`rank_penalty`, 0.25 in the official script).
    #[serde(default = "rank_penalty")]
    pub rank_penalty: f64,
    /// GRPO ε (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Groups of one row (`anchor`: μ = 0, σ = 1, as the code).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// Shaped rewards `R'` (exposed for tests and reward logging). Needs `old_log_prob` and
/// non-empty rows.
pub fn shaped_rewards(c: &UnlikelinessConfig, batch: &ScoredBatch) -> Result<Vec<f64>> {
    batch.validate_shapes()?;
    let lp = batch
        .old_log_prob
        .as_ref()
        .ok_or_else(|| CoreError::MissingInput {
            method: "unlikeliness".into(),
            what: "old_log_prob".into(),
        })?;
    batch.check_no_empty_rows()?;
    let lengths = batch.lengths();
    let s: Vec<f64> = (0..batch.rows())
        .map(|i| {
            (0..batch.cols())
                .map(|t| batch.mask[[i, t]] * lp[[i, t]])
                .sum::<f64>()
                / lengths[i]
        })
        .collect();
    let mut out = batch.reward.to_vec();
    for (_, rows) in batch.groups().iter() {
        let mut order: Vec<usize> = rows.to_vec();
        order.sort_by(|&x, &y| s[x].total_cmp(&s[y])); // stable
        let n = rows.len() as f64;
        for (rank, &i) in order.iter().enumerate() {
            out[i] = batch.reward[i] * (1.0 - c.rank_penalty * rank as f64 / n);
        }
    }
    Ok(out)
}

/// Unlikeliness advantage: GRPO on the shaped rewards.
pub fn unlikeliness(c: &UnlikelinessConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let shaped = shaped_rewards(c, batch)?;
    let a = group_normalise(
        &shaped,
        &batch.groups(),
        Scale::GroupStd(c.epsilon),
        c.singleton,
        "unlikeliness",
    )?;
    Ok(AdvantageOutput::outcome(batch, &a))
}

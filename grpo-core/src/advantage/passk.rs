//! Pass@k advantage (verl `grpo_passk`, algorithms.md §3.10): only the best row
//! of each group gets a (non-negative) advantage, the gap between the two
//! largest rewards, optionally divided by the group std.

use serde::{Deserialize, Serialize};

use super::AdvantageOutput;
use crate::batch::ScoredBatch;
use crate::error::Result;

fn t() -> bool {
    true
}
fn eps6() -> f64 {
    1e-6
}

/// Pass@k config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskConfig {
    /// Divide by `σ_k + ε` (verl `norm_adv_by_std_in_grpo`, default true).
    #[serde(default = "t")]
    pub norm_by_std: bool,
    /// ε (verl 1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
}

/// Pass@k advantage; every group needs at least 2 rows (verl raises).
pub fn grpo_passk(c: &PasskConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let groups = batch.groups();
    groups.require_min_size(2, "grpo_passk")?;
    let r = &batch.reward;
    let mut a = vec![0.0; batch.rows()];
    for (_, rows) in groups.iter() {
        // first index of the maximum (ties give a zero gap, so the choice is irrelevant)
        let mut best = rows[0];
        for &i in rows {
            if r[i] > r[best] {
                best = i;
            }
        }
        let second = rows
            .iter()
            .filter(|&&i| i != best)
            .map(|&i| r[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let gap = r[best] - second;
        let vals: Vec<f64> = rows.iter().map(|&i| r[i]).collect();
        let div = if c.norm_by_std {
            crate::stats::std_unbiased(&vals).unwrap_or(0.0) + c.epsilon
        } else {
            1.0
        };
        a[best] = if gap > 0.0 && div > 0.0 {
            gap / div
        } else {
            0.0
        };
    }
    Ok(AdvantageOutput::outcome(batch, &a))
}

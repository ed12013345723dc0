//! RLOO leave-one-out baseline (algorithms.md §3.4):
//! `A_i = R_i − mean_{j≠i} R_j = n/(n−1)·(R_i − μ)`.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, SingletonPolicy};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

/// RLOO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlooConfig {
    /// Groups of one row: `error` (default), `zero` (verl `rloo_vectorized`, TRL), `anchor`
    /// (verl `rloo`: the score is left untouched, `A = R`).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// RLOO advantage.
pub fn rloo(c: &RlooConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = &batch.reward;
    let mut a = vec![0.0; batch.rows()];
    for (g, rows) in batch.groups().iter() {
        let n = rows.len();
        if n == 1 {
            a[rows[0]] = match c.singleton {
                SingletonPolicy::Error => {
                    return Err(CoreError::GroupTooSmall {
                        group: g,
                        size: 1,
                        min: 2,
                        method: "rloo".into(),
                    });
                }
                SingletonPolicy::Zero => 0.0,
                SingletonPolicy::Anchor => r[rows[0]],
            };
            continue;
        }
        let sum: f64 = rows.iter().map(|&i| r[i]).sum();
        for &i in rows {
            a[i] = r[i] - (sum - r[i]) / (n - 1) as f64;
        }
    }
    Ok(AdvantageOutput::outcome(batch, &a))
}

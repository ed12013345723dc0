//! BRPO — budget-relative policy optimisation (algorithms.md §3.18,
//! AnytimeReasoner). Each row is a thinking trace truncated at `S` budgets;
//! `c[g,s]` (the row's [`BudgetRecord::scores`](crate::batch::BudgetRecord))
//! is the mean score of the summaries sampled at budget `s`. Segment `s` of a
//! trace gets `A[g,s] = ret[g,s] − V[g,s]` with
//! `ret[g,s] = Σ_{j≥s} p_j c[g,j]`, group baseline `V2[s] = mean_g ret[g,s]`,
//! own-prefix baseline `V1[g,s] = (Σ_{j<s} 2^j c[g,j]/Σ_{j<s} 2^j)·Σ_{j≥s} p_j`,
//! and `V = (s·V1 + (S−s)·V2)/S`. Tokens after the last segment get 0.
//! Summary-token advantages: [`summary_advantage`].

use serde::{Deserialize, Serialize};

use super::AdvantageOutput;
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};
use ndarray::Array2;
use std::collections::BTreeMap;

/// Prior over budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPrior {
    /// `p_s = 1/S`.
    Uniform,
    /// `p_s ∝ τ_s`, with equally spaced training budgets `τ_s = (s+1)·L_max/S`.
    Linear,
    /// All mass on the last budget.
    Base,
}

/// Baseline variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrpoVariant {
    /// `V = (s·V1 + (S−s)·V2)/S`.
    Brpo,
    /// `V = V1`.
    V1only,
    /// `V = V2` (GRPO-like).
    V2only,
    /// `V = 0`.
    None,
}

/// BRPO config (both choices are required: the code has several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrpoConfig {
    /// Prior over budgets.
    pub prior: BudgetPrior,
    /// Baseline variant.
    pub variant: BrpoVariant,
}

/// The prior `p_s` for `S` budgets.
pub fn prior_weights(prior: BudgetPrior, s: usize) -> Vec<f64> {
    match prior {
        BudgetPrior::Uniform => vec![1.0 / s as f64; s],
        BudgetPrior::Linear => {
            let z = (s * (s + 1)) as f64 / 2.0;
            (1..=s).map(|k| k as f64 / z).collect()
        }
        BudgetPrior::Base => (0..s).map(|k| if k + 1 == s { 1.0 } else { 0.0 }).collect(),
    }
}

/// Segment advantages `A[g,s]` for one group's score matrix `c[g][s]`.
pub fn segment_advantages(c: &BrpoConfig, scores: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let g_n = scores.len();
    let s_n = scores.first().map_or(0, |r| r.len());
    let p = prior_weights(c.prior, s_n);
    let tail: Vec<f64> = (0..s_n).map(|s| p[s..].iter().sum()).collect();
    let ret: Vec<Vec<f64>> = scores
        .iter()
        .map(|cg| {
            (0..s_n)
                .map(|s| (s..s_n).map(|j| p[j] * cg[j]).sum())
                .collect()
        })
        .collect();
    let v2: Vec<f64> = (0..s_n)
        .map(|s| {
            if g_n > 1 {
                ret.iter().map(|r| r[s]).sum::<f64>() / g_n as f64
            } else {
                0.0
            }
        })
        .collect();
    (0..g_n)
        .map(|g| {
            (0..s_n)
                .map(|s| {
                    let v1 = if s == 0 {
                        0.0
                    } else {
                        let (mut num, mut den) = (0.0, 0.0);
                        for j in 0..s {
                            let w = 2f64.powi(j as i32);
                            num += w * scores[g][j];
                            den += w;
                        }
                        num / den * tail[s]
                    };
                    let v = match c.variant {
                        BrpoVariant::Brpo => {
                            (s as f64 * v1 + (s_n - s) as f64 * v2[s]) / s_n as f64
                        }
                        BrpoVariant::V1only => v1,
                        BrpoVariant::V2only => v2[s],
                        BrpoVariant::None => 0.0,
                    };
                    ret[g][s] - v
                })
                .collect()
        })
        .collect()
}

/// Summary-token advantages (`summary_method="brpo"`): each summary's score minus the mean
/// of the summaries at the same split of the same trace.
pub fn summary_advantage(scores_per_split: &[Vec<f64>]) -> Vec<Vec<f64>> {
    scores_per_split
        .iter()
        .map(|v| {
            let mu = crate::stats::mean(v);
            v.iter().map(|x| x - mu).collect()
        })
        .collect()
}

/// BRPO advantage over a batch with budget records; returns are `ret[g,s]` on the segment tokens.
pub fn brpo(c: &BrpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let budgets = batch
        .budgets
        .as_ref()
        .ok_or_else(|| CoreError::MissingInput {
            method: "brpo".into(),
            what: "budgets".into(),
        })?;
    let mut adv = Array2::zeros(batch.mask.dim());
    let mut ret_out = Array2::zeros(batch.mask.dim());
    let p = prior_weights(c.prior, budgets[0].scores.len());
    for (_, rows) in batch.groups().iter() {
        let scores: Vec<Vec<f64>> = rows.iter().map(|&i| budgets[i].scores.clone()).collect();
        let a = segment_advantages(c, &scores);
        for (gi, &i) in rows.iter().enumerate() {
            let mut start = 0;
            for (s, &end) in budgets[i].segment_ends.iter().enumerate() {
                let ret: f64 = (s..p.len()).map(|j| p[j] * scores[gi][j]).sum();
                for t in start..end {
                    let m = batch.mask[[i, t]];
                    adv[[i, t]] = a[gi][s] * m;
                    ret_out[[i, t]] = ret * m;
                }
                start = end;
            }
        }
    }
    Ok(AdvantageOutput {
        advantages: adv,
        returns: ret_out,
        metrics: BTreeMap::new(),
    })
}

//! verl's optimal token baseline (algorithms.md §3.11). Per group and position,
//! the baseline is the `W`-weighted mean of the returns, where `W` is the
//! cumulative logit-space squared score norm `w = 1 − 2π_t + Σ_v π_v²` (the
//! `Σ_v π_v²` term is a kernel output supplied as `sum_sq_prob`).
//!
//! Not implemented: the truncated-IS weighting option and the multi-turn
//! `tir_` variant's valid-token-index alignment.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, SingletonPolicy};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};
use ndarray::Array2;
use std::collections::BTreeMap;

fn eps8() -> f64 {
    1e-8
}

/// Optimal-token-baseline config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtbConfig {
    /// ε in the baseline's denominator (verl 1e-8).
    #[serde(default = "eps8")]
    pub epsilon: f64,
    /// Zero the baseline of a strictly-longest row beyond the second-longest length
    /// (verl: false for `optimal_token_baseline`).
    #[serde(default)]
    pub handle_zero_tail: bool,
    /// Groups of one row (`anchor` = verl: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// Optimal token baseline: `A = (Ret − b)·m`, returns `Ret·m`.
pub fn optimal_token_baseline(c: &OtbConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    let (w, _) = super::baselines::score_norm_weights(batch, "optimal_token_baseline")?;
    let m = &batch.mask;
    let r = batch.token_rewards_or_outcome();
    let (b, t) = m.dim();
    let mut ret = Array2::zeros((b, t));
    let mut cw = Array2::zeros((b, t));
    for i in 0..b {
        let mut acc = 0.0;
        for k in (0..t).rev() {
            acc += m[[i, k]] * r[[i, k]];
            ret[[i, k]] = acc * m[[i, k]];
        }
        let mut cum = 0.0;
        for k in 0..t {
            cum += m[[i, k]] * w[[i, k]];
            cw[[i, k]] = cum;
        }
    }
    let lengths = batch.lengths();
    let mut adv = Array2::zeros((b, t));
    for (g, rows) in batch.groups().iter() {
        if rows.len() == 1 {
            let i = rows[0];
            match c.singleton {
                SingletonPolicy::Error => {
                    return Err(CoreError::GroupTooSmall {
                        group: g,
                        size: 1,
                        min: 2,
                        method: "optimal_token_baseline".into(),
                    });
                }
                SingletonPolicy::Zero => {}
                SingletonPolicy::Anchor => adv.row_mut(i).assign(&ret.row(i)),
            }
            continue;
        }
        // strictly longest row and the second-longest length
        let mut ls: Vec<(f64, usize)> = rows.iter().map(|&i| (lengths[i], i)).collect();
        ls.sort_by(|x, y| y.0.total_cmp(&x.0));
        let tail = (c.handle_zero_tail && ls[0].0 > ls[1].0).then_some((ls[0].1, ls[1].0));
        for k in 0..t {
            let mut num = 0.0;
            let mut den = 0.0;
            for &i in rows {
                let wm = cw[[i, k]] * m[[i, k]];
                num += ret[[i, k]] * wm;
                den += wm;
            }
            let base = num / (den + c.epsilon);
            for &i in rows {
                if m[[i, k]] == 0.0 {
                    continue;
                }
                // position index among valid tokens is what "beyond the second-longest length" means
                let zero_tail = match tail {
                    Some((row, len2)) => row == i && cw_pos(m, i, k) >= len2,
                    None => false,
                };
                let bb = if zero_tail { 0.0 } else { base };
                adv[[i, k]] = ret[[i, k]] - bb;
            }
        }
    }
    Ok(AdvantageOutput {
        advantages: adv,
        returns: ret,
        metrics: BTreeMap::new(),
    })
}

/// Number of valid tokens strictly before position `k` in row `i`.
fn cw_pos(m: &Array2<f64>, i: usize, k: usize) -> f64 {
    (0..k).map(|j| m[[i, j]]).sum()
}

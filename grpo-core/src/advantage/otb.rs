//! verl's optimal token baseline (algorithms.md §3.11). Per group and position,
//! the baseline is the `W`-weighted mean of the returns, where `W` is the
//! cumulative logit-space squared score norm `w = 1 − 2π_t + Σ_v π_v²` (the
//! `Σ_v π_v²` term is a kernel output supplied as `sum_sq_prob`).
//!
//! Truncated IS weights (`is_weight` in the batch) multiply `w` by `ϖ²` when
//! present. `align = "valid_index"` is the multi-turn `tir_` variant: rows are
//! compared at the same *valid-token index* (masked observation tokens are
//! skipped) instead of the same padded position.

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
    /// Which tokens share a baseline: `position` (padded position, verl
    /// `optimal_token_baseline`, default) or `valid_index` (verl `tir_optimal_token_baseline`).
    #[serde(default)]
    pub align: OtbAlign,
}

/// Position alignment of the per-position baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtbAlign {
    /// Same padded position `t`.
    #[default]
    Position,
    /// Same index among the row's valid tokens.
    ValidIndex,
}

/// Optimal token baseline: `A = (Ret − b)·m`, returns `Ret·m`.
pub fn optimal_token_baseline(c: &OtbConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let (mut w, _) = super::baselines::score_norm_weights(batch, "optimal_token_baseline")?;
    if let Some(iw) = &batch.is_weight {
        w.zip_mut_with(iw, |x, v| *x *= v * v);
    }
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
    // the slot each valid token is compared in: its position, or its valid-token index
    let slot = |k: usize, idx: usize| match c.align {
        OtbAlign::Position => k,
        OtbAlign::ValidIndex => idx,
    };
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
        let mut num = vec![0.0; t];
        let mut den = vec![0.0; t];
        for &i in rows {
            let mut idx = 0;
            for k in 0..t {
                if m[[i, k]] != 0.0 {
                    let s = slot(k, idx);
                    num[s] += ret[[i, k]] * cw[[i, k]];
                    den[s] += cw[[i, k]];
                    idx += 1;
                }
            }
        }
        // strictly longest row and the second-longest length (handle_zero_tail)
        let mut ls: Vec<(f64, usize)> = rows.iter().map(|&i| (lengths[i], i)).collect();
        ls.sort_by(|x, y| y.0.total_cmp(&x.0));
        let tail = (c.handle_zero_tail && ls[0].0 > ls[1].0).then_some((ls[0].1, ls[1].0));
        for &i in rows {
            let mut idx = 0;
            for k in 0..t {
                if m[[i, k]] == 0.0 {
                    continue;
                }
                let s = slot(k, idx);
                let zero_tail = matches!(tail, Some((row, len2)) if row == i && idx as f64 >= len2);
                let base = if zero_tail {
                    0.0
                } else {
                    num[s] / (den[s] + c.epsilon)
                };
                adv[[i, k]] = ret[[i, k]] - base;
                idx += 1;
            }
        }
    }
    Ok(AdvantageOutput {
        advantages: adv,
        returns: ret,
        metrics: BTreeMap::new(),
    })
}

//! Reward shaping that is pure arithmetic on the batch (algorithms.md §7.1,
//! §7.2, §7.6), applied to rewards before an advantage estimator. Rule-based
//! rewards that read text or answers (cosine length reward, OTC, RAPO) belong
//! to `grpo-rewards`.

use ndarray::Array1;
use serde::{Deserialize, Serialize};

use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

/// Multi-objective weighted reward `R_i = Σ_k w_k R^k_i` over the named components
/// (TRL `reward_weights`, `sum_then_normalize`; weights in component order, `None` ⇒ all 1).
pub fn weighted_sum(batch: &ScoredBatch, weights: Option<&[f64]>) -> Result<Array1<f64>> {
    let k = batch.components.len();
    if k == 0 {
        return Err(CoreError::MissingInput {
            method: "weighted_sum".into(),
            what: "reward components".into(),
        });
    }
    let w: Vec<f64> = match weights {
        Some(w) if w.len() != k => {
            return Err(CoreError::ShapeMismatch {
                what: "reward weights".into(),
                expected: vec![k],
                got: vec![w.len()],
            });
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; k],
    };
    let mut r = Array1::zeros(batch.rows());
    for (c, wk) in batch.components.iter().zip(w) {
        r.scaled_add(wk, &c.values);
    }
    Ok(r)
}

/// Which anchor's overlong-penalty formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlongFlavor {
    /// verl: `r += min(−(L − L_exp)/L_buf · f, 0)` (unbounded below).
    Verl,
    /// OpenRLHF: `e = min(L − L_exp, L_buf)`, penalty `−e/L_buf · f` only if `e > 0` (caps at −f).
    Openrlhf,
}

/// DAPO overlong reward shaping (§7.1) config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlongConfig {
    /// `L_max` (DAPO recipe 20480).
    pub max_len: f64,
    /// `L_buf` (DAPO recipe 4096).
    pub buffer_len: f64,
    /// Penalty factor `f` (DAPO recipe 1.0).
    pub penalty_factor: f64,
    /// Anchor formula.
    pub flavor: OverlongFlavor,
}

/// The overlong penalty (≤ 0) for a response of `len` tokens.
pub fn overlong_penalty(c: &OverlongConfig, len: f64) -> Result<f64> {
    if !(c.buffer_len > 0.0 && c.max_len >= c.buffer_len && c.penalty_factor.is_finite()) {
        return Err(CoreError::InvalidParam {
            name: "buffer_len".into(),
            value: c.buffer_len.to_string(),
            reason: "need 0 < buffer_len <= max_len and a finite penalty factor".into(),
        });
    }
    let expected = c.max_len - c.buffer_len;
    let e = len - expected;
    Ok(match c.flavor {
        OverlongFlavor::Verl => (-e / c.buffer_len * c.penalty_factor).min(0.0),
        OverlongFlavor::Openrlhf => {
            let e = e.min(c.buffer_len);
            if e > 0.0 {
                -e / c.buffer_len * c.penalty_factor
            } else {
                0.0
            }
        }
    })
}

/// Adds the overlong penalty to every row's scalar reward (lengths from the mask).
pub fn apply_overlong(c: &OverlongConfig, batch: &mut ScoredBatch) -> Result<()> {
    let lens = batch.lengths();
    for i in 0..batch.rows() {
        batch.reward[i] += overlong_penalty(c, lens[i])?;
    }
    Ok(())
}

/// ProRL stop-properly penalty (§7.2) for truncated rows: `coef ≥ 0` (≤ 1) scales the
/// reward, `coef < 0` replaces it. Needs `truncated`.
pub fn apply_stop_properly(coef: f64, batch: &mut ScoredBatch) -> Result<()> {
    if !(coef.is_finite() && coef <= 1.0) {
        return Err(CoreError::InvalidParam {
            name: "coef".into(),
            value: coef.to_string(),
            reason: "must be finite and <= 1".into(),
        });
    }
    let tr = batch
        .truncated
        .clone()
        .ok_or_else(|| CoreError::MissingInput {
            method: "stop_properly".into(),
            what: "truncated".into(),
        })?;
    for (i, t) in tr.iter().enumerate() {
        if *t {
            batch.reward[i] = if coef >= 0.0 {
                coef * batch.reward[i]
            } else {
                coef
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_matches_both_anchors() {
        let mut c = OverlongConfig {
            max_len: 20.0,
            buffer_len: 4.0,
            penalty_factor: 1.0,
            flavor: OverlongFlavor::Verl,
        };
        assert_eq!(overlong_penalty(&c, 16.0).unwrap(), 0.0);
        assert_eq!(overlong_penalty(&c, 18.0).unwrap(), -0.5);
        assert_eq!(overlong_penalty(&c, 28.0).unwrap(), -3.0);
        c.flavor = OverlongFlavor::Openrlhf;
        assert_eq!(overlong_penalty(&c, 18.0).unwrap(), -0.5);
        assert_eq!(overlong_penalty(&c, 28.0).unwrap(), -1.0);
    }

    #[test]
    fn stop_properly_and_weighted_sum() {
        let mut b = ScoredBatch::from_outcome(&[1.0, 1.0, 1.0], &[0, 0, 0], &[1, 1, 1])
            .unwrap()
            .with_truncated(vec![false, true, true])
            .unwrap()
            .with_component("a", Array1::from(vec![1.0, 0.0, 2.0]))
            .unwrap()
            .with_component("b", Array1::from(vec![0.0, 1.0, 1.0]))
            .unwrap();
        assert_eq!(
            weighted_sum(&b, Some(&[1.0, 0.5])).unwrap().to_vec(),
            vec![1.0, 0.5, 2.5]
        );
        apply_stop_properly(0.5, &mut b).unwrap();
        assert_eq!(b.reward.to_vec(), vec![1.0, 0.5, 0.5]);
        apply_stop_properly(-1.0, &mut b).unwrap();
        assert_eq!(b.reward.to_vec(), vec![1.0, -1.0, -1.0]);
    }
}

//! Return-based estimators (algorithms.md §3.5–§3.7, §3.20): REINFORCE++
//! (discounted returns, global token whitening), REINFORCE++-baseline
//! (group-mean centring then token whitening), ReMax (greedy-response
//! baseline) and GAE (critic values). Whitening is verl's `masked_whiten`
//! (unbiased masked variance, `+1e-8`).

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, SingletonPolicy, group_mean_or};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};
use crate::stats::masked_whiten;
use ndarray::Array2;
use std::collections::BTreeMap;

fn one() -> f64 {
    1.0
}

/// REINFORCE++ config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinforcePlusPlusConfig {
    /// Discount γ (verl `algorithm.gamma`, default 1.0).
    #[serde(default = "one")]
    pub gamma: f64,
}

/// REINFORCE++-baseline config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinforcePlusPlusBaselineConfig {
    /// Groups of one row (`anchor` = verl: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// ReMax config (no parameters; needs `baseline_reward`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemaxConfig {}

/// GAE config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaeConfig {
    /// Discount γ (verl default 1.0).
    #[serde(default = "one")]
    pub gamma: f64,
    /// GAE λ (verl default 1.0).
    #[serde(default = "one")]
    pub lam: f64,
}

fn whiten(x: &Array2<f64>, m: &Array2<f64>, method: &str) -> Result<Array2<f64>> {
    masked_whiten(x, m).ok_or_else(|| CoreError::InvalidParam {
        name: "response_mask".into(),
        value: format!("{} valid tokens", m.sum()),
        reason: format!("`{method}` whitens over tokens and needs at least 2 valid tokens"),
    })
}

/// REINFORCE++: `Ret[i,t] = r[i,t] + γ Ret[i,t+1]` (reset after the last valid token),
/// `A = masked_whiten(Ret)·m`. Returns are `Ret·m`.
pub fn reinforce_plus_plus(
    c: &ReinforcePlusPlusConfig,
    batch: &ScoredBatch,
) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.token_rewards_or_outcome();
    let m = &batch.mask;
    let mut ret = Array2::zeros(m.dim());
    for i in 0..batch.rows() {
        let mut acc = 0.0;
        for t in (0..batch.cols()).rev() {
            acc = r[[i, t]] + c.gamma * acc;
            ret[[i, t]] = acc;
            acc *= m[[i, t]];
        }
    }
    let adv = whiten(&ret, m, "reinforce_plus_plus")?;
    Ok(AdvantageOutput {
        advantages: adv,
        returns: ret * m,
        metrics: BTreeMap::new(),
    })
}

/// REINFORCE++-baseline: `a_i = R_i − μ_k`, `A = masked_whiten(a·m)·m` (token-weighted).
pub fn reinforce_plus_plus_baseline(
    c: &ReinforcePlusPlusBaselineConfig,
    batch: &ScoredBatch,
) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let mut a = vec![0.0; r.len()];
    for (g, rows) in batch.groups().iter() {
        let mu = group_mean_or(&r, rows, g, c.singleton, "reinforce_plus_plus_baseline")?;
        for &i in rows {
            a[i] = mu.map_or(0.0, |mu| r[i] - mu);
        }
    }
    let tiled = batch.broadcast(&ndarray::Array1::from(a));
    let adv = whiten(&tiled, &batch.mask, "reinforce_plus_plus_baseline")?;
    Ok(AdvantageOutput {
        returns: adv.clone(),
        advantages: adv,
        metrics: BTreeMap::new(),
    })
}

/// ReMax: `Ret` = reverse cumsum of `m·r`, `A = Ret − b_i·m`.
pub fn remax(_c: &RemaxConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let b = batch
        .baseline_reward
        .as_ref()
        .ok_or_else(|| CoreError::MissingInput {
            method: "remax".into(),
            what: "baseline_reward".into(),
        })?;
    let r = batch.token_rewards_or_outcome();
    let m = &batch.mask;
    let mut ret = Array2::zeros(m.dim());
    for i in 0..batch.rows() {
        let mut acc = 0.0;
        for t in (0..batch.cols()).rev() {
            acc += m[[i, t]] * r[[i, t]];
            ret[[i, t]] = acc * m[[i, t]];
        }
    }
    let mut adv = ret.clone();
    for i in 0..batch.rows() {
        for t in 0..batch.cols() {
            adv[[i, t]] -= b[i] * m[[i, t]];
        }
    }
    Ok(AdvantageOutput {
        advantages: adv,
        returns: ret,
        metrics: BTreeMap::new(),
    })
}

/// GAE (verl): `δ_t = r_t + γV_{t+1} − V_t`, `Â_t = δ_t + γλÂ_{t+1}`, values and the
/// accumulator carried over masked positions; `Ret = Â + V`; `A = masked_whiten(Â)·m`.
pub fn gae(c: &GaeConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let v = batch
        .values
        .as_ref()
        .ok_or_else(|| CoreError::MissingInput {
            method: "gae".into(),
            what: "values".into(),
        })?;
    let r = batch.token_rewards_or_outcome();
    let m = &batch.mask;
    let mut adv = Array2::zeros(m.dim());
    for i in 0..batch.rows() {
        let (mut next_v, mut last) = (0.0, 0.0);
        for t in (0..batch.cols()).rev() {
            let mt = m[[i, t]];
            let vt = if mt != 0.0 { v[[i, t]] } else { 0.0 };
            let delta = r[[i, t]] + c.gamma * next_v - vt;
            let cand = delta + c.gamma * c.lam * last;
            next_v = vt * mt + (1.0 - mt) * next_v;
            last = cand * mt + (1.0 - mt) * last;
            adv[[i, t]] = last;
        }
    }
    let mut ret = adv.clone();
    ret.zip_mut_with(v, |a, vv| *a += vv);
    let ret = ret * m;
    let white = whiten(&adv, m, "gae")?;
    Ok(AdvantageOutput {
        advantages: white,
        returns: ret,
        metrics: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn remax_outcome() {
        let b = ScoredBatch::from_outcome(&[1.0, 0.5], &[0, 0], &[2, 1])
            .unwrap()
            .with_baseline_reward(array![0.25, 0.5])
            .unwrap();
        let o = remax(&RemaxConfig {}, &b).unwrap();
        assert_eq!(o.advantages, array![[0.75, 0.75], [0.0, 0.0]]);
    }

    #[test]
    fn reinforce_pp_discounting() {
        // one row, 3 tokens, reward 1 on the last; γ = 0.5 → returns .25, .5, 1.
        let b = ScoredBatch::from_outcome(&[1.0], &[0], &[3]).unwrap();
        let o = reinforce_plus_plus(&ReinforcePlusPlusConfig { gamma: 0.5 }, &b).unwrap();
        assert_eq!(o.returns, array![[0.25, 0.5, 1.0]]);
        let mu = 1.75 / 3.0;
        let var = ((0.25f64 - mu).powi(2) + (0.5f64 - mu).powi(2) + (1.0f64 - mu).powi(2)) / 2.0;
        assert!((o.advantages[[0, 2]] - (1.0 - mu) / (var + 1e-8).sqrt()).abs() < 1e-12);
    }
}

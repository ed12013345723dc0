//! Baseline-subtraction estimators (no std scaling): OPO length-weighted
//! baseline (§3.8), GPG (§3.9), OPMD / AsymRE / REC (§3.16) and the OBLR-PO
//! gradient-weighted optimal baseline (§9.4, reconstructed from the abstract:
//! the weights are verl OTB's logit-space score-norm proxy).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, SingletonPolicy, group_mean_or};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

fn one() -> f64 {
    1.0
}
fn asymre_shift() -> f64 {
    -0.1
}
fn eps6() -> f64 {
    1e-6
}

/// OPO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpoConfig {
    /// Groups of one row (`anchor` = verl: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// GPG config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpgConfig {
    /// Groups of one row (`anchor` = verl: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// OPMD baseline kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpmdBaseline {
    /// Group mean (≡ Dr.GRPO).
    Mean,
    /// `τ·(logsumexp(R/τ) − log n)`.
    Logavgexp,
}

/// OPMD config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpmdConfig {
    /// Baseline (Trinity-RFT `opmd_baseline`; no default taken here).
    pub baseline: OpmdBaseline,
    /// Temperature τ for `logavgexp` (Trinity-RFT default 1.0).
    #[serde(default = "one")]
    pub tau: f64,
    /// Groups of one row (`anchor`: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// AsymRE config: `A_i = R_i − (μ_k + δ_shift)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsymreConfig {
    /// Baseline shift δ (Trinity-RFT default −0.1).
    #[serde(default = "asymre_shift")]
    pub delta_shift: f64,
    /// Groups of one row (`anchor`: baseline δ only).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// REC negative-drop mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecDrop {
    /// Keep every row (Trinity-RFT default).
    #[default]
    None,
    /// Randomly drop surplus negatives so negatives ≤ positives, then recompute.
    Balance,
}

/// REC config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecConfig {
    /// Divide by `std + ε` (default false). Unbiased std without drop; population std
    /// on the kept rows with `balance`.
    #[serde(default)]
    pub std_normalize: bool,
    /// Negative drop mode (default none).
    #[serde(default)]
    pub drop: RecDrop,
    /// ε (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Groups of one row.
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// OBLR per-row weight `q_i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OblrWeight {
    /// `q_i = Σ_t m (1 − 2π_t + Σ_v π_v²)` (needs `old_log_prob` and `sum_sq_prob`).
    ScoreNorm,
    /// `q_i = L_i` (recovers OPO).
    Length,
}

/// OBLR-PO config (reconstructed; no verified defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OblrConfig {
    /// Which gradient-norm proxy weights the baseline.
    pub weight: OblrWeight,
    /// Groups of one row (`anchor`: baseline 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

fn singleton_err(group: usize, method: &str) -> CoreError {
    CoreError::GroupTooSmall {
        group,
        size: 1,
        min: 2,
        method: method.into(),
    }
}

/// Weighted group baseline `b_k = Σ q R / Σ q`, `A = R − b`. A group with `Σq = 0` is an
/// `InvalidParam` error naming the group.
fn weighted_baseline(
    batch: &ScoredBatch,
    q: &[f64],
    singleton: SingletonPolicy,
    method: &str,
) -> Result<Vec<f64>> {
    let r = &batch.reward;
    let mut a = vec![0.0; batch.rows()];
    for (g, rows) in batch.groups().iter() {
        if rows.len() == 1 {
            a[rows[0]] = match singleton {
                SingletonPolicy::Error => return Err(singleton_err(g, method)),
                SingletonPolicy::Zero => 0.0,
                SingletonPolicy::Anchor => r[rows[0]],
            };
            continue;
        }
        let wsum: f64 = rows.iter().map(|&i| q[i]).sum();
        if wsum <= 0.0 {
            return Err(CoreError::InvalidParam {
                name: format!("group {g}"),
                value: wsum.to_string(),
                reason: format!("`{method}` needs a positive total weight (length) in every group"),
            });
        }
        let b = rows.iter().map(|&i| q[i] * r[i]).sum::<f64>() / wsum;
        for &i in rows {
            a[i] = r[i] - b;
        }
    }
    Ok(a)
}

/// OPO: `b_k = Σ L_j R_j / Σ L_j`, `A_i = R_i − b_k`. A group whose rows are all empty is an error.
pub fn opo(c: &OpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let l = batch.lengths().to_vec();
    let a = weighted_baseline(batch, &l, c.singleton, "opo")?;
    Ok(AdvantageOutput::outcome(batch, &a))
}

/// GPG: `α = B / max(#{R_i ≠ 0}, 1)` over the whole batch, `A_i = α (R_i − μ_k)`.
pub fn gpg(c: &GpgConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let nz = r.iter().filter(|x| **x != 0.0).count().max(1);
    let alpha = r.len() as f64 / nz as f64;
    let mut a = vec![0.0; r.len()];
    for (g, rows) in batch.groups().iter() {
        let mu = group_mean_or(&r, rows, g, c.singleton, "gpg")?;
        for &i in rows {
            a[i] = mu.map_or(0.0, |mu| alpha * (r[i] - mu));
        }
    }
    Ok(AdvantageOutput::outcome(batch, &a).with_metric("gpg/alpha", alpha))
}

/// OPMD: `A_i = R_i − b_k` with the mean or `τ(logsumexp(R/τ) − log n)` baseline.
pub fn opmd(c: &OpmdConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let mut a = vec![0.0; r.len()];
    for (g, rows) in batch.groups().iter() {
        let Some(mu) = group_mean_or(&r, rows, g, c.singleton, "opmd")? else {
            continue;
        };
        let b = if rows.len() == 1 {
            mu
        } else {
            match c.baseline {
                OpmdBaseline::Mean => mu,
                OpmdBaseline::Logavgexp => {
                    let mx = rows
                        .iter()
                        .map(|&i| r[i] / c.tau)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = rows.iter().map(|&i| (r[i] / c.tau - mx).exp()).sum();
                    c.tau * (mx + s.ln() - (rows.len() as f64).ln())
                }
            }
        };
        for &i in rows {
            a[i] = r[i] - b;
        }
    }
    Ok(AdvantageOutput::outcome(batch, &a))
}

/// AsymRE: `A_i = R_i − μ_k − δ_shift`.
pub fn asymre(c: &AsymreConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let mut a = vec![0.0; r.len()];
    for (g, rows) in batch.groups().iter() {
        let Some(mu) = group_mean_or(&r, rows, g, c.singleton, "asymre")? else {
            continue;
        };
        for &i in rows {
            a[i] = r[i] - mu - c.delta_shift;
        }
    }
    Ok(AdvantageOutput::outcome(batch, &a))
}

/// REC: mean-centring, optional std scaling and balanced negative drop (`rng` picks the
/// dropped negatives; dropped rows get advantage 0).
pub fn rec(c: &RecConfig, batch: &ScoredBatch, rng: &mut ChaCha8Rng) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let mut a = vec![0.0; r.len()];
    let mut dropped = 0usize;
    for (g, rows) in batch.groups().iter() {
        let Some(mu) = group_mean_or(&r, rows, g, c.singleton, "rec")? else {
            continue;
        };
        if rows.len() == 1 {
            a[rows[0]] = r[rows[0]] - mu;
            continue;
        }
        let mut kept: Vec<usize> = rows.to_vec();
        if c.drop == RecDrop::Balance {
            let mut neg: Vec<usize> = rows.iter().copied().filter(|&i| r[i] < mu).collect();
            let pos = rows.iter().filter(|&&i| r[i] > mu).count();
            if neg.len() > pos {
                // partial Fisher–Yates: the first `surplus` entries are dropped
                let surplus = neg.len() - pos;
                for k in 0..surplus {
                    let j = rng.random_range(k..neg.len());
                    neg.swap(k, j);
                }
                let drop: Vec<usize> = neg[..surplus].to_vec();
                dropped += surplus;
                kept.retain(|i| !drop.contains(i));
            }
        }
        let vals: Vec<f64> = kept.iter().map(|&i| r[i]).collect();
        let mu_k = crate::stats::mean(&vals);
        let all_equal = vals.iter().all(|v| *v == vals[0]);
        let sd = if !c.std_normalize {
            1.0
        } else if c.drop == RecDrop::Balance {
            crate::stats::std_population(&vals) + c.epsilon
        } else {
            crate::stats::std_unbiased(&vals).unwrap_or(0.0) + c.epsilon
        };
        for &i in &kept {
            a[i] = if all_equal || sd <= 0.0 {
                0.0
            } else {
                (r[i] - mu_k) / sd
            };
        }
    }
    Ok(AdvantageOutput::outcome(batch, &a).with_metric("rec/dropped", dropped as f64))
}

/// OBLR-PO optimal baseline: `b_k = Σ q_i R_i / Σ q_i`, `A_i = R_i − b_k` (reconstructed).
pub fn oblr(c: &OblrConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let q: Vec<f64> = match c.weight {
        OblrWeight::Length => batch.lengths().to_vec(),
        OblrWeight::ScoreNorm => score_norm_weights(batch, "oblr")?.1,
    };
    let a = weighted_baseline(batch, &q, c.singleton, "oblr")?;
    Ok(AdvantageOutput::outcome(batch, &a))
}

/// Per-token `w = 1 − 2π + Σπ²` (masked) and its per-row sum, from `old_log_prob` and
/// `sum_sq_prob`. `w` is clamped at 0 against rounding.
pub(crate) fn score_norm_weights(
    batch: &ScoredBatch,
    method: &str,
) -> Result<(ndarray::Array2<f64>, Vec<f64>)> {
    let missing = |what: &str| CoreError::MissingInput {
        method: method.into(),
        what: what.into(),
    };
    let lp = batch
        .old_log_prob
        .as_ref()
        .ok_or_else(|| missing("old_log_prob"))?;
    let s2 = batch
        .sum_sq_prob
        .as_ref()
        .ok_or_else(|| missing("sum_sq_prob"))?;
    let mut w = ndarray::Array2::zeros(batch.mask.dim());
    let mut q = vec![0.0; batch.rows()];
    for ((i, t), m) in batch.mask.indexed_iter() {
        if *m != 0.0 {
            let p = lp[[i, t]].exp();
            let v = (1.0 - 2.0 * p + s2[[i, t]]).max(0.0);
            w[[i, t]] = v;
            q[i] += v;
        }
    }
    Ok((w, q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn opo_hand_example() {
        // lengths 1, 3; rewards 1, 0 → b = (1·1 + 3·0)/4 = .25
        let b = ScoredBatch::from_outcome(&[1.0, 0.0], &[0, 0], &[1, 3]).unwrap();
        let o = opo(
            &OpoConfig {
                singleton: SingletonPolicy::Error,
            },
            &b,
        )
        .unwrap();
        assert_eq!(o.advantages[[0, 0]], 0.75);
        assert_eq!(o.advantages[[1, 2]], -0.25);
    }

    #[test]
    fn rec_balance_drops_surplus_negatives() {
        let b = ScoredBatch::from_outcome(&[1.0, 0.0, 0.0, 0.0], &[0; 4], &[1; 4]).unwrap();
        let c = RecConfig {
            std_normalize: false,
            drop: RecDrop::Balance,
            epsilon: 1e-6,
            singleton: SingletonPolicy::Error,
        };
        let o = rec(&c, &b, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(o.metrics["rec/dropped"], 2.0);
        let a = o.advantages.column(0).to_vec();
        assert_eq!(a[0], 0.5);
        assert_eq!(a.iter().filter(|x| **x == -0.5).count(), 1);
        assert_eq!(a.iter().filter(|x| **x == 0.0).count(), 2);
    }
}

//! BNPO — Beta Normalization Policy Optimization (algorithms.md §3.12, official
//! code). Rewards are mapped to `[0,1]`, group success rates `p_k` are fitted
//! by a Beta distribution (method of moments, shrunk), and each group's
//! centred rewards are weighted by `1/Beta_pdf(p_k; α, β)` clamped to `[0, 1e6]`.
//!
//! The official code refits `(α, β)` every batch, so the estimator is
//! stateless per batch; the fitted parameters are reported as metrics
//! (`bnpo/alpha`, `bnpo/beta`, `bnpo/degenerate_fit`). A batch variance of the
//! group rates below `1e-12·p̄(1−p̄)` (rounding level) counts as 0: the fit falls
//! back to `α = β = 1` and flags `bnpo/degenerate_fit`, as for an exactly-zero variance.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, bad_param};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

fn one() -> f64 {
    1.0
}

/// BNPO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BnpoConfig {
    /// Lower end of the reward range (default 0).
    #[serde(default)]
    pub r_min: f64,
    /// Upper end of the reward range (default 1).
    #[serde(default = "one")]
    pub r_max: f64,
    /// Advantage decomposition: average the BNPO advantage over the scalar reward and
    /// every named component (default false: scalar reward only).
    #[serde(default)]
    pub decompose: bool,
}

pub(crate) fn validate(c: &BnpoConfig) -> Result<()> {
    if !(c.r_min.is_finite() && c.r_max.is_finite() && c.r_max > c.r_min) {
        return Err(bad_param("r_max", c.r_max, "need finite r_min < r_max"));
    }
    Ok(())
}

/// Natural log of the gamma function (Lanczos, g = 7, 9 terms), for `x > 0`.
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (k, g) in G.iter().enumerate().skip(1) {
        a += g / (x + k as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Beta density at `p ∈ [0,1]` for `α, β ≥ 1`.
pub fn beta_pdf(p: f64, a: f64, b: f64) -> f64 {
    let ln_b = ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
    let term = |x: f64, e: f64| {
        if e == 0.0 {
            0.0
        } else if x <= 0.0 {
            f64::NEG_INFINITY
        } else {
            e * x.ln()
        }
    };
    (term(p, a - 1.0) + term(1.0 - p, b - 1.0) - ln_b).exp()
}

/// BNPO advantage for one reward vector. Returns per-row advantages and `(α, β, degenerate)`.
pub fn bnpo_rows(
    c: &BnpoConfig,
    batch: &ScoredBatch,
    reward: &[f64],
    name: &str,
) -> Result<(Vec<f64>, f64, f64, bool)> {
    let span = c.r_max - c.r_min;
    let mut rt = Vec::with_capacity(reward.len());
    for (row, &x) in reward.iter().enumerate() {
        let v = (x - c.r_min) / span;
        if !(0.0..=1.0).contains(&v) {
            return Err(CoreError::InvalidParam {
                name: format!("{name}[{row}]"),
                value: x.to_string(),
                reason: format!(
                    "BNPO needs rewards in [r_min, r_max] = [{}, {}]",
                    c.r_min, c.r_max
                ),
            });
        }
        rt.push(v);
    }
    let groups = batch.groups();
    // sums in sorted order so that the fit is exactly invariant to row and group order
    let sorted_mean = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        crate::stats::mean(&v)
    };
    let p: Vec<f64> = groups
        .iter()
        .map(|(_, rows)| {
            if rows.len() == 1 {
                0.0
            } else {
                sorted_mean(rows.iter().map(|&i| rt[i]).collect())
            }
        })
        .collect();
    let (pbar, v) = if p.len() == 1 {
        (0.0, 1.0)
    } else {
        let mut ps = p.clone();
        ps.sort_by(f64::total_cmp);
        let m = crate::stats::mean(&ps);
        let mut dev: Vec<f64> = ps.iter().map(|x| (x - m) * (x - m)).collect();
        dev.sort_by(f64::total_cmp);
        (m, dev.iter().sum::<f64>() / (ps.len() - 1) as f64)
    };
    // a variance at rounding level (equal rates summed in a different order) is 0: the
    // moment fit would otherwise explode to α, β ~ 1e30
    let (alpha, beta, degenerate) = if v > 1e-12 * pbar * (1.0 - pbar) {
        let cc = pbar * (1.0 - pbar) / v - 1.0;
        (
            (1.0 + cc * pbar / 3.0).max(1.0),
            (1.0 + cc * (1.0 - pbar) / 3.0).max(1.0),
            false,
        )
    } else {
        (1.0, 1.0, true)
    };
    let mut a = vec![0.0; reward.len()];
    for (k, (_, rows)) in groups.iter().enumerate() {
        let pdf = beta_pdf(p[k], alpha, beta);
        let w = if pdf > 0.0 {
            (1.0 / pdf).clamp(0.0, 1e6)
        } else {
            1e6
        };
        for &i in rows {
            a[i] = w * (rt[i] - p[k]);
        }
    }
    Ok((a, alpha, beta, degenerate))
}

/// BNPO advantage (optionally decomposed over reward components).
pub fn bnpo(c: &BnpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let (mut acc, alpha, beta, deg) = bnpo_rows(c, batch, &batch.reward.to_vec(), "reward")?;
    let mut n = 1.0;
    if c.decompose {
        for comp in &batch.components {
            let (a, ..) = bnpo_rows(c, batch, &comp.values.to_vec(), &comp.name)?;
            for (x, y) in acc.iter_mut().zip(a) {
                *x += y;
            }
            n += 1.0;
        }
        for x in acc.iter_mut() {
            *x /= n;
        }
    }
    Ok(AdvantageOutput::outcome(batch, &acc)
        .with_metric("bnpo/alpha", alpha)
        .with_metric("bnpo/beta", beta)
        .with_metric("bnpo/degenerate_fit", if deg { 1.0 } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // Beta(2,2) pdf at .5 = 6·.25 = 1.5
        assert!((beta_pdf(0.5, 2.0, 2.0) - 1.5).abs() < 1e-12);
        assert!((beta_pdf(0.3, 1.0, 1.0) - 1.0).abs() < 1e-12);
    }
}

//! SAPO soft adaptive gate (algorithms.md §4.6).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, param, token_output};
use crate::error::Result;

/// SAPO (verl/TRL `sapo`): `τ = tau_pos` if `A > 0` else `tau_neg`,
/// `σ = sigmoid(τ(ρ−1))`, `λ = −A·σ·4/τ`, `γ = −A·4σ(1−σ)·ρ`; the log-ratio is
/// clamped to ±20 (verl; gradient 0 beyond). Defaults `tau_pos = 1.0`,
/// `tau_neg = 1.05`; verl forces `seq_mean_token_mean`, TRL aggregates like `grpo`.
/// Smooth everywhere; `γ(ρ=1) = −A`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SapoConfig {
    /// τ for positive advantages.
    pub tau_pos: f64,
    /// τ for non-positive advantages.
    pub tau_neg: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl SapoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("tau_pos", self.tau_pos, self.tau_pos > 0.0, "must be > 0")?;
        param("tau_neg", self.tau_neg, self.tau_neg > 0.0, "must be > 0")?;
        self.agg.validate()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn sapo(c: &SapoConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let x = ctx.logratio(i, j);
            let rho = x.clamp(-20.0, 20.0).exp();
            let tau = if a > 0.0 { c.tau_pos } else { c.tau_neg };
            let s = sigmoid(tau * (rho - 1.0));
            lam[[i, j]] = -a * s * 4.0 / tau;
            gam[[i, j]] = if x.abs() < 20.0 {
                -a * 4.0 * s * (1.0 - s) * rho
            } else {
                0.0
            };
        }
    }
    token_output(ctx, &c.agg, &lam, &gam, factor)
}

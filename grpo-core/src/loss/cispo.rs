//! Detached-weight REINFORCE losses: CISPO (algorithms.md §4.5) and VESPO (§4.8).
//!
//! Both are `λ = −ϕ·A·ℓ` with a weight `ϕ` computed from `sg(ℓ)`, so
//! `γ = −ϕ·A` and the loss *value* is a REINFORCE surrogate, not a ratio
//! objective (compare gradients, not values, with PPO).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, param, token_output};
use crate::error::Result;

/// CISPO. verl form (`absolute_cap = false`): `ρ̄ = sg(clip(ρ, 1−ε_low, 1+ε_high))`
/// with `ρ` from the ±20-clamped log-ratio (`eps_low = None` ⇒ no lower clip; verl
/// example uses `eps_low = 10`, `eps_high = 0.2`). TRL/Liger form
/// (`absolute_cap = true`): `ρ̄ = sg(min(ρ, eps_high))`, `eps_high` an absolute
/// cap (TRL docstring: 5.0), no lower clip. `λ = −ρ̄Aℓ`, `γ = −ρ̄A`.
/// `clip_frac` = fraction with `ρ ≠ ρ̄`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CispoConfig {
    /// Lower clip ε (verl form only); `None` ⇒ no lower clip.
    #[serde(default)]
    pub eps_low: Option<f64>,
    /// Upper clip: `1 + eps_high` (verl) or the absolute cap `eps_high` (TRL).
    pub eps_high: f64,
    /// TRL's absolute cap semantics.
    pub absolute_cap: bool,
    /// Aggregation (verl `loss_agg_mode`; TRL `dapo` ≡ `token_mean` single batch).
    pub agg: Aggregation,
}

impl CispoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(e) = self.eps_low {
            param("eps_low", e, e >= 0.0, "must be >= 0")?;
        }
        param(
            "eps_high",
            self.eps_high,
            self.eps_high > 0.0,
            "must be > 0",
        )?;
        self.agg.validate()
    }
}

pub(crate) fn cispo(
    c: &CispoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut n_clip = 0.0;
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let rho = ctx.sg_logratio(i, j).clamp(-20.0, 20.0).exp();
            let bar = if c.absolute_cap {
                rho.min(c.eps_high)
            } else {
                let lo = c.eps_low.map_or(f64::NEG_INFINITY, |e| 1.0 - e);
                rho.clamp(lo.min(1.0 + c.eps_high), 1.0 + c.eps_high)
            };
            let a = ctx.x.advantages[[i, j]];
            lam[[i, j]] = -bar * a * ctx.x.log_prob[[i, j]];
            gam[[i, j]] = -bar * a;
            n_clip += (bar != rho) as u8 as f64;
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics.clip_frac = n_clip / ctx.n_tok;
    Ok(out)
}

/// VESPO (TRL `vespo`): per row `lw_i = clamp(Σ_t m·clamp(sg(ℓ)−ℓᵒ, −20, 20), ln 1e-8, 20)`,
/// `w_i = e^{lw_i}`, `(k, λ_v) = (k_pos, lambda_pos)` if `A_i ≥ 0` else `(k_neg, lambda_neg)`
/// (λ_v floored at 1e-4), detached `φ_i = exp(λ_v + k·lw_i − λ_v·w_i)` (non-finite ⇒ 0),
/// `λ = −φ_i A ℓ`. TRL defaults `k_pos = 2, lambda_pos = 3, k_neg = 3, lambda_neg = 2`,
/// aggregation `dapo` (≡ `token_mean`). Difference from TRL: a `rollout_correction`
/// wrapper multiplies the loss instead of being folded into `lw_i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VespoConfig {
    /// k for `A ≥ 0`.
    pub k_pos: f64,
    /// λ for `A ≥ 0`.
    pub lambda_pos: f64,
    /// k for `A < 0`.
    pub k_neg: f64,
    /// λ for `A < 0`.
    pub lambda_neg: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl VespoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("k_pos", self.k_pos, true, "must be finite")?;
        param("k_neg", self.k_neg, true, "must be finite")?;
        param("lambda_pos", self.lambda_pos, true, "must be finite")?;
        param("lambda_neg", self.lambda_neg, true, "must be finite")?;
        self.agg.validate()
    }
}

pub(crate) fn vespo(
    c: &VespoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut phi_sum = 0.0;
    let mut n_rows = 0.0;
    for i in 0..b {
        if ctx.len[i] <= 0.0 {
            continue;
        }
        let lw = ctx.row_sum(i, |j| ctx.sg_logratio(i, j).clamp(-20.0, 20.0));
        let lw = lw.clamp(1e-8f64.ln(), 20.0);
        let w = lw.exp();
        let (k, lv) = if ctx.row_adv(i) >= 0.0 {
            (c.k_pos, c.lambda_pos)
        } else {
            (c.k_neg, c.lambda_neg)
        };
        let lv = lv.max(1e-4);
        let mut phi = (lv + k * lw - lv * w).exp();
        if !phi.is_finite() {
            phi = 0.0;
        }
        phi_sum += phi;
        n_rows += 1.0;
        for j in 0..t {
            if ctx.valid(i, j) {
                let a = ctx.x.advantages[[i, j]];
                lam[[i, j]] = -phi * a * ctx.x.log_prob[[i, j]];
                gam[[i, j]] = -phi * a;
            }
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics
        .extra
        .insert("vespo_phi_mean".into(), phi_sum / f64::max(n_rows, 1.0));
    Ok(out)
}

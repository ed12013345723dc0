//! GMPO geometric-mean policy optimisation (verl `geo_mean`, algorithms.md §4.7).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossOutput, param, require_unit_factor};
use crate::error::Result;

/// GMPO: `x = ℓ − ℓᵒ` (unclamped), `ς = sign(A)`, `x_c = clamp(x, −ε_low, ε_high)`
/// (log space), `x̃ = ς·min(ςx, ςx_c)`, `R_i = exp(Σ_t m x̃/(L_i + 1e-8))`,
/// `Ā_i = Σ_t m A/(L_i + 1e-8)`, `𝓛 = (1/B) Σ_i −Ā_i R_i` over **all** B rows
/// (verl ignores `loss_agg_mode`). Gradient
/// `−Ā_i R_i m 𝟙[(A>0 ∧ x<ε_high) ∨ (A<0 ∧ x>−ε_low)]/((L_i+1e-8)·B)`.
/// The row exponent is capped at 700 to stay finite. Not combinable with token modifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmpoConfig {
    /// ε_low (log space).
    pub eps_low: f64,
    /// ε_high (log space).
    pub eps_high: f64,
}

impl GmpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps_low", self.eps_low, self.eps_low >= 0.0, "must be >= 0")?;
        param(
            "eps_high",
            self.eps_high,
            self.eps_high >= 0.0,
            "must be >= 0",
        )
    }
}

pub(crate) fn gmpo(c: &GmpoConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    require_unit_factor(ctx, factor, "gmpo")?;
    let (b, t) = (ctx.b, ctx.t);
    let mut out = LossOutput::zeros(b, t);
    let bf = b as f64;
    let mut n_clip = 0.0;
    for i in 0..b {
        let den = ctx.len[i] + 1e-8;
        let mut sx = 0.0;
        let mut sa = 0.0;
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let x = ctx.logratio(i, j);
            let sg = if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            };
            let xc = x.clamp(-c.eps_low, c.eps_high);
            sx += sg * (sg * x).min(sg * xc);
            sa += a;
            if a != 0.0 && !((a > 0.0 && x < c.eps_high) || (a < 0.0 && x > -c.eps_low)) {
                n_clip += 1.0;
            }
        }
        let r = (sx / den).min(700.0).exp();
        let abar = sa / den;
        out.loss += -abar * r / bf;
        if sx / den >= 700.0 {
            continue;
        }
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let x = ctx.logratio(i, j);
            if (a > 0.0 && x < c.eps_high) || (a < 0.0 && x > -c.eps_low) {
                out.grad_logp[[i, j]] = -abar * r / (den * bf);
            }
        }
    }
    out.metrics.clip_frac = n_clip / ctx.n_tok;
    Ok(out)
}

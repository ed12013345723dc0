//! PPO-clip token loss with clip-higher and dual-clip (algorithms.md §4.1) and
//! TRL's two-sided clip δ (§4.2).

use ndarray::{Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, param, token_output};
use crate::error::Result;

/// PPO-clip (verl `vanilla`, OpenRLHF `ppo`, TRL/Liger grpo-family).
///
/// `x = clamp(ℓ − ℓᵒ, −20, 20)` (if `clamp_log_ratio`), `ρ = e^x`,
/// `λ₁ = −Aρ`, `λ₂ = −A·clip(ρ, 1−ε_low, 1+ε_high)`, `λ = max(λ₁, λ₂)`, and for
/// `A < 0` with dual clip `λ = min(λ, −A·c)`. Gradient `γ = −Aρ·𝟙_act`.
/// Clip-higher (DAPO) is `eps_high > eps_low`.
/// Defaults (verl): `eps_low = eps_high = 0.2`, `clip_ratio_c = 3.0`, DAPO `eps_high = 0.28`;
/// TRL does not clamp the log-ratio and has no dual clip.
/// Extra metric `pg_clipfrac_lower`: verl's dual-clip fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoClipConfig {
    /// ε_low (lower clip `1 − ε_low`).
    pub eps_low: f64,
    /// ε_high (upper clip `1 + ε_high`); `None` ⇒ `eps_low`.
    #[serde(default)]
    pub eps_high: Option<f64>,
    /// Dual-clip constant `c > 1` (applies to `A < 0`); `None` ⇒ off.
    #[serde(default)]
    pub clip_ratio_c: Option<f64>,
    /// Clamp `ℓ − ℓᵒ` to ±20 before exponentiating (verl, OpenRLHF). Default true.
    #[serde(default = "yes")]
    pub clamp_log_ratio: bool,
    /// Aggregation.
    pub agg: Aggregation,
}

pub(crate) fn yes() -> bool {
    true
}

impl PpoClipConfig {
    pub(crate) fn eps_high(&self) -> f64 {
        self.eps_high.unwrap_or(self.eps_low)
    }
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps_low", self.eps_low, self.eps_low >= 0.0, "must be >= 0")?;
        let h = self.eps_high();
        param("eps_high", h, h >= 0.0, "must be >= 0")?;
        if let Some(c) = self.clip_ratio_c {
            param("clip_ratio_c", c, c > 1.0, "dual-clip constant must be > 1")?;
        }
        self.agg.validate()
    }
}

/// Per-token PPO-clip loss and local gradient, plus (clipped, lower, upper, dual) flags.
pub(crate) struct PpoToken {
    pub lam: f64,
    pub gam: f64,
    pub clipped: bool,
    pub low: bool,
    pub high: bool,
    pub dual: bool,
}

pub(crate) fn ppo_token(
    a: f64,
    logratio: f64,
    eps_low: f64,
    eps_high: f64,
    c: Option<f64>,
    clamp: bool,
) -> PpoToken {
    let (x, inside) = if clamp {
        (logratio.clamp(-20.0, 20.0), logratio.abs() < 20.0)
    } else {
        (logratio, true)
    };
    let rho = x.exp();
    let lo = 1.0 - eps_low;
    let hi = 1.0 + eps_high;
    let l1 = -a * rho;
    let l2 = -a * rho.clamp(lo, hi);
    let lc = l1.max(l2);
    let mut lam = lc;
    let mut dual = false;
    if let Some(c) = c
        && a < 0.0
        && lc > -a * c
    {
        lam = -a * c;
        dual = true;
    }
    let act = match c {
        Some(c) => (a > 0.0 && rho < hi) || (a < 0.0 && rho > lo && rho < c),
        None => (a > 0.0 && rho < hi) || (a < 0.0 && rho > lo),
    };
    let gam = if act && inside { -a * rho } else { 0.0 };
    PpoToken {
        lam,
        gam,
        clipped: l2 > l1,
        low: rho < lo && a < 0.0,
        high: rho > hi && a > 0.0,
        dual,
    }
}

/// Evaluates PPO-clip with the given advantages (shared with DaGRPO).
pub(crate) fn ppo_with_adv(
    c: &PpoClipConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    adv: ArrayView2<'_, f64>,
) -> Result<LossOutput> {
    // The default loss of most recipes: a row-wise `Zip` loop (no 2-D indexing).
    let (mut nc, mut nl, mut nh, mut nd) = (0.0, 0.0, 0.0, 0.0);
    let eh = c.eps_high();
    let rw = c.agg.row_weights(&ctx.len)?;
    let mut out = LossOutput::zeros(ctx.b, ctx.t);
    let mut loss = 0.0;
    for i in 0..ctx.b {
        if rw[i] == 0.0 {
            continue;
        }
        let w = rw[i];
        Zip::from(out.grad_logp.row_mut(i))
            .and(ctx.x.log_prob.row(i))
            .and(ctx.x.old_log_prob.row(i))
            .and(adv.row(i))
            .and(ctx.x.response_mask.row(i))
            .and(factor.row(i))
            .for_each(|g, lp, old, a, m, f| {
                if *m == 0.0 {
                    return;
                }
                let p = ppo_token(
                    *a,
                    lp - old,
                    c.eps_low,
                    eh,
                    c.clip_ratio_c,
                    c.clamp_log_ratio,
                );
                nc += p.clipped as u8 as f64;
                nl += p.low as u8 as f64;
                nh += p.high as u8 as f64;
                nd += p.dual as u8 as f64;
                let wf = w * f;
                if wf != 0.0 {
                    loss += wf * p.lam;
                    *g = wf * p.gam;
                }
            });
    }
    out.loss = loss;
    let n = ctx.n_tok;
    out.metrics.clip_frac = nc / n;
    out.metrics.clip_frac_lower = nl / n;
    out.metrics.clip_frac_upper = nh / n;
    out.metrics.extra.insert("pg_clipfrac_lower".into(), nd / n);
    Ok(out)
}

pub(crate) fn ppo_clip(
    c: &PpoClipConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    ppo_with_adv(c, ctx, factor, ctx.x.advantages)
}

/// TRL two-sided clip (INTELLECT-2): `λ = −min(min(ρ, δ)·A, clip(ρ, 1−ε_low, 1+ε_high)·A)`,
/// no log-ratio clamp. For `δ ≥ 1+ε_high` it equals PPO dual-clip with `c = δ`
/// (without the ±20 clamp). TRL docstring recommends `δ > 1+ε`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoSidedClipConfig {
    /// ε_low.
    pub eps_low: f64,
    /// ε_high; `None` ⇒ `eps_low`.
    #[serde(default)]
    pub eps_high: Option<f64>,
    /// δ (upper cap on ρ for every advantage sign), > 1.
    pub delta: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl TwoSidedClipConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps_low", self.eps_low, self.eps_low >= 0.0, "must be >= 0")?;
        let h = self.eps_high.unwrap_or(self.eps_low);
        param("eps_high", h, h >= 0.0, "must be >= 0")?;
        param("delta", self.delta, self.delta > 1.0, "must be > 1")?;
        self.agg.validate()
    }
}

pub(crate) fn two_sided(
    c: &TwoSidedClipConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let lo = 1.0 - c.eps_low;
    let hi = 1.0 + c.eps_high.unwrap_or(c.eps_low);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let (mut nc, mut nl, mut nh) = (0.0, 0.0, 0.0);
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            // exp of an unclamped log-ratio; capped at 700 only to stay finite.
            let rho = ctx.logratio(i, j).min(700.0).exp();
            let r1 = rho.min(c.delta);
            let r2 = rho.clamp(lo, hi);
            lam[[i, j]] = -(r1 * a).min(r2 * a);
            let act =
                (a > 0.0 && rho < hi && rho < c.delta) || (a < 0.0 && rho > lo && rho < c.delta);
            gam[[i, j]] = if act { -a * rho } else { 0.0 };
            nc += ((r2 * a) < (r1 * a)) as u8 as f64;
            nl += (rho < lo && a < 0.0) as u8 as f64;
            nh += (rho > hi && a > 0.0) as u8 as f64;
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics.clip_frac = nc / ctx.n_tok;
    out.metrics.clip_frac_lower = nl / ctx.n_tok;
    out.metrics.clip_frac_upper = nh / ctx.n_tok;
    Ok(out)
}

//! Clip-Cov and KL-Cov (entropy-mechanism paper; verl `clip_cov`, `kl_cov`; algorithms.md §4.9).
//!
//! Both compute the centred covariance `cov[i,t] = (A − mean_m A)·(sg ℓ − mean_m sg ℓ)`
//! over valid tokens (detached) and treat a small set of high-covariance tokens
//! differently.

use ndarray::Array2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, active, param, token_output};
use crate::error::Result;

/// Clip-Cov: PPO-clip without clamp or dual clip (`λ = max(λ₁, λ₂)`), except that
/// `n = max(⌊ratio·M⌋, 1)` tokens drawn uniformly (seeded RNG) among the valid,
/// unclipped tokens with `lb < cov < ub` are detached (`λ = 0`, `γ = 0`).
/// Defaults (verl): `clip_cov_ratio = 2e-4`, `clip_cov_lb = 1.0`, `clip_cov_ub = 5.0`.
/// Extra metric `cov_picked_frac`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipCovConfig {
    /// ε_low.
    pub eps_low: f64,
    /// ε_high; `None` ⇒ `eps_low`.
    #[serde(default)]
    pub eps_high: Option<f64>,
    /// Fraction of tokens to detach, `r`.
    pub clip_cov_ratio: f64,
    /// Lower covariance bound.
    pub clip_cov_lb: f64,
    /// Upper covariance bound.
    pub clip_cov_ub: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl ClipCovConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps_low", self.eps_low, self.eps_low >= 0.0, "must be >= 0")?;
        let h = self.eps_high.unwrap_or(self.eps_low);
        param("eps_high", h, h >= 0.0, "must be >= 0")?;
        param(
            "clip_cov_ratio",
            self.clip_cov_ratio,
            (0.0..=1.0).contains(&self.clip_cov_ratio),
            "must be in [0, 1]",
        )?;
        param("clip_cov_lb", self.clip_cov_lb, true, "must be finite")?;
        param("clip_cov_ub", self.clip_cov_ub, true, "must be finite")?;
        self.agg.validate()
    }
}

/// KL-Cov: plain IS-PG `λ = −Aρ` (no clipping) plus `κ·|ℓ − ℓᵒ|` on the top
/// `k = max(1, ⌊ratio·M⌋)` tokens by covariance (ties broken by position).
/// `γ = −Aρ + κ·sign(ℓ − ℓᵒ)·𝟙_picked`. Defaults (verl actor.yaml):
/// `kl_cov_ratio = 2e-4`, `ppo_kl_coef = 0.1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlCovConfig {
    /// Fraction of tokens penalised.
    pub kl_cov_ratio: f64,
    /// κ.
    pub ppo_kl_coef: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl KlCovConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param(
            "kl_cov_ratio",
            self.kl_cov_ratio,
            (0.0..=1.0).contains(&self.kl_cov_ratio),
            "must be in [0, 1]",
        )?;
        param(
            "ppo_kl_coef",
            self.ppo_kl_coef,
            self.ppo_kl_coef >= 0.0,
            "must be >= 0",
        )?;
        self.agg.validate()
    }
}

/// Detached covariance per valid token, in row-major order: `(i, j, cov)`.
fn covariances(ctx: &Ctx<'_, '_>) -> Vec<(usize, usize, f64)> {
    let ma = ctx.token_mean(|i, j| ctx.x.advantages[[i, j]]);
    let ml = ctx.token_mean(|i, j| ctx.sg(i, j));
    let mut v = Vec::new();
    for i in 0..ctx.b {
        for j in 0..ctx.t {
            if ctx.valid(i, j) {
                v.push((i, j, (ctx.x.advantages[[i, j]] - ma) * (ctx.sg(i, j) - ml)));
            }
        }
    }
    v
}

pub(crate) fn clip_cov(
    c: &ClipCovConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let lo = 1.0 - c.eps_low;
    let hi = 1.0 + c.eps_high.unwrap_or(c.eps_low);
    let cand: Vec<(usize, usize)> = covariances(ctx)
        .into_iter()
        .filter(|(i, j, cv)| {
            let a = ctx.x.advantages[[*i, *j]];
            let r = ctx.sg_logratio(*i, *j).min(700.0).exp();
            let clipped = -a * r.clamp(lo, hi) > -a * r;
            !clipped && *cv > c.clip_cov_lb && *cv < c.clip_cov_ub
        })
        .map(|(i, j, _)| (i, j))
        .collect();
    let n = ((c.clip_cov_ratio * ctx.n_tok).floor() as usize).max(1);
    let mut picked = Array2::<f64>::zeros((b, t));
    let k = n.min(cand.len());
    if k > 0 {
        for ix in rand::seq::index::sample(rng, cand.len(), k).iter() {
            let (i, j) = cand[ix];
            picked[[i, j]] = 1.0;
        }
    }
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut n_clip = 0.0;
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let r = ctx.logratio(i, j).min(700.0).exp();
            let l1 = -a * r;
            let l2 = -a * r.clamp(lo, hi);
            n_clip += (l2 > l1) as u8 as f64;
            if picked[[i, j]] == 0.0 {
                lam[[i, j]] = l1.max(l2);
                gam[[i, j]] = if active(a, r, lo, hi) { -a * r } else { 0.0 };
            }
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics.clip_frac = n_clip / ctx.n_tok;
    out.metrics
        .extra
        .insert("cov_picked_frac".into(), k as f64 / ctx.n_tok);
    Ok(out)
}

pub(crate) fn kl_cov(
    c: &KlCovConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut cov = covariances(ctx);
    // Stable sort by descending covariance keeps the earlier position on ties.
    cov.sort_by(|x, y| y.2.total_cmp(&x.2));
    let k = ((c.kl_cov_ratio * ctx.n_tok).floor() as usize)
        .max(1)
        .min(cov.len());
    let mut picked = Array2::<f64>::zeros((b, t));
    for (i, j, _) in cov.iter().take(k) {
        picked[[*i, *j]] = 1.0;
    }
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let x = ctx.logratio(i, j);
            let r = x.min(700.0).exp();
            lam[[i, j]] = -a * r;
            gam[[i, j]] = -a * r;
            if picked[[i, j]] != 0.0 {
                lam[[i, j]] += c.ppo_kl_coef * x.abs();
                gam[[i, j]] += c.ppo_kl_coef * x.signum() * (x != 0.0) as u8 as f64;
            }
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics
        .extra
        .insert("cov_picked_frac".into(), k as f64 / ctx.n_tok);
    Ok(out)
}

//! Ratio losses with a smooth trust-region penalty instead of clipping:
//! MDPO (algorithms.md §4.18) and R²VPO (reconstructed, §9.2).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, param, token_output};
use crate::error::Result;

/// MDPO, LLM token adaptation of the on-policy multistep-SGD variant:
/// `λ = −ρA + (ρx − ρ + 1)/t_k` with `x = ℓ − ℓᵒ`, `ρ = e^x` (the second term is the
/// unbiased sample estimate of KL(π_θ‖π_old) from old samples), `γ = −ρA + ρx/t_k`.
/// The official schedule is `t_k = 1 − (k−1)/K` over K outer iterations
/// ([`MdpoConfig::annealed_t_k`]); the trainer sets `t_k` each iteration.
/// Extra metric `mdpo_kl` = `mean_m(ρx − ρ + 1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdpoConfig {
    /// Step size `t_k` (> 0); the KL weight is `1/t_k`.
    pub t_k: f64,
    /// Aggregation.
    pub agg: Aggregation,
}

impl MdpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("t_k", self.t_k, self.t_k > 0.0, "must be > 0")?;
        self.agg.validate()
    }

    /// The official linear anneal `t_k = 1 − (k−1)/K` for outer iteration
    /// `k ∈ 1..=K` (floored at `1/K` so the last iteration stays finite).
    pub fn annealed_t_k(k: u64, total: u64) -> f64 {
        let kk = total.max(1) as f64;
        (1.0 - (k.max(1) - 1) as f64 / kk).max(1.0 / kk)
    }
}

pub(crate) fn mdpo(c: &MdpoConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut kl = 0.0;
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let x = ctx.logratio(i, j).min(700.0);
            let r = x.exp();
            let k = r * x - r + 1.0;
            kl += k;
            lam[[i, j]] = -r * a + k / c.t_k;
            gam[[i, j]] = -r * a + r * x / c.t_k;
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics.extra.insert("mdpo_kl".into(), kl / ctx.n_tok);
    Ok(out)
}

/// R²VPO (**reconstructed** from the abstract; no verified defaults):
/// `λ = −ρA + η((ρ−1)² − δ_V)`, so with `token_mean` `𝓛 = −mean_m(ρA) + η(V − δ_V)`
/// with `V = mean_m(ρ−1)²`; `γ = −Aρ + 2η(ρ−1)ρ`. The dual variable is updated
/// between steps by [`R2vpoDual`]. Extra metric `ratio_variance` = V.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct R2vpoConfig {
    /// Current dual variable η ≥ 0.
    pub eta: f64,
    /// Variance budget δ_V.
    pub delta_v: f64,
    /// Aggregation (the reconstruction uses `token_mean`).
    pub agg: Aggregation,
}

impl R2vpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eta", self.eta, self.eta >= 0.0, "must be >= 0")?;
        param("delta_v", self.delta_v, self.delta_v >= 0.0, "must be >= 0")?;
        self.agg.validate()
    }
}

/// R²VPO dual ascent: `η ← max(0, η + lr·(V − δ_V))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct R2vpoDual {
    /// η.
    pub eta: f64,
    /// Dual step size α_η.
    pub lr: f64,
    /// δ_V.
    pub delta_v: f64,
}

impl R2vpoDual {
    /// One dual step with the measured ratio variance `v` (metric `ratio_variance`).
    pub fn update(&mut self, v: f64) -> Result<f64> {
        param("ratio_variance", v, v >= 0.0, "must be finite and >= 0")?;
        self.eta = (self.eta + self.lr * (v - self.delta_v)).max(0.0);
        Ok(self.eta)
    }
}

pub(crate) fn r2vpo(
    c: &R2vpoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut v = 0.0;
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let r = ctx.logratio(i, j).min(700.0).exp();
            v += (r - 1.0) * (r - 1.0);
            lam[[i, j]] = -r * a + c.eta * ((r - 1.0) * (r - 1.0) - c.delta_v);
            gam[[i, j]] = -a * r + 2.0 * c.eta * (r - 1.0) * r;
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics
        .extra
        .insert("ratio_variance".into(), v / ctx.n_tok);
    Ok(out)
}

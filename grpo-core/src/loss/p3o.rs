//! P3O pairwise proximal policy optimisation (algorithms.md §4.16).
//!
//! The pairwise policy gradient is from the paper; the clipped forms V1/V2 are
//! **reconstructed** (they reproduce the verified gradient at ρ = 1 and PPO's
//! clipping logic). Groups of n > 2 use all unordered pairs, averaged (ours).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossOutput, active, param, require_unit_factor};
use crate::error::Result;

/// Clipping variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum P3oVariant {
    /// Separate clipping of each response's sequence ratio.
    V1,
    /// Joint clipping of the ratio of ratios `ρ₁/ρ₂`.
    V2,
}

/// P3O: for each pair `(y₁, y₂)` of non-empty rows in a group, `Δ = R₁ − R₂`,
/// `Λ_j = Σ_t m ℓ[j,t]`, `ρ_j = exp(clamp(Λ_j − Λᵒ_j, −20, 20))`;
/// V1: `−½[min(ρ₁Δ, clip(ρ₁)Δ) + min(−ρ₂Δ, −clip(ρ₂)Δ)]`;
/// V2: `−½ min(ρ₁₂Δ, clip(ρ₁₂)Δ)`, `ρ₁₂ = ρ₁/ρ₂`; `𝓛` = mean over pairs. Needs
/// `rewards` and `index`. At ρ = 1 the gradient is `−½Δ` per token of `y₁` (Dr.GRPO,
/// n = 2, token-sum weights). No verified default for `eps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P3oConfig {
    /// Variant.
    pub variant: P3oVariant,
    /// Clip range ε (`[1−ε, 1+ε]`).
    pub eps: f64,
}

impl P3oConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps", self.eps, self.eps >= 0.0, "must be >= 0")
    }
}

/// `(λ, ∂λ/∂log ρ)` of `−min(ρa, clip(ρ)a)` with `ρ = e^{lr}` (clamped at ±20).
fn clipped(a: f64, lr: f64, eps: f64) -> (f64, f64) {
    let r = lr.clamp(-20.0, 20.0).exp();
    let (lo, hi) = (1.0 - eps, 1.0 + eps);
    let lam = -(r * a).min(r.clamp(lo, hi) * a);
    let d = if lr.abs() < 20.0 && active(a, r, lo, hi) {
        -a * r
    } else {
        0.0
    };
    (lam, d)
}

pub(crate) fn p3o(c: &P3oConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    require_unit_factor(ctx, factor, "p3o")?;
    let groups = ctx.groups("p3o")?;
    let rewards = ctx.rewards("p3o")?;
    let (b, t) = (ctx.b, ctx.t);
    let lr: Vec<f64> = (0..b)
        .map(|i| ctx.row_sum(i, |j| ctx.logratio(i, j)))
        .collect();
    let mut pairs = Vec::new();
    for g in &groups {
        let rows: Vec<usize> = g.iter().copied().filter(|i| ctx.len[*i] > 0.0).collect();
        for (k, i) in rows.iter().enumerate() {
            for j in rows.iter().skip(k + 1) {
                pairs.push((*i, *j));
            }
        }
    }
    let mut out = LossOutput::zeros(b, t);
    if pairs.is_empty() {
        return Ok(out);
    }
    let np = pairs.len() as f64;
    let mut dlam = vec![0.0; b]; // ∂𝓛/∂Λ_i
    for (i, j) in pairs {
        let delta = rewards[i] - rewards[j];
        match c.variant {
            P3oVariant::V1 => {
                let (l1, d1) = clipped(delta, lr[i], c.eps);
                let (l2, d2) = clipped(-delta, lr[j], c.eps);
                out.loss += 0.5 * (l1 + l2) / np;
                dlam[i] += 0.5 * d1 / np;
                dlam[j] += 0.5 * d2 / np;
            }
            P3oVariant::V2 => {
                let (l, d) = clipped(delta, lr[i] - lr[j], c.eps);
                out.loss += 0.5 * l / np;
                dlam[i] += 0.5 * d / np;
                dlam[j] -= 0.5 * d / np;
            }
        }
    }
    for i in 0..b {
        for j in 0..t {
            if ctx.valid(i, j) {
                out.grad_logp[[i, j]] = dlam[i];
            }
        }
    }
    Ok(out)
}

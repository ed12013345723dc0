//! REINFORCE-type losses that are linear in `ℓ` up to detached weights:
//! REINFORCE / GPG / IS-weighted PG (algorithms.md §4.10) and the Trinity-RFT
//! OPMD and REC policy losses (§4.17).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, param, token_output};
use crate::error::Result;

/// REINFORCE / GPG / IS-weighted PG: `λ = −A·ℓ·ϖ`, `γ = −A·ϖ`. Without
/// `is_threshold`, `ϖ = 1` (verl `gpg`, default `token_mean`, and
/// `compute_policy_loss_reinforce`, default `seq_mean_token_sum`). With it,
/// `ϖ = sg(min(e^{ℓ−ℓᵒ}, is_threshold))` — verl's bypass mode
/// (`loss_type = "reinforce"`, set `old_log_prob := rollout log-probs`,
/// `rollout_is_threshold = 2.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinforceConfig {
    /// Truncation of the detached IS weight; `None` ⇒ plain REINFORCE.
    #[serde(default)]
    pub is_threshold: Option<f64>,
    /// Aggregation.
    pub agg: Aggregation,
}

impl ReinforceConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(c) = self.is_threshold {
            param("is_threshold", c, c > 0.0, "must be > 0")?;
        }
        self.agg.validate()
    }
}

pub(crate) fn reinforce(
    c: &ReinforceConfig,
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
            let w = match c.is_threshold {
                Some(th) => {
                    let r = ctx.sg_logratio(i, j).clamp(-20.0, 20.0).exp();
                    n_clip += (r > th) as u8 as f64;
                    r.min(th)
                }
                None => 1.0,
            };
            let a = ctx.x.advantages[[i, j]];
            lam[[i, j]] = -a * ctx.x.log_prob[[i, j]] * w;
            gam[[i, j]] = -a * w;
        }
    }
    let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
    out.metrics.clip_frac = n_clip / ctx.n_tok;
    Ok(out)
}

/// Trinity-RFT `opmd` policy loss: `𝓛 = token_mean(−A·ℓ)/(1+τ)` (τ default 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpmdConfig {
    /// τ.
    pub tau: f64,
}

impl OpmdConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("tau", self.tau, self.tau > -1.0, "must be > -1")
    }
}

pub(crate) fn opmd(c: &OpmdConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    for i in 0..b {
        for j in 0..t {
            if ctx.valid(i, j) {
                let a = ctx.x.advantages[[i, j]] / (1.0 + c.tau);
                lam[[i, j]] = -a * ctx.x.log_prob[[i, j]];
                gam[[i, j]] = -a;
            }
        }
    }
    token_output(ctx, &Aggregation::TokenMean, &lam, &gam, factor)
}

/// REC in-range test on the detached ratio `ρ̂`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecClipMode {
    /// Every token in range.
    None,
    /// `(ρ̂ ≤ 1+ε_h ∧ A ≥ 0) ∨ (A ≤ 0 ∧ ρ̂ ≥ 1−ε_l)`.
    OneSide,
    /// `1−ε_l ≤ ρ̂ ≤ 1+ε_h`.
    TwoSide,
    /// two-side ∨ `(A ≥ 0 ∧ ρ̂ ≤ 1−ε'_l)` ∨ `(A ≤ 0 ∧ ρ̂ ≥ 1+ε'_h)`.
    Ring,
}

/// REC advantage weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecWeight {
    /// `A`.
    None,
    /// `A·ρ̂`.
    ImportanceSampling,
    /// `A·e^{A/temp}`.
    Advantage,
}

/// REC regulariser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecRegularizer {
    /// None.
    None,
    /// `λ −= c·ℓ`.
    ForwardKl,
    /// `λ += c·(ℓ − ℓᵒ)²` (OPMD-Kimi: `c = τ/2`).
    K2,
}

fn d_eps_l() -> f64 {
    0.2
}
fn d_eps_ring_l() -> f64 {
    0.6
}
fn d_eps_ring_h() -> f64 {
    2.0
}
fn d_one() -> f64 {
    1.0
}

/// Trinity-RFT REC policy loss (token-mean): `λ = −A_w·ℓ·I` plus the regulariser,
/// `ρ̂ = sg(e^{ℓ−ℓᵒ})`. `γ = −A_w·I − c` (forward_kl) or `−A_w·I + 2c(ℓ−ℓᵒ)` (k2).
/// The paper's OPMD (Kimi-style) is `regularizer = k2, reg_coef = τ/2`; AsymRE is
/// this loss with the shifted-baseline advantage (§3.16). Defaults (Trinity-RFT):
/// `eps_low = eps_high = 0.2`, `eps_low_ring = 0.6`, `eps_high_ring = 2`, `temp = 1`,
/// `reg_coef = 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecConfig {
    /// In-range rule.
    pub clip_mode: RecClipMode,
    /// Advantage weighting.
    pub weight: RecWeight,
    /// Regulariser.
    pub regularizer: RecRegularizer,
    /// ε_l.
    #[serde(default = "d_eps_l")]
    pub eps_low: f64,
    /// ε_h.
    #[serde(default = "d_eps_l")]
    pub eps_high: f64,
    /// ε'_l (ring).
    #[serde(default = "d_eps_ring_l")]
    pub eps_low_ring: f64,
    /// ε'_h (ring).
    #[serde(default = "d_eps_ring_h")]
    pub eps_high_ring: f64,
    /// Temperature of the `advantage` weighting.
    #[serde(default = "d_one")]
    pub temp: f64,
    /// Regulariser coefficient `c`.
    #[serde(default)]
    pub reg_coef: f64,
}

impl RecConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        for (n, v) in [
            ("eps_low", self.eps_low),
            ("eps_high", self.eps_high),
            ("eps_low_ring", self.eps_low_ring),
            ("eps_high_ring", self.eps_high_ring),
        ] {
            param(n, v, v >= 0.0, "must be >= 0")?;
        }
        param("temp", self.temp, self.temp > 0.0, "must be > 0")?;
        param("reg_coef", self.reg_coef, true, "must be finite")
    }
}

pub(crate) fn rec(c: &RecConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut lam = Array2::zeros((b, t));
    let mut gam = Array2::zeros((b, t));
    let mut n_out = 0.0;
    let (lo, hi) = (1.0 - c.eps_low, 1.0 + c.eps_high);
    for i in 0..b {
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let r = ctx.sg_logratio(i, j).clamp(-20.0, 20.0).exp();
            let two = lo <= r && r <= hi;
            let inr = match c.clip_mode {
                RecClipMode::None => true,
                RecClipMode::OneSide => (r <= hi && a >= 0.0) || (a <= 0.0 && r >= lo),
                RecClipMode::TwoSide => two,
                RecClipMode::Ring => {
                    two || (a >= 0.0 && r <= 1.0 - c.eps_low_ring)
                        || (a <= 0.0 && r >= 1.0 + c.eps_high_ring)
                }
            };
            let aw = match c.weight {
                RecWeight::None => a,
                RecWeight::ImportanceSampling => a * r,
                RecWeight::Advantage => a * (a / c.temp).min(50.0).exp(),
            };
            let ind = if inr { 1.0 } else { 0.0 };
            n_out += 1.0 - ind;
            let l = ctx.x.log_prob[[i, j]];
            let x = ctx.logratio(i, j);
            let (rl, rg) = match c.regularizer {
                RecRegularizer::None => (0.0, 0.0),
                RecRegularizer::ForwardKl => (-c.reg_coef * l, -c.reg_coef),
                RecRegularizer::K2 => (c.reg_coef * x * x, 2.0 * c.reg_coef * x),
            };
            lam[[i, j]] = -aw * l * ind + rl;
            gam[[i, j]] = -aw * ind + rg;
        }
    }
    let mut out = token_output(ctx, &Aggregation::TokenMean, &lam, &gam, factor)?;
    out.metrics.clip_frac = n_out / ctx.n_tok;
    Ok(out)
}

//! GSPO sequence-level ratio, GSPO-token and LUSPO (algorithms.md §4.3, §4.4).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossOutput, active, param, token_output};
use crate::error::Result;

/// GSPO: `s_i = exp(min(Σ_t m(ℓ−ℓᵒ)/max(L_i,1), 10))`, per-token loss
/// `λ[i,t] = −min(s_i A[i,t], clip(s_i, 1−ε_low, 1+ε_high) A[i,t])`, aggregated with `agg`.
///
/// `gspo` returns the exact gradient of this value (TRL `importance_sampling_level
/// = "sequence"`, OpenRLHF `gspo`): `∂𝓛/∂ℓ[i,t] = (Σ_t' w f ∂λ[i,t']/∂s_i)·s_i·m[i,t]/L_i`.
/// `gspo_token` is verl's `gspo` / the paper's GSPO-token surrogate:
/// `s[i,t] = exp(sg(log s_i) + ℓ − sg ℓ)`, gradient `w·(−A[i,t] s_i 𝟙_act)`. Both agree
/// when the advantage is constant over each row. verl forces `seq_mean_token_mean`;
/// here `agg` is explicit. Defaults (verl example): `eps_low = 3e-4`, `eps_high = 4e-4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GspoConfig {
    /// ε_low.
    pub eps_low: f64,
    /// ε_high.
    pub eps_high: f64,
    /// Aggregation (verl and the GSPO paper: `seq_mean_token_mean`).
    pub agg: Aggregation,
}

impl GspoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("eps_low", self.eps_low, self.eps_low >= 0.0, "must be >= 0")?;
        param(
            "eps_high",
            self.eps_high,
            self.eps_high >= 0.0,
            "must be >= 0",
        )?;
        self.agg.validate()
    }
}

/// LUSPO (TRL `luspo`): GSPO per-token loss aggregated by `seq_mean_token_sum`,
/// i.e. `(1/B') Σ_i L_i λ_i`. Deliberate difference from TRL: divides by the
/// number of non-empty rows `B'` (TRL divides by `B`; equal without empty rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuspoConfig {
    /// ε_low.
    pub eps_low: f64,
    /// ε_high.
    pub eps_high: f64,
}

impl LuspoConfig {
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

/// `(λ, ∂λ/∂s, clipped)` for one token with advantage `a` and ratio `s`.
fn seq_token(a: f64, s: f64, lo: f64, hi: f64) -> (f64, f64, bool) {
    let sc = s.clamp(lo, hi);
    let lam = -(s * a).min(sc * a);
    let d = if active(a, s, lo, hi) { -a } else { 0.0 };
    let clipped = (a > 0.0 && s > hi) || (a < 0.0 && s < lo);
    (lam, d, clipped)
}

pub(crate) fn gspo(
    c: &GspoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    token_surrogate: bool,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let lo = 1.0 - c.eps_low;
    let hi = 1.0 + c.eps_high;
    let mut n_clip = 0.0;
    if token_surrogate {
        let mut lam = Array2::zeros((b, t));
        let mut gam = Array2::zeros((b, t));
        for i in 0..b {
            if ctx.len[i] <= 0.0 {
                continue;
            }
            let ls = ctx.row_sum(i, |j| ctx.sg_logratio(i, j)) / ctx.len[i].max(1.0);
            for j in 0..t {
                if !ctx.valid(i, j) {
                    continue;
                }
                let comb = ls + ctx.x.log_prob[[i, j]] - ctx.sg(i, j);
                let s = comb.min(10.0).exp();
                let a = ctx.x.advantages[[i, j]];
                let (l, d, cl) = seq_token(a, s, lo, hi);
                lam[[i, j]] = l;
                gam[[i, j]] = if comb < 10.0 { d * s } else { 0.0 };
                n_clip += cl as u8 as f64;
            }
        }
        let mut out = token_output(ctx, &c.agg, &lam, &gam, factor)?;
        out.metrics.clip_frac = n_clip / ctx.n_tok;
        return Ok(out);
    }
    seq_exact(&c.agg, lo, hi, ctx, factor)
}

fn seq_exact(
    agg: &Aggregation,
    lo: f64,
    hi: f64,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let w = agg.weights(ctx.x.response_mask)?;
    let mut out = LossOutput::zeros(b, t);
    let (mut n_clip, mut n_lo, mut n_hi) = (0.0, 0.0, 0.0);
    for i in 0..b {
        if ctx.len[i] <= 0.0 {
            continue;
        }
        let ls = ctx.row_sum(i, |j| ctx.logratio(i, j)) / ctx.len[i].max(1.0);
        let s = ls.min(10.0).exp();
        let ds_scale = if ls < 10.0 { s / ctx.len[i] } else { 0.0 };
        let mut dl_ds = 0.0;
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let a = ctx.x.advantages[[i, j]];
            let (l, d, cl) = seq_token(a, s, lo, hi);
            let wf = w[[i, j]] * factor[[i, j]];
            out.loss += wf * l;
            dl_ds += wf * d;
            n_clip += cl as u8 as f64;
            n_lo += (a < 0.0 && s < lo) as u8 as f64;
            n_hi += (a > 0.0 && s > hi) as u8 as f64;
        }
        for j in 0..t {
            if ctx.valid(i, j) {
                out.grad_logp[[i, j]] = dl_ds * ds_scale;
            }
        }
    }
    out.metrics.clip_frac = n_clip / ctx.n_tok;
    out.metrics.clip_frac_lower = n_lo / ctx.n_tok;
    out.metrics.clip_frac_upper = n_hi / ctx.n_tok;
    Ok(out)
}

pub(crate) fn luspo(
    c: &LuspoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    seq_exact(
        &Aggregation::SeqMeanTokenSum,
        1.0 - c.eps_low,
        1.0 + c.eps_high,
        ctx,
        factor,
    )
}

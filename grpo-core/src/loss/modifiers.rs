//! Token modifiers: wrappers that multiply each token's loss and gradient of
//! their `base` loss by a detached factor (algorithms.md §4.11, §4.12, §4.14, §9.8).
//! Factors compose multiplicatively; aggregation weights are unchanged (as in TRL,
//! masked tokens still count in the normaliser).

use ndarray::Array2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossConfig, LossOutput, param, quantile};
use crate::error::{CoreError, Result};

fn missing(method: &str, what: &str) -> CoreError {
    CoreError::MissingInput {
        method: method.into(),
        what: what.into(),
    }
}

/// Token or sequence importance ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutIsLevel {
    /// `d[i,t] = ℓᵒ − ℓˢ` per token.
    Token,
    /// `d_i = Σ_t m(ℓᵒ − ℓˢ)` per row.
    Sequence,
}

/// How out-of-range weights are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutIsMode {
    /// TIS: `ϖ ← clamp(ϖ, c_min, c_max)`.
    Truncate,
    /// MIS / icepop (token level): `ϖ ← ϖ·𝟙[c_min ≤ ϖ ≤ c_max]`.
    Mask,
    /// OpenRLHF `seq-mask-tis`: token weight `e^{ℓᵒ−ℓˢ}` gated by
    /// `𝟙[c_min ≤ exp(mean_t(ℓᵒ−ℓˢ)) ≤ c_max]` (ignores `level`).
    SeqMaskTis,
}

/// Rollout-vs-trainer importance correction (TRL `vllm_importance_sampling_*`,
/// OpenRLHF `tis`/`icepop`/`seq-mask-tis`): `ϖ = e^d` (exponent capped at 50 to stay
/// finite) with `d = ℓᵒ − ℓˢ`, truncated or masked, multiplies the base loss
/// per token. Needs `rollout_log_prob`. TRL default: `sequence` + `mask`,
/// `c_max = 3.0`, no `c_min`. A missing bound is ±∞. Extra metrics `is_weight_mean`,
/// `is_masked_frac`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutCorrectionConfig {
    /// Token or sequence ratio.
    pub level: RolloutIsLevel,
    /// Truncate or mask.
    pub mode: RolloutIsMode,
    /// Lower bound.
    #[serde(default)]
    pub c_min: Option<f64>,
    /// Upper bound.
    #[serde(default)]
    pub c_max: Option<f64>,
    /// The loss being corrected.
    pub base: Box<LossConfig>,
}

impl RolloutCorrectionConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let lo = self.c_min.unwrap_or(0.0);
        param("c_min", lo, lo >= 0.0, "must be >= 0")?;
        if let Some(hi) = self.c_max {
            param("c_max", hi, hi >= lo, "must be >= c_min")?;
        }
        Ok(())
    }
}

pub(crate) fn rollout_correction(
    c: &RolloutCorrectionConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let ls = ctx
        .x
        .rollout_log_prob
        .ok_or_else(|| missing("rollout_correction", "rollout_log_prob"))?;
    let (b, t) = (ctx.b, ctx.t);
    let lo = c.c_min.unwrap_or(f64::NEG_INFINITY);
    let hi = c.c_max.unwrap_or(f64::INFINITY);
    let d = |i: usize, j: usize| ctx.x.old_log_prob[[i, j]] - ls[[i, j]];
    let mut f = factor.clone();
    let (mut wsum, mut nmask) = (0.0, 0.0);
    for i in 0..b {
        if ctx.len[i] <= 0.0 {
            continue;
        }
        let dsum = ctx.row_sum(i, |j| d(i, j));
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let w = match (c.mode, c.level) {
                (RolloutIsMode::SeqMaskTis, _) => {
                    let gate = (dsum / ctx.len[i]).min(50.0).exp();
                    let w = d(i, j).min(50.0).exp();
                    if gate >= lo && gate <= hi { w } else { 0.0 }
                }
                (mode, level) => {
                    let dd = match level {
                        RolloutIsLevel::Token => d(i, j),
                        RolloutIsLevel::Sequence => dsum,
                    };
                    let w = dd.min(50.0).exp();
                    match mode {
                        RolloutIsMode::Truncate => w.max(lo).min(hi),
                        _ => {
                            if w >= lo && w <= hi {
                                w
                            } else {
                                0.0
                            }
                        }
                    }
                }
            };
            nmask += (w == 0.0) as u8 as f64;
            wsum += w;
            f[[i, j]] *= w;
        }
    }
    let mut out = c.base.eval(ctx, &f, rng)?;
    out.metrics
        .extra
        .insert("is_weight_mean".into(), wsum / ctx.n_tok);
    out.metrics
        .extra
        .insert("is_masked_frac".into(), nmask / ctx.n_tok);
    Ok(out)
}

/// Off-policy sequence mask (TRL `off_policy_mask_threshold`, DeepSeek-V3.2):
/// `D_i = Σ_t m(ℓˢ − sg ℓ)/max(L_i, 1)` (`ℓˢ` = rollout log-probs if given, else
/// `ℓᵒ`), `keep_i = 𝟙[A_i ≥ 0 ∨ D_i ≤ threshold]`. No default (TRL docstring
/// example 0.5). Extra metric `off_policy_kept_frac` (rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffPolicyMaskConfig {
    /// δ_opsm.
    pub threshold: f64,
    /// The masked loss.
    pub base: Box<LossConfig>,
}

impl OffPolicyMaskConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("threshold", self.threshold, true, "must be finite")
    }
}

pub(crate) fn off_policy_mask(
    c: &OffPolicyMaskConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let src = ctx.x.rollout_log_prob.unwrap_or(ctx.x.old_log_prob);
    let (b, t) = (ctx.b, ctx.t);
    let mut f = factor.clone();
    let (mut kept, mut rows) = (0.0, 0.0);
    for i in 0..b {
        if ctx.len[i] <= 0.0 {
            continue;
        }
        rows += 1.0;
        let d = ctx.row_sum(i, |j| src[[i, j]] - ctx.sg(i, j)) / ctx.len[i].max(1.0);
        let keep = ctx.row_adv(i) >= 0.0 || d <= c.threshold;
        if keep {
            kept += 1.0;
        } else {
            for j in 0..t {
                f[[i, j]] = 0.0;
            }
        }
    }
    let mut out = c.base.eval(ctx, &f, rng)?;
    out.metrics
        .extra
        .insert("off_policy_kept_frac".into(), kept / f64::max(rows, 1.0));
    Ok(out)
}

/// Top-entropy-quantile mask ("Beyond the 80/20 rule", TRL `top_entropy_quantile`):
/// `τ_H` = linear-interpolation quantile at `1 − quantile` of the valid entropies,
/// keep tokens with `H ≥ τ_H`. `quantile = 1` keeps everything (TRL default, off;
/// paper recommends 0.2). Needs `entropy`. Extra metric `entropy_mask_frac` (kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopEntropyMaskConfig {
    /// ρ_H ∈ (0, 1].
    pub quantile: f64,
    /// The masked loss.
    pub base: Box<LossConfig>,
}

impl TopEntropyMaskConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param(
            "quantile",
            self.quantile,
            self.quantile > 0.0 && self.quantile <= 1.0,
            "must be in (0, 1]",
        )
    }
}

pub(crate) fn top_entropy_mask(
    c: &TopEntropyMaskConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let h = ctx
        .x
        .entropy
        .ok_or_else(|| missing("top_entropy_mask", "entropy"))?;
    let (b, t) = (ctx.b, ctx.t);
    let mut vals: Vec<f64> = Vec::new();
    for i in 0..b {
        for j in 0..t {
            if ctx.valid(i, j) {
                vals.push(h[[i, j]]);
            }
        }
    }
    let tau = quantile(&mut vals, 1.0 - c.quantile);
    let mut f = factor.clone();
    let mut kept = 0.0;
    for i in 0..b {
        for j in 0..t {
            if ctx.valid(i, j) {
                if h[[i, j]] >= tau {
                    kept += 1.0;
                } else {
                    f[[i, j]] = 0.0;
                }
            }
        }
    }
    let mut out = c.base.eval(ctx, &f, rng)?;
    out.metrics
        .extra
        .insert("entropy_mask_frac".into(), kept / ctx.n_tok);
    Ok(out)
}

/// CAPO-style masking (**reconstructed**, §9.8): the caller supplies a per-token
/// instability score `κ[i,t]` (`instability` input, e.g. from curvature estimates);
/// mask the `⌊fraction·M⌋` highest-scoring valid tokens (ties by position;
/// the abstract reports < 8%) or every token with `κ > threshold`. Exactly one
/// of `fraction`, `threshold`. Extra metric `capo_masked_frac`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapoMaskConfig {
    /// Fraction of valid tokens to mask.
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Score threshold.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The masked loss.
    pub base: Box<LossConfig>,
}

impl CapoMaskConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        match (self.fraction, self.threshold) {
            (Some(q), None) => param("fraction", q, (0.0..=1.0).contains(&q), "must be in [0, 1]"),
            (None, Some(th)) => param("threshold", th, true, "must be finite"),
            _ => Err(CoreError::InvalidParam {
                name: "fraction/threshold".into(),
                value: format!("{:?}/{:?}", self.fraction, self.threshold),
                reason: "give exactly one of `fraction` and `threshold`".into(),
            }),
        }
    }
}

pub(crate) fn capo_mask(
    c: &CapoMaskConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let k = ctx
        .x
        .instability
        .ok_or_else(|| missing("capo_mask", "instability"))?;
    let (b, t) = (ctx.b, ctx.t);
    let mut f = factor.clone();
    let mut masked = 0.0;
    match (c.fraction, c.threshold) {
        (Some(q), _) => {
            let mut v: Vec<(usize, usize, f64)> = Vec::new();
            for i in 0..b {
                for j in 0..t {
                    if ctx.valid(i, j) {
                        v.push((i, j, k[[i, j]]));
                    }
                }
            }
            v.sort_by(|x, y| y.2.total_cmp(&x.2));
            let n = (q * ctx.n_tok).floor() as usize;
            for (i, j, _) in v.into_iter().take(n) {
                f[[i, j]] = 0.0;
                masked += 1.0;
            }
        }
        (None, Some(th)) => {
            for i in 0..b {
                for j in 0..t {
                    if ctx.valid(i, j) && k[[i, j]] > th {
                        f[[i, j]] = 0.0;
                        masked += 1.0;
                    }
                }
            }
        }
        (None, None) => {}
    }
    let mut out = c.base.eval(ctx, &f, rng)?;
    out.metrics
        .extra
        .insert("capo_masked_frac".into(), masked / ctx.n_tok);
    Ok(out)
}

//! Additive terms: KL penalty to the reference policy (algorithms.md §5), entropy
//! bonus with the adaptive coefficient controller (§4.13), and the LLDS
//! likelihood-preserving regulariser (§4.19). Each wraps a `base` loss and adds
//! its value and exact gradient.

use ndarray::Array2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Aggregation, Ctx, LossConfig, LossOutput, param};
use crate::error::{CoreError, Result};
use crate::kl::KlEstimator;

fn missing(method: &str, what: &str) -> CoreError {
    CoreError::MissingInput {
        method: method.into(),
        what: what.into(),
    }
}

/// KL loss `coef·Agg(k)` with `k` any [`KlEstimator`] of `ℓ` vs `ℓʳ`
/// (verl `use_kl_loss`/`kl_loss_coef`/`kl_loss_type`, default `k3` with coef 0.001;
/// TRL `beta`, `k3_unclamped` or `k3_bias_corrected`). Needs `ref_log_prob`
/// (or `full_kl` for `full`, whose gradient is returned in
/// [`LossOutput::grad_full_kl`]). Sets [`super::LossMetrics::kl`] = `mean_m k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlPenaltyConfig {
    /// β.
    pub coef: f64,
    /// Estimator.
    pub estimator: KlEstimator,
    /// Aggregation of the KL term (verl: the actor's `loss_agg_mode`).
    pub agg: Aggregation,
    /// The penalised loss.
    pub base: Box<LossConfig>,
}

impl KlPenaltyConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("coef", self.coef, self.coef >= 0.0, "must be >= 0")?;
        self.agg.validate()
    }
}

pub(crate) fn kl_penalty(
    c: &KlPenaltyConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let mut k = Array2::<f64>::zeros((b, t));
    let mut dk = Array2::<f64>::zeros((b, t));
    if c.estimator == KlEstimator::Full {
        let fk = ctx
            .x
            .full_kl
            .ok_or_else(|| missing("kl_penalty", "full_kl"))?;
        for i in 0..b {
            for j in 0..t {
                if ctx.valid(i, j) {
                    k[[i, j]] = fk[[i, j]];
                }
            }
        }
    } else {
        let r = ctx
            .x
            .ref_log_prob
            .ok_or_else(|| missing("kl_penalty", "ref_log_prob"))?;
        for i in 0..b {
            for j in 0..t {
                if ctx.valid(i, j) {
                    let (v, d) = c
                        .estimator
                        .value_grad_sg(
                            ctx.x.log_prob[[i, j]],
                            ctx.sg(i, j),
                            r[[i, j]],
                            ctx.x.old_log_prob[[i, j]],
                        )
                        .unwrap_or((0.0, 0.0));
                    k[[i, j]] = v;
                    dk[[i, j]] = d;
                }
            }
        }
    }
    let mut out = c.base.eval(ctx, factor, rng)?;
    let (val, w) = c.agg.aggregate(k.view(), ctx.x.response_mask)?;
    out.loss += c.coef * val;
    if c.estimator == KlEstimator::Full {
        let g = w.mapv(|x| c.coef * x);
        out.grad_full_kl = Some(match out.grad_full_kl.take() {
            Some(prev) => prev + g,
            None => g,
        });
    } else {
        out.grad_logp += &(w * &dk * c.coef);
    }
    out.metrics.kl = Some(ctx.token_mean(|i, j| k[[i, j]]));
    Ok(out)
}

/// Entropy bonus: `𝓛 ← 𝓛 − coef·Agg(H)`, `∂𝓛/∂H = −coef·w` in
/// [`LossOutput::grad_entropy`] (the kernel maps it to logits with
/// `∂H/∂z_v = −π_v(log π_v + H)`). Needs `entropy`. Defaults: verl
/// `entropy_coeff = 0`, TRL `entropy_coef = 0`. For Skywork-OR1's adaptive
/// coefficient set `coef` from [`AdaptiveEntropyCoef::effective_coef`] each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyBonusConfig {
    /// c.
    pub coef: f64,
    /// Aggregation of the entropy.
    pub agg: Aggregation,
    /// The regularised loss.
    pub base: Box<LossConfig>,
}

impl EntropyBonusConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("coef", self.coef, true, "must be finite")?;
        self.agg.validate()
    }
}

pub(crate) fn entropy_bonus(
    c: &EntropyBonusConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let h = ctx
        .x
        .entropy
        .ok_or_else(|| missing("entropy_bonus", "entropy"))?;
    let mut out = c.base.eval(ctx, factor, rng)?;
    let (val, w) = c.agg.aggregate(h, ctx.x.response_mask)?;
    out.loss -= c.coef * val;
    let g = w.mapv(|x| -c.coef * x);
    out.grad_entropy = Some(match out.grad_entropy.take() {
        Some(prev) => prev + g,
        None => g,
    });
    Ok(out)
}

/// Parameters of the adaptive entropy coefficient (TRL `use_adaptive_entropy`,
/// Skywork-OR1). Defaults (TRL): `delta = 0.005`, `coef_min = 0`, `coef_max = 1`,
/// `target_entropy = 0.2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveEntropyConfig {
    /// Initial coefficient.
    pub init_coef: f64,
    /// Step Δ.
    pub delta: f64,
    /// Lower bound.
    pub coef_min: f64,
    /// Upper bound.
    pub coef_max: f64,
    /// Target entropy.
    pub target_entropy: f64,
}

/// Adaptive entropy coefficient state. At each optimiser-step boundary call
/// [`AdaptiveEntropyCoef::end_window`] with the window's token-mean entropy;
/// during the next window use [`AdaptiveEntropyCoef::effective_coef`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveEntropyCoef {
    /// Parameters.
    pub config: AdaptiveEntropyConfig,
    /// Current coefficient c.
    pub coef: f64,
    /// Entropy of the last finished window (`+∞` before the first).
    pub last_entropy: f64,
}

impl AdaptiveEntropyCoef {
    /// New controller (validates the bounds).
    pub fn new(config: AdaptiveEntropyConfig) -> Result<Self> {
        param("delta", config.delta, config.delta >= 0.0, "must be >= 0")?;
        param("coef_min", config.coef_min, true, "must be finite")?;
        param(
            "coef_max",
            config.coef_max,
            config.coef_max >= config.coef_min,
            "must be >= coef_min",
        )?;
        param(
            "target_entropy",
            config.target_entropy,
            true,
            "must be finite",
        )?;
        param(
            "init_coef",
            config.init_coef,
            config.init_coef >= config.coef_min && config.init_coef <= config.coef_max,
            "must be in [coef_min, coef_max]",
        )?;
        Ok(Self {
            coef: config.init_coef,
            config,
            last_entropy: f64::INFINITY,
        })
    }
    /// The coefficient to use now: `c` if the last window's entropy was at or
    /// below the target, else 0.
    pub fn effective_coef(&self) -> f64 {
        if self.last_entropy <= self.config.target_entropy {
            self.coef
        } else {
            0.0
        }
    }
    /// Ends a window with token-mean entropy `h`: `c ← min(c+Δ, c_max)` if
    /// `h ≤ target` else `max(c−Δ, c_min)`. Returns the new effective coefficient.
    pub fn end_window(&mut self, h: f64) -> Result<f64> {
        param("entropy", h, true, "must be finite")?;
        let cfg = &self.config;
        self.coef = if h <= cfg.target_entropy {
            (self.coef + cfg.delta).min(cfg.coef_max)
        } else {
            (self.coef - cfg.delta).max(cfg.coef_min)
        };
        self.last_entropy = h;
        Ok(self.effective_coef())
    }
}

/// LLDS gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LldsGate {
    /// R-gate: whole response active if `Σ_t m𝟙[A≥0](ℓᵒ − sg ℓ) > threshold`.
    Response,
    /// A-gate (best in the paper): each maximal run of `m·𝟙[A≥0] = 1` (an action
    /// between tool observations) active if its `Σ(ℓᵒ − sg ℓ) > threshold`.
    Action,
}

/// LLDS likelihood-preserving regulariser: `𝓛 += mean_m(λ·gate·max(0, ℓᵒ − ℓ))`
/// over tokens with `A ≥ 0` (token mean over the response mask), gradient
/// `−λ·gate·𝟙[ℓ < ℓᵒ]·m/M`. Gates use `sg ℓ`. Defaults (official script):
/// `lambda = 0.2`, `threshold = 0.0`, gate `action`. The optional answer-mask
/// coefficient is not implemented. Extra metric `llds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LldsConfig {
    /// λ.
    pub lambda: f64,
    /// Gate.
    pub gate: LldsGate,
    /// Reduce threshold.
    pub threshold: f64,
    /// The regularised loss.
    pub base: Box<LossConfig>,
}

impl LldsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("lambda", self.lambda, self.lambda >= 0.0, "must be >= 0")?;
        param("threshold", self.threshold, true, "must be finite")
    }
}

pub(crate) fn llds(
    c: &LldsConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
    rng: &mut dyn RngCore,
) -> Result<LossOutput> {
    let (b, t) = (ctx.b, ctx.t);
    let pres = |i: usize, j: usize| ctx.valid(i, j) && ctx.x.advantages[[i, j]] >= 0.0;
    let dsg = |i: usize, j: usize| ctx.x.old_log_prob[[i, j]] - ctx.sg(i, j);
    let mut gate = Array2::<f64>::zeros((b, t));
    for i in 0..b {
        match c.gate {
            LldsGate::Response => {
                let s: f64 = (0..t).filter(|j| pres(i, *j)).map(|j| dsg(i, j)).sum();
                if s > c.threshold {
                    for j in 0..t {
                        if pres(i, j) {
                            gate[[i, j]] = 1.0;
                        }
                    }
                }
            }
            LldsGate::Action => {
                let mut j = 0;
                while j < t {
                    if !pres(i, j) {
                        j += 1;
                        continue;
                    }
                    let start = j;
                    let mut s = 0.0;
                    while j < t && pres(i, j) {
                        s += dsg(i, j);
                        j += 1;
                    }
                    if s > c.threshold {
                        for k in start..j {
                            gate[[i, k]] = 1.0;
                        }
                    }
                }
            }
        }
    }
    let mut out = c.base.eval(ctx, factor, rng)?;
    let mut val = 0.0;
    for i in 0..b {
        for j in 0..t {
            if gate[[i, j]] != 0.0 {
                let d = ctx.x.old_log_prob[[i, j]] - ctx.x.log_prob[[i, j]];
                if d > 0.0 {
                    val += c.lambda * d / ctx.n_tok;
                    out.grad_logp[[i, j]] -= c.lambda / ctx.n_tok;
                }
            }
        }
    }
    out.loss += val;
    out.metrics.extra.insert("llds".into(), val);
    Ok(out)
}

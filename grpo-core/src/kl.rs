//! KL estimators and KL-coefficient controllers (algorithms.md §5).
//!
//! Notation: `u = ℓ − ℓʳ`, the log-ratio of the current policy to the reference
//! policy at a sampled token. Every estimator returns its per-token value
//! `k[i,t]` **and** its derivative `∂k/∂ℓ[i,t]`, so a KL loss
//! `β·Agg(k)` has the exact gradient `β·w[i,t]·∂k/∂ℓ[i,t]` (see
//! [`crate::loss::KlPenaltyConfig`], which adds such a term to any policy loss).
//!
//! | name | value | `∂k/∂ℓ` |
//! |---|---|---|
//! | `k1` (`kl`) | `u` | `1` |
//! | `k2` (`mse`) | `½u²` | `u` |
//! | `k3` (`low_var_kl`) | `e^{−u} + u − 1`, verl clamps | `1 − e^{−u}` (0 where a clamp is active) |
//! | `k3_unclamped` | as `k3`, TRL/Liger (no clamps) | `1 − e^{−u}` |
//! | `abs` | `|u|` | `sign(u)` (0 at 0) |
//! | `k1_plus`, `k3_plus`, `abs_plus` | value of the base | `u` (straight-through k2 gradient) |
//! | `k3_bias_corrected` | `ρ·k3`, `ρ = e^{ℓ−ℓᵒ}` not detached (TRL `use_bias_correction_kl`) | `ρ(1 − e^{−u}) + ρ·k3` |
//! | `full` | supplied by the kernel per token (exact full-distribution KL) | through the logits, see [`full_distribution_kl`] |
//!
//! Controllers ([`KlController`]): `fixed`, `adaptive` (verl
//! `AdaptiveKLController`, Ziegler et al.), `grpo_d` (OThink-MR1 dynamic
//! schedule — **reconstructed**, no verified constants, §5.10) and
//! `disco_constrained` (the DisCO penalty coefficient `max(β(κ−δ), 0)`, §5.11).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

/// A per-token KL estimator (algorithms.md §5.1–5.6, 5.8). Serialized as a
/// snake_case string; verl's names `kl`, `mse`, `low_var_kl` are accepted as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// `k1 = u`.
    #[serde(alias = "kl")]
    K1,
    /// `k2 = ½u²`.
    #[serde(alias = "mse")]
    K2,
    /// `k3 = e^{−u} + u − 1` with verl's clamps (`−u` to ±20 before exp, result to ±10).
    #[serde(alias = "low_var_kl")]
    K3,
    /// `k3` without clamps (TRL, Liger).
    K3Unclamped,
    /// `|u|`.
    Abs,
    /// Value of k1, gradient of k2 (verl `k1+`).
    #[serde(alias = "k1+")]
    K1Plus,
    /// Value of k3 (verl clamps), gradient of k2 (verl `k3+` / `low_var_kl+`).
    #[serde(alias = "k3+", alias = "low_var_kl+")]
    K3Plus,
    /// Value of abs, gradient of k2 (verl `abs+`).
    #[serde(alias = "abs+")]
    AbsPlus,
    /// TRL `use_bias_correction_kl`: `ρ·k3` with `ρ = e^{ℓ−ℓᵒ}` differentiated.
    K3BiasCorrected,
    /// Exact full-distribution KL supplied per token by the kernel (`full_kl` input);
    /// its gradient flows through the logits, not through `ℓ`.
    Full,
}

impl KlEstimator {
    /// All estimators, in registry order.
    pub const ALL: [KlEstimator; 10] = [
        KlEstimator::K1,
        KlEstimator::K2,
        KlEstimator::K3,
        KlEstimator::K3Unclamped,
        KlEstimator::Abs,
        KlEstimator::K1Plus,
        KlEstimator::K3Plus,
        KlEstimator::AbsPlus,
        KlEstimator::K3BiasCorrected,
        KlEstimator::Full,
    ];

    /// Registry name (the serde string).
    pub fn name(self) -> &'static str {
        match self {
            KlEstimator::K1 => "k1",
            KlEstimator::K2 => "k2",
            KlEstimator::K3 => "k3",
            KlEstimator::K3Unclamped => "k3_unclamped",
            KlEstimator::Abs => "abs",
            KlEstimator::K1Plus => "k1_plus",
            KlEstimator::K3Plus => "k3_plus",
            KlEstimator::AbsPlus => "abs_plus",
            KlEstimator::K3BiasCorrected => "k3_bias_corrected",
            KlEstimator::Full => "full",
        }
    }

    /// Per-token value and `∂k/∂ℓ` for new log-prob `logp` (ℓ), reference
    /// log-prob `ref_logp` (ℓʳ) and old log-prob `old_logp` (ℓᵒ, used only by
    /// `k3_bias_corrected`). Returns `None` for [`KlEstimator::Full`], which has
    /// no log-prob formula.
    pub fn value_grad(self, logp: f64, ref_logp: f64, old_logp: f64) -> Option<(f64, f64)> {
        self.value_grad_sg(logp, logp, ref_logp, old_logp)
    }

    /// As [`KlEstimator::value_grad`], with the straight-through estimators written
    /// as verl intends, `sg(k_base) + ½u² − sg(½u²)`: their base value is read at
    /// `sg_logp` (equal to `logp` in training, so the value is the base value and
    /// the gradient is `u`). Other estimators ignore `sg_logp`.
    pub fn value_grad_sg(
        self,
        logp: f64,
        sg_logp: f64,
        ref_logp: f64,
        old_logp: f64,
    ) -> Option<(f64, f64)> {
        let u = logp - ref_logp;
        let us = sg_logp - ref_logp;
        let st = 0.5 * u * u - 0.5 * us * us;
        Some(match self {
            KlEstimator::K1 => (u, 1.0),
            KlEstimator::K2 => (0.5 * u * u, u),
            KlEstimator::K3 => k3_verl(u),
            KlEstimator::K3Unclamped => k3_raw(u),
            KlEstimator::Abs => (u.abs(), sign0(u)),
            KlEstimator::K1Plus => (us + st, u),
            KlEstimator::K3Plus => (k3_verl(us).0 + st, u),
            KlEstimator::AbsPlus => (us.abs() + st, u),
            KlEstimator::K3BiasCorrected => {
                // ρ is clamped in log space at ±20 to stay finite; gradient 0 there.
                let x = logp - old_logp;
                let xc = x.clamp(-20.0, 20.0);
                let rho = xc.exp();
                let (k, dk) = k3_raw(u);
                let drho = if x.abs() < 20.0 { rho } else { 0.0 };
                (rho * k, rho * dk + drho * k)
            }
            KlEstimator::Full => return None,
        })
    }
}

fn sign0(u: f64) -> f64 {
    if u > 0.0 {
        1.0
    } else if u < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Unclamped k3: value `e^{−u}+u−1`, derivative `1−e^{−u}`. `−u` is capped
/// at 700 so the value stays finite (only reachable for absurd inputs).
fn k3_raw(u: f64) -> (f64, f64) {
    let e = (-u).min(700.0).exp();
    (e + u - 1.0, 1.0 - e)
}

/// verl `low_var_kl`: `kl = clamp(ℓʳ−ℓ, −20, 20)`, `k = clamp(e^{kl} − kl − 1, −10, 10)`.
fn k3_verl(u: f64) -> (f64, f64) {
    let kl = -u;
    let klc = kl.clamp(-20.0, 20.0);
    let e = klc.exp();
    let k = e - klc - 1.0;
    let kc = k.clamp(-10.0, 10.0);
    let inner_active = kl.abs() < 20.0;
    let outer_active = k.abs() < 10.0;
    // d/dℓ (e^{−u} + u − 1) = 1 − e^{−u}
    let d = if inner_active && outer_active {
        1.0 - e
    } else {
        0.0
    };
    (kc, d)
}

/// Exact KL(π_θ‖π_ref) of one token position from the full distributions
/// (algorithms.md §5.8), for the kernel side. `logits`: the policy's logits
/// `[V]`; `ref_logp`: the reference log-probabilities `[V]`. Returns the KL
/// value and its gradient w.r.t. the logits, `π_v(log π_v − log π_ref,v − KL)`.
pub fn full_distribution_kl(logits: &[f64], ref_logp: &[f64]) -> Result<(f64, Vec<f64>)> {
    if logits.is_empty() {
        return Err(CoreError::Empty {
            what: "logits".into(),
        });
    }
    if logits.len() != ref_logp.len() {
        return Err(CoreError::ShapeMismatch {
            what: "ref_logp".into(),
            expected: vec![logits.len()],
            got: vec![ref_logp.len()],
        });
    }
    for (i, v) in logits.iter().chain(ref_logp.iter()).enumerate() {
        if !v.is_finite() {
            let (what, col) = if i < logits.len() {
                ("logits", i)
            } else {
                ("ref_logp", i - logits.len())
            };
            return Err(CoreError::NonFinite {
                what: what.into(),
                row: 0,
                col,
                value: *v,
            });
        }
    }
    let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = mx + logits.iter().map(|z| (z - mx).exp()).sum::<f64>().ln();
    let logp: Vec<f64> = logits.iter().map(|z| z - lse).collect();
    let kl: f64 = logp
        .iter()
        .zip(ref_logp)
        .map(|(lp, lr)| lp.exp() * (lp - lr))
        .sum();
    let grad = logp
        .iter()
        .zip(ref_logp)
        .map(|(lp, lr)| lp.exp() * (lp - lr - kl))
        .collect();
    Ok((kl, grad))
}

/// Per-token KL penalty for KL-in-reward (algorithms.md §5.7, verl
/// `use_kl_in_reward`): `k[i,t]` of `estimator` at `(ℓᵒ, ℓʳ)`, zero where the
/// mask is 0. The caller forms `r' = r − β·k` (no gradient flows); TRL RLOO's
/// sequence form is `β·Σ_t k` with `k1`. Errors on shape mismatch, non-finite
/// values on valid tokens, and the `full` estimator (no log-prob formula).
pub fn kl_reward_penalty(
    old_log_prob: ndarray::ArrayView2<'_, f64>,
    ref_log_prob: ndarray::ArrayView2<'_, f64>,
    mask: ndarray::ArrayView2<'_, f64>,
    estimator: KlEstimator,
) -> Result<ndarray::Array2<f64>> {
    let dim = mask.dim();
    for (what, d) in [
        ("old_log_prob", old_log_prob.dim()),
        ("ref_log_prob", ref_log_prob.dim()),
    ] {
        if d != dim {
            return Err(CoreError::ShapeMismatch {
                what: what.into(),
                expected: vec![dim.0, dim.1],
                got: vec![d.0, d.1],
            });
        }
    }
    let mut out = ndarray::Array2::zeros(dim);
    for ((i, j), m) in mask.indexed_iter() {
        if *m == 0.0 {
            continue;
        }
        for (what, v) in [
            ("old_log_prob", old_log_prob[[i, j]]),
            ("ref_log_prob", ref_log_prob[[i, j]]),
        ] {
            if !v.is_finite() {
                return Err(CoreError::NonFinite {
                    what: what.into(),
                    row: i,
                    col: j,
                    value: v,
                });
            }
        }
        let (k, _) = estimator
            .value_grad(
                old_log_prob[[i, j]],
                ref_log_prob[[i, j]],
                old_log_prob[[i, j]],
            )
            .ok_or_else(|| CoreError::InvalidParam {
                name: "estimator".into(),
                value: "full".into(),
                reason:
                    "the full-distribution KL has no log-prob formula; compute it in the kernel"
                        .into(),
            })?;
        out[[i, j]] = k;
    }
    Ok(out)
}

/// Shape of the GRPO-D dynamic KL schedule (reconstructed, §5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlSchedule {
    /// `β_min → β_max` linearly over `warmup_steps`, then constant.
    LinearWarmup,
    /// `β_min + (β_max − β_min)·(1 − cos(π·min(step/total_steps, 1)))/2`.
    Cosine,
}

/// KL-coefficient controller configuration (serde tag `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum KlControllerConfig {
    /// Constant coefficient (verl `kl_ctrl.type = fixed`, default `kl_coef = 0.001`).
    Fixed {
        /// β.
        kl_coef: f64,
    },
    /// verl `AdaptiveKLController`: `e = clip(KL/target − 1, −0.2, 0.2)`,
    /// `β ← β·(1 + e·n_steps/horizon)` (defaults `target_kl = 0.1`, `horizon = 10000`).
    Adaptive {
        /// Initial β.
        init_kl_coef: f64,
        /// Target KL.
        target_kl: f64,
        /// Horizon (in samples/steps as counted by `n_steps`).
        horizon: f64,
    },
    /// GRPO-D dynamic KL (OThink-MR1): small β early, larger later. The shape
    /// and constants are **not verified** (§5.10); no defaults are claimed.
    GrpoD {
        /// Schedule shape.
        schedule: KlSchedule,
        /// β at step 0.
        beta_min: f64,
        /// β at the end of the ramp.
        beta_max: f64,
        /// Ramp length for `linear_warmup`.
        warmup_steps: u64,
        /// Total steps for `cosine`.
        total_steps: u64,
    },
    /// DisCO constrained coefficient `max(β(κ − δ), 0)` from the latest KL `κ` (§4.15, §5.11).
    DiscoConstrained {
        /// Penalty scale β (official default 1e3).
        beta: f64,
        /// Trust-region size δ (official default 1e-4).
        delta: f64,
    },
}

/// A KL-coefficient controller with its state. Serializable so a trainer can
/// checkpoint it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlController {
    /// Its configuration.
    pub config: KlControllerConfig,
    /// Current coefficient β.
    pub value: f64,
    /// Steps counted so far (sum of `n_steps` passed to [`KlController::update`]).
    pub step: u64,
}

fn param_err(name: &str, value: f64, reason: &str) -> CoreError {
    CoreError::InvalidParam {
        name: name.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl KlController {
    /// Builds a controller, validating the parameters.
    pub fn new(config: KlControllerConfig) -> Result<Self> {
        let value = match &config {
            KlControllerConfig::Fixed { kl_coef } => {
                if !(kl_coef.is_finite() && *kl_coef >= 0.0) {
                    return Err(param_err("kl_coef", *kl_coef, "must be finite and >= 0"));
                }
                *kl_coef
            }
            KlControllerConfig::Adaptive {
                init_kl_coef,
                target_kl,
                horizon,
            } => {
                if !(init_kl_coef.is_finite() && *init_kl_coef > 0.0) {
                    return Err(param_err("init_kl_coef", *init_kl_coef, "must be > 0"));
                }
                if !(target_kl.is_finite() && *target_kl > 0.0) {
                    return Err(param_err("target_kl", *target_kl, "must be > 0"));
                }
                if !(horizon.is_finite() && *horizon > 0.0) {
                    return Err(param_err("horizon", *horizon, "must be > 0"));
                }
                *init_kl_coef
            }
            KlControllerConfig::GrpoD {
                schedule,
                beta_min,
                beta_max,
                warmup_steps,
                total_steps,
            } => {
                if !(beta_min.is_finite() && *beta_min >= 0.0) {
                    return Err(param_err("beta_min", *beta_min, "must be >= 0"));
                }
                if !(beta_max.is_finite() && *beta_max >= *beta_min) {
                    return Err(param_err("beta_max", *beta_max, "must be >= beta_min"));
                }
                match schedule {
                    KlSchedule::LinearWarmup if *warmup_steps == 0 => {
                        return Err(param_err("warmup_steps", 0.0, "must be > 0"));
                    }
                    KlSchedule::Cosine if *total_steps == 0 => {
                        return Err(param_err("total_steps", 0.0, "must be > 0"));
                    }
                    _ => {}
                }
                *beta_min
            }
            KlControllerConfig::DiscoConstrained { beta, delta } => {
                if !(beta.is_finite() && *beta >= 0.0) {
                    return Err(param_err("beta", *beta, "must be >= 0"));
                }
                if !delta.is_finite() {
                    return Err(param_err("delta", *delta, "must be finite"));
                }
                0.0
            }
        };
        Ok(Self {
            config,
            value,
            step: 0,
        })
    }

    /// Current coefficient β.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Updates the coefficient after an optimisation step with the measured KL
    /// `current_kl` over `n_steps` steps (verl passes the batch size). Fixed:
    /// no change; adaptive: verl's rule; GRPO-D: advance the schedule by
    /// `n_steps`; DisCO: `β = max(beta·(current_kl − delta), 0)`.
    pub fn update(&mut self, current_kl: f64, n_steps: u64) -> Result<f64> {
        if !current_kl.is_finite() {
            return Err(param_err("current_kl", current_kl, "must be finite"));
        }
        self.step = self.step.saturating_add(n_steps);
        match &self.config {
            KlControllerConfig::Fixed { .. } => {}
            KlControllerConfig::Adaptive {
                target_kl, horizon, ..
            } => {
                let e = (current_kl / target_kl - 1.0).clamp(-0.2, 0.2);
                self.value *= 1.0 + e * n_steps as f64 / horizon;
            }
            KlControllerConfig::GrpoD {
                schedule,
                beta_min,
                beta_max,
                warmup_steps,
                total_steps,
            } => {
                let frac = match schedule {
                    KlSchedule::LinearWarmup => (self.step as f64 / *warmup_steps as f64).min(1.0),
                    KlSchedule::Cosine => {
                        let p = (self.step as f64 / *total_steps as f64).min(1.0);
                        0.5 * (1.0 - (std::f64::consts::PI * p).cos())
                    }
                };
                self.value = beta_min + (beta_max - beta_min) * frac;
            }
            KlControllerConfig::DiscoConstrained { beta, delta } => {
                self.value = (beta * (current_kl - delta)).max(0.0);
            }
        }
        Ok(self.value)
    }
}

/// Registry rows of this module (KL estimators and controllers).
pub fn registry() -> Vec<Entry> {
    use Verification::{Reconstructed, Verified};
    let est = |name, summary| Entry {
        name,
        kind: Kind::Kl,
        summary,
        verification: Verified,
    };
    let ctl = |name, summary, verification| Entry {
        name,
        kind: Kind::KlController,
        summary,
        verification,
    };
    vec![
        est("k1", "KL k1 = ℓ − ℓʳ (verl `kl`), §5.1"),
        est("k2", "KL k2 = ½(ℓ − ℓʳ)² (verl `mse`), §5.2"),
        est(
            "k3",
            "KL k3 low-variance estimator with verl's clamps (verl `low_var_kl`), §5.3",
        ),
        est("k3_unclamped", "KL k3 without clamps (TRL, Liger), §5.3"),
        est("abs", "KL |ℓ − ℓʳ| (verl `abs`), §5.4"),
        est(
            "k1_plus",
            "straight-through k1: k1 value, k2 gradient (verl `k1+`), §5.5",
        ),
        est(
            "k3_plus",
            "straight-through k3: k3 value, k2 gradient (verl `k3+`), §5.5",
        ),
        est(
            "abs_plus",
            "straight-through abs: abs value, k2 gradient (verl `abs+`), §5.5",
        ),
        est(
            "k3_bias_corrected",
            "IS-corrected k3, ρ·k3 with ρ differentiated (TRL `use_bias_correction_kl`), §5.6",
        ),
        est(
            "full",
            "full-distribution KL hook: per-token value from the kernel, gradient via logits (§5.8)",
        ),
        ctl(
            "fixed",
            "constant KL coefficient (verl `kl_ctrl.type=fixed`), §5.9",
            Verified,
        ),
        ctl(
            "adaptive",
            "adaptive KL coefficient (verl `AdaptiveKLController`, Ziegler et al.), §5.9",
            Verified,
        ),
        ctl(
            "grpo_d",
            "GRPO-D dynamic KL schedule (OThink-MR1; shape reconstructed), §5.10",
            Reconstructed,
        ),
        ctl(
            "disco_constrained",
            "DisCO constrained KL coefficient max(β(κ−δ),0) (DisCO official code), §5.11",
            Verified,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3_known_value() {
        // u = 0.5: e^{-0.5} + 0.5 - 1 = 0.10653065971263342
        let (k, d) = KlEstimator::K3.value_grad(-1.0, -1.5, -1.0).unwrap();
        assert!((k - 0.106_530_659_712_633_42).abs() < 1e-15);
        assert!((d - (1.0 - (-0.5f64).exp())).abs() < 1e-15);
    }

    #[test]
    fn verl_clamp_kills_gradient() {
        let (k, d) = KlEstimator::K3.value_grad(-30.0, 0.0, 0.0).unwrap();
        assert_eq!(k, 10.0);
        assert_eq!(d, 0.0);
    }

    #[test]
    fn adaptive_matches_verl_rule() {
        let mut c = KlController::new(KlControllerConfig::Adaptive {
            init_kl_coef: 0.2,
            target_kl: 0.1,
            horizon: 10000.0,
        })
        .unwrap();
        // KL = 0.5 → error clipped at 0.2 → β·(1 + 0.2·256/10000)
        let v = c.update(0.5, 256).unwrap();
        assert!((v - 0.2 * (1.0 + 0.2 * 256.0 / 10000.0)).abs() < 1e-15);
    }

    #[test]
    fn full_kl_zero_when_equal() {
        let logits = [0.1, -0.3, 2.0];
        let mx = 2.0f64;
        let lse = mx + logits.iter().map(|z| (z - mx).exp()).sum::<f64>().ln();
        let r: Vec<f64> = logits.iter().map(|z| z - lse).collect();
        let (kl, g) = full_distribution_kl(&logits, &r).unwrap();
        assert!(kl.abs() < 1e-15);
        assert!(g.iter().all(|x| x.abs() < 1e-15));
    }
}

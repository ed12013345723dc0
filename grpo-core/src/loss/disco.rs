//! DisCO discriminative constrained optimisation (official code; algorithms.md §4.15).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossOutput, param, require_unit_factor};
use crate::error::{CoreError, Result};

/// Per-response score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoScore {
    /// `s_i = Σ_t m ℓ / L_i` (default).
    LogL,
    /// `s_i = Σ_t m ρ / L_i`.
    LRatio,
}

/// Objective variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoVariant {
    /// `J_k = mean_P s − τ·log Σ_N exp(s/τ)`.
    Disco,
    /// `J_k = mean_P s − mean_N s` (basic).
    DiscoB,
}

/// KL estimate used by the trust-region constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoKlType {
    /// `κ = mean_m(ρ − 1 − x)` (k3 of KL(π_old‖π_θ)).
    K3,
    /// `κ = mean_m(−x)`.
    Kl,
}

/// DisCO: needs binary rewards (`rewards` ∈ {0,1}) and `index`. Valid groups have
/// ≥ 1 positive and ≥ 1 negative non-empty row; `J = Σ_valid J_k / n_groups` (all
/// groups in the denominator). Constraint `Π = sg(max(β(κ − δ), 0))·κ`,
/// `𝓛 = −J + Π`. The log-sum-exp term's true value is returned (the official code
/// returns a surrogate with the same gradient). Defaults (official code + verl docs):
/// `score = log_l`, `delta = 1e-4`, `beta = 1e3`, `tau = 10` (log_l) / `1` (l_ratio).
/// Extra metrics `disco_kl` (κ) and `disco_penalty_coef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoConfig {
    /// Score function.
    pub score: DiscoScore,
    /// Objective variant.
    pub variant: DiscoVariant,
    /// Temperature τ of the log-sum-exp (variant `disco`).
    pub tau: f64,
    /// Trust-region size δ.
    pub delta: f64,
    /// Penalty scale β.
    pub beta: f64,
    /// KL estimate of the constraint.
    pub kl_type: DiscoKlType,
}

impl DiscoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("tau", self.tau, self.tau > 0.0, "must be > 0")?;
        param("delta", self.delta, true, "must be finite")?;
        param("beta", self.beta, self.beta >= 0.0, "must be >= 0")
    }
}

pub(crate) fn disco(
    c: &DiscoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    require_unit_factor(ctx, factor, "disco")?;
    let groups = ctx.groups("disco")?;
    let rewards = ctx.rewards("disco")?;
    for (i, r) in rewards.iter().enumerate() {
        if *r != 0.0 && *r != 1.0 {
            return Err(CoreError::InvalidInput {
                what: "rewards".into(),
                row: i,
                reason: format!("DisCO needs binary rewards (0 or 1), got {r}"),
            });
        }
    }
    let (b, t) = (ctx.b, ctx.t);
    let mut out = LossOutput::zeros(b, t);
    // scores and d s / d ℓ per token factor
    let score = |i: usize| -> f64 {
        let mut s = 0.0;
        for j in 0..t {
            if ctx.valid(i, j) {
                s += match c.score {
                    DiscoScore::LogL => ctx.x.log_prob[[i, j]],
                    DiscoScore::LRatio => ctx.logratio(i, j).min(700.0).exp(),
                };
            }
        }
        s / ctx.len[i]
    };
    let ng = groups.len() as f64;
    let mut ds = vec![0.0; b]; // ∂(−J)/∂s_i
    let mut n_valid = 0.0;
    for g in &groups {
        let pos: Vec<usize> = g
            .iter()
            .copied()
            .filter(|i| ctx.len[*i] > 0.0 && rewards[*i] == 1.0)
            .collect();
        let neg: Vec<usize> = g
            .iter()
            .copied()
            .filter(|i| ctx.len[*i] > 0.0 && rewards[*i] == 0.0)
            .collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        n_valid += 1.0;
        let sp: Vec<f64> = pos.iter().map(|i| score(*i)).collect();
        let sn: Vec<f64> = neg.iter().map(|i| score(*i)).collect();
        let mp = sp.iter().sum::<f64>() / sp.len() as f64;
        let neg_term = match c.variant {
            DiscoVariant::DiscoB => {
                for i in &neg {
                    ds[*i] = 1.0 / (neg.len() as f64 * ng);
                }
                sn.iter().sum::<f64>() / sn.len() as f64
            }
            DiscoVariant::Disco => {
                let z: Vec<f64> = sn.iter().map(|s| s / c.tau).collect();
                let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let se: f64 = z.iter().map(|v| (v - mx).exp()).sum();
                for (k, i) in neg.iter().enumerate() {
                    ds[*i] = (z[k] - mx).exp() / se / ng;
                }
                c.tau * (mx + se.ln())
            }
        };
        for i in &pos {
            ds[*i] = -1.0 / (pos.len() as f64 * ng);
        }
        out.loss += -(mp - neg_term) / ng;
    }
    for i in 0..b {
        if ds[i] == 0.0 {
            continue;
        }
        for j in 0..t {
            if ctx.valid(i, j) {
                let dsdl = match c.score {
                    DiscoScore::LogL => 1.0,
                    DiscoScore::LRatio => ctx.logratio(i, j).min(700.0).exp(),
                } / ctx.len[i];
                out.grad_logp[[i, j]] = ds[i] * dsdl;
            }
        }
    }
    // Constraint: coefficient from sg(ℓ), κ from ℓ.
    let kappa_of = |sg: bool| {
        ctx.token_mean(|i, j| {
            let x = if sg {
                ctx.sg_logratio(i, j)
            } else {
                ctx.logratio(i, j)
            };
            match c.kl_type {
                DiscoKlType::K3 => x.min(700.0).exp() - 1.0 - x,
                DiscoKlType::Kl => -x,
            }
        })
    };
    let kappa = kappa_of(false);
    let coef = (c.beta * (kappa_of(true) - c.delta)).max(0.0);
    if coef > 0.0 {
        out.loss += coef * kappa;
        for i in 0..b {
            for j in 0..t {
                if ctx.valid(i, j) {
                    let d = match c.kl_type {
                        DiscoKlType::K3 => ctx.logratio(i, j).min(700.0).exp() - 1.0,
                        DiscoKlType::Kl => -1.0,
                    };
                    out.grad_logp[[i, j]] += coef * d / ctx.n_tok;
                }
            }
        }
    }
    out.metrics.extra.insert("disco_kl".into(), kappa);
    out.metrics.extra.insert("disco_penalty_coef".into(), coef);
    out.metrics
        .extra
        .insert("disco_valid_group_frac".into(), n_valid / ng.max(1.0));
    Ok(out)
}

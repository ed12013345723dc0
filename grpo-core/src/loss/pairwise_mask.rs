//! DaGRPO distinctiveness-aware pair masking (**reconstructed**, algorithms.md §9.3).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::clip::{PpoClipConfig, ppo_with_adv};
use super::{Aggregation, Ctx, LossOutput, param};
use crate::error::{CoreError, Result};

/// DaGRPO: pairwise leave-one-out advantages that ignore pairs of low
/// distinctiveness, `keep_ij = 𝟙[|q_i − q_j| ≥ tau_d]`,
/// `A_i = Σ_{j≠i} keep_ij (R_i − R_j) / max(Σ_{j≠i} keep_ij, 1)` (all pairs kept ⇒
/// RLOO), then PPO-clip (±20 clamp, no dual clip) with `A_i` broadcast over the row;
/// the `advantages` input is ignored. Needs `rewards` (R), `scores` (q) and `index`.
/// No verified defaults. Anchor injection (off-policy reference responses) is a
/// sampler concern. Extra metric `dagrpo_kept_pair_frac`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagrpoConfig {
    /// Distinctiveness threshold τ_d.
    pub tau_d: f64,
    /// ε_low of the PPO clip.
    pub eps_low: f64,
    /// ε_high; `None` ⇒ `eps_low`.
    #[serde(default)]
    pub eps_high: Option<f64>,
    /// Aggregation.
    pub agg: Aggregation,
}

impl DagrpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("tau_d", self.tau_d, self.tau_d >= 0.0, "must be >= 0")?;
        self.ppo().validate()
    }
    fn ppo(&self) -> PpoClipConfig {
        PpoClipConfig {
            eps_low: self.eps_low,
            eps_high: self.eps_high,
            clip_ratio_c: None,
            clamp_log_ratio: true,
            agg: self.agg,
        }
    }
}

pub(crate) fn dagrpo(
    c: &DagrpoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    let groups = ctx.groups("dagrpo_loss")?;
    let r = ctx.rewards("dagrpo_loss")?;
    let q = ctx.x.scores.ok_or_else(|| CoreError::MissingInput {
        method: "dagrpo_loss".into(),
        what: "scores".into(),
    })?;
    let (b, t) = (ctx.b, ctx.t);
    let mut adv = Array2::zeros((b, t));
    let (mut kept, mut total) = (0.0, 0.0);
    for g in &groups {
        for &i in g {
            let (mut s, mut n) = (0.0, 0.0);
            for &j in g {
                if j == i {
                    continue;
                }
                total += 1.0;
                if (q[i] - q[j]).abs() >= c.tau_d {
                    s += r[i] - r[j];
                    n += 1.0;
                    kept += 1.0;
                }
            }
            let a = s / f64::max(n, 1.0);
            for j in 0..t {
                adv[[i, j]] = a * ctx.m(i, j);
            }
        }
    }
    let mut out = ppo_with_adv(&c.ppo(), ctx, factor, adv.view())?;
    out.metrics.extra.insert(
        "dagrpo_kept_pair_frac".into(),
        if total > 0.0 { kept / total } else { 0.0 },
    );
    Ok(out)
}

//! Reg-GRPO advantage regression (DeepVideo-R1; **reconstructed**, algorithms.md §9.1).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossOutput, param, require_unit_factor};
use crate::error::Result;

/// Reg-GRPO: regress the group-centred sequence log-ratio onto the advantage.
/// `ŝ_i = Σ_t m(ℓ−ℓᵒ)/L_i`, `s̄_k` = mean of `ŝ` over the non-empty rows of group k,
/// `e_i = A_i − β(ŝ_i − s̄_{g(i)})` (`A_i` = masked row mean of the advantages),
/// `𝓛 = (1/B') Σ_i e_i²` over non-empty rows. Exact gradient
/// `∂𝓛/∂ℓ[i,t] = −(2β/B')(e_i − ē_{g(i)})·m/L_i` (equals the spec's `−(2β/B')e_i m/L_i`
/// when advantages sum to zero per group). Needs `index`. β has no verified default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegGrpoConfig {
    /// β (> 0).
    pub beta: f64,
}

impl RegGrpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param("beta", self.beta, self.beta > 0.0, "must be > 0")
    }
}

pub(crate) fn reg_grpo(
    c: &RegGrpoConfig,
    ctx: &Ctx<'_, '_>,
    factor: &Array2<f64>,
) -> Result<LossOutput> {
    require_unit_factor(ctx, factor, "reg_grpo")?;
    let groups = ctx.groups("reg_grpo")?;
    let (b, t) = (ctx.b, ctx.t);
    let mut out = LossOutput::zeros(b, t);
    let n_rows = ctx.len.iter().filter(|l| **l > 0.0).count() as f64;
    let shat: Vec<f64> = (0..b)
        .map(|i| {
            if ctx.len[i] <= 0.0 {
                return 0.0;
            }
            ctx.row_sum(i, |j| ctx.logratio(i, j)) / ctx.len[i]
        })
        .collect();
    for g in &groups {
        let rows: Vec<usize> = g.iter().copied().filter(|i| ctx.len[*i] > 0.0).collect();
        if rows.is_empty() {
            continue;
        }
        let n = rows.len() as f64;
        let sbar = rows.iter().map(|i| shat[*i]).sum::<f64>() / n;
        let e: Vec<f64> = rows
            .iter()
            .map(|i| ctx.row_adv(*i) - c.beta * (shat[*i] - sbar))
            .collect();
        let ebar = e.iter().sum::<f64>() / n;
        for (k, i) in rows.iter().enumerate() {
            out.loss += e[k] * e[k] / n_rows;
            let ds = -2.0 * c.beta / n_rows * (e[k] - ebar);
            for j in 0..t {
                if ctx.valid(*i, j) {
                    out.grad_logp[[*i, j]] = ds / ctx.len[*i];
                }
            }
        }
    }
    Ok(out)
}

//! GTPO: conflict-token weighting and entropy filter (official code; algorithms.md §4.20).

use std::collections::HashMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{Ctx, LossOutput, param};
use crate::error::{CoreError, Result};

/// GTPO. Within a group, `Pos = {A_i > 0}`, `Neg = {A_i < 0}` (`A_i` = masked row
/// mean of the advantages). A token (position, id) is a raw conflict if it appears
/// in some Pos row and some Neg row; forward conflicts are the initial contiguous
/// run of raw conflicts from position 0, backward conflicts the same on
/// right-aligned rows (positions counted from the row's last valid token). PAD and
/// masked tokens never conflict. Token weight `δ = δ_fwd·δ_bwd·m` with `δ_· =
/// conflict_weight` on conflicts of Pos rows, 0 on conflicts of Neg rows, 1 otherwise;
/// `n_i = max(#conflict tokens of row i, 1)`. Entropy rule (`H̄_i` = mean entropy of
/// the row): `A_i := 0` if `H̄_i > entropy_max`, else `A_i − entropy_coef·H̄_i`.
/// `𝓛 = Σ_i −(A_i/L_i)·Σ_t δ·exp(ℓ − sg ℓ) / n_i` (no 1/B, as in the code), gradient
/// `−A_i δ m/(L_i n_i)`. Needs `token_ids`, `entropy`, `index`. Defaults (code):
/// `conflict_weight = 2`, `entropy_max = 0.7`, `entropy_coef = 0.1`.
/// The token weight δ multiplies any enclosing modifier's factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GtpoConfig {
    /// Weight W of conflict tokens in positive rows.
    pub conflict_weight: f64,
    /// Row-entropy threshold H_max.
    pub entropy_max: f64,
    /// κ_H.
    pub entropy_coef: f64,
    /// PAD token id (never a conflict).
    #[serde(default)]
    pub pad_id: Option<i64>,
}

impl GtpoConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        param(
            "conflict_weight",
            self.conflict_weight,
            self.conflict_weight >= 0.0,
            "must be >= 0",
        )?;
        param("entropy_max", self.entropy_max, true, "must be finite")?;
        param("entropy_coef", self.entropy_coef, true, "must be finite")
    }
}

pub(crate) fn gtpo(c: &GtpoConfig, ctx: &Ctx<'_, '_>, factor: &Array2<f64>) -> Result<LossOutput> {
    let missing = |what: &str| CoreError::MissingInput {
        method: "gtpo".into(),
        what: what.into(),
    };
    let ids = ctx.x.token_ids.ok_or_else(|| missing("token_ids"))?;
    let ent = ctx.x.entropy.ok_or_else(|| missing("entropy"))?;
    let groups = ctx.groups("gtpo")?;
    let (b, t) = (ctx.b, ctx.t);
    let ok = |i: usize, j: usize| ctx.valid(i, j) && Some(ids[[i, j]]) != c.pad_id;
    let adv: Vec<f64> = (0..b).map(|i| ctx.row_adv(i)).collect();
    let ends: Vec<usize> = (0..b)
        .map(|i| (0..t).rev().find(|j| ctx.valid(i, *j)).map_or(0, |j| j + 1))
        .collect();
    let mut fwd = Array2::<bool>::from_elem((b, t), false);
    let mut bwd = Array2::<bool>::from_elem((b, t), false);
    for g in &groups {
        // (position, id) -> (seen in Pos, seen in Neg), forward and backward keyed.
        let mut f_map: HashMap<(usize, i64), (bool, bool)> = HashMap::new();
        let mut b_map: HashMap<(usize, i64), (bool, bool)> = HashMap::new();
        for &i in g {
            if adv[i] == 0.0 {
                continue;
            }
            for j in 0..t {
                if ok(i, j) {
                    for (map, p) in [(&mut f_map, j), (&mut b_map, ends[i] - 1 - j)] {
                        let e = map.entry((p, ids[[i, j]])).or_insert((false, false));
                        if adv[i] > 0.0 {
                            e.0 = true;
                        } else {
                            e.1 = true;
                        }
                    }
                }
            }
        }
        let conflict = |map: &HashMap<(usize, i64), (bool, bool)>, p: usize, id: i64| {
            map.get(&(p, id)).is_some_and(|(a, b)| *a && *b)
        };
        for &i in g {
            if adv[i] == 0.0 {
                continue;
            }
            for j in 0..t {
                if !(ok(i, j) && conflict(&f_map, j, ids[[i, j]])) {
                    break;
                }
                fwd[[i, j]] = true;
            }
            for j in (0..ends[i]).rev() {
                if !(ok(i, j) && conflict(&b_map, ends[i] - 1 - j, ids[[i, j]])) {
                    break;
                }
                bwd[[i, j]] = true;
            }
        }
    }
    let mut out = LossOutput::zeros(b, t);
    let mut n_conf = 0.0;
    let mut n_filtered = 0.0;
    for i in 0..b {
        if ctx.len[i] <= 0.0 {
            continue;
        }
        let hbar = (0..t)
            .filter(|j| ctx.valid(i, *j))
            .map(|j| ent[[i, j]])
            .sum::<f64>()
            / ctx.len[i];
        let a_adj = if hbar > c.entropy_max {
            n_filtered += 1.0;
            0.0
        } else {
            adv[i] - c.entropy_coef * hbar
        };
        let conf_w = if adv[i] > 0.0 { c.conflict_weight } else { 0.0 };
        let n_i = (0..t).filter(|j| fwd[[i, *j]] || bwd[[i, *j]]).count();
        n_conf += n_i as f64;
        let n_i = (n_i as f64).max(1.0);
        for j in 0..t {
            if !ctx.valid(i, j) {
                continue;
            }
            let df = if fwd[[i, j]] { conf_w } else { 1.0 };
            let db = if bwd[[i, j]] { conf_w } else { 1.0 };
            let delta = df * db * factor[[i, j]];
            let rho = (ctx.x.log_prob[[i, j]] - ctx.sg(i, j)).min(700.0).exp();
            let coef = -a_adj * delta / (ctx.len[i] * n_i);
            out.loss += coef * rho;
            out.grad_logp[[i, j]] = coef * rho;
        }
    }
    out.metrics
        .extra
        .insert("gtpo_conflict_frac".into(), n_conf / ctx.n_tok);
    out.metrics
        .extra
        .insert("gtpo_entropy_filtered_rows".into(), n_filtered);
    Ok(out)
}

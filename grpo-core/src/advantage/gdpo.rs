//! GDPO — decoupled multi-reward normalisation (algorithms.md §3.13, NVlabs
//! GDPO / TRL `normalize_then_sum`): each named reward component is
//! group-normalised on its own, the weighted sum is then normalised over the
//! batch. Needs at least one named component.

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, Scale, SingletonPolicy, bad_param, group_normalise};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

fn eps4() -> f64 {
    1e-4
}

/// GDPO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GdpoConfig {
    /// Weight per named component, in the batch's component order (default: all 1, TRL
    /// `reward_weights`).
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// ε in both normalisations (1e-4).
    #[serde(default = "eps4")]
    pub epsilon: f64,
    /// Groups of one row (`zero`: that component's group advantage is 0).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

pub(crate) fn validate(c: &GdpoConfig) -> Result<()> {
    super::non_negative("epsilon", c.epsilon)?;
    if let Some(w) = &c.weights {
        for &x in w {
            if !x.is_finite() {
                return Err(bad_param("weights", x, "must be finite"));
            }
        }
    }
    Ok(())
}

/// GDPO advantage: `A = (S − mean S)/(std S + ε)`, `S_i = Σ_k w_k (R^k_i − μ^k)/(σ^k + ε)`.
pub fn gdpo(c: &GdpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let k = batch.components.len();
    if k == 0 {
        return Err(CoreError::MissingInput {
            method: "gdpo".into(),
            what: "reward components".into(),
        });
    }
    let w = match &c.weights {
        Some(w) if w.len() != k => {
            return Err(CoreError::ShapeMismatch {
                what: "gdpo weights".into(),
                expected: vec![k],
                got: vec![w.len()],
            });
        }
        Some(w) => w.clone(),
        None => vec![1.0; k],
    };
    let groups = batch.groups();
    let mut s = vec![0.0; batch.rows()];
    for (comp, wk) in batch.components.iter().zip(&w) {
        let a = group_normalise(
            &comp.values.to_vec(),
            &groups,
            Scale::GroupStd(c.epsilon),
            c.singleton,
            "gdpo",
        )?;
        for (x, y) in s.iter_mut().zip(a) {
            *x += wk * y;
        }
    }
    let mu = crate::stats::mean(&s);
    let sd = crate::stats::std_unbiased(&s).unwrap_or(0.0);
    let all_equal = s.iter().all(|x| *x == s[0]);
    let a: Vec<f64> = s
        .iter()
        .map(|x| {
            if all_equal || sd + c.epsilon <= 0.0 {
                0.0
            } else {
                (x - mu) / (sd + c.epsilon)
            }
        })
        .collect();
    Ok(AdvantageOutput::outcome(batch, &a))
}

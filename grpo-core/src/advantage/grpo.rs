//! GRPO group normalisation and its variants (algorithms.md §3.1–§3.3):
//! group mean/std (`grpo`), mean-centring only (`dr_grpo`), and group mean
//! with the batch standard deviation (`grpo_batch_std`, TRL `scale_rewards="batch"`).

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, Scale, SingletonPolicy, frac_zero_std, group_normalise};
use crate::batch::ScoredBatch;
use crate::error::Result;

fn eps_verl() -> f64 {
    1e-6
}

fn eps_trl() -> f64 {
    1e-4
}

/// GRPO: `A_i = (R_i − μ_k)/(σ_k + ε)`, unbiased group std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// ε added to the std (verl default 1e-6; TRL uses 1e-4).
    #[serde(default = "eps_verl")]
    pub epsilon: f64,
    /// Optional floor on the group std, `max(σ, floor) + ε` (NeMo-RL's guard against fp32
    /// residue std amplifying near-equal rewards; default none, as verl/TRL).
    #[serde(default)]
    pub std_floor: Option<f64>,
    /// Groups of one row (default: error).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// Dr.GRPO: `A_i = R_i − μ_k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrGrpoConfig {
    /// Groups of one row (default: error).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// Group mean / batch std: `A_i = (R_i − μ_k)/(std_batch(R) + ε)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoBatchStdConfig {
    /// ε added to the batch std (TRL: 1e-4).
    #[serde(default = "eps_trl")]
    pub epsilon: f64,
    /// Groups of one row (default: error).
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// GRPO advantage (§3.1).
pub fn grpo(c: &GrpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let groups = batch.groups();
    let scale = match c.std_floor {
        Some(f) => Scale::GroupStdFloored(c.epsilon, f),
        None => Scale::GroupStd(c.epsilon),
    };
    let a = group_normalise(&r, &groups, scale, c.singleton, "grpo")?;
    Ok(
        AdvantageOutput::outcome(batch, &a)
            .with_metric("frac_zero_std", frac_zero_std(&r, &groups)),
    )
}

/// Dr.GRPO advantage (§3.2).
pub fn dr_grpo(c: &DrGrpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let a = group_normalise(&r, &batch.groups(), Scale::None, c.singleton, "dr_grpo")?;
    Ok(AdvantageOutput::outcome(batch, &a))
}

/// Group mean / batch std advantage (§3.3). One row in the batch ⇒ std := 0.
pub fn grpo_batch_std(c: &GrpoBatchStdConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let r = batch.reward.to_vec();
    let centred = group_normalise(
        &r,
        &batch.groups(),
        Scale::None,
        c.singleton,
        "grpo_batch_std",
    )?;
    let sd = crate::stats::std_unbiased(&r).unwrap_or(0.0);
    let a: Vec<f64> = centred.iter().map(|x| x / (sd + c.epsilon)).collect();
    let a = if sd + c.epsilon > 0.0 { a } else { centred };
    Ok(AdvantageOutput::outcome(batch, &a).with_metric("batch_std", sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpo_hand_example() {
        // group 0: rewards 1, 0 → μ = .5, σ = 1/√2; group 1: 2, 2, 2 → 0.
        let b = ScoredBatch::from_outcome(
            &[1.0, 0.0, 2.0, 2.0, 2.0],
            &[0, 0, 1, 1, 1],
            &[2, 1, 1, 1, 1],
        )
        .unwrap();
        let c = GrpoConfig {
            epsilon: 0.0,
            std_floor: None,
            singleton: SingletonPolicy::Error,
        };
        let out = grpo(&c, &b).unwrap();
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((out.advantages[[0, 0]] - s).abs() < 1e-12);
        assert!((out.advantages[[0, 1]] - s).abs() < 1e-12);
        assert!((out.advantages[[1, 0]] + s).abs() < 1e-12);
        assert_eq!(out.advantages[[1, 1]], 0.0);
        assert_eq!(out.advantages[[2, 0]], 0.0);
    }

    #[test]
    fn singleton_policies() {
        let b = ScoredBatch::from_outcome(&[3.0], &[4], &[1]).unwrap();
        let mut c = GrpoConfig {
            epsilon: 1e-6,
            std_floor: None,
            singleton: SingletonPolicy::Error,
        };
        assert!(grpo(&c, &b).is_err());
        c.singleton = SingletonPolicy::Anchor;
        assert!((grpo(&c, &b).unwrap().advantages[[0, 0]] - 3.0 / (1.0 + 1e-6)).abs() < 1e-15);
        c.singleton = SingletonPolicy::Zero;
        assert_eq!(grpo(&c, &b).unwrap().advantages[[0, 0]], 0.0);
    }

    #[test]
    fn std_floor_and_frac_zero_std() {
        let b = ScoredBatch::from_outcome(&[1.0, 1.0 + 1e-9, 2.0, 2.0], &[0, 0, 1, 1], &[1; 4])
            .unwrap();
        let c = GrpoConfig {
            epsilon: 0.0,
            std_floor: Some(1e-3),
            singleton: SingletonPolicy::Error,
        };
        let out = grpo(&c, &b).unwrap();
        assert!(out.advantages[[1, 0]] > 0.0 && out.advantages[[1, 0]] < 1e-6);
        assert_eq!(out.metrics["frac_zero_std"], 0.5);
    }
}

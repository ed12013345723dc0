//! SPO — single-stream policy optimisation (algorithms.md §3.14, verl-recipe
//! `spo`). A persistent per-prompt Beta tracker `(α_x, β_x)` gives the baseline
//! `p̂_x = α/(α+β)`; advantages are `r − p̂` normalised over the batch. After
//! the policy step the tracker decays by a KL-adaptive factor
//! `ρ_x = clip(2^{−D_x/D_half}, ρ_min, ρ_max)` and absorbs the new reward.
//!
//! Unseen prompt keys use the `N = 0` prior `α = β = 0.5` (documented choice).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, bad_param};
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};

fn d_half() -> f64 {
    0.06
}
fn rho_min() -> f64 {
    0.875
}
fn rho_max() -> f64 {
    0.96
}

/// How the tracker's decay factor ρ is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpoRho {
    /// `ρ = clip(2^{−D/D_half}, clip_lower, clip_upper)` (recipe default).
    Kl {
        /// `D_half` (0.06).
        #[serde(default = "d_half")]
        d_half: f64,
        /// `ρ_min` (0.875).
        #[serde(default = "rho_min")]
        clip_lower: f64,
        /// `ρ_max` (0.96).
        #[serde(default = "rho_max")]
        clip_upper: f64,
    },
    /// Constant ρ (recipe value 0.875).
    Constant {
        /// ρ.
        #[serde(default = "rho_min")]
        value: f64,
    },
}

impl Default for SpoRho {
    fn default() -> Self {
        SpoRho::Kl {
            d_half: d_half(),
            clip_lower: rho_min(),
            clip_upper: rho_max(),
        }
    }
}

/// SPO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoConfig {
    /// Decay rule (default: KL-adaptive with the recipe's constants).
    #[serde(default)]
    pub rho: SpoRho,
}

pub(crate) fn validate(c: &SpoConfig) -> Result<()> {
    match c.rho {
        SpoRho::Kl {
            d_half,
            clip_lower,
            clip_upper,
        } => {
            super::positive("d_half", d_half)?;
            if !(0.0 < clip_lower && clip_lower <= clip_upper && clip_upper <= 1.0) {
                return Err(bad_param(
                    "clip_lower",
                    clip_lower,
                    "need 0 < clip_lower <= clip_upper <= 1",
                ));
            }
            Ok(())
        }
        SpoRho::Constant { value } => {
            if value > 0.0 && value <= 1.0 {
                Ok(())
            } else {
                Err(bad_param("value", value, "need 0 < ρ <= 1"))
            }
        }
    }
}

/// One prompt's Beta tracker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BetaTracker {
    /// α (pseudo-successes).
    pub alpha: f64,
    /// β (pseudo-failures).
    pub beta: f64,
    /// Number of updates so far.
    pub visits: u64,
}

impl BetaTracker {
    /// The `N = 0` prior.
    pub fn prior() -> Self {
        BetaTracker {
            alpha: 0.5,
            beta: 0.5,
            visits: 0,
        }
    }

    /// Baseline `p̂ = α/(α+β)`.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// SPO's persistent state: one tracker per prompt key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpoState {
    /// Trackers by prompt key.
    pub trackers: BTreeMap<String, BetaTracker>,
}

/// One post-step update for a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoUpdate {
    /// Prompt key.
    pub key: String,
    /// The new reward in `[0,1]`.
    pub reward: f64,
    /// `D_x`: masked mean `|ℓ_now − ℓ_then|` over the prompt's previous response
    /// ([`mean_abs_logprob_change`]); `None` on the first visit (treated as 0).
    pub distance: Option<f64>,
}

/// `D = Σ_t m |now − then| / Σ_t m` (0 when the mask is empty); all slices have equal length.
pub fn mean_abs_logprob_change(now: &[f64], then: &[f64], mask: &[f64]) -> Result<f64> {
    if now.len() != then.len() || now.len() != mask.len() {
        return Err(CoreError::ShapeMismatch {
            what: "spo distance inputs".into(),
            expected: vec![mask.len()],
            got: vec![now.len(), then.len()],
        });
    }
    let (mut s, mut n) = (0.0, 0.0);
    for k in 0..mask.len() {
        if mask[k] != 0.0 {
            s += (now[k] - then[k]).abs();
            n += 1.0;
        }
    }
    Ok(if n > 0.0 { s / n } else { 0.0 })
}

impl SpoState {
    /// Initialises a prompt from `N` offline scores (binarised `s > 0`):
    /// `N_init = 1/(1−ρ_min)`, `α = N_init(Σs+0.5)/(N+1)`, `β = N_init(N−Σs+0.5)/(N+1)`.
    pub fn init_offline(&mut self, key: &str, scores: &[f64], rho_min: f64) -> Result<()> {
        if !(0.0..1.0).contains(&rho_min) {
            return Err(bad_param("rho_min", rho_min, "need 0 <= ρ_min < 1"));
        }
        let n = scores.len() as f64;
        let t = if scores.is_empty() {
            BetaTracker::prior()
        } else {
            let s = scores.iter().filter(|x| **x > 0.0).count() as f64;
            let n_init = 1.0 / (1.0 - rho_min);
            BetaTracker {
                alpha: n_init * (s + 0.5) / (n + 1.0),
                beta: n_init * (n - s + 0.5) / (n + 1.0),
                visits: 0,
            }
        };
        self.trackers.insert(key.to_string(), t);
        Ok(())
    }

    /// Baseline for a key (prior 0.5 for unseen keys).
    pub fn baseline(&self, key: &str) -> f64 {
        self.trackers
            .get(key)
            .copied()
            .unwrap_or_else(BetaTracker::prior)
            .mean()
    }

    /// Baselines `p̂` for many keys, e.g. the `pass_rate` of a
    /// [`PromptPool`](crate::sampler::PromptPool) for SPO prioritised sampling.
    pub fn baselines(&self, keys: &[String]) -> Vec<f64> {
        keys.iter().map(|k| self.baseline(k)).collect()
    }

    /// Post-step update: `α ← ρα + r`, `β ← ρβ + (1−r)` with ρ from the config.
    /// Rewards outside `[0,1]` or a negative/non-finite distance are errors.
    pub fn update(&mut self, c: &SpoConfig, u: &SpoUpdate) -> Result<()> {
        if !(0.0..=1.0).contains(&u.reward) {
            return Err(CoreError::InvalidParam {
                name: format!("reward of `{}`", u.key),
                value: u.reward.to_string(),
                reason: "SPO needs rewards in [0,1]".into(),
            });
        }
        let d = u.distance.unwrap_or(0.0);
        if !(d.is_finite() && d >= 0.0) {
            return Err(bad_param("distance", d, "must be finite and >= 0"));
        }
        let rho = match c.rho {
            SpoRho::Kl {
                d_half,
                clip_lower,
                clip_upper,
            } => 2f64.powf(-d / d_half).clamp(clip_lower, clip_upper),
            SpoRho::Constant { value } => value,
        };
        let t = self
            .trackers
            .entry(u.key.clone())
            .or_insert_with(BetaTracker::prior);
        t.alpha = rho * t.alpha + u.reward;
        t.beta = rho * t.beta + (1.0 - u.reward);
        t.visits += 1;
        Ok(())
    }
}

/// SPO advantage: `a_i = r_i − p̂_{x_i}`, `A = (a − mean a)/(std a + 1e-8)` over the batch;
/// one row ⇒ `A = a` (flagged in `spo/unscaled_batch`).
pub fn spo(_c: &SpoConfig, state: &SpoState, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let keys = batch
        .prompt_key
        .as_ref()
        .ok_or_else(|| CoreError::MissingInput {
            method: "spo".into(),
            what: "prompt_key".into(),
        })?;
    let mut a = Vec::with_capacity(batch.rows());
    for (i, k) in keys.iter().enumerate() {
        let r = batch.reward[i];
        if !(0.0..=1.0).contains(&r) {
            return Err(CoreError::InvalidParam {
                name: format!("reward[{i}]"),
                value: r.to_string(),
                reason: "SPO needs rewards in [0,1]".into(),
            });
        }
        a.push(r - state.baseline(k));
    }
    let single = a.len() < 2;
    let out = if single {
        a
    } else {
        let mu = crate::stats::mean(&a);
        let sd = crate::stats::std_unbiased(&a).unwrap_or(0.0);
        let eq = a.iter().all(|x| *x == a[0]);
        a.iter()
            .map(|x| if eq { 0.0 } else { (x - mu) / (sd + 1e-8) })
            .collect()
    };
    Ok(AdvantageOutput::outcome(batch, &out)
        .with_metric("spo/unscaled_batch", if single { 1.0 } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_init_and_constant_rho_counts() {
        let mut s = SpoState::default();
        // 8 offline samples, 2 successes, ρ_min = .875 ⇒ N_init = 8: α = 8·2.5/9, β = 8·6.5/9
        s.init_offline("x", &[1.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0], 0.875)
            .unwrap();
        let t = s.trackers["x"];
        assert!((t.alpha - 8.0 * 2.5 / 9.0).abs() < 1e-12);
        assert!((t.beta - 8.0 * 6.5 / 9.0).abs() < 1e-12);
        // ρ = 1: α − α₀ and β − β₀ count successes and failures
        let c = SpoConfig {
            rho: SpoRho::Constant { value: 1.0 },
        };
        for r in [1.0, 0.0, 1.0] {
            s.update(
                &c,
                &SpoUpdate {
                    key: "x".into(),
                    reward: r,
                    distance: None,
                },
            )
            .unwrap();
        }
        let u = s.trackers["x"];
        assert!((u.alpha - t.alpha - 2.0).abs() < 1e-12 && (u.beta - t.beta - 1.0).abs() < 1e-12);
        assert_eq!(s.baselines(&["x".into(), "new".into()])[1], 0.5);
        assert!(
            s.update(
                &c,
                &SpoUpdate {
                    key: "x".into(),
                    reward: 2.0,
                    distance: None
                }
            )
            .is_err()
        );
    }
}

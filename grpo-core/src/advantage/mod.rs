//! Advantage estimators: rewards (and, where needed, old log-probs, step or
//! budget records) in, per-token advantages `A[i,t]` and returns out.
//!
//! Every estimator is selected by name through the serde-tagged
//! [`AdvantageConfig`] (`{"type": "grpo", "epsilon": 1e-6}` in JSON,
//! `advantage = { type = "grpo" }` in TOML). Config structs reject unknown
//! fields; serde defaults exist only where algorithms.md gives the source's
//! default. Outcome estimators broadcast a per-row value over the row's valid
//! tokens, so advantages are always exactly 0 where `m[i,t] = 0`.
//!
//! Two estimators carry state across batches (SPO's Beta value tracker and
//! RiskPO's quantile tracker). [`AdvantageEstimator`] owns the config and an
//! explicit, serialisable [`AdvantageState`]; stateless estimators have
//! [`AdvantageState::None`].
//!
//! Groups of size one: estimators that need group statistics take a
//! [`SingletonPolicy`] whose default is `error` (a named
//! [`CoreError::GroupTooSmall`]); `anchor` reproduces verl's loop behaviour
//! (baseline 0, scale 1) and `zero` gives such rows advantage 0.
//!
//! One file per family: [`grpo`] (GRPO, Dr.GRPO, batch-std), [`rloo`],
//! [`reinforce`] (REINFORCE++, its baseline variant, ReMax, GAE), [`baselines`]
//! (OPO, GPG, OPMD, AsymRE, REC, OBLR), [`passk`], [`otb`], [`bnpo`], [`gdpo`],
//! [`spo`], [`riskpo`], [`unlikely`], [`brpo`], [`step`] (GiGPO, SALT, HRPO),
//! [`tempsamp`]. Reward shaping that is pure batch arithmetic (overlong
//! penalty, stop-properly penalty, weighted multi-objective sum) is in
//! [`shaping`].

pub mod baselines;
pub mod bnpo;
pub mod brpo;
pub mod gdpo;
pub mod grpo;
pub mod otb;
pub mod passk;
pub mod reinforce;
pub mod riskpo;
pub mod rloo;
pub mod shaping;
pub mod spo;
pub mod step;
pub mod tempsamp;
pub mod unlikely;

use std::collections::BTreeMap;

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{Groups, ScoredBatch};
use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

/// What an estimator does with a group of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SingletonPolicy {
    /// Return [`CoreError::GroupTooSmall`] (the library default).
    #[default]
    Error,
    /// Advantage 0 for the row (verl `*_vectorized`, TRL RLOO).
    Zero,
    /// verl's loop behaviour: baseline 0 and scale 1 (e.g. GRPO gives `R/(1+ε)`).
    Anchor,
}

/// Result of an advantage estimator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvantageOutput {
    /// Per-token advantages `[B,T]`, 0 where the mask is 0.
    pub advantages: Array2<f64>,
    /// Per-token returns `[B,T]` (equal to the advantages for outcome estimators, as in verl).
    pub returns: Array2<f64>,
    /// Named diagnostics (e.g. `bnpo/alpha`, `spo/unscaled_batch`).
    pub metrics: BTreeMap<String, f64>,
}

impl AdvantageOutput {
    /// Outcome estimator output: advantages broadcast, returns = advantages.
    pub(crate) fn outcome(batch: &ScoredBatch, per_row: &[f64]) -> Self {
        let a = batch.broadcast(&ndarray::Array1::from(per_row.to_vec()));
        AdvantageOutput {
            returns: a.clone(),
            advantages: a,
            metrics: BTreeMap::new(),
        }
    }

    pub(crate) fn with_metric(mut self, k: &str, v: f64) -> Self {
        self.metrics.insert(k.to_string(), v);
        self
    }
}

/// Serde-tagged selection of an advantage estimator (`type` = registry name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdvantageConfig {
    /// GRPO group mean/std (§3.1).
    Grpo(grpo::GrpoConfig),
    /// Dr.GRPO mean-centering only (§3.2).
    DrGrpo(grpo::DrGrpoConfig),
    /// Group mean / batch std, TRL `scale_rewards="batch"` (§3.3).
    GrpoBatchStd(grpo::GrpoBatchStdConfig),
    /// RLOO leave-one-out (§3.4).
    Rloo(rloo::RlooConfig),
    /// REINFORCE++ with global whitening of returns (§3.5).
    ReinforcePlusPlus(reinforce::ReinforcePlusPlusConfig),
    /// REINFORCE++-baseline (§3.6).
    ReinforcePlusPlusBaseline(reinforce::ReinforcePlusPlusBaselineConfig),
    /// ReMax greedy baseline (§3.7).
    Remax(reinforce::RemaxConfig),
    /// GAE with critic values (§3.20).
    Gae(reinforce::GaeConfig),
    /// OPO length-weighted baseline (§3.8).
    Opo(baselines::OpoConfig),
    /// GPG advantage (§3.9).
    Gpg(baselines::GpgConfig),
    /// OPMD baselines (mean / logavgexp) (§3.16).
    Opmd(baselines::OpmdConfig),
    /// AsymRE shifted baseline (§3.16).
    Asymre(baselines::AsymreConfig),
    /// REC mean-centring with optional balanced drop (§3.16).
    Rec(baselines::RecConfig),
    /// OBLR-PO gradient-weighted optimal baseline (§9.4, reconstructed).
    Oblr(baselines::OblrConfig),
    /// Pass@k advantage (§3.10).
    GrpoPassk(passk::PasskConfig),
    /// verl optimal token baseline (§3.11).
    OptimalTokenBaseline(otb::OtbConfig),
    /// BNPO Beta normalisation (§3.12).
    Bnpo(bnpo::BnpoConfig),
    /// GDPO decoupled multi-reward normalisation (§3.13).
    Gdpo(gdpo::GdpoConfig),
    /// SPO KL-adaptive value tracker + global normalisation (§3.14, stateful).
    Spo(spo::SpoConfig),
    /// RiskPO mixed VaR with bundles (§3.15, stateful).
    RiskPo(riskpo::RiskPoConfig),
    /// Unlikeliness reward then GRPO (§3.17).
    Unlikeliness(unlikely::UnlikelinessConfig),
    /// BRPO budget-relative advantage (§3.18).
    Brpo(brpo::BrpoConfig),
    /// GiGPO episode + anchor-state step advantage (§3.19).
    Gigpo(step::GigpoConfig),
    /// SALT trajectory-graph step advantage (§9.5, reconstructed).
    Salt(step::SaltConfig),
    /// HRPO group-relative + action-wise advantage (§9.6, reconstructed).
    Hrpo(step::HrpoConfig),
    /// TempSamp-R1 soft (asymmetric) advantage (§9.7, reconstructed).
    Tempsamp(tempsamp::TempsampConfig),
}

impl AdvantageConfig {
    /// Registry name (the serde `type` tag).
    pub fn name(&self) -> &'static str {
        use AdvantageConfig::*;
        match self {
            Grpo(_) => "grpo",
            DrGrpo(_) => "dr_grpo",
            GrpoBatchStd(_) => "grpo_batch_std",
            Rloo(_) => "rloo",
            ReinforcePlusPlus(_) => "reinforce_plus_plus",
            ReinforcePlusPlusBaseline(_) => "reinforce_plus_plus_baseline",
            Remax(_) => "remax",
            Gae(_) => "gae",
            Opo(_) => "opo",
            Gpg(_) => "gpg",
            Opmd(_) => "opmd",
            Asymre(_) => "asymre",
            Rec(_) => "rec",
            Oblr(_) => "oblr",
            GrpoPassk(_) => "grpo_passk",
            OptimalTokenBaseline(_) => "optimal_token_baseline",
            Bnpo(_) => "bnpo",
            Gdpo(_) => "gdpo",
            Spo(_) => "spo",
            RiskPo(_) => "risk_po",
            Unlikeliness(_) => "unlikeliness",
            Brpo(_) => "brpo",
            Gigpo(_) => "gigpo",
            Salt(_) => "salt",
            Hrpo(_) => "hrpo",
            Tempsamp(_) => "tempsamp",
        }
    }

    /// Parses a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| CoreError::InvalidParam {
            name: "advantage".into(),
            value: text.chars().take(200).collect(),
            reason: e.to_string(),
        })
    }

    /// Checks hyper-parameter ranges.
    pub fn validate(&self) -> Result<()> {
        use AdvantageConfig::*;
        match self {
            Grpo(c) => non_negative("epsilon", c.epsilon)
                .and(c.std_floor.map_or(Ok(()), |f| non_negative("std_floor", f))),
            DrGrpo(_) | Rloo(_) | Remax(_) | Opo(_) | Gpg(_) | ReinforcePlusPlusBaseline(_) => {
                Ok(())
            }
            GrpoBatchStd(c) => non_negative("epsilon", c.epsilon),
            ReinforcePlusPlus(c) => unit_interval("gamma", c.gamma),
            Gae(c) => unit_interval("gamma", c.gamma).and(unit_interval("lam", c.lam)),
            Opmd(c) => positive("tau", c.tau),
            Asymre(c) => finite("delta_shift", c.delta_shift),
            Rec(c) => non_negative("epsilon", c.epsilon),
            Oblr(_) => Ok(()),
            GrpoPassk(c) => non_negative("epsilon", c.epsilon),
            OptimalTokenBaseline(c) => non_negative("epsilon", c.epsilon),
            Bnpo(c) => bnpo::validate(c),
            Gdpo(c) => gdpo::validate(c),
            Spo(c) => spo::validate(c),
            RiskPo(c) => riskpo::validate(c),
            Unlikeliness(c) => non_negative("epsilon", c.epsilon)
                .and(unit_interval("rank_penalty", c.rank_penalty)),
            Brpo(_) => Ok(()),
            Gigpo(c) => unit_interval("gamma", c.gamma)
                .and(finite("step_advantage_w", c.step_advantage_w))
                .and(non_negative("epsilon", c.epsilon)),
            Salt(c) => non_negative("epsilon", c.epsilon),
            Hrpo(c) => finite("omega", c.omega).and(non_negative("epsilon", c.epsilon)),
            Tempsamp(c) => positive("s_pos", c.s_pos)
                .and(positive("s_neg", c.s_neg))
                .and(non_negative("epsilon", c.epsilon)),
        }
    }

    /// The fresh state this estimator starts from.
    pub fn initial_state(&self) -> AdvantageState {
        match self {
            AdvantageConfig::Spo(_) => AdvantageState::Spo(spo::SpoState::default()),
            AdvantageConfig::RiskPo(_) => AdvantageState::RiskPo(riskpo::RiskPoState::default()),
            _ => AdvantageState::None,
        }
    }
}

/// Cross-batch state of a stateful estimator (serialisable; round-trips exactly through JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdvantageState {
    /// Stateless estimator.
    #[default]
    None,
    /// SPO's per-prompt Beta trackers.
    Spo(spo::SpoState),
    /// RiskPO's tracked quantiles.
    RiskPo(riskpo::RiskPoState),
}

/// An advantage estimator: its config plus its cross-batch state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvantageEstimator {
    config: AdvantageConfig,
    state: AdvantageState,
}

impl AdvantageEstimator {
    /// Validates the config and starts from the fresh state.
    pub fn new(config: AdvantageConfig) -> Result<Self> {
        config.validate()?;
        let state = config.initial_state();
        Ok(AdvantageEstimator { config, state })
    }

    /// Restores an estimator from a saved state (`InvalidState` if it belongs to another estimator).
    pub fn with_state(config: AdvantageConfig, state: AdvantageState) -> Result<Self> {
        config.validate()?;
        let ok = matches!(
            (&config, &state),
            (AdvantageConfig::Spo(_), AdvantageState::Spo(_))
                | (AdvantageConfig::RiskPo(_), AdvantageState::RiskPo(_))
        ) || (matches!(state, AdvantageState::None)
            && !matches!(config, AdvantageConfig::Spo(_) | AdvantageConfig::RiskPo(_)));
        if !ok {
            return Err(CoreError::InvalidState {
                what: config.name().into(),
                reason: "saved state belongs to another estimator".into(),
            });
        }
        Ok(AdvantageEstimator { config, state })
    }

    /// The config.
    pub fn config(&self) -> &AdvantageConfig {
        &self.config
    }

    /// The current cross-batch state.
    pub fn state(&self) -> &AdvantageState {
        &self.state
    }

    /// Computes advantages for a batch. `rng` drives the estimators that
    /// randomise (REC balanced drop, RiskPO paper permutation); stateful
    /// estimators update their state where the method says so (RiskPO's
    /// quantile tracker moves every batch; SPO's tracker moves only in
    /// [`AdvantageEstimator::spo_update`], after the policy step).
    pub fn compute(
        &mut self,
        batch: &ScoredBatch,
        rng: &mut ChaCha8Rng,
    ) -> Result<AdvantageOutput> {
        use AdvantageConfig::*;
        batch.validate_shapes()?;
        match &self.config {
            Grpo(c) => grpo::grpo(c, batch),
            DrGrpo(c) => grpo::dr_grpo(c, batch),
            GrpoBatchStd(c) => grpo::grpo_batch_std(c, batch),
            Rloo(c) => rloo::rloo(c, batch),
            ReinforcePlusPlus(c) => reinforce::reinforce_plus_plus(c, batch),
            ReinforcePlusPlusBaseline(c) => reinforce::reinforce_plus_plus_baseline(c, batch),
            Remax(c) => reinforce::remax(c, batch),
            Gae(c) => reinforce::gae(c, batch),
            Opo(c) => baselines::opo(c, batch),
            Gpg(c) => baselines::gpg(c, batch),
            Opmd(c) => baselines::opmd(c, batch),
            Asymre(c) => baselines::asymre(c, batch),
            Rec(c) => baselines::rec(c, batch, rng),
            Oblr(c) => baselines::oblr(c, batch),
            GrpoPassk(c) => passk::grpo_passk(c, batch),
            OptimalTokenBaseline(c) => otb::optimal_token_baseline(c, batch),
            Bnpo(c) => bnpo::bnpo(c, batch),
            Gdpo(c) => gdpo::gdpo(c, batch),
            Spo(c) => match &self.state {
                AdvantageState::Spo(s) => spo::spo(c, s, batch),
                _ => Err(state_mismatch("spo")),
            },
            RiskPo(c) => match &mut self.state {
                AdvantageState::RiskPo(s) => riskpo::risk_po(c, s, batch, rng),
                _ => Err(state_mismatch("risk_po")),
            },
            Unlikeliness(c) => unlikely::unlikeliness(c, batch),
            Brpo(c) => brpo::brpo(c, batch),
            Gigpo(c) => step::gigpo(c, batch),
            Salt(c) => step::salt(c, batch),
            Hrpo(c) => step::hrpo(c, batch),
            Tempsamp(c) => tempsamp::tempsamp(c, batch),
        }
    }

    /// SPO's post-step tracker update (see [`spo::SpoState::update`]); `InvalidState` for any
    /// other estimator.
    pub fn spo_update(&mut self, updates: &[spo::SpoUpdate]) -> Result<()> {
        match (&self.config, &mut self.state) {
            (AdvantageConfig::Spo(c), AdvantageState::Spo(s)) => {
                for u in updates {
                    s.update(c, u)?;
                }
                Ok(())
            }
            _ => Err(CoreError::InvalidState {
                what: self.config.name().into(),
                reason: "spo_update called on a non-SPO estimator".into(),
            }),
        }
    }
}

/// One-shot computation with a fresh state (stateful estimators start from scratch).
pub fn compute(
    config: &AdvantageConfig,
    batch: &ScoredBatch,
    rng: &mut ChaCha8Rng,
) -> Result<AdvantageOutput> {
    AdvantageEstimator::new(config.clone())?.compute(batch, rng)
}

fn state_mismatch(what: &str) -> CoreError {
    CoreError::InvalidState {
        what: what.into(),
        reason: "state does not match the config".into(),
    }
}

pub(crate) fn bad_param(name: &str, value: f64, reason: &str) -> CoreError {
    CoreError::InvalidParam {
        name: name.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(bad_param(name, v, "must be finite"))
    }
}

pub(crate) fn non_negative(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad_param(name, v, "must be finite and >= 0"))
    }
}

pub(crate) fn positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(bad_param(name, v, "must be finite and > 0"))
    }
}

pub(crate) fn unit_interval(name: &str, v: f64) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad_param(name, v, "must lie in [0, 1]"))
    }
}

/// How a group's centred values are scaled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scale {
    /// No scaling (Dr.GRPO).
    None,
    /// Divide by `σ_k + ε` (unbiased group std).
    GroupStd(f64),
    /// Divide by `max(σ_k, floor) + ε`.
    GroupStdFloored(f64, f64),
}

/// Group-centred (and optionally std-scaled) values: `(x_i − μ_k)/(σ_k + ε)`.
/// Groups whose values are all identical give exactly 0. Singletons follow `policy`.
pub(crate) fn group_normalise(
    x: &[f64],
    groups: &Groups,
    scale: Scale,
    policy: SingletonPolicy,
    method: &str,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; x.len()];
    for (g, rows) in groups.iter() {
        if rows.len() == 1 {
            let i = rows[0];
            out[i] = match policy {
                SingletonPolicy::Error => {
                    return Err(CoreError::GroupTooSmall {
                        group: g,
                        size: 1,
                        min: 2,
                        method: method.into(),
                    });
                }
                SingletonPolicy::Zero => 0.0,
                SingletonPolicy::Anchor => match scale {
                    Scale::None => x[i],
                    Scale::GroupStd(eps) | Scale::GroupStdFloored(eps, _) => x[i] / (1.0 + eps),
                },
            };
            continue;
        }
        let vals: Vec<f64> = rows.iter().map(|&i| x[i]).collect();
        if vals.iter().all(|v| *v == vals[0]) {
            continue;
        }
        let mu = crate::stats::mean(&vals);
        let div = match scale {
            Scale::None => 1.0,
            Scale::GroupStd(eps) => crate::stats::std_unbiased(&vals).unwrap_or(0.0) + eps,
            Scale::GroupStdFloored(eps, floor) => {
                crate::stats::std_unbiased(&vals).unwrap_or(0.0).max(floor) + eps
            }
        };
        for &i in rows {
            out[i] = if div > 0.0 { (x[i] - mu) / div } else { 0.0 };
        }
    }
    Ok(out)
}

/// Fraction of groups (of size ≥ 2) whose values are all identical (`frac_zero_std`;
/// 0 when there is no such group).
pub(crate) fn frac_zero_std(x: &[f64], groups: &Groups) -> f64 {
    let (mut n, mut z) = (0usize, 0usize);
    for (_, rows) in groups.iter() {
        if rows.len() >= 2 {
            n += 1;
            if rows.iter().all(|&i| x[i] == x[rows[0]]) {
                z += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { z as f64 / n as f64 }
}

/// Group means with a singleton policy: `Err` / `None` (advantage 0) / `Some(0)` (anchor).
pub(crate) fn group_mean_or(
    x: &[f64],
    rows: &[usize],
    group: usize,
    policy: SingletonPolicy,
    method: &str,
) -> Result<Option<f64>> {
    if rows.len() == 1 {
        return match policy {
            SingletonPolicy::Error => Err(CoreError::GroupTooSmall {
                group,
                size: 1,
                min: 2,
                method: method.into(),
            }),
            SingletonPolicy::Zero => Ok(None),
            SingletonPolicy::Anchor => Ok(Some(0.0)),
        };
    }
    let vals: Vec<f64> = rows.iter().map(|&i| x[i]).collect();
    Ok(Some(crate::stats::mean(&vals)))
}

fn entry(name: &'static str, summary: &'static str, verification: Verification) -> Entry {
    Entry {
        name,
        kind: Kind::Advantage,
        summary,
        verification,
    }
}

/// Registry rows of this module (one per [`AdvantageConfig`] variant).
pub fn registry() -> Vec<Entry> {
    use Verification::{Reconstructed as R, Verified as V};
    vec![
        entry(
            "grpo",
            "GRPO group mean/std advantage (DeepSeekMath; verl grpo)",
            V,
        ),
        entry(
            "dr_grpo",
            "Dr.GRPO mean-centred advantage, no std (Dr.GRPO; verl, TRL)",
            V,
        ),
        entry(
            "grpo_batch_std",
            "group mean / batch std, PPO-Lite (TRL scale_rewards=batch)",
            V,
        ),
        entry(
            "rloo",
            "RLOO leave-one-out baseline (verl rloo; TRL RLOOTrainer)",
            V,
        ),
        entry(
            "reinforce_plus_plus",
            "REINFORCE++ discounted returns, global whitening (verl)",
            V,
        ),
        entry(
            "reinforce_plus_plus_baseline",
            "REINFORCE++-baseline: group-mean centring then token whitening (verl)",
            V,
        ),
        entry("remax", "ReMax greedy-response baseline (verl remax)", V),
        entry("gae", "GAE with critic values, whitened (verl gae)", V),
        entry(
            "opo",
            "OPO length-weighted optimal reward baseline (verl opo)",
            V,
        ),
        entry(
            "gpg",
            "GPG advantage with batch non-zero correction (verl gpg)",
            V,
        ),
        entry("opmd", "OPMD mean / logavgexp baseline (Trinity-RFT)", V),
        entry(
            "asymre",
            "AsymRE shifted group-mean baseline (Trinity-RFT)",
            V,
        ),
        entry(
            "rec",
            "REC mean-centring, optional balanced negative drop (Trinity-RFT)",
            V,
        ),
        entry(
            "oblr",
            "OBLR-PO gradient-weighted optimal baseline (reconstructed, §9.4)",
            R,
        ),
        entry(
            "grpo_passk",
            "pass@k advantage: only the group's best row, by the top-2 gap (verl)",
            V,
        ),
        entry(
            "optimal_token_baseline",
            "optimal token baseline weighted by score-norm proxy (verl)",
            V,
        ),
        entry(
            "bnpo",
            "BNPO Beta-normalised advantage with decomposition (BNPO code)",
            V,
        ),
        entry(
            "gdpo",
            "GDPO per-component group normalisation then batch normalisation (NVlabs GDPO)",
            V,
        ),
        entry(
            "spo",
            "SPO KL-adaptive Beta value tracker + global normalisation (verl-recipe spo)",
            V,
        ),
        entry(
            "risk_po",
            "RiskPO mixed VaR over bundles with quantile tracking (RiskPO code)",
            V,
        ),
        entry(
            "unlikeliness",
            "unlikeliness rank-penalised reward then GRPO (Rewarding the Unlikely)",
            V,
        ),
        entry(
            "brpo",
            "BRPO budget-relative segment advantage (AnytimeReasoner)",
            V,
        ),
        entry(
            "gigpo",
            "GiGPO episode + anchor-state step advantage (verl-agent)",
            V,
        ),
        entry(
            "salt",
            "SALT trajectory-graph step advantage (reconstructed, §9.5)",
            R,
        ),
        entry(
            "hrpo",
            "HRPO group-relative + action-wise advantage (reconstructed, §9.6)",
            R,
        ),
        entry(
            "tempsamp",
            "TempSamp-R1 asymmetric soft advantage (reconstructed, §9.7)",
            R,
        ),
    ]
}

//! Step-level estimators from [`StepRecord`]s: GiGPO (algorithms.md §3.19,
//! verl-agent), SALT (§9.5, reconstructed) and HRPO (§9.6, reconstructed).
//!
//! A row is one trajectory; its steps are token spans. Tokens of a step get the
//! step's advantage; tokens of the row covered by no step get the
//! trajectory-level advantage. Differences from verl-agent (documented): the
//! episode-level statistics are over trajectories (verl-agent uses all step rows,
//! `compute_mean_std_cross_steps=True`), and anchor states are matched by exact
//! key only (no `SequenceMatcher` similarity).

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, Scale, SingletonPolicy, group_normalise};
use crate::batch::{ScoredBatch, StepRecord};
use crate::error::{CoreError, Result};

fn one() -> f64 {
    1.0
}
fn eps6() -> f64 {
    1e-6
}

/// GiGPO normalisation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GigpoMode {
    /// Mean-centring only (verl-agent default).
    #[default]
    MeanNorm,
    /// Mean and std (ε = `epsilon`).
    MeanStdNorm,
}

/// GiGPO config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GigpoConfig {
    /// Normalisation mode for both levels (default `mean_norm`).
    #[serde(default)]
    pub mode: GigpoMode,
    /// Step discount γ for the step value `Σ_k γ^k r_{t+k}` (required).
    pub gamma: f64,
    /// ω, weight of the step advantage (`step_advantage_w`, 1.0).
    #[serde(default = "one")]
    pub step_advantage_w: f64,
    /// ε (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Episode groups of one row.
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// SALT config (reconstructed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaltConfig {
    /// GRPO ε for the trajectory advantage (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Groups of one row.
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

/// HRPO config (reconstructed; ω has no verified default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrpoConfig {
    /// ω, weight of the action-wise term (required).
    pub omega: f64,
    /// GRPO ε (1e-6).
    #[serde(default = "eps6")]
    pub epsilon: f64,
    /// Groups of one row.
    #[serde(default)]
    pub singleton: SingletonPolicy,
}

fn steps<'a>(batch: &'a ScoredBatch, method: &str) -> Result<&'a Vec<Vec<StepRecord>>> {
    batch.steps.as_ref().ok_or_else(|| CoreError::MissingInput {
        method: method.into(),
        what: "steps".into(),
    })
}

/// Writes the trajectory advantage on uncovered tokens and `step_adv[i][s]` on step spans.
fn paint(
    batch: &ScoredBatch,
    traj: &[f64],
    st: &[Vec<StepRecord>],
    step_adv: &[Vec<f64>],
) -> Array2<f64> {
    let mut a = batch.broadcast(&ndarray::Array1::from(traj.to_vec()));
    for (i, row) in st.iter().enumerate() {
        for (s, rec) in row.iter().enumerate() {
            for t in rec.start..rec.end {
                a[[i, t]] = step_adv[i][s] * batch.mask[[i, t]];
            }
        }
    }
    a
}

/// GiGPO: `A = A^E + ω·A^S` on step tokens, `A^E` elsewhere.
pub fn gigpo(c: &GigpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let st = steps(batch, "gigpo")?;
    let groups = batch.groups();
    let scale = match c.mode {
        GigpoMode::MeanNorm => Scale::None,
        GigpoMode::MeanStdNorm => Scale::GroupStd(c.epsilon),
    };
    let ep = group_normalise(&batch.reward.to_vec(), &groups, scale, c.singleton, "gigpo")?;
    // discounted step values
    let values: Vec<Vec<f64>> = st
        .iter()
        .map(|row| {
            let mut v = vec![0.0; row.len()];
            let mut acc = 0.0;
            for s in (0..row.len()).rev() {
                acc = row[s].reward + c.gamma * acc;
                v[s] = acc;
            }
            v
        })
        .collect();
    let mut step_adv: Vec<Vec<f64>> = st.iter().map(|r| vec![0.0; r.len()]).collect();
    let mut n_step_groups = 0usize;
    for (_, rows) in groups.iter() {
        let mut by_state: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
        for &i in rows {
            for (s, rec) in st[i].iter().enumerate() {
                by_state.entry(rec.state.as_str()).or_default().push((i, s));
            }
        }
        for members in by_state.values() {
            n_step_groups += 1;
            if members.len() < 2 {
                continue;
            }
            let vals: Vec<f64> = members.iter().map(|&(i, s)| values[i][s]).collect();
            if vals.iter().all(|v| *v == vals[0]) {
                continue;
            }
            let mu = crate::stats::mean(&vals);
            let div = match c.mode {
                GigpoMode::MeanNorm => 1.0,
                GigpoMode::MeanStdNorm => {
                    crate::stats::std_unbiased(&vals).unwrap_or(0.0) + c.epsilon
                }
            };
            for (k, &(i, s)) in members.iter().enumerate() {
                step_adv[i][s] = if div > 0.0 { (vals[k] - mu) / div } else { 0.0 };
            }
        }
    }
    let combined: Vec<Vec<f64>> = step_adv
        .iter()
        .enumerate()
        .map(|(i, r)| r.iter().map(|x| ep[i] + c.step_advantage_w * x).collect())
        .collect();
    let a = paint(batch, &ep, st, &combined);
    Ok(AdvantageOutput {
        returns: a.clone(),
        advantages: a,
        metrics: BTreeMap::from([("gigpo/step_groups".to_string(), n_step_groups as f64)]),
    })
}

/// SALT: trajectory advantage by GRPO; a step's advantage is the mean trajectory advantage
/// over the distinct trajectories of the group that contain the same `(state, action)` node.
pub fn salt(c: &SaltConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let st = steps(batch, "salt")?;
    let groups = batch.groups();
    let traj = group_normalise(
        &batch.reward.to_vec(),
        &groups,
        Scale::GroupStd(c.epsilon),
        c.singleton,
        "salt",
    )?;
    let mut step_adv: Vec<Vec<f64>> = st.iter().map(|r| vec![0.0; r.len()]).collect();
    for (_, rows) in groups.iter() {
        let mut node_rows: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for &i in rows {
            for rec in &st[i] {
                let e = node_rows
                    .entry((rec.state.as_str(), rec.action.as_str()))
                    .or_default();
                if !e.contains(&i) {
                    e.push(i);
                }
            }
        }
        for &i in rows {
            for (s, rec) in st[i].iter().enumerate() {
                let rs = &node_rows[&(rec.state.as_str(), rec.action.as_str())];
                step_adv[i][s] = rs.iter().map(|&j| traj[j]).sum::<f64>() / rs.len() as f64;
            }
        }
    }
    let a = paint(batch, &traj, st, &step_adv);
    Ok(AdvantageOutput {
        returns: a.clone(),
        advantages: a,
        metrics: BTreeMap::new(),
    })
}

/// HRPO: `A_{i,a} = A^GRPO_i + ω (r_{i,a} − mean r_{·,a})`, the mean over the group's steps
/// with the same action key.
pub fn hrpo(c: &HrpoConfig, batch: &ScoredBatch) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let st = steps(batch, "hrpo")?;
    let groups = batch.groups();
    let base = group_normalise(
        &batch.reward.to_vec(),
        &groups,
        Scale::GroupStd(c.epsilon),
        c.singleton,
        "hrpo",
    )?;
    let mut step_adv: Vec<Vec<f64>> = st.iter().map(|r| vec![0.0; r.len()]).collect();
    for (_, rows) in groups.iter() {
        let mut by_action: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for &i in rows {
            for rec in &st[i] {
                by_action
                    .entry(rec.action.as_str())
                    .or_default()
                    .push(rec.reward);
            }
        }
        for &i in rows {
            for (s, rec) in st[i].iter().enumerate() {
                let v = &by_action[rec.action.as_str()];
                let mu = crate::stats::mean(v);
                let d = if v.iter().all(|x| *x == v[0]) {
                    0.0
                } else {
                    rec.reward - mu
                };
                step_adv[i][s] = base[i] + c.omega * d;
            }
        }
    }
    let a = paint(batch, &base, st, &step_adv);
    Ok(AdvantageOutput {
        returns: a.clone(),
        advantages: a,
        metrics: BTreeMap::new(),
    })
}

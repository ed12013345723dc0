//! RiskPO — Mixed Value-at-Risk with bundles (algorithms.md §3.15, official code).
//!
//! Consecutive groups (prompts, in order of first appearance) form bundles of
//! `bundle_size`; "paper" `j` of a bundle takes the j-th response of every
//! question (row order, or a seeded random permutation per question), its
//! score `Z_j` is the sum of their rewards. Quantiles of `Z` at `α_lo`,
//! `α_hi` come from the batch, from a tracker updated by pinball-loss SGD, or
//! their average (`mix`). Every response of paper `j` gets `A_j`; responses
//! beyond the bundle's smallest group size get 0 (counted in
//! `risk_po/unassigned_rows`).
//!
//! Tracker details that are our choices (documented): the tracker tracks only
//! the two levels used, starts at the first bundle's batch quantiles, and is
//! updated after each bundle's advantages are computed.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{AdvantageOutput, bad_param};
use crate::batch::ScoredBatch;
use crate::error::Result;
use crate::stats::quantile;

fn a_lo() -> f64 {
    0.2
}
fn a_hi() -> f64 {
    0.8
}
fn bundle() -> usize {
    5
}
fn lr() -> f64 {
    0.1
}
fn wmix() -> f64 {
    1.5
}
fn t() -> bool {
    true
}

/// Which quantiles the advantage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantileMode {
    /// Average of tracked and batch quantiles (code default).
    #[default]
    Mix,
    /// Tracked only.
    Track,
    /// Batch only.
    Batch,
}

/// RiskPO config (defaults from the official run script).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskPoConfig {
    /// `α_lo` (`quantile_down`, 0.2).
    #[serde(default = "a_lo")]
    pub alpha_lo: f64,
    /// `α_hi` (`quantile_up`, 0.8).
    #[serde(default = "a_hi")]
    pub alpha_hi: f64,
    /// Questions per bundle (5).
    #[serde(default = "bundle")]
    pub bundle_size: usize,
    /// Tracker step `η_q` (`lr_q`, 0.1).
    #[serde(default = "lr")]
    pub lr_q: f64,
    /// Mixing weight ω (`w_mix`, 1.5).
    #[serde(default = "wmix")]
    pub w_mix: f64,
    /// Use the mixed (CVaR) term (`use_mixing_risk_measure`, true).
    #[serde(default = "t")]
    pub mixing: bool,
    /// Quantile source (`mix`).
    #[serde(default)]
    pub quantile_mode: QuantileMode,
    /// Divide by `std_j Z + ε` (`norm_adv_by_std_in_grpo`, true in the code).
    #[serde(default = "t")]
    pub norm_by_std: bool,
    /// Randomly permute each question's responses before forming papers (paper: yes; code: no;
    /// default false = the code).
    #[serde(default)]
    pub permute: bool,
}

pub(crate) fn validate(c: &RiskPoConfig) -> Result<()> {
    if !(0.0 < c.alpha_lo && c.alpha_lo < c.alpha_hi && c.alpha_hi < 1.0) {
        return Err(bad_param(
            "alpha_lo",
            c.alpha_lo,
            "need 0 < alpha_lo < alpha_hi < 1",
        ));
    }
    if c.bundle_size == 0 {
        return Err(bad_param("bundle_size", 0.0, "must be >= 1"));
    }
    super::non_negative("lr_q", c.lr_q)?;
    super::non_negative("w_mix", c.w_mix)
}

/// Tracked quantiles (serialisable).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RiskPoState {
    /// Tracked `q̃` at `α_lo` (None before the first bundle).
    pub q_lo: Option<f64>,
    /// Tracked `q̃` at `α_hi`.
    pub q_hi: Option<f64>,
    /// Bundles seen.
    pub bundles_seen: u64,
}

impl RiskPoState {
    /// Pinball-loss SGD step on a bundle's paper scores:
    /// `q̃_s ← q̃_s + η (s − mean_j 1[Z_j < q̃_s])`; initialises at the batch quantiles.
    pub fn update(&mut self, c: &RiskPoConfig, z: &[f64]) {
        if z.is_empty() {
            return;
        }
        let step = |q: Option<f64>, s: f64| {
            let q = q.unwrap_or_else(|| quantile(z, s).unwrap_or(0.0));
            let below = z.iter().filter(|x| **x < q).count() as f64 / z.len() as f64;
            q + c.lr_q * (s - below)
        };
        self.q_lo = Some(step(self.q_lo, c.alpha_lo));
        self.q_hi = Some(step(self.q_hi, c.alpha_hi));
        self.bundles_seen += 1;
    }
}

/// RiskPO paper advantages for scores `Z` given the quantiles (before std scaling):
/// `A^R = [(Z−q_lo)⁺ − (Z−q_hi)⁺ + q_lo − q_hi]/(α_hi − α_lo + ε)`,
/// `A^C = −(q_lo − Z)⁺/(α_lo + ε)`, `A = (ω A^C + A^R)/(ω+1)` when mixing.
pub fn paper_advantage(c: &RiskPoConfig, z: f64, q_lo: f64, q_hi: f64) -> f64 {
    let eps = 1e-6;
    let pos = |x: f64| x.max(0.0);
    let ar = (pos(z - q_lo) - pos(z - q_hi) + q_lo - q_hi) / (c.alpha_hi - c.alpha_lo + eps);
    if c.mixing {
        let ac = -pos(q_lo - z) / (c.alpha_lo + eps);
        (c.w_mix * ac + ar) / (c.w_mix + 1.0)
    } else {
        ar
    }
}

/// RiskPO advantage; updates the tracker with every bundle.
pub fn risk_po(
    c: &RiskPoConfig,
    state: &mut RiskPoState,
    batch: &ScoredBatch,
    rng: &mut ChaCha8Rng,
) -> Result<AdvantageOutput> {
    batch.validate_shapes()?;
    let groups = batch.groups();
    let r = &batch.reward;
    let mut a = vec![0.0; batch.rows()];
    let mut unassigned = 0usize;
    let all: Vec<Vec<usize>> = groups.rows.clone();
    for bundle in all.chunks(c.bundle_size) {
        let papers = bundle.iter().map(|g| g.len()).min().unwrap_or(0);
        let orders: Vec<Vec<usize>> = bundle
            .iter()
            .map(|g| {
                let mut o = g.clone();
                if c.permute {
                    o.shuffle(rng);
                }
                o
            })
            .collect();
        unassigned += bundle.iter().map(|g| g.len() - papers).sum::<usize>();
        let z: Vec<f64> = (0..papers)
            .map(|j| orders.iter().map(|o| r[o[j]]).sum())
            .collect();
        if papers <= 1 {
            state.update(c, &z);
            continue; // one paper ⇒ q_lo = q_hi = Z ⇒ A = 0
        }
        let bl = quantile(&z, c.alpha_lo).unwrap_or(0.0);
        let bh = quantile(&z, c.alpha_hi).unwrap_or(0.0);
        let tl = state.q_lo.unwrap_or(bl);
        let th = state.q_hi.unwrap_or(bh);
        let (ql, qh) = match c.quantile_mode {
            QuantileMode::Mix => ((tl + bl) / 2.0, (th + bh) / 2.0),
            QuantileMode::Track => (tl, th),
            QuantileMode::Batch => (bl, bh),
        };
        let div = if c.norm_by_std {
            crate::stats::std_unbiased(&z).unwrap_or(1.0) + 1e-6
        } else {
            1.0
        };
        for j in 0..papers {
            let aj = paper_advantage(c, z[j], ql, qh) / div;
            for o in &orders {
                a[o[j]] = aj;
            }
        }
        state.update(c, &z);
    }
    Ok(AdvantageOutput::outcome(batch, &a)
        .with_metric("risk_po/unassigned_rows", unassigned as f64))
}

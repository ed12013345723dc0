//! Group filters and row re-weighting (algorithms.md §6.1, §6.2, §6.7–§6.9).
//!
//! A [`FilterConfig`] (serde-tagged, `type` = registry name) turns a
//! [`ScoredBatch`] into a [`Selection`]: the rows to keep (in order; PF-PPO
//! may repeat rows) and optionally a new response mask. A zero-variance group
//! is *data*, not an error: filters report it. All randomness comes from the
//! caller's seeded `ChaCha8Rng`.
//!
//! [`DynamicSamplingBuffer`] is DAPO's keep-filling bookkeeping: push scored
//! generation batches until `train_batch_size` prompts with non-zero metric
//! variance are collected, then take exactly that many.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{ScoredBatch, concat};
use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

fn two() -> f64 {
    2.0
}

/// DAPO dynamic sampling: drop groups whose metric values are all identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicSamplingConfig {
    /// Reward component compared (`reward` = the scalar reward; DAPO recipe: `acc`).
    pub metric: String,
}

/// "Rewarding the Unlikely" `advantage_threshold`: drop groups with no or only successes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessFilterConfig {
    /// Reward component compared.
    pub metric: String,
    /// A row is a success when `metric >= success_threshold` (required).
    pub success_threshold: f64,
}

/// "Rewarding the Unlikely" `rejection_sampling`: drop rows whose metric is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionConfig {
    /// Reward component compared.
    pub metric: String,
}

/// Keep at most `max_samples` rows per group, chosen uniformly at random (row order kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxSamplesConfig {
    /// Rows kept per group (required, ≥ 1).
    pub max_samples: usize,
}

/// Mask truncated completions (TRL `mask_truncated_completions`); needs `truncated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskTruncatedConfig {}

/// PF-PPO weight rule (verl `pf_ppo.reweight_method`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum PfPpoWeight {
    /// `|R|^p` (p = 2.0).
    Pow {
        /// Exponent (verl default 2.0).
        #[serde(default = "two")]
        p: f64,
    },
    /// 1 for the batch max/min scores, else 0.
    MaxMin,
    /// 0.4 for the batch max score, else 0.1.
    MaxRandom,
}

/// PF-PPO reward-weighted resampling of `B` rows with replacement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PfPpoConfig {
    /// Weight rule.
    pub weight: PfPpoWeight,
}

/// Serde-tagged selection of a filter (`type` = registry name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FilterConfig {
    /// DAPO zero-variance group filter (§6.1).
    DynamicSampling(DynamicSamplingConfig),
    /// Truncated-completion masking (§6.2).
    MaskTruncated(MaskTruncatedConfig),
    /// Unlikely recipe: drop all-fail / all-success groups (§6.8).
    AdvantageThreshold(SuccessFilterConfig),
    /// Unlikely recipe: drop zero-reward rows (§6.8).
    RejectionSampling(RejectionConfig),
    /// Unlikely recipe: at most k rows per problem (§6.8).
    MaxSamples(MaxSamplesConfig),
    /// PF-PPO resampling (§6.9).
    PfPpo(PfPpoConfig),
}

/// What a filter keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Rows kept, in output order (PF-PPO may repeat a row).
    pub rows: Vec<usize>,
    /// Replacement response mask for the kept rows' source batch (mask filters only).
    pub mask: Option<ndarray::Array2<f64>>,
    /// Group ids dropped (group filters).
    pub dropped_groups: Vec<usize>,
}

impl Selection {
    /// Applies the selection: new mask (if any), then the row subset. A selection that
    /// keeps no row gives `CoreError::Empty` (a batch has at least one row).
    pub fn apply(&self, batch: &ScoredBatch) -> Result<ScoredBatch> {
        let mut b = batch.clone();
        if let Some(m) = &self.mask {
            b.mask = m.clone();
        }
        b.select_rows(&self.rows)
    }
}

/// Ids of the groups whose `metric` values are all identical (exact equality, as
/// `std == 0`). Also the trigger of difficulty-aware augmentation (§6.7).
pub fn zero_variance_groups(batch: &ScoredBatch, metric: &str) -> Result<Vec<usize>> {
    batch.validate_shapes()?;
    let v = batch.component(metric)?;
    Ok(batch
        .groups()
        .iter()
        .filter(|(_, rows)| rows.iter().all(|&i| v[i] == v[rows[0]]))
        .map(|(g, _)| g)
        .collect())
}

fn keep_groups(batch: &ScoredBatch, drop: &[usize]) -> Selection {
    Selection {
        rows: (0..batch.rows())
            .filter(|&i| !drop.contains(&batch.group[i]))
            .collect(),
        mask: None,
        dropped_groups: drop.to_vec(),
    }
}

impl FilterConfig {
    /// Registry name (the serde `type` tag).
    pub fn name(&self) -> &'static str {
        match self {
            FilterConfig::DynamicSampling(_) => "dynamic_sampling",
            FilterConfig::MaskTruncated(_) => "mask_truncated",
            FilterConfig::AdvantageThreshold(_) => "advantage_threshold",
            FilterConfig::RejectionSampling(_) => "rejection_sampling",
            FilterConfig::MaxSamples(_) => "max_samples",
            FilterConfig::PfPpo(_) => "pf_ppo",
        }
    }

    /// Checks parameters.
    pub fn validate(&self) -> Result<()> {
        match self {
            FilterConfig::MaxSamples(c) if c.max_samples == 0 => Err(CoreError::InvalidParam {
                name: "max_samples".into(),
                value: "0".into(),
                reason: "must be >= 1".into(),
            }),
            FilterConfig::PfPpo(PfPpoConfig {
                weight: PfPpoWeight::Pow { p },
            }) if !p.is_finite() => Err(crate::advantage::bad_param("p", *p, "must be finite")),
            FilterConfig::AdvantageThreshold(c) if !c.success_threshold.is_finite() => {
                Err(crate::advantage::bad_param(
                    "success_threshold",
                    c.success_threshold,
                    "must be finite",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Computes the selection for a batch.
    pub fn select(&self, batch: &ScoredBatch, rng: &mut ChaCha8Rng) -> Result<Selection> {
        self.validate()?;
        batch.validate_shapes()?;
        match self {
            FilterConfig::DynamicSampling(c) => {
                let drop = zero_variance_groups(batch, &c.metric)?;
                Ok(keep_groups(batch, &drop))
            }
            FilterConfig::AdvantageThreshold(c) => {
                let v = batch.component(&c.metric)?;
                let drop: Vec<usize> = batch
                    .groups()
                    .iter()
                    .filter(|(_, rows)| {
                        let s = rows
                            .iter()
                            .filter(|&&i| v[i] >= c.success_threshold)
                            .count();
                        s == 0 || s == rows.len()
                    })
                    .map(|(g, _)| g)
                    .collect();
                Ok(keep_groups(batch, &drop))
            }
            FilterConfig::RejectionSampling(c) => {
                let v = batch.component(&c.metric)?;
                Ok(Selection {
                    rows: (0..batch.rows()).filter(|&i| v[i] != 0.0).collect(),
                    mask: None,
                    dropped_groups: Vec::new(),
                })
            }
            FilterConfig::MaxSamples(c) => {
                let mut keep = vec![false; batch.rows()];
                for (_, rows) in batch.groups().iter() {
                    let mut r = rows.to_vec();
                    let k = c.max_samples.min(r.len());
                    for j in 0..k {
                        let s = rng.random_range(j..r.len());
                        r.swap(j, s);
                    }
                    for &i in &r[..k] {
                        keep[i] = true;
                    }
                }
                Ok(Selection {
                    rows: (0..batch.rows()).filter(|&i| keep[i]).collect(),
                    mask: None,
                    dropped_groups: Vec::new(),
                })
            }
            FilterConfig::MaskTruncated(_) => {
                let tr = batch
                    .truncated
                    .as_ref()
                    .ok_or_else(|| CoreError::MissingInput {
                        method: "mask_truncated".into(),
                        what: "truncated".into(),
                    })?;
                let mut m = batch.mask.clone();
                for (i, &t) in tr.iter().enumerate() {
                    if t {
                        m.row_mut(i).fill(0.0);
                    }
                }
                Ok(Selection {
                    rows: (0..batch.rows()).collect(),
                    mask: Some(m),
                    dropped_groups: Vec::new(),
                })
            }
            FilterConfig::PfPpo(c) => {
                let w = pf_ppo_weights(&c.weight, &batch.reward.to_vec());
                let rows = (0..batch.rows())
                    .map(|_| weighted_index(&w, rng))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| CoreError::Empty {
                        what: "pf_ppo weights".into(),
                    })?;
                Ok(Selection {
                    rows,
                    mask: None,
                    dropped_groups: Vec::new(),
                })
            }
        }
    }

    /// `select` then `Selection::apply`.
    pub fn apply(&self, batch: &ScoredBatch, rng: &mut ChaCha8Rng) -> Result<ScoredBatch> {
        self.select(batch, rng)?.apply(batch)
    }
}

/// PF-PPO sampling weights, floored: `w ← max(w + 1e-8, 1e-8)`.
pub fn pf_ppo_weights(rule: &PfPpoWeight, scores: &[f64]) -> Vec<f64> {
    let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mn = scores.iter().copied().fold(f64::INFINITY, f64::min);
    scores
        .iter()
        .map(|&s| {
            let w = match rule {
                PfPpoWeight::Pow { p } => s.abs().powf(*p),
                PfPpoWeight::MaxMin => {
                    if s == mx || s == mn {
                        1.0
                    } else {
                        0.0
                    }
                }
                PfPpoWeight::MaxRandom => {
                    if s == mx {
                        0.4
                    } else {
                        0.1
                    }
                }
            };
            let w = if w.is_finite() { w } else { f64::MAX / 1e6 };
            (w + 1e-8).max(1e-8)
        })
        .collect()
}

/// Draws an index with probability `w_i/Σw` (`None` if the weights are empty or sum to 0).
pub fn weighted_index(w: &[f64], rng: &mut ChaCha8Rng) -> Option<usize> {
    let total: f64 = w.iter().sum();
    if w.is_empty() || total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let u = rng.random::<f64>() * total;
    let mut acc = 0.0;
    for (i, x) in w.iter().enumerate() {
        acc += x;
        if u < acc {
            return Some(i);
        }
    }
    w.iter().rposition(|x| *x > 0.0)
}

/// Whether the buffer has enough prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FillStatus {
    /// Generate another batch.
    NeedMore,
    /// `train_batch_size` prompts are buffered; call [`DynamicSamplingBuffer::take`].
    Full,
}

/// DAPO keep-filling buffer (verl `algorithm.filter_groups`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicSamplingBuffer {
    /// Prompts needed (`data.train_batch_size`).
    pub train_batch_size: usize,
    /// Maximum generation batches (`0` = unlimited).
    pub max_num_gen_batches: usize,
    /// Reward component compared.
    pub metric: String,
    /// Generation batches pushed so far.
    pub num_gen_batches: usize,
    /// Groups kept so far.
    pub num_prompts: usize,
    kept: Vec<ScoredBatch>,
}

impl DynamicSamplingBuffer {
    /// New empty buffer.
    pub fn new(train_batch_size: usize, max_num_gen_batches: usize, metric: &str) -> Result<Self> {
        if train_batch_size == 0 {
            return Err(CoreError::InvalidParam {
                name: "train_batch_size".into(),
                value: "0".into(),
                reason: "must be >= 1".into(),
            });
        }
        Ok(DynamicSamplingBuffer {
            train_batch_size,
            max_num_gen_batches,
            metric: metric.to_string(),
            num_gen_batches: 0,
            num_prompts: 0,
            kept: Vec::new(),
        })
    }

    /// Pushes a scored generation batch: keeps its groups with non-zero metric variance
    /// (order preserved). Errors with `InvalidState` when the batch limit is reached and the
    /// buffer is still short (verl raises).
    pub fn push(&mut self, batch: &ScoredBatch) -> Result<FillStatus> {
        let drop = zero_variance_groups(batch, &self.metric)?;
        let sel = keep_groups(batch, &drop);
        self.num_gen_batches += 1;
        if !sel.rows.is_empty() {
            let kept = batch.select_rows(&sel.rows)?;
            self.num_prompts += kept.groups().len();
            self.kept.push(kept);
        }
        if self.num_prompts >= self.train_batch_size {
            return Ok(FillStatus::Full);
        }
        if self.max_num_gen_batches > 0 && self.num_gen_batches >= self.max_num_gen_batches {
            return Err(CoreError::InvalidState {
                what: "dynamic_sampling".into(),
                reason: format!(
                    "{} generation batches gave {} of {} prompts with non-zero variance",
                    self.num_gen_batches, self.num_prompts, self.train_batch_size
                ),
            });
        }
        Ok(FillStatus::NeedMore)
    }

    /// Takes exactly `train_batch_size` groups (the first kept, group ids renumbered) and
    /// resets the buffer. `InvalidState` if not full yet.
    pub fn take(&mut self) -> Result<ScoredBatch> {
        if self.num_prompts < self.train_batch_size {
            return Err(CoreError::InvalidState {
                what: "dynamic_sampling".into(),
                reason: format!(
                    "only {} of {} prompts buffered",
                    self.num_prompts, self.train_batch_size
                ),
            });
        }
        let all = concat(&self.kept)?;
        let g = all.groups();
        let rows: Vec<usize> = g.rows[..self.train_batch_size]
            .iter()
            .flatten()
            .copied()
            .collect();
        let mut rows = rows;
        rows.sort_unstable();
        self.kept.clear();
        self.num_prompts = 0;
        self.num_gen_batches = 0;
        all.select_rows(&rows)
    }
}

fn entry(name: &'static str, summary: &'static str) -> Entry {
    Entry {
        name,
        kind: Kind::Filter,
        summary,
        verification: Verification::Verified,
    }
}

/// Registry rows of this module (one per [`FilterConfig`] variant).
pub fn registry() -> Vec<Entry> {
    vec![
        entry(
            "dynamic_sampling",
            "DAPO dynamic sampling: drop zero-variance groups, keep filling (verl filter_groups)",
        ),
        entry(
            "mask_truncated",
            "mask truncated completions (TRL mask_truncated_completions, DAPO)",
        ),
        entry(
            "advantage_threshold",
            "drop all-fail / all-success groups (Rewarding the Unlikely)",
        ),
        entry(
            "rejection_sampling",
            "drop zero-reward rows (Rewarding the Unlikely)",
        ),
        entry(
            "max_samples",
            "at most k random rows per problem (Rewarding the Unlikely)",
        ),
        entry(
            "pf_ppo",
            "PF-PPO reward-weighted resampling with replacement (verl use_pf_ppo)",
        ),
    ]
}

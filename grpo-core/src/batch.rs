//! The scored-batch layout shared by advantage estimators, filters and samplers.
//!
//! A [`ScoredBatch`] holds `B` responses padded to `T` tokens (algorithms.md §0):
//! the response mask `m[i,t]` (`[B,T]`, 0/1), the group id of every row
//! (`g(i)`, the prompt uid), the scalar outcome reward `R_i`, any number of
//! **named** reward components `R^k_i`, and optional extras that some
//! estimators need (token-level rewards, old log-probs, the per-token sum of
//! squared probabilities, greedy-baseline rewards, prompt keys, step records,
//! budget records, critic values).
//!
//! All arrays are `f64` (storage and accumulation). Construction validates
//! shapes, finiteness and the group index and returns a named
//! [`CoreError`] instead of panicking. Empty mask rows are
//! *allowed* (a row masked out by a filter contributes nothing, §0); the
//! estimators that need a length call [`ScoredBatch::check_no_empty_rows`].
//!
//! The per-token log-prob view used by the policy losses lives in
//! [`crate::loss`]; this type is about rewards, groups and masks.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// One named reward component (`R^k`, one value per row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardComponent {
    /// Component name (e.g. `accuracy`, `format`).
    pub name: String,
    /// One value per row.
    pub values: Array1<f64>,
}

/// One step of a multi-step (agentic) trajectory: a token span of the row plus
/// the keys step-level estimators group on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Anchor state key (GiGPO groups steps whose anchor observation is identical).
    pub state: String,
    /// Action key (SALT merges identical `(state, action)` steps; HRPO groups action-wise rewards).
    pub action: String,
    /// Immediate reward of this step (GiGPO step reward, HRPO action-wise reward).
    pub reward: f64,
    /// First token (inclusive) of the step's span in the row.
    pub start: usize,
    /// Last token (exclusive) of the step's span in the row.
    pub end: usize,
}

/// Per-row budget record for BRPO (AnytimeReasoner, algorithms.md §3.18).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRecord {
    /// Token position where thinking segment `s` ends (exclusive), increasing; length `S`.
    /// Segment `s` covers `[ends[s-1], ends[s])` (`ends[-1] = 0`).
    pub segment_ends: Vec<usize>,
    /// `c[s]`: mean score of the summaries sampled after truncating at budget `s`; length `S`.
    pub scores: Vec<f64>,
}

/// Padded `[batch, time]` batch of scored responses. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredBatch {
    /// Response mask `m[i,t]` ∈ {0,1}, shape `[B,T]`.
    pub mask: Array2<f64>,
    /// Group id per row (`g(i)`), length `B`. Ids are arbitrary; groups are
    /// ordered by first appearance.
    pub group: Vec<usize>,
    /// Scalar outcome reward `R_i`, length `B`.
    pub reward: Array1<f64>,
    /// Named reward components `R^k`, each of length `B`.
    pub components: Vec<RewardComponent>,
    /// Token-level rewards `r[i,t]`, shape `[B,T]` (if absent, the outcome reward
    /// sits on the last valid token).
    pub token_rewards: Option<Array2<f64>>,
    /// Old-policy log-probs `ℓᵒ[i,t]`, shape `[B,T]` (unlikeliness reward, optimal baselines).
    pub old_log_prob: Option<Array2<f64>>,
    /// `Σ_v π(v|·)²` of the old policy's next-token distribution, shape `[B,T]` (a kernel output;
    /// optimal token baseline, OBLR).
    pub sum_sq_prob: Option<Array2<f64>>,
    /// Reward of the greedy response to the same prompt, length `B` (ReMax).
    pub baseline_reward: Option<Array1<f64>>,
    /// Persistent prompt key per row (SPO's value tracker), length `B`.
    pub prompt_key: Option<Vec<String>>,
    /// Step records per row (GiGPO, SALT, HRPO), outer length `B`.
    pub steps: Option<Vec<Vec<StepRecord>>>,
    /// Budget records per row (BRPO), length `B`.
    pub budgets: Option<Vec<BudgetRecord>>,
    /// Critic values `V[i,t]`, shape `[B,T]` (GAE).
    pub values: Option<Array2<f64>>,
    /// Truncated importance weights `ϖ[i,t]` `[B,T]` (optimal token baseline with IS).
    pub is_weight: Option<Array2<f64>>,
    /// Per row: the completion was truncated (its last token is neither EOS nor PAD);
    /// used by the `mask_truncated` filter.
    pub truncated: Option<Vec<bool>>,
}

/// Rows of each group, groups in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    /// Group ids in order of first appearance.
    pub ids: Vec<usize>,
    /// Row indices of each group (same order as `ids`), rows ascending.
    pub rows: Vec<Vec<usize>>,
}

impl Groups {
    /// Builds the group table from a per-row group index.
    pub fn from_index(index: &[usize]) -> Self {
        let mut pos: BTreeMap<usize, usize> = BTreeMap::new();
        let mut ids = Vec::new();
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for (i, &g) in index.iter().enumerate() {
            let k = *pos.entry(g).or_insert_with(|| {
                ids.push(g);
                rows.push(Vec::new());
                ids.len() - 1
            });
            rows[k].push(i);
        }
        Groups { ids, rows }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there is no group.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Iterates `(group id, rows)`.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[usize])> {
        self.ids
            .iter()
            .copied()
            .zip(self.rows.iter().map(|r| r.as_slice()))
    }

    /// Returns `GroupTooSmall` for the first group with fewer than `min` rows.
    pub fn require_min_size(&self, min: usize, method: &str) -> Result<()> {
        for (g, rows) in self.iter() {
            if rows.len() < min {
                return Err(CoreError::GroupTooSmall {
                    group: g,
                    size: rows.len(),
                    min,
                    method: method.to_string(),
                });
            }
        }
        Ok(())
    }
}

fn check_shape2(what: &str, a: &Array2<f64>, b: usize, t: usize) -> Result<()> {
    if a.dim() != (b, t) {
        return Err(CoreError::ShapeMismatch {
            what: what.to_string(),
            expected: vec![b, t],
            got: a.shape().to_vec(),
        });
    }
    Ok(())
}

fn check_len(what: &str, len: usize, b: usize) -> Result<()> {
    if len != b {
        return Err(CoreError::ShapeMismatch {
            what: what.to_string(),
            expected: vec![b],
            got: vec![len],
        });
    }
    Ok(())
}

fn check_finite_rows(component: &str, v: &Array1<f64>) -> Result<()> {
    for (row, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            return Err(CoreError::NonFiniteReward {
                row,
                component: component.to_string(),
                value: x,
            });
        }
    }
    Ok(())
}

fn check_finite_masked(what: &str, a: &Array2<f64>, mask: &Array2<f64>) -> Result<()> {
    for ((i, t), &x) in a.indexed_iter() {
        if mask[[i, t]] != 0.0 && !x.is_finite() {
            return Err(CoreError::NonFinite {
                what: what.to_string(),
                row: i,
                col: t,
                value: x,
            });
        }
    }
    Ok(())
}

fn validate_steps(steps: &[Vec<StepRecord>], rows: usize, cols: usize) -> Result<()> {
    check_len("steps", steps.len(), rows)?;
    for (i, row) in steps.iter().enumerate() {
        for s in row {
            if s.start > s.end || s.end > cols {
                return Err(CoreError::InvalidParam {
                    name: format!("steps[{i}]"),
                    value: format!("{}..{}", s.start, s.end),
                    reason: format!("span must satisfy start <= end <= T = {cols}"),
                });
            }
            if !s.reward.is_finite() {
                return Err(CoreError::NonFiniteReward {
                    row: i,
                    component: "step_reward".into(),
                    value: s.reward,
                });
            }
        }
    }
    Ok(())
}

fn validate_budgets(budgets: &[BudgetRecord], rows: usize, cols: usize) -> Result<()> {
    check_len("budgets", budgets.len(), rows)?;
    let s0 = budgets.first().map(|b| b.scores.len()).unwrap_or(0);
    for (i, b) in budgets.iter().enumerate() {
        check_len(&format!("budgets[{i}].scores"), b.scores.len(), s0)?;
        check_len(
            &format!("budgets[{i}].segment_ends"),
            b.segment_ends.len(),
            s0,
        )?;
        if s0 == 0 {
            return Err(CoreError::Empty {
                what: format!("budgets[{i}].scores"),
            });
        }
        let mut prev = 0;
        for &e in &b.segment_ends {
            if e < prev || e > cols {
                return Err(CoreError::InvalidParam {
                    name: format!("budgets[{i}].segment_ends"),
                    value: format!("{:?}", b.segment_ends),
                    reason: format!("must be non-decreasing and <= T = {cols}"),
                });
            }
            prev = e;
        }
        for &c in &b.scores {
            if !c.is_finite() {
                return Err(CoreError::NonFiniteReward {
                    row: i,
                    component: "budget_score".into(),
                    value: c,
                });
            }
        }
    }
    Ok(())
}

impl ScoredBatch {
    /// Builds and validates a batch from the mask, the group index and the scalar reward.
    ///
    /// Errors: `Empty` (no rows or no columns), `ShapeMismatch`, `InvalidMask`
    /// (value not 0/1), `NonFiniteReward` (row and component `reward`).
    pub fn new(mask: Array2<f64>, group: Vec<usize>, reward: Array1<f64>) -> Result<Self> {
        let b = ScoredBatch {
            mask,
            group,
            reward,
            components: Vec::new(),
            token_rewards: None,
            old_log_prob: None,
            sum_sq_prob: None,
            baseline_reward: None,
            prompt_key: None,
            steps: None,
            budgets: None,
            values: None,
            is_weight: None,
            truncated: None,
        };
        b.validate()?;
        Ok(b)
    }

    /// Convenience constructor: one scalar reward per row, every row of length `lengths[i]`
    /// padded to `max(lengths)` (at least 1 column).
    pub fn from_outcome(rewards: &[f64], group: &[usize], lengths: &[usize]) -> Result<Self> {
        check_len("lengths", lengths.len(), rewards.len())?;
        let t = lengths.iter().copied().max().unwrap_or(0).max(1);
        let mut mask = Array2::zeros((rewards.len(), t));
        for (i, &l) in lengths.iter().enumerate() {
            for c in 0..l {
                mask[[i, c]] = 1.0;
            }
        }
        Self::new(mask, group.to_vec(), Array1::from(rewards.to_vec()))
    }

    /// Adds a named reward component (validated: length and finiteness; names must be unique).
    pub fn with_component(mut self, name: &str, values: Array1<f64>) -> Result<Self> {
        if self.components.iter().any(|c| c.name == name) || name == "reward" {
            return Err(CoreError::InvalidParam {
                name: "component".into(),
                value: name.into(),
                reason: "component names must be unique and not `reward`".into(),
            });
        }
        check_len(&format!("component `{name}`"), values.len(), self.rows())?;
        check_finite_rows(name, &values)?;
        self.components.push(RewardComponent {
            name: name.to_string(),
            values,
        });
        Ok(self)
    }

    /// Adds token-level rewards `[B,T]` (finite on valid tokens).
    pub fn with_token_rewards(mut self, r: Array2<f64>) -> Result<Self> {
        check_shape2("token_rewards", &r, self.rows(), self.cols())?;
        check_finite_masked("token_rewards", &r, &self.mask)?;
        self.token_rewards = Some(r);
        Ok(self)
    }

    /// Adds old-policy log-probs `[B,T]` (finite on valid tokens).
    pub fn with_old_log_prob(mut self, lp: Array2<f64>) -> Result<Self> {
        check_shape2("old_log_prob", &lp, self.rows(), self.cols())?;
        check_finite_masked("old_log_prob", &lp, &self.mask)?;
        self.old_log_prob = Some(lp);
        Ok(self)
    }

    /// Adds `Σ_v π_v²` per token `[B,T]` (finite, in `[0,1]` on valid tokens).
    pub fn with_sum_sq_prob(mut self, s: Array2<f64>) -> Result<Self> {
        check_shape2("sum_sq_prob", &s, self.rows(), self.cols())?;
        check_finite_masked("sum_sq_prob", &s, &self.mask)?;
        self.sum_sq_prob = Some(s);
        Ok(self)
    }

    /// Adds the greedy-baseline reward per row (ReMax).
    pub fn with_baseline_reward(mut self, b: Array1<f64>) -> Result<Self> {
        check_len("baseline_reward", b.len(), self.rows())?;
        check_finite_rows("baseline_reward", &b)?;
        self.baseline_reward = Some(b);
        Ok(self)
    }

    /// Adds a persistent prompt key per row (SPO).
    pub fn with_prompt_keys(mut self, keys: Vec<String>) -> Result<Self> {
        check_len("prompt_key", keys.len(), self.rows())?;
        self.prompt_key = Some(keys);
        Ok(self)
    }

    /// Adds step records per row; spans must lie inside `[0, T)` with `start <= end`.
    pub fn with_steps(mut self, steps: Vec<Vec<StepRecord>>) -> Result<Self> {
        validate_steps(&steps, self.rows(), self.cols())?;
        self.steps = Some(steps);
        Ok(self)
    }

    /// Adds budget records per row (BRPO); every row must have the same number of budgets.
    pub fn with_budgets(mut self, budgets: Vec<BudgetRecord>) -> Result<Self> {
        validate_budgets(&budgets, self.rows(), self.cols())?;
        self.budgets = Some(budgets);
        Ok(self)
    }

    /// Adds critic values `[B,T]` (GAE).
    pub fn with_values(mut self, v: Array2<f64>) -> Result<Self> {
        check_shape2("values", &v, self.rows(), self.cols())?;
        check_finite_masked("values", &v, &self.mask)?;
        self.values = Some(v);
        Ok(self)
    }

    /// Adds truncated importance weights `[B,T]` (finite on valid tokens).
    pub fn with_is_weight(mut self, w: Array2<f64>) -> Result<Self> {
        check_shape2("is_weight", &w, self.rows(), self.cols())?;
        check_finite_masked("is_weight", &w, &self.mask)?;
        self.is_weight = Some(w);
        Ok(self)
    }

    /// Adds the per-row truncation flags.
    pub fn with_truncated(mut self, truncated: Vec<bool>) -> Result<Self> {
        check_len("truncated", truncated.len(), self.rows())?;
        self.truncated = Some(truncated);
        Ok(self)
    }

    /// Number of rows `B`.
    pub fn rows(&self) -> usize {
        self.mask.nrows()
    }

    /// Padded width `T`.
    pub fn cols(&self) -> usize {
        self.mask.ncols()
    }

    /// Re-validates every field (useful after editing public fields directly).
    pub fn validate(&self) -> Result<()> {
        self.check(true)
    }

    /// The O(B) part of [`ScoredBatch::validate`]: every shape and length, group index,
    /// step spans, budget records and the finiteness of per-row rewards — but not the
    /// per-token scans (mask values, finiteness of `[B,T]` extras). Estimators call this
    /// on entry, so a batch whose public fields were edited into an inconsistent state
    /// gives a named error, never a panic.
    pub fn validate_shapes(&self) -> Result<()> {
        self.check(false)
    }

    fn check(&self, tokens: bool) -> Result<()> {
        let (b, t) = self.mask.dim();
        if b == 0 {
            return Err(CoreError::Empty {
                what: "batch".into(),
            });
        }
        if t == 0 {
            return Err(CoreError::Empty {
                what: "response_mask columns".into(),
            });
        }
        if tokens {
            for ((i, c), &v) in self.mask.indexed_iter() {
                if v != 0.0 && v != 1.0 {
                    return Err(CoreError::InvalidMask {
                        what: "response_mask".into(),
                        row: i,
                        col: c,
                        value: v,
                    });
                }
            }
        }
        if self.group.len() != b {
            return Err(CoreError::InvalidGroupIndex {
                reason: format!("index has {} entries for {} rows", self.group.len(), b),
            });
        }
        check_len("reward", self.reward.len(), b)?;
        check_finite_rows("reward", &self.reward)?;
        let mut names = std::collections::BTreeSet::new();
        for c in &self.components {
            if !names.insert(c.name.as_str()) || c.name == "reward" {
                return Err(CoreError::InvalidParam {
                    name: "component".into(),
                    value: c.name.clone(),
                    reason: "component names must be unique and not `reward`".into(),
                });
            }
            check_len(&format!("component `{}`", c.name), c.values.len(), b)?;
            check_finite_rows(&c.name, &c.values)?;
        }
        let pairs = [
            ("token_rewards", &self.token_rewards),
            ("old_log_prob", &self.old_log_prob),
            ("sum_sq_prob", &self.sum_sq_prob),
            ("values", &self.values),
            ("is_weight", &self.is_weight),
        ];
        for (name, a) in pairs {
            if let Some(a) = a {
                check_shape2(name, a, b, t)?;
                if tokens {
                    check_finite_masked(name, a, &self.mask)?;
                }
            }
        }
        if let Some(v) = &self.baseline_reward {
            check_len("baseline_reward", v.len(), b)?;
            check_finite_rows("baseline_reward", v)?;
        }
        if let Some(k) = &self.prompt_key {
            check_len("prompt_key", k.len(), b)?;
        }
        if let Some(k) = &self.truncated {
            check_len("truncated", k.len(), b)?;
        }
        if let Some(s) = &self.steps {
            validate_steps(s, b, t)?;
        }
        if let Some(s) = &self.budgets {
            validate_budgets(s, b, t)?;
        }
        Ok(())
    }

    /// The group table (groups in order of first appearance).
    pub fn groups(&self) -> Groups {
        Groups::from_index(&self.group)
    }

    /// Response lengths `L_i = Σ_t m[i,t]`.
    pub fn lengths(&self) -> Array1<f64> {
        self.mask.sum_axis(ndarray::Axis(1))
    }

    /// Returns `EmptyMaskRow` for the first row with no valid token.
    pub fn check_no_empty_rows(&self) -> Result<()> {
        for (row, l) in self.lengths().iter().enumerate() {
            if *l == 0.0 {
                return Err(CoreError::EmptyMaskRow { row });
            }
        }
        Ok(())
    }

    /// A reward component by name (`reward` is the scalar reward).
    pub fn component(&self, name: &str) -> Result<&Array1<f64>> {
        if name == "reward" {
            return Ok(&self.reward);
        }
        self.components
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.values)
            .ok_or_else(|| CoreError::UnknownName {
                kind: "reward component".into(),
                name: name.into(),
                known: std::iter::once("reward")
                    .chain(self.components.iter().map(|c| c.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Token-level rewards: the given ones, or the outcome reward placed on the
    /// last valid token of each row (empty rows get no reward).
    pub fn token_rewards_or_outcome(&self) -> Array2<f64> {
        if let Some(r) = &self.token_rewards {
            return r.clone();
        }
        let mut r = Array2::zeros(self.mask.dim());
        for i in 0..self.rows() {
            if let Some(last) = (0..self.cols()).rev().find(|&t| self.mask[[i, t]] != 0.0) {
                r[[i, last]] = self.reward[i];
            }
        }
        r
    }

    /// Broadcasts a per-row value over the row's valid tokens: `A[i,t] = a_i · m[i,t]`.
    pub fn broadcast(&self, per_row: &Array1<f64>) -> Array2<f64> {
        let mut a = self.mask.clone();
        for (i, mut row) in a.rows_mut().into_iter().enumerate() {
            let v = per_row[i];
            row.mapv_inplace(|m| m * v);
        }
        a
    }

    /// A copy of the batch restricted to `rows` (in the given order), extras included.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        let b = self.rows();
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            return Err(CoreError::InvalidParam {
                name: "rows".into(),
                value: bad.to_string(),
                reason: format!("row index out of range for {b} rows"),
            });
        }
        let sel2 = |a: &Array2<f64>| a.select(ndarray::Axis(0), rows);
        let sel1 = |a: &Array1<f64>| a.select(ndarray::Axis(0), rows);
        let out = ScoredBatch {
            mask: sel2(&self.mask),
            group: rows.iter().map(|&r| self.group[r]).collect(),
            reward: sel1(&self.reward),
            components: self
                .components
                .iter()
                .map(|c| RewardComponent {
                    name: c.name.clone(),
                    values: sel1(&c.values),
                })
                .collect(),
            token_rewards: self.token_rewards.as_ref().map(sel2),
            old_log_prob: self.old_log_prob.as_ref().map(sel2),
            sum_sq_prob: self.sum_sq_prob.as_ref().map(sel2),
            baseline_reward: self.baseline_reward.as_ref().map(sel1),
            prompt_key: self
                .prompt_key
                .as_ref()
                .map(|k| rows.iter().map(|&r| k[r].clone()).collect()),
            steps: self
                .steps
                .as_ref()
                .map(|s| rows.iter().map(|&r| s[r].clone()).collect()),
            budgets: self
                .budgets
                .as_ref()
                .map(|s| rows.iter().map(|&r| s[r].clone()).collect()),
            values: self.values.as_ref().map(sel2),
            is_weight: self.is_weight.as_ref().map(sel2),
            truncated: self
                .truncated
                .as_ref()
                .map(|k| rows.iter().map(|&r| k[r]).collect()),
        };
        out.validate()?;
        Ok(out)
    }
}

fn pad2(a: &Array2<f64>, t: usize) -> Array2<f64> {
    let mut out = Array2::zeros((a.nrows(), t));
    out.slice_mut(ndarray::s![.., ..a.ncols()]).assign(a);
    out
}

/// Concatenates batches row-wise, padding to the widest `T`. Group ids are renumbered
/// `0, 1, …` in order of first appearance per part, so equal ids in different parts stay
/// different groups. An optional extra is kept only if every part has it; reward
/// components must have the same names in every part.
pub fn concat(parts: &[ScoredBatch]) -> Result<ScoredBatch> {
    let first = parts.first().ok_or_else(|| CoreError::Empty {
        what: "batches to concatenate".into(),
    })?;
    let t = parts.iter().map(|p| p.cols()).max().unwrap_or(1);
    let names: Vec<&str> = first.components.iter().map(|c| c.name.as_str()).collect();
    for (k, p) in parts.iter().enumerate() {
        let pn: Vec<&str> = p.components.iter().map(|c| c.name.as_str()).collect();
        if pn != names {
            return Err(CoreError::InvalidParam {
                name: format!("parts[{k}].components"),
                value: pn.join(","),
                reason: format!("expected components [{}]", names.join(",")),
            });
        }
    }
    let stack2 = |f: &dyn Fn(&ScoredBatch) -> Option<&Array2<f64>>| -> Option<Array2<f64>> {
        let views: Option<Vec<Array2<f64>>> =
            parts.iter().map(|p| f(p).map(|a| pad2(a, t))).collect();
        let views = views?;
        let v: Vec<_> = views.iter().map(|a| a.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &v).ok()
    };
    let stack1 = |f: &dyn Fn(&ScoredBatch) -> Option<&Array1<f64>>| -> Option<Array1<f64>> {
        let v: Option<Vec<_>> = parts.iter().map(|p| f(p).map(|a| a.view())).collect();
        ndarray::concatenate(ndarray::Axis(0), &v?).ok()
    };
    fn stackv<T: Clone>(
        parts: &[ScoredBatch],
        f: &dyn Fn(&ScoredBatch) -> Option<&Vec<T>>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        for p in parts {
            out.extend(f(p)?.iter().cloned());
        }
        Some(out)
    }
    let mut group = Vec::new();
    let mut next = 0usize;
    for p in parts {
        let g = p.groups();
        let mut ids = vec![0usize; p.rows()];
        for (k, rows) in g.rows.iter().enumerate() {
            for &r in rows {
                ids[r] = next + k;
            }
        }
        next += g.len();
        group.extend(ids);
    }
    let out = ScoredBatch {
        mask: stack2(&|p| Some(&p.mask)).ok_or_else(|| CoreError::Empty {
            what: "mask".into(),
        })?,
        group,
        reward: stack1(&|p| Some(&p.reward)).ok_or_else(|| CoreError::Empty {
            what: "reward".into(),
        })?,
        components: names
            .iter()
            .enumerate()
            .map(|(k, n)| RewardComponent {
                name: n.to_string(),
                values: stack1(&|p| Some(&p.components[k].values)).unwrap_or_default(),
            })
            .collect(),
        token_rewards: stack2(&|p| p.token_rewards.as_ref()),
        old_log_prob: stack2(&|p| p.old_log_prob.as_ref()),
        sum_sq_prob: stack2(&|p| p.sum_sq_prob.as_ref()),
        baseline_reward: stack1(&|p| p.baseline_reward.as_ref()),
        prompt_key: stackv(parts, &|p| p.prompt_key.as_ref()),
        steps: stackv(parts, &|p| p.steps.as_ref()),
        budgets: stackv(parts, &|p| p.budgets.as_ref()),
        values: stack2(&|p| p.values.as_ref()),
        is_weight: stack2(&|p| p.is_weight.as_ref()),
        truncated: stackv(parts, &|p| p.truncated.as_ref()),
    };
    out.validate()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn groups_in_first_appearance_order() {
        let g = Groups::from_index(&[7, 3, 7, 3, 9]);
        assert_eq!(g.ids, vec![7, 3, 9]);
        assert_eq!(g.rows, vec![vec![0, 2], vec![1, 3], vec![4]]);
        assert!(matches!(
            g.require_min_size(2, "grpo"),
            Err(CoreError::GroupTooSmall {
                group: 9,
                size: 1,
                ..
            })
        ));
    }

    #[test]
    fn validation_names_the_problem() {
        let m = array![[1.0, 1.0], [1.0, 0.0]];
        let e = ScoredBatch::new(m.clone(), vec![0, 0], array![1.0, f64::NAN]).unwrap_err();
        assert!(
            matches!(e, CoreError::NonFiniteReward { row: 1, ref component, .. } if component == "reward")
        );
        assert!(e.to_string().contains("row 1"));
        assert!(matches!(
            ScoredBatch::new(m.clone(), vec![0], array![1.0, 0.0]),
            Err(CoreError::InvalidGroupIndex { .. })
        ));
        assert!(matches!(
            ScoredBatch::new(m.clone(), vec![0, 0], array![1.0]),
            Err(CoreError::ShapeMismatch { .. })
        ));
        let b = ScoredBatch::new(m.clone(), vec![0, 0], array![1.0, 0.0]).unwrap();
        let e = b
            .clone()
            .with_component("acc", array![1.0, f64::INFINITY])
            .unwrap_err();
        assert!(
            matches!(e, CoreError::NonFiniteReward { row: 1, ref component, .. } if component == "acc")
        );
        let z =
            ScoredBatch::new(array![[1.0, 0.0], [0.0, 0.0]], vec![0, 0], array![1.0, 0.0]).unwrap();
        assert_eq!(
            z.check_no_empty_rows(),
            Err(CoreError::EmptyMaskRow { row: 1 })
        );
        assert!(matches!(
            ScoredBatch::new(array![[0.5]], vec![0], array![1.0]),
            Err(CoreError::InvalidMask { .. })
        ));
    }

    #[test]
    fn concat_pads_and_renumbers() {
        let a = ScoredBatch::from_outcome(&[1.0, 0.0], &[0, 0], &[1, 1]).unwrap();
        let b = ScoredBatch::from_outcome(&[2.0], &[0], &[3]).unwrap();
        let c = concat(&[a, b]).unwrap();
        assert_eq!(c.group, vec![0, 0, 1]);
        assert_eq!(c.cols(), 3);
        assert_eq!(c.mask.row(0).to_vec(), vec![1.0, 0.0, 0.0]);
        assert_eq!(c.reward.to_vec(), vec![1.0, 0.0, 2.0]);
    }

    #[test]
    fn outcome_reward_on_last_valid_token() {
        let b = ScoredBatch::from_outcome(&[2.0, 3.0], &[0, 0], &[3, 1]).unwrap();
        let r = b.token_rewards_or_outcome();
        assert_eq!(r, array![[0.0, 0.0, 2.0], [3.0, 0.0, 0.0]]);
        assert_eq!(
            b.broadcast(&array![1.5, -1.0]),
            array![[1.5, 1.5, 1.5], [-1.0, 0.0, 0.0]]
        );
    }
}

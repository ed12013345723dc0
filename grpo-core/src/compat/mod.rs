//! Anchor-named functions for cross-checking with the Python stacks.
//!
//! Users who port a run from verl or TRL want proof that our numbers equal
//! theirs on their own tensors. This module re-computes, under the anchors'
//! own names and parameter names, exactly what those functions compute —
//! including their quirks — and additionally returns analytic gradients of
//! every loss with respect to the new-policy log-probabilities:
//!
//! - [`verl`]: the `core_algos` functions of volcengine/verl @ b178a3cd
//!   (advantage estimators, policy losses, `agg_loss`, `kl_penalty`,
//!   `masked_whiten`, `AdaptiveKLController`);
//! - [`trl`]: the `GRPOTrainer` loss of TRL 1.16.0 (`trl.grpo_loss`);
//! - [`eval`]: one JSON object `{"fn", "params", "inputs"}` in, one JSON
//!   object `{"outputs": ...}` out — the engine behind `grpo estimators eval`.
//!
//! All arithmetic is `f64` except where the anchor itself forces `f32`
//! (verl's vectorised GRPO computes its group statistics in `float32`; we do
//! the same so results agree to 1e-6 on the anchor's own tensors).
//!
//! # How this is verified
//!
//! `tests/data/compat_anchor_cases.jsonl` holds 130 known-answer cases written by
//! `scripts/anchor_cases.py` (torch float64, autograd for every gradient), each
//! compared with `eval` to 1e-6 by `tests/it/compat_anchor.rs`. The script's
//! `--verl-src`/`--trl-src` mode runs the anchors' own code (verl @ b178a3cd
//! `core_algos`, trl 1.16.0 `GRPOTrainer._compute_loss`) on the same cases: all
//! agree, except the four `k*+` KL cases, where verl raises (see below).
//! Gradients are also checked by finite differences (`compat_gradients.rs`).
//!
//! # Input policy
//!
//! Every input must be finite everywhere, including padding (the anchors
//! would propagate a NaN from padding in several places; we refuse it with a
//! named error instead). Masks must be 0/1. Group ids are compared as text:
//! the JSON integer `3` and the string `"3"` name the same group.
//!
//! # Where the anchors and our native registry items deliberately differ
//!
//! The functions here reproduce the anchors, warts included. The native
//! registry items (`crate::advantage`, `crate::loss`, `crate::kl`) follow
//! `algorithms.md`'s edge-case policy instead; `eval` accepts both kinds of
//! name, so the difference can be seen on the same tensors.
//!
//! | anchor (reproduced here) | native item |
//! |---|---|
//! | `verl.compute_grpo_outcome_advantage`: singleton group ⇒ `μ=0, σ=1`, `A = R/(1+ε)` | `grpo`: `singleton = "error"` by default (named error); `"zero"` gives 0; `"anchor"` reproduces verl |
//! | `verl.compute_grpo_vectorized_outcome_advantage`: group stats in `f32`, `σ = sqrt(max(var, ε))` | `grpo`: `f64`, plain unbiased std, no variance floor |
//! | `verl.compute_rloo_outcome_advantage`: a singleton keeps `A = R`; `..._vectorized`: 0 | `rloo`: singleton policy as for `grpo` |
//! | `verl.compute_gpg_outcome_advantage`: `α = B / #nonzero(R)` over the whole batch, `alpha` argument ignored | `gpg`: same α, reported as metric `gpg/alpha` |
//! | `verl.agg_loss` `seq-mean-token-sum-norm` without `loss_scale_factor` divides by the padded width `T` | aggregation `seq_mean_token_sum_norm` requires an explicit `normalizer` |
//! | `verl.agg_loss` on an all-masked batch: 0/0 = NaN (a named error here) | loss 0, gradients 0, `metrics.empty_batch = true` |
//! | `verl.compute_policy_loss_gspo` / `_sapo`: `loss_agg_mode` ignored, always `seq-mean-token-mean`; GSPO's token gradient is a straight-through surrogate | `gspo` (exact gradient of the sequence objective), `gspo_token` (verl's surrogate), `sapo`: aggregation is configurable |
//! | `verl.compute_policy_loss_geo_mean`: `loss_agg_mode` ignored, plain mean over all `B` rows (empty rows included) | documented the same way |
//! | `verl.compute_policy_loss_kl_cov`: `ppo_kl_coef` falls back to 1.0 when unset (actor.yaml ships 0.1); its `ppo_kl` metric is the mean absolute log-ratio; torch's top-k tie order is unspecified (lowest index first here) | `kl_cov`: `ppo_kl_coef` default 0.1, `ppo_kl` metric is `mean(ℓᵒ − ℓ)` |
//! | `verl.kl_penalty` with a `+` name (`k3+` …) raises `NotImplementedError` at verl @ b178a3cd; here: the documented intent (base value, k2 gradient) | `k1_plus`, `k3_plus`, `abs_plus` (same intent) |
//! | `trl.grpo_loss` KL: unclamped k3, times the non-detached ratio when `use_bias_correction_kl` (default **true** in 1.16.0, false in 1.10-dev) | `k3_unclamped`, `k3_bias_corrected` are explicit choices; `k3` carries verl's clamps |
//! | `trl.grpo_loss` `dr_grpo`: divides by `B·max_completion_length`; `dapo`/`cispo`/`vespo`: by `num_items_in_batch/num_processes · GA/steps_per_generation` (1.16; 1.10-dev lacks `GA/S`) | normalisers are explicit aggregation parameters |
//! | `trl.grpo_loss` `cispo`: `epsilon_high` is an absolute cap on the ratio, no lower clip; verl `cispo` clips to `[1−ε_low, 1+ε_high]` | `cispo`: both forms, chosen by `absolute_cap` |
//!
//! Where verl would raise (`masked_var` with `Σm ≤ 1`, pass@k with a singleton
//! group, `clip_ratio_c ≤ 1`, `kl_cov_ratio ≤ 0`) we return a named error.

pub mod eval;
pub mod trl;
pub mod verl;

use ndarray::{Array2, ArrayView2};

use crate::error::{CoreError, Result};
use crate::registry::{Entry, Kind, Verification};

/// One row of the registry for an anchor function.
const fn anchor(name: &'static str, summary: &'static str) -> Entry {
    Entry {
        name,
        kind: Kind::Anchor,
        summary,
        verification: Verification::Verified,
    }
}

/// Registry rows of this module: every anchor-named function `eval` accepts.
pub fn registry() -> Vec<Entry> {
    vec![
        anchor(
            "verl.compute_grpo_outcome_advantage",
            "verl GRPO loop version: group mean/std, singleton => mu=0, sigma=1",
        ),
        anchor(
            "verl.compute_grpo_vectorized_outcome_advantage",
            "verl GRPO vectorised: f32 group stats, sigma = sqrt(max(var, eps))",
        ),
        anchor(
            "verl.compute_grpo_passk_outcome_advantage",
            "verl pass@k: only the group's best gets (r1 - r2)/(sigma + eps)",
        ),
        anchor(
            "verl.compute_rloo_outcome_advantage",
            "verl RLOO loop version: singleton keeps its score",
        ),
        anchor(
            "verl.compute_rloo_vectorized_outcome_advantage",
            "verl RLOO vectorised: singleton => 0",
        ),
        anchor(
            "verl.compute_reinforce_plus_plus_outcome_advantage",
            "verl REINFORCE++: discounted returns, batch masked whitening",
        ),
        anchor(
            "verl.compute_reinforce_plus_plus_baseline_outcome_advantage",
            "verl REINFORCE++-baseline: group-mean-centred, batch masked whitening",
        ),
        anchor(
            "verl.compute_remax_outcome_advantage",
            "verl ReMax: reverse cumulative return minus greedy baseline",
        ),
        anchor(
            "verl.compute_opo_outcome_advantage",
            "verl OPO: length-weighted group baseline",
        ),
        anchor(
            "verl.compute_gpg_outcome_advantage",
            "verl GPG: alpha = B / #nonzero rewards times group-centred reward",
        ),
        anchor(
            "verl.compute_policy_loss_vanilla",
            "verl PPO-clip with clip-higher and dual-clip, +-20 log-ratio clamp",
        ),
        anchor(
            "verl.compute_policy_loss_gspo",
            "verl GSPO sequence ratio, forced seq-mean-token-mean",
        ),
        anchor(
            "verl.compute_policy_loss_sapo",
            "verl SAPO soft gate, forced seq-mean-token-mean",
        ),
        anchor(
            "verl.compute_policy_loss_cispo",
            "verl CISPO clipped detached IS weight times log-prob",
        ),
        anchor(
            "verl.compute_policy_loss_gpg",
            "verl GPG loss: -A * log_prob",
        ),
        anchor(
            "verl.compute_policy_loss_geo_mean",
            "verl GMPO geometric-mean ratio, mean over all rows",
        ),
        anchor(
            "verl.compute_policy_loss_kl_cov",
            "verl KL-Cov: |log-ratio| penalty on the top-covariance tokens",
        ),
        anchor(
            "verl.compute_policy_loss_reinforce",
            "verl REINFORCE loss with optional IS weights",
        ),
        anchor(
            "verl.agg_loss",
            "verl loss aggregation (token-mean, seq-mean-*), with gradient",
        ),
        anchor(
            "verl.kl_penalty",
            "verl KL estimators k1/k2/k3/abs (+ straight-through intent)",
        ),
        anchor(
            "verl.masked_whiten",
            "verl masked whitening (unbiased var, +1e-8)",
        ),
        anchor(
            "verl.AdaptiveKLController",
            "verl adaptive KL coefficient (Ziegler et al.)",
        ),
        anchor(
            "trl.grpo_loss",
            "TRL 1.16.0 GRPOTrainer loss (all loss_type values), with gradients",
        ),
    ]
}

/// Validates that `a` has shape `(b, t)`.
pub(crate) fn check_shape(what: &str, a: &ArrayView2<'_, f64>, b: usize, t: usize) -> Result<()> {
    if a.dim() != (b, t) {
        return Err(CoreError::ShapeMismatch {
            what: what.to_string(),
            expected: vec![b, t],
            got: vec![a.nrows(), a.ncols()],
        });
    }
    Ok(())
}

/// Validates that every entry of `a` is finite.
pub(crate) fn check_finite(what: &str, a: &ArrayView2<'_, f64>) -> Result<()> {
    for ((row, col), &value) in a.indexed_iter() {
        if !value.is_finite() {
            return Err(CoreError::NonFinite {
                what: what.to_string(),
                row,
                col,
                value,
            });
        }
    }
    Ok(())
}

/// Validates a 0/1 mask.
pub(crate) fn check_mask(what: &str, m: &ArrayView2<'_, f64>) -> Result<()> {
    for ((row, col), &value) in m.indexed_iter() {
        if value != 0.0 && value != 1.0 {
            return Err(CoreError::InvalidMask {
                what: what.to_string(),
                row,
                col,
                value,
            });
        }
    }
    Ok(())
}

/// Validates a per-token input against the mask's shape and finiteness.
pub(crate) fn check_tokens(
    what: &str,
    a: &ArrayView2<'_, f64>,
    mask: &ArrayView2<'_, f64>,
) -> Result<()> {
    check_shape(what, a, mask.nrows(), mask.ncols())?;
    check_finite(what, a)
}

/// Row sums `Σ_t a[i,t]`.
pub(crate) fn row_sums(a: &ArrayView2<'_, f64>) -> Vec<f64> {
    a.rows().into_iter().map(|r| r.iter().sum()).collect()
}

/// Group structure: for each row its dense group number, and the rows of each group
/// in first-appearance order.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    /// Dense group number of each row.
    pub of_row: Vec<usize>,
    /// Rows of each group, in row order.
    pub members: Vec<Vec<usize>>,
}

impl Groups {
    /// Builds the groups from per-row keys (compared as text).
    pub fn new(keys: &[String], batch: usize) -> Result<Self> {
        if keys.len() != batch {
            return Err(CoreError::ShapeMismatch {
                what: "index".to_string(),
                expected: vec![batch],
                got: vec![keys.len()],
            });
        }
        let mut ids: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut of_row = Vec::with_capacity(batch);
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let next = members.len();
            let g = *ids.entry(k.as_str()).or_insert(next);
            if g == members.len() {
                members.push(Vec::new());
            }
            members[g].push(i);
            of_row.push(g);
        }
        Ok(Self { of_row, members })
    }
}

/// Broadcasts per-row scalars over the mask: `out[i,t] = s[i] * m[i,t]`.
pub(crate) fn broadcast(s: &[f64], mask: &ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = mask.to_owned();
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        row.mapv_inplace(|m| s[i] * m);
    }
    out
}

/// verl `masked_mean`: `Σ m·v / (Σ m + 1e-8)` over the whole array.
pub(crate) fn verl_masked_mean(v: &ArrayView2<'_, f64>, m: &ArrayView2<'_, f64>) -> f64 {
    let s: f64 = v
        .iter()
        .zip(m.iter())
        .map(|(&x, &k)| if k != 0.0 { x * k } else { 0.0 })
        .sum();
    let n: f64 = m.iter().sum();
    s / (n + 1e-8)
}

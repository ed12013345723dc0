//! The registry: every advantage estimator, policy loss, aggregation mode, KL
//! estimator/controller, filter and sampler, selectable by name.
//!
//! Each family module exposes `pub fn registry() -> Vec<Entry>`; this module
//! concatenates them. The property tests iterate over [`all`] so a new item is
//! tested the day it is added.

use serde::Serialize;

/// Which family an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Advantage estimator (rewards → advantages).
    Advantage,
    /// Policy loss (log-probs + advantages → loss and per-token gradient).
    Loss,
    /// Loss aggregation mode.
    Aggregation,
    /// KL estimator.
    Kl,
    /// KL coefficient controller.
    KlController,
    /// Group filter.
    Filter,
    /// Prompt sampler or curriculum.
    Sampler,
    /// A function named after an anchor framework (`verl.*`, `trl.*`) for cross-checking.
    Anchor,
}

/// How far an item's formula is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Checked against the paper's official code or an anchor framework.
    Verified,
    /// Reconstructed from a paper abstract or partial text (see algorithms.md §9).
    Reconstructed,
}

/// One registry row.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Registry name, as used in configs (`type = "..."`) and in `grpo estimators eval`.
    pub name: &'static str,
    /// Family.
    pub kind: Kind,
    /// One-line description with the source (paper or framework).
    pub summary: &'static str,
    /// Verification status.
    pub verification: Verification,
}

/// Every registered item, in family order.
pub fn all() -> Vec<Entry> {
    let mut v = Vec::new();
    v.extend(crate::advantage::registry());
    v.extend(crate::loss::registry());
    v.extend(crate::kl::registry());
    v.extend(crate::filter::registry());
    v.extend(crate::sampler::registry());
    v.extend(crate::compat::registry());
    v
}

/// Looks an item up by name.
pub fn find(name: &str) -> Option<Entry> {
    all().into_iter().find(|e| e.name == name)
}

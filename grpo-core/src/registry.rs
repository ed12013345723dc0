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

/// A small, complete, runnable config for a registry item, as JSON text: the `type`-tagged
/// object a run config or `grpo estimators eval` takes for advantage estimators, losses,
/// aggregation modes, filters, samplers and KL controllers, and the bare name (a JSON
/// string) for KL estimators. `None` for anchors (`verl.*`, `trl.*`), which are functions
/// to cross-check against, not configurable items.
///
/// ```
/// use grpo_core::loss::LossConfig;
/// let text = grpo_core::registry::example("gtpo").unwrap();
/// let cfg: LossConfig = serde_json::from_str(text).unwrap();
/// assert_eq!(cfg.name(), "gtpo");
/// ```
pub fn example(name: &str) -> Option<&'static str> {
    Some(match name {
        // advantage estimators
        "grpo" => r#"{"type": "grpo"}"#,
        "dr_grpo" => r#"{"type": "dr_grpo"}"#,
        "grpo_batch_std" => r#"{"type": "grpo_batch_std"}"#,
        "rloo" => r#"{"type": "rloo"}"#,
        "reinforce_plus_plus" => r#"{"type": "reinforce_plus_plus", "gamma": 1.0}"#,
        "reinforce_plus_plus_baseline" => r#"{"type": "reinforce_plus_plus_baseline"}"#,
        "remax" => r#"{"type": "remax"}"#,
        "gae" => r#"{"type": "gae", "gamma": 0.99, "lam": 0.95}"#,
        "opo" => r#"{"type": "opo"}"#,
        "gpg" => r#"{"type": "gpg"}"#,
        "opmd" => r#"{"type": "opmd", "baseline": "logavgexp", "tau": 0.5}"#,
        "asymre" => r#"{"type": "asymre"}"#,
        "rec" => r#"{"type": "rec", "std_normalize": true, "drop": "balance"}"#,
        "oblr" => r#"{"type": "oblr", "weight": "length"}"#,
        "grpo_passk" => r#"{"type": "grpo_passk"}"#,
        "optimal_token_baseline" => r#"{"type": "optimal_token_baseline"}"#,
        "bnpo" => r#"{"type": "bnpo", "r_min": 0.0, "r_max": 1.0}"#,
        "gdpo" => r#"{"type": "gdpo"}"#,
        "spo" => r#"{"type": "spo"}"#,
        "risk_po" => r#"{"type": "risk_po", "bundle_size": 2}"#,
        "unlikeliness" => r#"{"type": "unlikeliness"}"#,
        "brpo" => r#"{"type": "brpo", "prior": "linear", "variant": "brpo"}"#,
        "gigpo" => r#"{"type": "gigpo", "gamma": 0.95, "mode": "mean_std_norm"}"#,
        "salt" => r#"{"type": "salt"}"#,
        "hrpo" => r#"{"type": "hrpo", "omega": 0.5}"#,
        "tempsamp" => r#"{"type": "tempsamp", "s_pos": 0.5, "s_neg": 1.5}"#,
        // losses, modifiers and terms
        "ppo_clip" => {
            r#"{"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}"#
        }
        "two_sided_clip" => {
            r#"{"type": "two_sided_clip", "eps_low": 0.2, "eps_high": 0.28, "delta": 3.0, "agg": {"type": "token_mean"}}"#
        }
        "gspo" => {
            r#"{"type": "gspo", "eps_low": 0.0003, "eps_high": 0.0004, "agg": {"type": "seq_mean_token_mean"}}"#
        }
        "gspo_token" => {
            r#"{"type": "gspo_token", "eps_low": 0.0003, "eps_high": 0.0004, "agg": {"type": "seq_mean_token_mean"}}"#
        }
        "luspo" => r#"{"type": "luspo", "eps_low": 0.0003, "eps_high": 0.0004}"#,
        "cispo" => {
            r#"{"type": "cispo", "eps_high": 0.28, "absolute_cap": false, "agg": {"type": "token_mean"}}"#
        }
        "sapo" => {
            r#"{"type": "sapo", "tau_pos": 1.0, "tau_neg": 1.05, "agg": {"type": "seq_mean_token_mean"}}"#
        }
        "gmpo" => r#"{"type": "gmpo", "eps_low": 0.4, "eps_high": 0.4}"#,
        "vespo" => {
            r#"{"type": "vespo", "k_pos": 2.0, "lambda_pos": 3.0, "k_neg": 3.0, "lambda_neg": 2.0, "agg": {"type": "token_mean"}}"#
        }
        "clip_cov" => {
            r#"{"type": "clip_cov", "eps_low": 0.2, "clip_cov_ratio": 0.0002, "clip_cov_lb": 1.0, "clip_cov_ub": 5.0, "agg": {"type": "token_mean"}}"#
        }
        "kl_cov" => {
            r#"{"type": "kl_cov", "kl_cov_ratio": 0.002, "ppo_kl_coef": 1.0, "agg": {"type": "token_mean"}}"#
        }
        "reinforce" => {
            r#"{"type": "reinforce", "is_threshold": 2.0, "agg": {"type": "seq_mean_token_sum"}}"#
        }
        "opmd_loss" => r#"{"type": "opmd_loss", "tau": 1.0}"#,
        "rec_loss" => {
            r#"{"type": "rec_loss", "clip_mode": "one_side", "weight": "none", "regularizer": "none"}"#
        }
        "mdpo" => r#"{"type": "mdpo", "t_k": 1.0, "agg": {"type": "token_mean"}}"#,
        "r2vpo" => {
            r#"{"type": "r2vpo", "eta": 0.1, "delta_v": 0.05, "agg": {"type": "token_mean"}}"#
        }
        "reg_grpo" => r#"{"type": "reg_grpo", "beta": 0.5}"#,
        "disco" => {
            r#"{"type": "disco", "score": "l_ratio", "variant": "disco", "tau": 10.0, "delta": 0.0001, "beta": 1000.0, "kl_type": "k3"}"#
        }
        "p3o" => r#"{"type": "p3o", "variant": "v1", "eps": 0.2}"#,
        "gtpo" => {
            r#"{"type": "gtpo", "conflict_weight": 2.0, "entropy_max": 1.2, "entropy_coef": 0.1, "pad_id": 0}"#
        }
        "dagrpo_loss" => {
            r#"{"type": "dagrpo_loss", "tau_d": 0.2, "eps_low": 0.2, "agg": {"type": "token_mean"}}"#
        }
        "rollout_correction" => {
            r#"{"type": "rollout_correction", "level": "sequence", "mode": "mask", "c_max": 3.0, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "off_policy_mask" => {
            r#"{"type": "off_policy_mask", "threshold": 0.0, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "top_entropy_mask" => {
            r#"{"type": "top_entropy_mask", "quantile": 0.8, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "capo_mask" => {
            r#"{"type": "capo_mask", "fraction": 0.2, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "kl_penalty" => {
            r#"{"type": "kl_penalty", "coef": 0.001, "estimator": "k3", "agg": {"type": "token_mean"}, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "entropy_bonus" => {
            r#"{"type": "entropy_bonus", "coef": 0.001, "agg": {"type": "token_mean"}, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        "llds" => {
            r#"{"type": "llds", "lambda": 0.1, "gate": "action", "threshold": 0.0, "base": {"type": "ppo_clip", "eps_low": 0.2, "eps_high": 0.28, "agg": {"type": "token_mean"}}}"#
        }
        // aggregation modes
        "token_mean" => r#"{"type": "token_mean"}"#,
        "seq_mean_token_mean" => r#"{"type": "seq_mean_token_mean"}"#,
        "seq_mean_token_sum" => r#"{"type": "seq_mean_token_sum"}"#,
        "seq_mean_token_sum_norm" => r#"{"type": "seq_mean_token_sum_norm", "normalizer": 8.0}"#,
        // KL estimators
        "k1" => r#""k1""#,
        "k2" => r#""k2""#,
        "k3" => r#""k3""#,
        "k3_unclamped" => r#""k3_unclamped""#,
        "abs" => r#""abs""#,
        "k1_plus" => r#""k1_plus""#,
        "k3_plus" => r#""k3_plus""#,
        "abs_plus" => r#""abs_plus""#,
        "k3_bias_corrected" => r#""k3_bias_corrected""#,
        "full" => r#""full""#,
        // KL controllers
        "fixed" => r#"{"type": "fixed", "kl_coef": 0.001}"#,
        "adaptive" => {
            r#"{"type": "adaptive", "init_kl_coef": 0.001, "target_kl": 0.1, "horizon": 10000.0}"#
        }
        "grpo_d" => {
            r#"{"type": "grpo_d", "schedule": "cosine", "beta_min": 0.0, "beta_max": 0.01, "warmup_steps": 0, "total_steps": 100}"#
        }
        "disco_constrained" => r#"{"type": "disco_constrained", "beta": 1000.0, "delta": 0.0001}"#,
        // filters
        "dynamic_sampling" => r#"{"type": "dynamic_sampling", "metric": "reward"}"#,
        "mask_truncated" => r#"{"type": "mask_truncated"}"#,
        "advantage_threshold" => {
            r#"{"type": "advantage_threshold", "metric": "reward", "success_threshold": 0.5}"#
        }
        "rejection_sampling" => r#"{"type": "rejection_sampling", "metric": "reward"}"#,
        "max_samples" => r#"{"type": "max_samples", "max_samples": 2}"#,
        "pf_ppo" => r#"{"type": "pf_ppo", "weight": {"method": "pow", "p": 2.0}}"#,
        // samplers
        "uniform" => r#"{"type": "uniform"}"#,
        "vas" => r#"{"type": "vas", "alpha": 1.0, "beta": 0.0}"#,
        "spo_priority" => r#"{"type": "spo_priority"}"#,
        "difficulty_curriculum" => {
            r#"{"type": "difficulty_curriculum", "buckets": 3, "advance_threshold": 0.6}"#
        }
        "scaf_grpo" => r#"{"type": "scaf_grpo"}"#,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every configurable item has an example, and it parses into its family's config
    /// type with the same name.
    #[test]
    fn every_item_has_an_example_that_parses() {
        for e in all() {
            let Some(text) = example(e.name) else {
                assert_eq!(e.kind, Kind::Anchor, "`{}` has no example", e.name);
                continue;
            };
            let name = match e.kind {
                Kind::Advantage => serde_json::from_str::<crate::advantage::AdvantageConfig>(text)
                    .map(|c| c.name().to_string()),
                Kind::Loss => serde_json::from_str::<crate::loss::LossConfig>(text)
                    .map(|c| c.name().to_string()),
                Kind::Aggregation => serde_json::from_str::<crate::loss::Aggregation>(text)
                    .map(|c| c.name().to_string()),
                Kind::Kl => serde_json::from_str::<crate::kl::KlEstimator>(text)
                    .map(|c| c.name().to_string()),
                Kind::KlController => serde_json::from_str::<crate::kl::KlControllerConfig>(text)
                    .map(|c| {
                        serde_json::to_value(&c).unwrap()["type"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    }),
                Kind::Filter => serde_json::from_str::<crate::filter::FilterConfig>(text)
                    .map(|c| c.name().to_string()),
                Kind::Sampler => serde_json::from_str::<crate::sampler::SamplerConfig>(text)
                    .map(|c| c.name().to_string()),
                Kind::Anchor => panic!("anchor `{}` has an example", e.name),
            };
            assert_eq!(
                name.as_deref().map_err(|e| e.to_string()),
                Ok(e.name),
                "{text}"
            );
        }
    }
}

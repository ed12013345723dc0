//! Load-time validation of what the chosen algorithm needs against what the run provides.
//!
//! Every grpo-core registry item declares the inputs it reads ([`Input`]); this module says
//! which of them the trainer supplies for a given config ([`provided`]) and why the others
//! are not available ([`unavailable_reason`]). A run whose estimator, loss or filter needs an
//! input the trainer cannot supply is refused when the config is loaded, with the item, the
//! input and what would provide it — never a `MissingInput` at step 1.

use std::collections::BTreeSet;

use grpo_core::advantage::AdvantageConfig;
use grpo_core::inputs::Input;

use crate::config::RunConfigFile;

/// The inputs the trainer supplies to the estimator, loss and filter of `cfg`.
pub fn provided(cfg: &RunConfigFile) -> BTreeSet<Input> {
    let mut s: BTreeSet<Input> = [
        // The sampler's log-probs are recorded at sampling time; the old-policy ones are
        // the same or recomputed (`grpo.recompute_old_log_prob`).
        Input::OldLogProb,
        Input::RolloutLogProb,
        // The training forward returns the entropy of every next-token distribution.
        Input::Entropy,
        Input::GroupIndex,
        Input::Rewards,
        // The fine-grained per-row score is the scalar reward.
        Input::Scores,
        Input::TokenIds,
        // Every run has at least one named reward component (`correct` by default).
        Input::RewardComponents,
        // The prompt text is its persistent key.
        Input::PromptKey,
        Input::Truncated,
    ]
    .into_iter()
    .collect();
    if cfg.reference.mode != "off" {
        s.insert(Input::RefLogProb);
    }
    if matches!(cfg.algorithm.advantage, AdvantageConfig::Remax(_)) {
        // One greedy rollout per prompt, scored by the same reward components.
        s.insert(Input::BaselineReward);
    }
    s
}

/// Why the trainer does not supply `input` for `cfg`, and what would.
pub fn unavailable_reason(input: Input) -> &'static str {
    match input {
        Input::RefLogProb => {
            "set `[reference] mode = \"frozen\"` (or \"sync\") to score a reference policy"
        }
        Input::BaselineReward => "the trainer computes it only for the `remax` estimator",
        Input::FullKl => {
            "the fused log-prob kernel does not return the exact vocabulary KL; use a sampled \
             estimator (k1, k2, k3, ...)"
        }
        Input::SumSqProb => "the model's forward does not return Σ_v π(v)² of each position yet",
        Input::Instability => "the trainer computes no per-token instability score (CAPO)",
        Input::Steps => {
            "step records come from multi-turn environment tasks, which the trainer does not run yet"
        }
        Input::Budgets => {
            "budget records come from anytime-reasoning rollouts (BRPO), which the trainer does not run"
        }
        Input::Values => "critic values need a value model, which this trainer does not train",
        Input::IsWeight => "the trainer does not compute truncated IS weights as a batch input",
        Input::TokenRewards => "no task gives token-level (process) rewards",
        Input::OldLogProb
        | Input::RolloutLogProb
        | Input::Entropy
        | Input::GroupIndex
        | Input::Rewards
        | Input::Scores
        | Input::TokenIds
        | Input::RewardComponents
        | Input::PromptKey
        | Input::Truncated => "always provided",
    }
}

/// A missing input: the config key of the item, its registry name, the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Config key (`algorithm.advantage`, `algorithm.loss`, `algorithm.filter.rule`, ...).
    pub key: String,
    /// Registry name of the item.
    pub item: String,
    /// The input it needs.
    pub input: Input,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` needs input `{}` ({}), which this run does not provide: {}",
            self.item,
            self.input.name(),
            self.input.describe(),
            unavailable_reason(self.input)
        )
    }
}

/// Every (item, input) pair of `cfg` that the trainer cannot supply.
pub fn missing(cfg: &RunConfigFile) -> Vec<Missing> {
    let have = provided(cfg);
    let mut out = Vec::new();
    let mut check = |key: &str, item: &str, need: BTreeSet<Input>| {
        for input in need {
            if !have.contains(&input) {
                out.push(Missing {
                    key: key.to_string(),
                    item: item.to_string(),
                    input,
                });
            }
        }
    };
    let alg = &cfg.algorithm;
    check(
        "algorithm.advantage",
        alg.advantage.name(),
        alg.advantage.required_inputs(),
    );
    check(
        "algorithm.loss",
        alg.loss.name(),
        alg.loss.required_inputs(),
    );
    if let Some(f) = &alg.filter {
        check(
            "algorithm.filter.rule",
            f.rule.name(),
            f.rule.required_inputs(),
        );
    }
    if let Some(kl) = &alg.kl {
        let need: BTreeSet<Input> = if kl.estimator == grpo_core::kl::KlEstimator::Full {
            [Input::FullKl].into_iter().collect()
        } else {
            [Input::RefLogProb].into_iter().collect()
        };
        check("algorithm.kl", "kl_penalty", need);
    }
    out
}

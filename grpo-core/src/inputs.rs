//! What each registry item reads besides the always-present data, so a caller
//! can validate a run configuration before any work starts.
//!
//! Every advantage estimator, loss, filter and sampler reads some optional
//! fields of [`ScoredBatch`](crate::batch::ScoredBatch) or
//! [`LossInputs`](crate::loss::LossInputs) and returns
//! [`CoreError::MissingInput`](crate::CoreError::MissingInput) at run time when
//! one it needs is absent. The `required_inputs()` methods declare those
//! fields up front:
//!
//! - [`AdvantageConfig::required_inputs`], [`AdvantageConfig::optional_inputs`],
//!   [`AdvantageConfig::is_stateful`];
//! - [`LossConfig::required_inputs`], [`LossConfig::optional_inputs`] (wrappers
//!   add the needs of their `base`);
//! - [`FilterConfig::required_inputs`], [`FilterConfig::metric`];
//! - [`SamplerConfig::required_inputs`] (always empty: samplers read a
//!   [`PromptPool`](crate::sampler::PromptPool), see
//!   [`SamplerConfig::needs_diversity`]);
//! - [`KlControllerConfig::required_inputs`] (always empty, see
//!   [`KlControllerConfig::uses_measured_kl`]).
//!
//! Always present, hence never listed: the response mask, the group id and the
//! scalar reward of a [`ScoredBatch`](crate::batch::ScoredBatch); `log_prob`,
//! `old_log_prob`, `response_mask` and `advantages` of a
//! [`LossInputs`](crate::loss::LossInputs). Reward components count as absent
//! when the batch has none.
//!
//! The declarations are checked against the implementations by the
//! integration test `required_inputs`: with every input present each item
//! runs, and removing one input makes it fail with `MissingInput` exactly when
//! that input is declared required.
//!
//! ```
//! use grpo_core::inputs::Input;
//! use grpo_core::loss::LossConfig;
//!
//! let cfg: LossConfig = serde_json::from_str(
//!     r#"{"type": "kl_penalty", "coef": 0.1, "estimator": "full",
//!         "agg": {"type": "token_mean"},
//!         "base": {"type": "gtpo", "conflict_weight": 2.0, "entropy_max": 1.2,
//!                  "entropy_coef": 0.1}}"#,
//! ).unwrap();
//! let need: Vec<Input> = cfg.required_inputs().into_iter().collect();
//! assert_eq!(
//!     need,
//!     [Input::Entropy, Input::GroupIndex, Input::TokenIds, Input::FullKl]
//! );
//! assert_eq!(Input::FullKl.name(), "full_kl");
//! ```

use std::collections::BTreeSet;

use serde::Serialize;

use crate::advantage::AdvantageConfig;
use crate::advantage::baselines::OblrWeight;
use crate::filter::FilterConfig;
use crate::kl::{KlControllerConfig, KlEstimator};
use crate::loss::LossConfig;
use crate::sampler::SamplerConfig;

/// An optional input of an estimator, loss or filter: one optional field of
/// [`ScoredBatch`](crate::batch::ScoredBatch) or
/// [`LossInputs`](crate::loss::LossInputs). [`Input::name`] is the field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// `ScoredBatch.old_log_prob` (advantage side; losses always get `old_log_prob`).
    OldLogProb,
    /// `LossInputs.ref_log_prob`.
    RefLogProb,
    /// `LossInputs.rollout_log_prob`.
    RolloutLogProb,
    /// `LossInputs.entropy`.
    Entropy,
    /// `LossInputs.index`.
    GroupIndex,
    /// `LossInputs.rewards`.
    Rewards,
    /// `LossInputs.scores`.
    Scores,
    /// `LossInputs.token_ids`.
    TokenIds,
    /// `LossInputs.instability`.
    Instability,
    /// `LossInputs.full_kl`.
    FullKl,
    /// `ScoredBatch.components` (named reward components; absent when empty).
    RewardComponents,
    /// `ScoredBatch.sum_sq_prob`.
    SumSqProb,
    /// `ScoredBatch.baseline_reward`.
    BaselineReward,
    /// `ScoredBatch.prompt_key`.
    PromptKey,
    /// `ScoredBatch.steps`.
    Steps,
    /// `ScoredBatch.budgets`.
    Budgets,
    /// `ScoredBatch.values`.
    Values,
    /// `ScoredBatch.is_weight`.
    IsWeight,
    /// `ScoredBatch.truncated`.
    Truncated,
    /// `ScoredBatch.token_rewards`.
    TokenRewards,
}

impl Input {
    /// Every input, in declaration (= `Ord`) order.
    pub const ALL: &'static [Input] = &[
        Input::OldLogProb,
        Input::RefLogProb,
        Input::RolloutLogProb,
        Input::Entropy,
        Input::GroupIndex,
        Input::Rewards,
        Input::Scores,
        Input::TokenIds,
        Input::Instability,
        Input::FullKl,
        Input::RewardComponents,
        Input::SumSqProb,
        Input::BaselineReward,
        Input::PromptKey,
        Input::Steps,
        Input::Budgets,
        Input::Values,
        Input::IsWeight,
        Input::Truncated,
        Input::TokenRewards,
    ];

    /// The field name in `ScoredBatch` / `LossInputs` (`"index"` for
    /// [`Input::GroupIndex`], `"components"` for [`Input::RewardComponents`]).
    pub fn name(self) -> &'static str {
        match self {
            Input::OldLogProb => "old_log_prob",
            Input::RefLogProb => "ref_log_prob",
            Input::RolloutLogProb => "rollout_log_prob",
            Input::Entropy => "entropy",
            Input::GroupIndex => "index",
            Input::Rewards => "rewards",
            Input::Scores => "scores",
            Input::TokenIds => "token_ids",
            Input::Instability => "instability",
            Input::FullKl => "full_kl",
            Input::RewardComponents => "components",
            Input::SumSqProb => "sum_sq_prob",
            Input::BaselineReward => "baseline_reward",
            Input::PromptKey => "prompt_key",
            Input::Steps => "steps",
            Input::Budgets => "budgets",
            Input::Values => "values",
            Input::IsWeight => "is_weight",
            Input::Truncated => "truncated",
            Input::TokenRewards => "token_rewards",
        }
    }

    /// One line: what the input is and what usually provides it.
    pub fn describe(self) -> &'static str {
        match self {
            Input::OldLogProb => {
                "old-policy log-probs of the sampled tokens [B,T]: a forward pass of the policy that generated the batch, before the update (or the rollout engine's log-probs)"
            }
            Input::RefLogProb => {
                "reference-policy log-probs [B,T]: a reference model ([reference] mode = frozen|sync)"
            }
            Input::RolloutLogProb => {
                "behaviour (sampler) log-probs [B,T]: recorded by the inference engine during rollout"
            }
            Input::Entropy => {
                "entropy of the full next-token distribution [B,T]: the trainer's forward pass (kernel output)"
            }
            Input::GroupIndex => {
                "group (prompt) id per row [B]: the rollout's grouping of the responses to one prompt"
            }
            Input::Rewards => "scalar reward per row [B]: the reward stage",
            Input::Scores => {
                "fine-grained score per row [B] (DaGRPO distinctiveness): a graded verifier or reward model"
            }
            Input::TokenIds => "sampled token ids [B,T]: the rollout's tokens",
            Input::Instability => {
                "per-token instability score [B,T] (CAPO): computed by the caller, e.g. from log-prob statistics across steps"
            }
            Input::FullKl => {
                "exact per-token KL(π_θ‖π_ref) over the vocabulary [B,T]: a kernel with the reference model's logits (KL estimator `full`)"
            }
            Input::RewardComponents => {
                "named reward components [B] each: a [reward] list with one or more named components"
            }
            Input::SumSqProb => {
                "Σ_v π(v|·)² of the old policy's next-token distribution [B,T]: a kernel output of the old-policy forward pass"
            }
            Input::BaselineReward => {
                "reward of the greedy response to the same prompt [B] (ReMax): one extra greedy rollout per prompt, scored"
            }
            Input::PromptKey => {
                "persistent prompt key per row [B] (SPO value tracker): the dataset's prompt id"
            }
            Input::Steps => {
                "step records per row (state, action, step reward, token span): a multi-step (agentic) environment"
            }
            Input::Budgets => {
                "budget records per row (segment ends, summary scores per thinking budget) (BRPO): an anytime-reasoning rollout that scores truncated summaries"
            }
            Input::Values => "critic values [B,T] (GAE): a value model",
            Input::IsWeight => {
                "truncated importance weights [B,T]: rollout-vs-trainer IS weights computed from rollout and old log-probs"
            }
            Input::Truncated => {
                "per-row flag: the completion hit the length limit (no EOS): the rollout"
            }
            Input::TokenRewards => {
                "token-level rewards [B,T]: a process/token reward (if absent, the outcome reward sits on the last valid token)"
            }
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn set<const N: usize>(items: [Input; N]) -> BTreeSet<Input> {
    items.into_iter().collect()
}

impl AdvantageConfig {
    /// The inputs without which [`advantage::compute`](crate::advantage::compute) /
    /// [`AdvantageEstimator::compute`](crate::advantage::AdvantageEstimator::compute)
    /// returns `MissingInput` for this config (depends on parameters: `oblr`
    /// with `weight = "length"` needs nothing). Outcome estimators need only the
    /// always-present mask, groups and scalar reward, so most sets are empty.
    pub fn required_inputs(&self) -> BTreeSet<Input> {
        use AdvantageConfig::*;
        match self {
            Grpo(_)
            | DrGrpo(_)
            | GrpoBatchStd(_)
            | Rloo(_)
            | ReinforcePlusPlus(_)
            | ReinforcePlusPlusBaseline(_)
            | Opo(_)
            | Gpg(_)
            | Opmd(_)
            | Asymre(_)
            | Rec(_)
            | GrpoPassk(_)
            | Bnpo(_)
            | RiskPo(_)
            | Tempsamp(_) => BTreeSet::new(),
            Remax(_) => set([Input::BaselineReward]),
            Gae(_) => set([Input::Values]),
            Oblr(c) => match c.weight {
                OblrWeight::ScoreNorm => set([Input::OldLogProb, Input::SumSqProb]),
                OblrWeight::Length => BTreeSet::new(),
            },
            OptimalTokenBaseline(_) => set([Input::OldLogProb, Input::SumSqProb]),
            Gdpo(_) => set([Input::RewardComponents]),
            Spo(_) => set([Input::PromptKey]),
            Unlikeliness(_) => set([Input::OldLogProb]),
            Brpo(_) => set([Input::Budgets]),
            Gigpo(_) | Salt(_) | Hrpo(_) => set([Input::Steps]),
        }
    }

    /// Inputs that change the result when present but are not required:
    /// token-level rewards for the return-based estimators (REINFORCE++,
    /// ReMax, GAE, optimal token baseline; otherwise the outcome reward sits on
    /// the last valid token), the IS weights of the optimal token baseline, and
    /// the reward components that BNPO with `decompose = true` averages in.
    /// Disjoint from [`AdvantageConfig::required_inputs`].
    pub fn optional_inputs(&self) -> BTreeSet<Input> {
        use AdvantageConfig::*;
        match self {
            ReinforcePlusPlus(_) | Remax(_) | Gae(_) => set([Input::TokenRewards]),
            OptimalTokenBaseline(_) => set([Input::IsWeight, Input::TokenRewards]),
            Bnpo(c) if c.decompose => set([Input::RewardComponents]),
            Grpo(_)
            | DrGrpo(_)
            | GrpoBatchStd(_)
            | Rloo(_)
            | ReinforcePlusPlusBaseline(_)
            | Opo(_)
            | Gpg(_)
            | Opmd(_)
            | Asymre(_)
            | Rec(_)
            | Oblr(_)
            | GrpoPassk(_)
            | Bnpo(_)
            | Gdpo(_)
            | Spo(_)
            | RiskPo(_)
            | Unlikeliness(_)
            | Brpo(_)
            | Gigpo(_)
            | Salt(_)
            | Hrpo(_)
            | Tempsamp(_) => BTreeSet::new(),
        }
    }

    /// True when the estimator carries state across batches
    /// ([`AdvantageConfig::initial_state`] is not `AdvantageState::None`): SPO's
    /// per-prompt value tracker and RiskPO's quantile tracker. The caller must
    /// keep one [`AdvantageEstimator`](crate::advantage::AdvantageEstimator) for
    /// the run and checkpoint its [`state`](crate::advantage::AdvantageEstimator::state)
    /// (restore with `AdvantageEstimator::with_state`); SPO's tracker moves
    /// only through [`spo_update`](crate::advantage::AdvantageEstimator::spo_update),
    /// which the caller feeds after each policy step (prompt key, reward and,
    /// for the KL-adaptive ρ, the per-prompt policy distance).
    pub fn is_stateful(&self) -> bool {
        use AdvantageConfig::*;
        match self {
            Spo(_) | RiskPo(_) => true,
            Grpo(_)
            | DrGrpo(_)
            | GrpoBatchStd(_)
            | Rloo(_)
            | ReinforcePlusPlus(_)
            | ReinforcePlusPlusBaseline(_)
            | Remax(_)
            | Gae(_)
            | Opo(_)
            | Gpg(_)
            | Opmd(_)
            | Asymre(_)
            | Rec(_)
            | Oblr(_)
            | GrpoPassk(_)
            | OptimalTokenBaseline(_)
            | Bnpo(_)
            | Gdpo(_)
            | Unlikeliness(_)
            | Brpo(_)
            | Gigpo(_)
            | Salt(_)
            | Hrpo(_)
            | Tempsamp(_) => false,
        }
    }
}

impl LossConfig {
    /// The inputs without which [`LossConfig::compute`] returns `MissingInput`
    /// (on a batch with at least one valid token; an all-masked batch returns
    /// zeros without reading anything). A wrapper (`rollout_correction`,
    /// `off_policy_mask`, `top_entropy_mask`, `capo_mask`, `kl_penalty`,
    /// `entropy_bonus`, `llds`) needs its own inputs and those of its `base`;
    /// `kl_penalty` needs `full_kl` with estimator `full` and `ref_log_prob`
    /// otherwise. Aggregation modes read nothing optional. `old_log_prob` is a
    /// mandatory argument of [`LossInputs::new`](crate::loss::LossInputs::new)
    /// and never listed.
    pub fn required_inputs(&self) -> BTreeSet<Input> {
        use LossConfig::*;
        match self {
            PpoClip(_) | TwoSidedClip(_) | Gspo(_) | GspoToken(_) | Luspo(_) | Cispo(_)
            | Sapo(_) | Gmpo(_) | Vespo(_) | ClipCov(_) | KlCov(_) | Reinforce(_) | OpmdLoss(_)
            | RecLoss(_) | Mdpo(_) | R2vpo(_) => BTreeSet::new(),
            RegGrpo(_) => set([Input::GroupIndex]),
            Disco(_) | P3o(_) => set([Input::GroupIndex, Input::Rewards]),
            Gtpo(_) => set([Input::GroupIndex, Input::TokenIds, Input::Entropy]),
            DagrpoLoss(_) => set([Input::GroupIndex, Input::Rewards, Input::Scores]),
            RolloutCorrection(c) => with(c.base.required_inputs(), Input::RolloutLogProb),
            OffPolicyMask(c) => c.base.required_inputs(),
            TopEntropyMask(c) => with(c.base.required_inputs(), Input::Entropy),
            CapoMask(c) => with(c.base.required_inputs(), Input::Instability),
            KlPenalty(c) => with(
                c.base.required_inputs(),
                if c.estimator == KlEstimator::Full {
                    Input::FullKl
                } else {
                    Input::RefLogProb
                },
            ),
            EntropyBonus(c) => with(c.base.required_inputs(), Input::Entropy),
            Llds(c) => c.base.required_inputs(),
        }
    }

    /// Inputs that change the loss or its gradients when present but are not
    /// required: `off_policy_mask` measures the policy drift from
    /// `rollout_log_prob` when given (from `old_log_prob` otherwise). Wrappers
    /// include their base's optional inputs. Disjoint from
    /// [`LossConfig::required_inputs`]. Not listed: every loss reports the mean
    /// `entropy` as a metric when it is given.
    pub fn optional_inputs(&self) -> BTreeSet<Input> {
        use LossConfig::*;
        let mut out = match self {
            PpoClip(_) | TwoSidedClip(_) | Gspo(_) | GspoToken(_) | Luspo(_) | Cispo(_)
            | Sapo(_) | Gmpo(_) | Vespo(_) | ClipCov(_) | KlCov(_) | Reinforce(_) | OpmdLoss(_)
            | RecLoss(_) | Mdpo(_) | R2vpo(_) | RegGrpo(_) | Disco(_) | P3o(_) | Gtpo(_)
            | DagrpoLoss(_) => BTreeSet::new(),
            OffPolicyMask(c) => with(c.base.optional_inputs(), Input::RolloutLogProb),
            RolloutCorrection(c) => c.base.optional_inputs(),
            TopEntropyMask(c) => c.base.optional_inputs(),
            CapoMask(c) => c.base.optional_inputs(),
            KlPenalty(c) => c.base.optional_inputs(),
            EntropyBonus(c) => c.base.optional_inputs(),
            Llds(c) => c.base.optional_inputs(),
        };
        let req = self.required_inputs();
        out.retain(|i| !req.contains(i));
        out
    }
}

fn with(mut s: BTreeSet<Input>, i: Input) -> BTreeSet<Input> {
    s.insert(i);
    s
}

impl FilterConfig {
    /// The inputs without which [`FilterConfig::select`] fails for lack of
    /// data: `truncated` for `mask_truncated`, and the reward components for a
    /// filter whose `metric` is a component name rather than `"reward"`. Note
    /// that a missing component is reported as `UnknownName` (kind `reward
    /// component`), not `MissingInput`; check the name with
    /// [`FilterConfig::metric`].
    pub fn required_inputs(&self) -> BTreeSet<Input> {
        match self.metric() {
            Some(m) if m != "reward" => set([Input::RewardComponents]),
            _ => match self {
                FilterConfig::MaskTruncated(_) => set([Input::Truncated]),
                FilterConfig::DynamicSampling(_)
                | FilterConfig::AdvantageThreshold(_)
                | FilterConfig::RejectionSampling(_)
                | FilterConfig::MaxSamples(_)
                | FilterConfig::PfPpo(_) => BTreeSet::new(),
            },
        }
    }

    /// The reward the filter reads by name (`"reward"` for the scalar reward,
    /// otherwise a reward component that must exist in the batch), if any.
    /// `pf_ppo` always reads the scalar reward and returns `None`, like the
    /// filters that read no reward.
    pub fn metric(&self) -> Option<&str> {
        match self {
            FilterConfig::DynamicSampling(c) => Some(&c.metric),
            FilterConfig::AdvantageThreshold(c) => Some(&c.metric),
            FilterConfig::RejectionSampling(c) => Some(&c.metric),
            FilterConfig::MaskTruncated(_)
            | FilterConfig::MaxSamples(_)
            | FilterConfig::PfPpo(_) => None,
        }
    }
}

impl SamplerConfig {
    /// Batch inputs the sampler reads: none. Samplers draw prompt indices from
    /// a [`PromptPool`](crate::sampler::PromptPool) of per-prompt statistics
    /// that the caller maintains, and keep their own
    /// [`SamplerState`](crate::sampler::SamplerState), which the caller must
    /// checkpoint with the run. What each needs from the caller:
    ///
    /// - `uniform`: the pool size only (pass rates are validated, not used).
    /// - `vas`: per-prompt pass rates from recent rollouts; per-prompt
    ///   diversity scores when `beta > 0` (see
    ///   [`SamplerConfig::needs_diversity`]; `draw` returns `MissingInput`
    ///   `diversity` otherwise); state: the cached scores and draw count
    ///   (refresh every `update_freq` draws).
    /// - `spo_priority`: per-prompt pass rates (SPO's tracker baselines or
    ///   recent rollouts).
    /// - `difficulty_curriculum`: per-prompt pass rates; state: the curriculum
    ///   stage.
    /// - `scaf_grpo`: draws uniformly; the hint trigger
    ///   ([`scaf::needs_hint`](crate::sampler::scaf::needs_hint)) needs the
    ///   training step, the total number of steps and each group's rewards, and
    ///   the caller must produce and score the hinted rollout.
    pub fn required_inputs(&self) -> BTreeSet<Input> {
        match self {
            SamplerConfig::Uniform(_)
            | SamplerConfig::Vas(_)
            | SamplerConfig::SpoPriority(_)
            | SamplerConfig::DifficultyCurriculum(_)
            | SamplerConfig::ScafGrpo(_) => BTreeSet::new(),
        }
    }

    /// True when [`PromptSampler::draw`](crate::sampler::PromptSampler::draw)
    /// needs [`PromptPool::diversity`](crate::sampler::PromptPool::diversity)
    /// (VAS with `beta > 0`); without it `draw` returns `MissingInput`.
    pub fn needs_diversity(&self) -> bool {
        matches!(self, SamplerConfig::Vas(c) if c.beta > 0.0)
    }
}

impl KlControllerConfig {
    /// Batch inputs the controller reads: none (controllers never return
    /// `MissingInput`). The controller is fed numbers by the caller through
    /// [`KlController::update`](crate::kl::KlController::update); see
    /// [`KlControllerConfig::uses_measured_kl`].
    pub fn required_inputs(&self) -> BTreeSet<Input> {
        match self {
            KlControllerConfig::Fixed { .. }
            | KlControllerConfig::Adaptive { .. }
            | KlControllerConfig::GrpoD { .. }
            | KlControllerConfig::DiscoConstrained { .. } => BTreeSet::new(),
        }
    }

    /// True when the coefficient depends on the measured KL passed to
    /// [`KlController::update`](crate::kl::KlController::update) (`adaptive`,
    /// `disco_constrained`): the caller must measure the policy's KL each step,
    /// which needs `ref_log_prob` (or `full_kl`). `fixed` and the `grpo_d`
    /// schedule ignore it (they need only the step count).
    pub fn uses_measured_kl(&self) -> bool {
        matches!(
            self,
            KlControllerConfig::Adaptive { .. } | KlControllerConfig::DiscoConstrained { .. }
        )
    }
}

//! Pure math for GRPO-family reinforcement learning from verifiable rewards:
//! advantage estimators, policy losses with analytic gradients, KL terms,
//! aggregation modes, group filters and samplers.
//!
//! This crate does no I/O and knows nothing of models, devices or text.
//!
//! # How the pieces fit
//!
//! - [`batch::ScoredBatch`] holds a padded `[batch, time]` batch of scored
//!   responses: response mask, group id per row, scalar reward, named reward
//!   components and optional extras (token rewards, old log-probs, step and
//!   budget records, ...). Construction validates and returns named
//!   [`CoreError`]s.
//! - [`advantage::AdvantageConfig`] (serde `type`-tagged, from TOML or JSON)
//!   selects one of the advantage estimators; [`advantage::AdvantageEstimator`]
//!   holds its cross-batch state (SPO, RiskPO) and returns per-token
//!   advantages and returns ([`advantage::AdvantageOutput`]).
//! - [`loss::LossConfig`] selects a policy loss; it reads a [`loss::LossInputs`]
//!   view and returns the loss, `∂𝓛/∂ℓ` per token and metrics. [`kl`] has the KL
//!   estimators and controllers.
//! - [`filter::FilterConfig`] and [`sampler::SamplerConfig`] select group
//!   filters (DAPO dynamic sampling, ...) and prompt samplers (VAS, SPO, ...);
//!   every random choice takes the caller's seeded `ChaCha8Rng`.
//! - [`inputs`]: every item declares the optional inputs it needs
//!   (`required_inputs()`), so a run config can be checked before step 1.
//! - [`registry::all`] lists every item by name with its verification status;
//!   the property tests iterate over it.
//!
//! [`compat`] recomputes verl's `core_algos` functions and TRL's `GRPOTrainer`
//! loss under their own names and parameter names (with gradients), so users
//! porting from those stacks can check equality on their own tensors;
//! [`compat::eval`] evaluates `{"fn", "params", "inputs"}` JSON requests (the
//! engine of `grpo estimators eval`).
//!
//! # Example: two groups of rewards in, advantages and gradients out
//!
//! ```
//! use grpo_core::advantage::{self, AdvantageConfig};
//! use grpo_core::batch::ScoredBatch;
//! use grpo_core::loss::{LossConfig, LossInputs};
//! use rand::SeedableRng;
//!
//! // two prompts, two responses each; response lengths 2, 1, 2, 2 tokens
//! let batch = ScoredBatch::from_outcome(&[1.0, 0.0, 0.5, 0.5], &[0, 0, 1, 1], &[2, 1, 2, 2])?;
//! let config: AdvantageConfig = serde_json::from_str(r#"{"type": "grpo", "epsilon": 0.0}"#)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let adv = advantage::compute(&config, &batch, &mut rng)?.advantages;
//! // group 0: (R − μ)/σ = ±1/√2 on every valid token; group 1 has zero variance ⇒ 0
//! let s = std::f64::consts::FRAC_1_SQRT_2;
//! assert!((adv[[0, 0]] - s).abs() < 1e-12 && (adv[[0, 1]] - s).abs() < 1e-12);
//! assert!((adv[[1, 0]] + s).abs() < 1e-12);
//! assert_eq!(adv[[1, 1]], 0.0); // padding
//! assert_eq!(adv[[2, 0]], 0.0);
//!
//! // on-policy PPO-clip step: ∂𝓛/∂ℓ = −A/M with M = 7 valid tokens
//! let loss: LossConfig = serde_json::from_str(
//!     r#"{"type": "ppo_clip", "eps_low": 0.2, "agg": {"type": "token_mean"}}"#,
//! )?;
//! let logp = batch.mask.mapv(|m| -m);
//! let inputs = LossInputs::new(logp.view(), logp.view(), batch.mask.view(), adv.view());
//! let out = loss.compute(&inputs, &mut rng)?;
//! assert!((out.grad_logp[[0, 0]] + s / 7.0).abs() < 1e-12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Reconstructed items
//!
//! The formulas of some seed methods could not be checked against a paper or
//! official code (algorithms.md §9, §11). They are implemented from the best-
//! supported formulation, have no claimed defaults, and are registered with
//! [`registry::Verification::Reconstructed`]: OBLR-PO's optimal baseline
//! (`oblr`), SALT step advantages (`salt`), HRPO (`hrpo`), TempSamp-R1's soft
//! advantage (`tempsamp`), the difficulty curriculum (`difficulty_curriculum`),
//! and on the loss side Reg-GRPO, R²VPO, DaGRPO, CAPO masking and the GRPO-D
//! KL schedule.
//!
//! # Out of scope
//!
//! Seed papers with no library math (algorithms.md §10):
//!
//! | paper | why |
//! |---|---|
//! | POLAR (pre-trained policy discriminators) | reward-model pre-training recipe, not an RL estimator |
//! | PARL (bilevel policy alignment) | bilevel optimisation over reward design; continuous-control experiments |
//! | A2PR (offline RL, VAE-augmented behaviour policy) | offline actor-critic with a VAE; no group/LLM structure |
//! | IWOCS (robust MDPs as static problems) | robust-MDP meta-algorithm over transition models |
//! | SubPO (submodular RL) | non-additive set-function rewards; greedy marginal-gain PG for control tasks |
//! | Agnostic RL (thesis) | sample-complexity theory |
//! | Inventory networks / HDPO | pathwise gradients through known simulator dynamics |
//! | BQ-NCO | imitation learning for combinatorial optimisation |
//! | Context-aware Bayesian-network MARL | multi-agent actor-critic with learned DAGs |
//! | SePPO | diffusion-model preference optimisation (images/videos) |
//! | Image-generation DPO vs GRPO study | empirical comparison; uses standard GRPO/DPO |
//! | WirelessMathLM, open-rs, Safe multi-objective GRPO, Clinical-R1 | plain GRPO plus rewards (covered by `grpo`, `grpo-rewards`, [`advantage::shaping::weighted_sum`]) |
//!
//! Training-Free GRPO (no gradient step), Prefix Grouper (an attention kernel)
//! and TON thought dropout (a data transform) are not math of this crate either.
#![deny(missing_docs)]

pub mod advantage;
pub mod batch;
pub mod compat;
pub mod error;
pub mod filter;
pub mod inputs;
pub mod kl;
pub mod loss;
pub mod registry;
pub mod sampler;
pub mod stats;

pub use error::{CoreError, Result};
pub use inputs::Input;

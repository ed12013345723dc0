//! Pure math for GRPO-family reinforcement learning from verifiable rewards:
//! advantage estimators, policy losses with analytic gradients, KL terms,
//! aggregation modes, group filters and samplers.
//!
//! This crate does no I/O and knows nothing of models, devices or text.
//!
//! [`compat`] recomputes verl's `core_algos` functions and TRL's `GRPOTrainer`
//! loss under their own names and parameter names (with gradients), so users
//! porting from those stacks can check equality on their own tensors;
//! [`compat::eval`] evaluates `{"fn", "params", "inputs"}` JSON requests (the
//! engine of `grpo estimators eval`).
#![deny(missing_docs)]

pub mod advantage;
pub mod batch;
pub mod compat;
pub mod error;
pub mod filter;
pub mod kl;
pub mod loss;
pub mod registry;
pub mod sampler;
pub mod stats;

pub use error::{CoreError, Result};

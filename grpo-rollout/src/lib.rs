//! An in-process generation engine for GRPO group sampling.
//!
//! For each request (a prompt and `n` samples) the prompt is prefilled once and
//! its key/value state is shared by the `n` samples; all live sequences of all
//! requests are decoded together, finished ones free their slot and waiting
//! requests start (continuous batching); a cached-token budget preempts and
//! recomputes instead of failing. Every sample reports the log-prob of each
//! sampled token under the raw model (what the trainer's scoring pass
//! computes) and under the distribution actually sampled from.
//!
//! The engine is generic over the [`Lm`] trait, so it can be tested with a toy
//! model and driven by a `grpo-model` transformer.
#![deny(missing_docs)]

pub mod engine;
pub mod error;
pub mod model;
pub mod params;
pub mod sampling;
pub mod stop;

pub use engine::{Completion, Detokenizer, Engine, EngineConfig, GenerateStats, Lm, Request};
pub use error::{Result, RolloutError};
pub use params::{LogprobMode, SamplingParams};
pub use stop::FinishReason;

//! The GRPO trainer: run config, SFT warm start and GRPO stages, evaluation,
//! checkpoints with bit-exact resume, metrics (JSONL, TensorBoard, PNG plots).
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod metrics;
pub mod plot;
pub mod tfevents;

pub use error::{Result, TrainError};

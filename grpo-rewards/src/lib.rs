//! Verifiers for reinforcement learning from verifiable rewards: math answers,
//! code run in a sandbox, tool calls and GUI actions; plus reward shaping.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

pub mod code;
pub mod error;
pub mod gui;
pub mod math;
pub mod shaping;
pub mod toolcall;

pub use error::{RewardError, Result};

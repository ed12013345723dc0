//! Verifiers (math, code sandbox, tool calls, GUI actions) and reward shaping.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

//! In-process generation engine for GRPO group sampling.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

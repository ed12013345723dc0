//! Numeric ops (CPU twin + CUDA kernel each) for the grpo-rs transformer.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

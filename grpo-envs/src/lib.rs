//! Multi-turn environments with exact loss masks, and dataset loaders.
//!
//! This crate is being built; see the open issues and ARCHITECTURE.md.
#![deny(missing_docs)]

//! Integration tests for grpo-core (one binary per crate).
mod compat_anchor;

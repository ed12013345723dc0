//! Integration tests for grpo-model (one binary per crate).

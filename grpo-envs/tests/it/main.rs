//! Integration tests for grpo-envs (one binary per crate).

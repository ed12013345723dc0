//! Integration tests for grpo-kernels (one binary per crate).

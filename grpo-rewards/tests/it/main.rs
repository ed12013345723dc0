//! Integration tests for grpo-rewards (one binary per crate).

mod code_basic;
mod math_cases;

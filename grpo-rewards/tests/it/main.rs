//! Integration tests for grpo-rewards (one binary per crate).

mod math_cases;

//! Integration tests for grpo-rewards (one binary per crate).

mod code_basic;
mod code_humaneval;
mod math_cases;
mod sandbox;
mod toolcall;

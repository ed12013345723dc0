//! Integration tests for grpo-rewards (one binary per crate).

mod code_basic;
mod code_humaneval;
mod gui;
mod math_cases;
mod math_suite;
mod sandbox;
mod shaping;
mod toolcall;

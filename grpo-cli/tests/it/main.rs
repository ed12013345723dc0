//! Integration tests for grpo-cli (one binary per crate).
mod estimators;
mod generate;
mod verify;

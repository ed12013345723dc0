//! Integration tests for grpo-cli (one binary per crate).
mod env;
mod estimators;
mod generate;
mod train;
mod verify;

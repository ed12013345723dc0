//! Integration tests for grpo-cli (one binary per crate).
mod env;
mod estimators;
mod generate;
mod jsonl;
mod serve;
mod train;
mod verify;

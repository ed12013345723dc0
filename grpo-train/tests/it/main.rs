//! Integration tests for grpo-train (one binary per crate): bit-exact resume,
//! an end-to-end smoke run, the example configs, and bad input.
mod bad_input;
mod common;
mod configs;
mod registry_walk;
mod resume;
mod sft_stop;
mod smoke;

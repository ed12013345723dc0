//! Integration tests for grpo-envs (one binary per crate).

mod common;
mod dataset;
mod envs;
mod games;
mod runner;

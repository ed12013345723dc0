//! Integration tests for grpo-envs (one binary per crate).

mod common;
mod dataset;
mod envs;
mod games;
#[cfg(feature = "parquet")]
mod parquet;
mod rewards;
mod runner;

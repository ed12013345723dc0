//! Integration tests for grpo-kernels (one binary per crate).
//!
//! - `cpu_reference`: every op against a naive f64 loop implementation on random shapes.
//! - `gradcheck`: every backward op against finite differences of the f64 reference forward.
//! - `sampling`: determinism, filter exclusion, greedy, empirical frequencies.
//! - `optim`: AdamW against hand-computed PyTorch-semantics steps; grad-norm clipping.

mod cpu_reference;
mod gradcheck;
mod optim;
mod reference;
mod sampling;

//! Criterion benches for grpo-kernels.

fn main() {}

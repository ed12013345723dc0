//! Criterion benches for grpo-core.

fn main() {}

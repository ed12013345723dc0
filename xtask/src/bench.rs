//! `cargo xtask bench <cpu|e2e>`: whole-workload benchmarks that run our code
//! and the peer (PyTorch / TRL, found through `GRPO_PEER_PYTHON`) in the same
//! invocation and print the ratio; results go to `target/bench/<name>.json`.

use anyhow::bail;

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some(other) => bail!(
            "benchmark `{other}` is not available yet; see the open issues (cpu, e2e are planned)"
        ),
        None => bail!("usage: cargo xtask bench <cpu|e2e>"),
    }
}

//! `grpo generate` (being written).

/// Arguments of `grpo generate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo generate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo generate` is not available yet in this build")
}

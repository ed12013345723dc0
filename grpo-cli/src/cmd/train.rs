//! `grpo train` (being written).

/// Arguments of `grpo train`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo train`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo train` is not available yet in this build")
}

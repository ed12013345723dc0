//! `grpo verify` (being written).

/// Arguments of `grpo verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo verify`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo verify` is not available yet in this build")
}

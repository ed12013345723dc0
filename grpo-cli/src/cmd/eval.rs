//! `grpo eval` (being written).

/// Arguments of `grpo eval`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo eval`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo eval` is not available yet in this build")
}

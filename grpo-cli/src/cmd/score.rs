//! `grpo score` (being written).

/// Arguments of `grpo score`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo score`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo score` is not available yet in this build")
}

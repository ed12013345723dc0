//! `grpo env` (being written).

/// Arguments of `grpo env`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo env`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo env` is not available yet in this build")
}

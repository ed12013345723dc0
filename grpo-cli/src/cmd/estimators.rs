//! `grpo estimators` (being written).

/// Arguments of `grpo estimators`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `grpo estimators`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`grpo estimators` is not available yet in this build")
}

//! `grpo train`: run a training job from a TOML config (the embedded default
//! when no config is given).

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `grpo train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run config (TOML). Without it: the run's saved `config.toml` when
    /// resuming, else the embedded default run.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set optim.lr=1e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Replace an existing run directory.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// No progress bars (log lines only).
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `grpo train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let saved = args
        .resume
        .as_ref()
        .map(|d| d.join("config.toml"))
        .filter(|p| p.exists());
    let config = match (&args.config, &saved) {
        (Some(path), _) => grpo_train::config::load_validated(path, &args.set)?,
        // Resuming without --config continues with the run's own saved config.
        (None, Some(path)) => grpo_train::config::load_validated(path, &args.set)?,
        (None, None) => grpo_train::config::parse_validated(
            grpo_train::config::DEFAULT_CONFIG,
            "<embedded default>",
            &args.set,
        )?,
    };
    let opts = grpo_train::TrainOptions {
        overwrite: args.overwrite,
        resume: args.resume.clone(),
        quiet: args.quiet,
        ..Default::default()
    };
    let summary = grpo_train::train(config, &opts).context("training failed")?;
    println!("{summary}");
    Ok(())
}

//! `grpo eval`: greedy accuracy and pass@k of a checkpoint on the held-out
//! set of a run config's task, printed as one JSON object on stdout.
//!
//! The task, prompt count, k and sampling settings come from the run config:
//! `--config FILE`, else the `config.toml` of the run the checkpoint belongs
//! to (`RUN_DIR/checkpoint/../config.toml`), else the embedded default.
//! `--set` overrides apply on top (e.g. `--set eval.pass_k=8`).

use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `grpo eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint: a Hugging Face model directory with tokenizer.json
    /// (e.g. `runs/default/checkpoint`).
    #[arg(long)]
    pub model: PathBuf,
    /// Run config whose task, `[eval]` and `[rollout]` settings are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set eval.num_prompts=100` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The run config `grpo eval` uses and where it came from.
fn config_for(args: &Args) -> anyhow::Result<(grpo_train::config::RunConfigFile, String)> {
    if let Some(path) = &args.config {
        return Ok((
            grpo_train::config::load(path, &args.set)?,
            path.display().to_string(),
        ));
    }
    let run_cfg = args.model.parent().map(|p| p.join("config.toml"));
    match run_cfg {
        Some(p) if p.is_file() => Ok((
            grpo_train::config::load(&p, &args.set)?,
            p.display().to_string(),
        )),
        _ => Ok((
            grpo_train::config::parse(
                grpo_train::config::DEFAULT_CONFIG,
                "<embedded default>",
                &args.set,
            )?,
            "<embedded default>".to_string(),
        )),
    }
}

/// Runs `grpo eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let (cfg, origin) = config_for(&args)?;
    cfg.validate()?;
    let d = grpo_train::evaluate_checkpoint(&cfg, Path::new(&args.model))?;
    let summary = serde_json::json!({
        "model": args.model.display().to_string(),
        "config": origin,
        "prompts": d.prompts,
        "accuracy": d.result.accuracy,
        "format": d.format,
        "k": cfg.eval.pass_k,
        "pass_at_k": d.result.pass_at_k,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}

//! `grpo`: the command-line tool of grpo-rs.
//!
//! This crate is glue: each subcommand parses its arguments and calls one
//! library function. Library users should depend on the library crates
//! (`grpo-core`, `grpo-model`, `grpo-rollout`, `grpo-rewards`, `grpo-envs`,
//! `grpo-train`) instead. Errors are printed once with their chain and the
//! process exits with code 2.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// GRPO-family RL post-training for language models, in Rust.
#[derive(Debug, Parser)]
#[command(name = "grpo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a policy from a run config (TOML).
    Train(cmd::train::Args),
    /// Evaluate a checkpoint on a task.
    Eval(cmd::eval::Args),
    /// Sample completions from a checkpoint.
    Generate(cmd::generate::Args),
    /// Score completions: per-token log-probs and entropies.
    Score(cmd::score::Args),
    /// Serve a checkpoint over an OpenAI-compatible HTTP API.
    Serve(cmd::serve::Args),
    /// Run a verifier over a JSONL file.
    Verify(cmd::verify::Args),
    /// List or evaluate the estimator/loss registry.
    Estimators(cmd::estimators::Args),
    /// List or play environments.
    Env(cmd::env::Args),
    /// Run our side of one benchmark workload (used by `cargo xtask bench`).
    #[command(hide = true)]
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    init_tracing();
    tune_malloc();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => grpo_kernels::on_pool(|| cmd::train::run(a)),
        Command::Eval(a) => grpo_kernels::on_pool(|| cmd::eval::run(a)),
        Command::Generate(a) => grpo_kernels::on_pool(|| cmd::generate::run(a)),
        Command::Score(a) => grpo_kernels::on_pool(|| cmd::score::run(a)),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Estimators(a) => cmd::estimators::run(a),
        Command::Env(a) => cmd::env::run(a),
        Command::Bench(a) => grpo_kernels::on_pool(|| cmd::bench::run(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Keeps freed memory in glibc's heap instead of returning it to the kernel: a training
/// step allocates and frees the same activation buffers every time, and with the default
/// thresholds each one was a fresh `mmap` whose pages the kernel zeroes again (≈ 250k page
/// faults in 30 steps of the default run; ≈ 13k with these settings).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread exists, and an unsupported value is rejected by returning 0 (ignored here).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR"),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
}

/// ANSI colour in the logs only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>): logs redirected to a file or a pipe stay plain text.
fn use_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some("1".into())));
    }
}

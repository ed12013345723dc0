//! `grpo estimators`: list the grpo-core registry, or evaluate registry
//! functions on JSONL requests (`grpo_core::compat::eval`) so verl/TRL users
//! can check equality on their own tensors.
//!
//! `eval` writes exactly one output line per input line, in order:
//! `{"outputs": {...}}` or `{"error": "line N: field X: ..."}`; a bad line
//! (including a blank one) never stops the run.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::io;

/// Arguments of `grpo estimators`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every registered estimator, loss, KL term, sampler and anchor function.
    List {
        /// Print a JSON array with kind, summary and verification status.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate `{"fn", "params", "inputs"}` requests, one JSON object per line.
    Eval {
        /// Input JSONL file (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Output file (default stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Runs `grpo estimators`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::List { json } => list(json),
        Command::Eval { input, output } => {
            let mut out = io::open_output(output.as_deref())?;
            if input.as_os_str() == "-" {
                eval_lines(std::io::stdin().lock(), &mut *out)
            } else {
                eval_lines(io::open_input(&input)?, &mut *out)
            }
        }
    }
}

fn list(as_json: bool) -> anyhow::Result<()> {
    let entries = grpo_core::registry::all();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if as_json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    } else {
        for e in &entries {
            writeln!(out, "{}", e.name)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Evaluates every line of `input`, writing one result line per input line.
fn eval_lines(input: impl BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    let (mut ok, mut bad) = (0usize, 0usize);
    for (i, line) in input.lines().enumerate() {
        let lineno = i + 1;
        let line = line.with_context(|| format!("reading input line {lineno}"))?;
        let value = if line.trim().is_empty() {
            Err("empty line".to_string())
        } else {
            grpo_core::compat::eval::eval_str(&line).map_err(|e| e.to_string())
        };
        let value = match value {
            Ok(v) => {
                ok += 1;
                v
            }
            Err(e) => {
                bad += 1;
                json!({ "error": format!("line {lineno}: {e}") })
            }
        };
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    tracing::info!(ok, errors = bad, "estimators eval done");
    Ok(())
}

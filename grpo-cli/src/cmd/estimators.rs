//! `grpo estimators`: list the grpo-core registry, or evaluate registry
//! functions on JSONL requests (`grpo_core::compat::eval`) so verl/TRL users
//! can check equality on their own tensors.
//!
//! `eval` writes exactly one output line per input line, in order:
//! `{"outputs": {...}}` or `{"error": "line N: field X: ..."}`; a bad line
//! (including a blank one) never stops the run. Unknown keys (on the line, in
//! `params`, in `inputs`) fail their line naming the key (the line's keys are checked
//! here, the others by `grpo_core::compat::eval`). The exit rule is [`io::Tally::finish`]'s.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

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
    #[command(after_help = EVAL_SCHEMA)]
    Eval {
        /// Input JSONL file (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Output file (default stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The line schema, shown by `grpo estimators eval --help`.
const EVAL_SCHEMA: &str = r#"Input lines (one JSON object each):
  {"fn": string, "params"?: object, "inputs"?: object, "case"?: any, "note"?: any}
  fn      a registry name (`grpo estimators list`), e.g. "verl.agg_loss"
  params  the function's own parameters by the reference implementation's names
          (defaults as there); an unknown name fails the line
  inputs  tensors as nested JSON arrays, by the reference implementation's names;
          an unknown or unused input fails the line
  case, note  free-form labels, ignored
Any other key fails that line with an error naming the key and the accepted ones.
Output: exactly one line per input line (a blank line is an error line), in order:
{"outputs": {...}} or {"error": "line N: field X: ..."}.
Exit status: 0 when every line was evaluated, 2 when any line failed (all lines are
still written; the count is printed on stderr)."#;

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

/// Keys of an eval line (`case` and `note` are free-form labels).
const LINE_KEYS: &[&str] = &["fn", "params", "inputs", "case", "note"];

/// Evaluates one line; unknown keys inside `params` and `inputs` are refused by
/// `grpo_core::compat::eval`.
fn eval_line(line: &str) -> anyhow::Result<serde_json::Value> {
    let obj = io::parse_object(line)?;
    io::check_keys(&obj, LINE_KEYS, None)?;
    Ok(grpo_core::compat::eval::eval(&serde_json::Value::Object(
        obj,
    ))?)
}

/// Evaluates every line of `input`, writing one result line per input line.
fn eval_lines(input: impl BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut tally = io::Tally::default();
    for (i, line) in input.lines().enumerate() {
        let lineno = i + 1;
        let line = line.with_context(|| format!("reading input line {lineno}"))?;
        let value = if line.trim().is_empty() {
            Err("empty line".to_string())
        } else {
            eval_line(&line).map_err(|e| format!("{e:#}"))
        };
        tally.count(value.is_ok());
        let value = match value {
            Ok(v) => v,
            Err(e) => io::error_line(lineno, &e),
        };
        io::write_line(out, &value)?;
    }
    out.flush()?;
    tally.finish()
}

//! `grpo verify math|code|toolcall|gui`: run one verifier over a JSONL file.
//!
//! One JSON object per input line, one per output line, in order; a bad
//! line becomes `{"error": "line N: ..."}` and processing continues. The
//! command exits non-zero at the end when any line failed. Line formats are
//! those of each verifier's `verify_json` in `grpo-rewards` (math:
//! `{"gold", "pred", "options"}`; code: `{"language", "program", "tests",
//! "options"}`; toolcall: BFCL's `{"functions", "possible_answer",
//! "model_output_text"}`; gui: `{"gold", "pred", "profile", "options"}`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

use super::io::{map_jsonl, open_input, open_output};

/// Which verifier to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Math answers (Math-Verify semantics).
    Math,
    /// Programs run against tests in the sandbox.
    Code,
    /// Tool calls (BFCL AST checker).
    Toolcall,
    /// GUI actions (GUI-R1, UI-R1, GUI-G1, InfiGUI-R1 profiles).
    Gui,
}

/// Arguments of `grpo verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Verifier to run.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Input JSONL file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output JSONL file (default: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn verify_line(kind: Kind, v: &Value) -> anyhow::Result<Value> {
    let out = match kind {
        Kind::Math => grpo_rewards::math::verify_json(v)?,
        Kind::Code => grpo_rewards::code::verify_json(v)?,
        Kind::Toolcall => grpo_rewards::toolcall::verify_json(v)?,
        Kind::Gui => grpo_rewards::gui::verify_json(v)?,
    };
    Ok(out)
}

/// Runs `grpo verify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let input = open_input(&args.input)?;
    let mut out = open_output(args.output.as_deref())?;
    let mut failed = 0usize;
    map_jsonl(input, &mut *out, |_lineno, line| {
        let res = serde_json::from_str::<Value>(line)
            .context("invalid JSON line")
            .and_then(|v| verify_line(args.kind, &v));
        if res.is_err() {
            failed += 1;
        }
        res
    })?;
    if failed > 0 {
        bail!("{failed} input line(s) could not be verified (see the \"error\" lines)");
    }
    Ok(())
}

//! `cargo xtask fixtures [--check]`: regenerate the transformers parity
//! fixtures with `scripts/make_fixtures.py` and the Parquet loader fixtures with
//! `grpo-envs/tests/data/make_parquet.py`, or (`--check`) verify both against
//! their sources. `cargo xtask fixtures parquet [--check]` runs only the
//! Parquet script (needs pyarrow, not torch).
//!
//! The Python interpreter is taken from `GRPO_PYTHON` (a virtualenv with torch,
//! transformers and pyarrow), falling back to `python3`. Only this command needs
//! Python; CI uses the committed fixtures.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{project_root, run_cmd};

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    let python = std::env::var("GRPO_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let parquet = root.join("grpo-envs/tests/data/make_parquet.py");
    let parquet_args: Vec<String> = args
        .iter()
        .filter(|a| a.as_str() == "--check")
        .cloned()
        .collect();
    if args.first().map(String::as_str) == Some("parquet") {
        return run_script(&python, &parquet, &parquet_args, &root, "pyarrow");
    }
    run_script(
        &python,
        &root.join("scripts/make_fixtures.py"),
        args,
        &root,
        "torch + transformers",
    )?;
    if args.iter().any(|a| a == "--check-saved") {
        return Ok(());
    }
    run_script(&python, &parquet, &parquet_args, &root, "pyarrow")
}

fn run_script(
    python: &str,
    script: &Path,
    args: &[String],
    root: &Path,
    needs: &str,
) -> anyhow::Result<()> {
    if !script.exists() {
        bail!("{} does not exist", script.display());
    }
    let mut cmd = Command::new(python);
    cmd.arg(script).args(args).current_dir(root);
    run_cmd(&mut cmd).with_context(|| {
        format!(
            "{} failed (interpreter `{python}`; set GRPO_PYTHON to a venv with {needs})",
            script.display()
        )
    })
}

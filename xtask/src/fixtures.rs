//! `cargo xtask fixtures [--check]`: regenerate the transformers parity
//! fixtures with `scripts/make_fixtures.py`, or verify the committed manifest.
//!
//! The Python interpreter is taken from `GRPO_PYTHON` (a virtualenv with torch
//! and transformers), falling back to `python3`. Only this command needs PyTorch;
//! CI uses the committed fixtures.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{project_root, run_cmd};

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    let script = root.join("scripts/make_fixtures.py");
    if !script.exists() {
        bail!("{} does not exist", script.display());
    }
    let python = std::env::var("GRPO_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(&python);
    cmd.arg(&script).args(args).current_dir(&root);
    run_cmd(&mut cmd).with_context(|| {
        format!("fixture generation failed (interpreter `{python}`; set GRPO_PYTHON to a venv with torch + transformers)")
    })
}

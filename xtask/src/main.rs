//! Build runner for grpo-rs, in the cargo-xtask style: `cargo xtask <cmd>`.
//!
//! - `test`: the whole CI gate (fmt check, clippy `-D warnings`, all tests and
//!   doc tests, a `--features cuda` compile check, tidy).
//! - `train [--config FILE] [--set k=v]...`: builds `grpo` in release and runs
//!   a training job (the embedded default when no config is given).
//! - `bench <cpu|e2e>`: whole-workload benchmarks against a peer measured in
//!   the same run.
//! - `fixtures [--check]`: regenerates the parity fixtures with Python, or
//!   checks the committed manifest.
//!
//! xtask is never needed at run time.

mod bench;
mod fixtures;
mod test;
mod tidy;
mod util;

use anyhow::bail;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        print_help();
        return Ok(());
    };
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "test" => test::run(&rest),
        "train" => train(&rest),
        "bench" => bench::run(&rest),
        "fixtures" => fixtures::run(&rest),
        "-h" | "--help" | "help" => {
            print_help();
            Ok(())
        }
        other => bail!("unknown xtask command `{other}` (try `cargo xtask help`)"),
    }
}

fn print_help() {
    println!(
        "cargo xtask <command>\n\n\
         test      fmt check, clippy -D warnings, tests + doc tests, cuda compile check, tidy\n\
         train     build grpo (release) and train: the embedded default, or --config FILE [--set k=v]...\n\
         bench     cpu | e2e: workload benchmarks with the peer measured in the same run\n\
         fixtures  regenerate parity fixtures (Python + transformers), or --check the manifest"
    );
}

/// `cargo xtask train [ARGS]`: release build of `grpo`, then `grpo train ARGS`.
fn train(args: &[String]) -> anyhow::Result<()> {
    util::cargo(&["build", "--release", "-p", "grpo-cli"])?;
    let bin = util::project_root().join("target/release/grpo");
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("train").args(args);
    util::run_cmd(&mut cmd)
}

//! `cargo xtask test`: the CI gate, run in order and stopping at the first failure.

use crate::util::cargo;

/// Runs fmt check, clippy, the cuda compile check, and the whole test suite
/// (unit, integration, doc tests and the tidy test in this crate).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--heavy") {
        // Slow suites (all HumanEval problems) and more property-test cases.
        // SAFETY: xtask is single-threaded here, before any child process starts.
        unsafe {
            std::env::set_var("GRPO_HEAVY", "1");
            std::env::set_var("PROPTEST_CASES", "1024");
        }
    }
    let started = std::time::Instant::now();
    step("format check", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("clippy (-D warnings)", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    if !quick {
        // CUDA code compiles on every change even where no GPU exists.
        step("cuda feature compile check", || {
            cargo(&[
                "check",
                "-p",
                "grpo-cli",
                "-p",
                "grpo-kernels",
                "--features",
                "cuda",
            ])
        })?;
    }
    step("tests (unit, integration, doc, tidy)", || {
        cargo(&["test", "--workspace", "--no-fail-fast"])
    })?;
    eprintln!("xtask test: all green in {:.0?}", started.elapsed());
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    eprintln!("==> {name}");
    let r = f();
    eprintln!(
        "<== {name}: {} in {:.1?}",
        if r.is_ok() { "ok" } else { "FAILED" },
        t.elapsed()
    );
    r
}

//! Code verifier: runs generated Python programs against tests in a sandbox.
//!
//! - [`sandbox`]: the child-process sandbox (namespaces, read-only root, private tmpfs work
//!   dir, Landlock, seccomp, rlimits, wall-clock deadline, output caps, isolation report).
//! - [`runner`]: test shapes (stdin/stdout, LiveCodeBench/verl call-based, assert cases,
//!   HumanEval), the in-sandbox harness with its completion nonce, verdicts and scoring.
//! - [`compare`]: stdout and JSON-result comparison rules.
//!
//! [`verify_json`] implements one line of `grpo verify code`:
//!
//! ```no_run
//! let input = serde_json::json!({
//!     "language": "python",
//!     "program": "print(int(input()) * 2)",
//!     "tests": {"inputs": ["2\n", "5\n"], "outputs": ["4\n", "10\n"]},
//!     "options": {"timeout_s": 2}
//! });
//! let out = grpo_rewards::code::verify_json(&input)?;
//! assert_eq!(out["reward"], 1.0);
//! # Ok::<(), grpo_rewards::RewardError>(())
//! ```

mod child;
pub mod compare;
pub mod runner;
pub mod sandbox;
mod seccomp;

use std::sync::OnceLock;

use serde_json::Value;

pub use compare::Compare;
pub use runner::{
    CodeOptions, CodeVerdict, Score, Status, TestCase, TestResult, parse_tests, verify,
};
pub use sandbox::{Isolation, Limits, SandboxConfig};

use crate::error::{Result, RewardError};

fn default_config() -> Result<SandboxConfig> {
    static CFG: OnceLock<std::result::Result<SandboxConfig, String>> = OnceLock::new();
    CFG.get_or_init(|| SandboxConfig::detect().map_err(|e| e.to_string()))
        .clone()
        .map_err(|reason| RewardError::InvalidInput {
            field: "language".into(),
            reason,
        })
}

/// One line of `grpo verify code`: input `{"language", "program", "argv", "tests",
/// "options"}`, output `{"passed", "total", "reward", "tests": [{"status", "stdout",
/// "stderr", "time_ms", "reason"}], "isolation": [...]}`.
///
/// `language` is `python` (default; `python3` accepted). `tests` is any supported shape
/// (see [`parse_tests`]), possibly as a JSON string. `options`: `timeout_s`,
/// `wall_timeout_s`, `memory_mib`, `max_processes`, `file_size_mib`, `max_parallel`,
/// `compare` (`lcb` | `lcb_strict` | `exact` | `apps_lenient`), `score` (`fraction` | `all_pass`),
/// `import_header`, `require_full_isolation`.
pub fn verify_json(input: &Value) -> Result<Value> {
    let obj = input.as_object().ok_or_else(|| RewardError::InvalidInput {
        field: "input".into(),
        reason: "expected a JSON object".into(),
    })?;
    match obj.get("language").map(|l| l.as_str()) {
        None | Some(Some("python" | "python3")) => {}
        Some(other) => {
            return Err(RewardError::InvalidInput {
                field: "language".into(),
                reason: format!("unsupported language {other:?} (only python)"),
            });
        }
    }
    let program =
        obj.get("program")
            .and_then(Value::as_str)
            .ok_or_else(|| RewardError::InvalidInput {
                field: "program".into(),
                reason: "expected a string".into(),
            })?;
    let argv = match obj.get("argv") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| RewardError::InvalidInput {
                        field: "argv".into(),
                        reason: "expected strings".into(),
                    })
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(RewardError::InvalidInput {
                field: "argv".into(),
                reason: "expected a list".into(),
            });
        }
    };
    let tests = parse_tests(obj.get("tests").ok_or_else(|| RewardError::InvalidInput {
        field: "tests".into(),
        reason: "missing".into(),
    })?)?;
    let mut opts = CodeOptions::default();
    if let Some(o) = obj.get("options") {
        opts.apply_json(o)?;
    }
    let cfg = default_config()?;
    Ok(verify(&cfg, program, &argv, &tests, &opts)?.to_json())
}

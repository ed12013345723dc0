//! Adapters from grpo-rewards to this crate's plug points: a [`PythonExecutor`]
//! over grpo-rewards' code sandbox (separate process, namespaces, seccomp,
//! landlock, rlimits, wall-clock deadline, output caps) and a math-verifier
//! callback for [`crate::envs::qa::QaVerifier::Custom`].

use std::sync::Arc;
use std::time::Duration;

use grpo_rewards::code::sandbox::{Exit, RunSpec, SandboxConfig, run};
use grpo_rewards::math::MathConfig;

use crate::envs::qa::CustomVerifier;
use crate::error::{EnvError, Result};
use crate::tool::{ExecOutput, PythonExecutor};

/// Runs Python programs in grpo-rewards' sandbox.
#[derive(Debug, Clone)]
pub struct SandboxExecutor {
    cfg: SandboxConfig,
}

impl SandboxExecutor {
    /// Detects `python3` and uses the sandbox's default limits; an error (naming
    /// what is missing) when no interpreter is found.
    pub fn detect() -> Result<Self> {
        let cfg = SandboxConfig::detect().map_err(|e| EnvError::param("python", e.to_string()))?;
        Ok(SandboxExecutor { cfg })
    }
    /// An executor over an explicit sandbox config.
    pub fn new(cfg: SandboxConfig) -> Self {
        SandboxExecutor { cfg }
    }
    /// As a shared trait object.
    pub fn shared(self) -> Arc<dyn PythonExecutor> {
        Arc::new(self)
    }
}

impl PythonExecutor for SandboxExecutor {
    fn run(&self, code: &str, stdin: &str, timeout: Duration) -> ExecOutput {
        let mut cfg = self.cfg.clone();
        cfg.limits.wall = timeout;
        cfg.limits.cpu_s = timeout.as_secs().max(1);
        let spec = RunSpec {
            files: vec![("main.py".into(), code.as_bytes().to_vec())],
            entry: "main.py".into(),
            args: Vec::new(),
            stdin: stdin.as_bytes().to_vec(),
        };
        match run(&cfg, 1, &spec) {
            Ok(out) => {
                let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                if let Some(e) = &out.setup_error {
                    stderr.push_str(&format!("sandbox setup failed: {e}"));
                }
                if out.output_limit {
                    stderr.push_str("\n[output limit exceeded]");
                }
                // The CPU limit equals the time budget: a busy program killed by it (SIGXCPU,
                // or SIGKILL at the hard limit) ran out of the same budget as one stopped by
                // the wall clock; which of the two fires first depends on the machine's load,
                // and a kill can also take the sandbox's reporter with it (no exit status,
                // no CPU time). So any run that did not exit normally after using up the
                // budget in CPU or wall time counts as timed out.
                // (CPU accounting can report a few ms under the limit that killed it.)
                let spent = out.cpu_time + Duration::from_millis(100)
                    >= Duration::from_secs(cfg.limits.cpu_s)
                    || out.wall >= timeout;
                let cpu_out = !matches!(out.exit, Exit::Code(_)) && spent;
                let timed_out = out.timed_out || cpu_out;
                let note = match out.exit {
                    _ if timed_out => None,
                    Exit::Signal(sig) => Some(format!("[killed by signal {sig}]")),
                    Exit::Unknown if out.setup_error.is_none() => {
                        Some("[the sandbox reported no exit status]".to_string())
                    }
                    _ => None,
                };
                if let Some(note) = note {
                    if !stderr.is_empty() {
                        stderr.push('\n');
                    }
                    stderr.push_str(&note);
                }
                ExecOutput {
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr,
                    success: out.exit == Exit::Code(0) && !timed_out && !out.output_limit,
                    timed_out,
                }
            }
            Err(e) => ExecOutput {
                stdout: String::new(),
                stderr: format!("sandbox error: {e}"),
                success: false,
                timed_out: false,
            },
        }
    }
}

/// A QA verifier callback over grpo-rewards' math verifier (Math-Verify
/// semantics): correct when the response's answer is equivalent to the gold
/// answer; well-formed when an answer could be extracted.
pub fn math_verifier(cfg: MathConfig) -> CustomVerifier {
    Arc::new(move |gold, _rec, completion| {
        match grpo_rewards::math::verify(gold, completion, &cfg) {
            Ok(v) => (v.correct, v.extracted.is_some()),
            Err(e) => {
                tracing::warn!(error = %e, "math verifier could not parse the gold answer");
                (false, false)
            }
        }
    })
}

//! Runs a program against its tests inside the sandbox and scores it.
//!
//! One sandboxed process per test (fresh work dir each time), run on a bounded worker pool.
//! Call-based results travel back as JSON after a per-run 128-bit nonce and are compared
//! here, outside the untrusted process; assert and HumanEval tests pass only when the
//! harness prints the nonce after the last check (so `exit(0)` before the asserts scores 0).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::compare::Compare;
use super::sandbox::{self, Exit, Isolation, Limits, RunOutcome, RunSpec, SandboxConfig};
use crate::error::{Result, RewardError};

const HARNESS: &str = include_str!("harness.py");
const STDIO_HARNESS: &str = include_str!("stdio_harness.py");
const HEADER: &str = include_str!("header.py");

/// Verdict of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Output or result matched.
    Pass,
    /// Ran to completion with a wrong result (or without proving completion).
    WrongAnswer,
    /// The program does not compile (Python syntax error).
    CompileError,
    /// Non-zero exit or fatal signal.
    RuntimeError,
    /// Killed at the wall-clock limit.
    Timeout,
    /// CPU-time limit reached.
    CpuLimit,
    /// Address-space limit reached (`MemoryError`, ENOMEM).
    MemoryLimit,
    /// stdout passed its cap (stderr beyond its cap is only truncated).
    OutputLimit,
    /// `RLIMIT_FSIZE` reached.
    FileSizeLimit,
    /// The sandbox or the harness failed (not the program's fault).
    SandboxError,
}

impl Status {
    /// The snake_case name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::WrongAnswer => "wrong_answer",
            Status::CompileError => "compile_error",
            Status::RuntimeError => "runtime_error",
            Status::Timeout => "timeout",
            Status::CpuLimit => "cpu_limit",
            Status::MemoryLimit => "memory_limit",
            Status::OutputLimit => "output_limit",
            Status::FileSizeLimit => "file_size_limit",
            Status::SandboxError => "sandbox_error",
        }
    }
}

/// One test, normalised from any of the supported data-set shapes.
#[derive(Clone, Debug, PartialEq)]
pub enum TestCase {
    /// Feed `stdin`, compare stdout with `stdout`.
    Stdio {
        /// Input.
        stdin: String,
        /// Expected output.
        stdout: String,
    },
    /// Call `fn_name(*args)` (global function or `Solution` method), compare the JSON result.
    Call {
        /// Function or method name.
        fn_name: String,
        /// Positional arguments.
        args: Vec<Value>,
        /// Expected result.
        expected: Value,
        /// APPS style: a one-element list `[x]` also accepts the result `x`.
        unwrap_single: bool,
    },
    /// Run the program, then this assert statement (or block).
    Assert {
        /// Python source of the check.
        code: String,
    },
    /// HumanEval: the test code defines `check(candidate)`, called with `entry_point`.
    HumanEval {
        /// Test source.
        test: String,
        /// The function under test.
        entry_point: String,
    },
}

/// How per-test verdicts become the reward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Score {
    /// Fraction of tests passed (partial credit).
    #[default]
    Fraction,
    /// 1 if every test passes, else 0.
    AllPass,
}

/// Options of the code verifier (the `options` object of `grpo verify code`).
#[derive(Clone, Debug)]
pub struct CodeOptions {
    /// Per-test time limit in seconds: the CPU limit (rounded up) and the basis of the
    /// wall-clock limit (`wall_timeout_s`, default `1.5 * timeout_s + 0.5`).
    pub timeout_s: f64,
    /// Wall-clock limit per test; `None` derives it from `timeout_s`.
    pub wall_timeout_s: Option<f64>,
    /// Address-space limit, MiB.
    pub memory_mib: u64,
    /// Process/thread limit of the sandbox uid.
    pub max_processes: u64,
    /// Largest file the program may write, MiB.
    pub file_size_mib: u64,
    /// stdout comparison rule.
    pub compare: Compare,
    /// Scoring rule.
    pub score: Score,
    /// Prepend LiveCodeBench's import header; `None` = on for call-based and assert tests.
    pub import_header: Option<bool>,
    /// Concurrent sandboxes.
    pub max_parallel: usize,
    /// Turn any missing isolation layer into `sandbox_error`.
    pub require_full_isolation: bool,
}

impl Default for CodeOptions {
    fn default() -> Self {
        CodeOptions {
            timeout_s: 5.0,
            wall_timeout_s: None,
            memory_mib: 512,
            max_processes: 32,
            file_size_mib: 16,
            compare: Compare::Lcb,
            score: Score::Fraction,
            import_header: None,
            max_parallel: sandbox::default_parallelism(),
            require_full_isolation: false,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> RewardError {
    RewardError::InvalidInput {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl CodeOptions {
    /// Applies the fields of a JSON `options` object; unknown keys are an error.
    pub fn apply_json(&mut self, v: &Value) -> Result<()> {
        let Some(obj) = v.as_object() else {
            return if v.is_null() {
                Ok(())
            } else {
                Err(invalid("options", "must be an object"))
            };
        };
        let num = |k: &str, x: &Value| {
            x.as_f64()
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| invalid(k, "must be a positive number"))
        };
        let int = |k: &str, x: &Value| {
            x.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(k, "must be a positive integer"))
        };
        for (k, x) in obj {
            match k.as_str() {
                "timeout_s" => self.timeout_s = num(k, x)?,
                "wall_timeout_s" => self.wall_timeout_s = Some(num(k, x)?),
                "memory_mib" => self.memory_mib = int(k, x)?,
                "max_processes" => self.max_processes = int(k, x)?,
                "file_size_mib" => self.file_size_mib = int(k, x)?,
                "max_parallel" => self.max_parallel = int(k, x)? as usize,
                "compare" => {
                    self.compare = x.as_str().and_then(Compare::from_name).ok_or_else(|| {
                        invalid(
                            k,
                            "expected \"lcb\", \"lcb_strict\", \"exact\" or \"apps_lenient\"",
                        )
                    })?
                }
                "score" => {
                    self.score = match x.as_str() {
                        Some("fraction") => Score::Fraction,
                        Some("all_pass") => Score::AllPass,
                        _ => return Err(invalid(k, "expected \"fraction\" or \"all_pass\"")),
                    }
                }
                "import_header" => {
                    self.import_header =
                        Some(x.as_bool().ok_or_else(|| invalid(k, "must be a boolean"))?)
                }
                "require_full_isolation" => {
                    self.require_full_isolation =
                        x.as_bool().ok_or_else(|| invalid(k, "must be a boolean"))?
                }
                other => return Err(invalid("options", format!("unknown option `{other}`"))),
            }
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        let wall = self.wall_timeout_s.unwrap_or(self.timeout_s * 1.5 + 0.5);
        Limits {
            wall: Duration::from_secs_f64(wall.min(3600.0)),
            cpu_s: self.timeout_s.ceil().max(1.0) as u64,
            memory_mib: self.memory_mib,
            max_processes: self.max_processes,
            file_size_mib: self.file_size_mib,
            ..Limits::default()
        }
    }
}

/// Result of one test.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// Verdict.
    pub status: Status,
    /// First 4 KiB of stdout (the harness's nonce line removed).
    pub stdout: String,
    /// Last 2 KiB of stderr.
    pub stderr: String,
    /// stderr passed its cap in the sandbox (its tail was kept; not a verdict).
    pub stderr_truncated: bool,
    /// Wall time of the program, ms (from the moment the sandbox was ready to its exit).
    pub time_ms: u64,
    /// Why (for non-pass verdicts).
    pub reason: String,
}

/// Result of a whole program.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeVerdict {
    /// Tests passed.
    pub passed: usize,
    /// Tests run.
    pub total: usize,
    /// Reward per [`Score`].
    pub reward: f64,
    /// Per-test results, in input order.
    pub tests: Vec<TestResult>,
    /// Isolation layers (`missing:` entries for a weaker mode).
    pub isolation: Vec<String>,
}

impl CodeVerdict {
    /// The `grpo verify code` output object.
    pub fn to_json(&self) -> Value {
        json!({
            "passed": self.passed,
            "total": self.total,
            "reward": self.reward,
            "tests": self.tests.iter().map(|t| json!({
                "status": t.status.as_str(),
                "stdout": t.stdout,
                "stderr": t.stderr,
                "stderr_truncated": t.stderr_truncated,
                "time_ms": t.time_ms,
                "reason": t.reason,
            })).collect::<Vec<_>>(),
            "isolation": self.isolation,
        })
    }
}

/// A test's stdin: like [`text`], and `null` (verl's sandbox tests pass
/// `None`) is empty input.
fn stdin_text(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::Null => Ok(String::new()),
        other => text(other, field),
    }
}

fn text(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(a) => {
            let mut s = String::new();
            for x in a {
                s.push_str(
                    x.as_str()
                        .ok_or_else(|| invalid(field, "expected strings"))?,
                );
                s.push('\n');
            }
            Ok(s)
        }
        _ => Err(invalid(field, "expected a string or a list of lines")),
    }
}

/// Parses any supported test shape into test cases.
pub fn parse_tests(tests: &Value) -> Result<Vec<TestCase>> {
    if let Value::String(s) = tests {
        let inner: Value =
            serde_json::from_str(s).map_err(|e| invalid("tests", format!("not JSON: {e}")))?;
        return parse_tests(&inner);
    }
    if let Value::Array(items) = tests {
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let field = format!("tests[{i}]");
            let get = |a: &str, b: &str| it.get(a).or_else(|| it.get(b));
            let (Some(inp), Some(outp)) = (get("stdin", "input"), get("stdout", "output")) else {
                return Err(invalid(&field, "expected {\"stdin\", \"stdout\"}"));
            };
            out.push(TestCase::Stdio {
                stdin: stdin_text(inp, &field)?,
                stdout: text(outp, &field)?,
            });
        }
        return Ok(out);
    }
    let Some(obj) = tests.as_object() else {
        return Err(invalid(
            "tests",
            "expected an object, a list or a JSON string",
        ));
    };
    if let (Some(test), Some(entry)) = (obj.get("test"), obj.get("entry_point")) {
        let (Some(test), Some(entry)) = (test.as_str(), entry.as_str()) else {
            return Err(invalid("tests", "`test` and `entry_point` must be strings"));
        };
        return Ok(vec![TestCase::HumanEval {
            test: test.to_string(),
            entry_point: entry.to_string(),
        }]);
    }
    if let Some(cases) = obj.get("assert_case") {
        let cases = cases
            .as_array()
            .ok_or_else(|| invalid("assert_case", "expected a list"))?;
        return cases
            .iter()
            .map(|c| {
                c.as_str()
                    .map(|s| TestCase::Assert {
                        code: s.to_string(),
                    })
                    .ok_or_else(|| invalid("assert_case", "expected strings"))
            })
            .collect();
    }
    let (Some(inputs), Some(outputs)) = (obj.get("inputs"), obj.get("outputs")) else {
        return Err(invalid(
            "tests",
            "unknown shape (expected inputs/outputs, assert_case or test/entry_point)",
        ));
    };
    let (Some(inputs), Some(outputs)) = (inputs.as_array(), outputs.as_array()) else {
        return Err(invalid("tests", "`inputs` and `outputs` must be lists"));
    };
    if inputs.len() != outputs.len() {
        return Err(invalid(
            "tests",
            format!("{} inputs but {} outputs", inputs.len(), outputs.len()),
        ));
    }
    let fn_name = obj
        .get("fn_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut out = Vec::with_capacity(inputs.len());
    for (i, (inp, outp)) in inputs.iter().zip(outputs).enumerate() {
        let field = format!("inputs[{i}]");
        match fn_name {
            None => out.push(TestCase::Stdio {
                stdin: stdin_text(inp, &field)?,
                stdout: text(outp, &format!("outputs[{i}]"))?,
            }),
            Some(f) => {
                let args = match inp {
                    Value::String(s) => s
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| {
                            serde_json::from_str(l)
                                .map_err(|e| invalid(&field, format!("argument is not JSON: {e}")))
                        })
                        .collect::<Result<Vec<Value>>>()?,
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                let (expected, unwrap_single) = match outp {
                    Value::String(s) => (
                        serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
                        false,
                    ),
                    other => (other.clone(), true),
                };
                out.push(TestCase::Call {
                    fn_name: f.to_string(),
                    args,
                    expected,
                    unwrap_single,
                });
            }
        }
    }
    Ok(out)
}

/// Runs `program` against `tests` in the sandbox.
pub fn verify(
    cfg: &SandboxConfig,
    program: &str,
    argv: &[String],
    tests: &[TestCase],
    opts: &CodeOptions,
) -> Result<CodeVerdict> {
    if tests.is_empty() {
        return Err(invalid("tests", "no tests"));
    }
    let mut cfg = cfg.clone();
    cfg.limits = opts.limits();
    cfg.require_full_isolation |= opts.require_full_isolation;
    if cfg.require_full_isolation {
        let iso = sandbox::probe(&cfg)?;
        if !iso.missing.is_empty() {
            // Refuse up front: no untrusted code runs in a weaker mode.
            let reason = format!("isolation incomplete: {}", iso.missing.join(", "));
            let tests_out = tests
                .iter()
                .map(|_| TestResult {
                    status: Status::SandboxError,
                    stdout: String::new(),
                    stderr: String::new(),
                    stderr_truncated: false,
                    time_ms: 0,
                    reason: reason.clone(),
                })
                .collect();
            return Ok(CodeVerdict {
                passed: 0,
                total: tests.len(),
                reward: 0.0,
                tests: tests_out,
                isolation: iso.labels(),
            });
        }
    }
    let results: Mutex<Vec<Option<(TestResult, Isolation)>>> = Mutex::new(vec![None; tests.len()]);
    let errors: Mutex<Vec<RewardError>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let workers = opts.max_parallel.clamp(1, tests.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tests.len() {
                        break;
                    }
                    match run_one(&cfg, opts, program, argv, &tests[i]) {
                        Ok(r) => results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r),
                        Err(e) => errors.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                    }
                }
            });
        }
    });
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .next()
    {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut tests_out = Vec::with_capacity(results.len());
    let mut isolation = Vec::new();
    for r in results.into_iter().flatten() {
        if isolation.is_empty() {
            isolation = r.1.labels();
        }
        tests_out.push(r.0);
    }
    let passed = tests_out
        .iter()
        .filter(|t| t.status == Status::Pass)
        .count();
    let total = tests_out.len();
    let reward = match opts.score {
        Score::Fraction => passed as f64 / total as f64,
        Score::AllPass => f64::from(u8::from(passed == total)),
    };
    Ok(CodeVerdict {
        passed,
        total,
        reward,
        tests: tests_out,
        isolation,
    })
}

fn run_one(
    cfg: &SandboxConfig,
    opts: &CodeOptions,
    program: &str,
    argv: &[String],
    case: &TestCase,
) -> Result<(TestResult, Isolation)> {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let (mode, header_default) = match case {
        TestCase::Stdio { .. } => ("stdio", false),
        TestCase::Call { .. } => ("call", true),
        TestCase::Assert { .. } => ("assert", true),
        TestCase::HumanEval { .. } => ("humaneval", false),
    };
    let header = opts.import_header.unwrap_or(header_default);
    let mut spec = json!({});
    let mut stdin = format!("{nonce}\n").into_bytes();
    match case {
        TestCase::Stdio { stdin: s, .. } => stdin = s.clone().into_bytes(),
        TestCase::Call { fn_name, args, .. } => {
            spec["fn_name"] = json!(fn_name);
            spec["args"] = json!(args);
        }
        TestCase::Assert { code } => spec["test"] = json!(code),
        TestCase::HumanEval { test, entry_point } => {
            spec["test"] = json!(test);
            spec["entry_point"] = json!(entry_point);
        }
    }
    let mut files = vec![("program.py".to_string(), program.as_bytes().to_vec())];
    if header {
        files.push(("header.py".into(), HEADER.as_bytes().to_vec()));
    }
    let mut args = Vec::with_capacity(argv.len() + 3);
    let entry = if mode == "stdio" {
        files.push(("stdio_harness.py".into(), STDIO_HARNESS.as_bytes().to_vec()));
        "stdio_harness.py"
    } else {
        files.push(("harness.py".into(), HARNESS.as_bytes().to_vec()));
        files.push(("spec.json".into(), spec.to_string().into_bytes()));
        args.push(mode.to_string());
        "harness.py"
    };
    args.push(if header { "1" } else { "0" }.to_string());
    args.push("--".to_string());
    args.extend(argv.iter().cloned());
    let run = RunSpec {
        files,
        entry: entry.into(),
        args,
        stdin,
    };
    let out = sandbox::run(cfg, opts.max_parallel, &run)?;
    let (status, reason, shown_stdout) = classify(cfg, opts.compare, &out, case, &nonce);
    let result = TestResult {
        status,
        stdout: head(&shown_stdout, 4096),
        stderr: tail(&String::from_utf8_lossy(&out.stderr), 2048),
        stderr_truncated: out.stderr_truncated,
        time_ms: out
            .wall
            .saturating_sub(out.setup_time.unwrap_or_default())
            .as_millis() as u64,
        reason,
    };
    Ok((result, out.isolation))
}

fn head(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Splits the harness's final `<nonce> <payload>` line off stdout.
fn split_proof<'a>(stdout: &'a str, nonce: &str) -> (&'a str, Option<&'a str>) {
    let body = stdout.strip_suffix('\n').unwrap_or(stdout);
    let (before, last) = match body.rfind('\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => ("", body),
    };
    match last.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) {
        Some(payload) => (before, Some(payload)),
        None => (stdout, None),
    }
}

fn classify(
    cfg: &SandboxConfig,
    compare: Compare,
    out: &RunOutcome,
    case: &TestCase,
    nonce: &str,
) -> (Status, String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r = |s: Status, why: &str| (s, why.to_string(), stdout.clone());
    if let Some(e) = &out.setup_error {
        return r(Status::SandboxError, e);
    }
    if cfg.require_full_isolation && !out.isolation.missing.is_empty() {
        return r(
            Status::SandboxError,
            &format!("isolation incomplete: {}", out.isolation.missing.join(", ")),
        );
    }
    if out.output_limit {
        return r(Status::OutputLimit, "stdout passed its cap");
    }
    let cpu_limit = Duration::from_secs(cfg.limits.cpu_s);
    match out.exit {
        Exit::Signal(libc::SIGXCPU) => return r(Status::CpuLimit, "CPU time limit (SIGXCPU)"),
        Exit::Signal(libc::SIGKILL) if out.cpu_time >= cpu_limit => {
            return r(
                Status::CpuLimit,
                "CPU time limit (SIGKILL at the hard limit)",
            );
        }
        Exit::Signal(libc::SIGXFSZ) => {
            return r(Status::FileSizeLimit, "file size limit (SIGXFSZ)");
        }
        _ => {}
    }
    if out.timed_out {
        return r(Status::Timeout, "wall-clock limit");
    }
    let failed = out.exit != Exit::Code(0);
    if failed && (stderr.contains("MemoryError") || stderr.contains("[Errno 12]")) {
        return r(Status::MemoryLimit, "memory limit (MemoryError / ENOMEM)");
    }
    if failed && stderr.contains("[Errno 27]") {
        return r(Status::FileSizeLimit, "file size limit (EFBIG)");
    }
    if out.exit == Exit::Code(97) && stderr.contains("__grpo_compile_error__") {
        return r(Status::CompileError, "syntax error");
    }
    if out.exit == Exit::Code(96) && stderr.contains("__grpo_bad_test__") {
        return r(Status::SandboxError, "the test code does not compile");
    }
    match (out.exit, case) {
        (Exit::Unknown, _) => return r(Status::SandboxError, "no exit status from the sandbox"),
        (Exit::Signal(s), _) => return r(Status::RuntimeError, &format!("killed by signal {s}")),
        (Exit::Code(c), TestCase::Stdio { .. }) if c != 0 => {
            return r(Status::RuntimeError, &format!("exit code {c}"));
        }
        (Exit::Code(c), _) if c != 0 => {
            if stderr.contains("__grpo_assertion_failed__") {
                return r(Status::WrongAnswer, "assertion failed");
            }
            return r(Status::RuntimeError, &format!("exit code {c}"));
        }
        _ => {}
    }
    if let TestCase::Stdio {
        stdout: expected, ..
    } = case
    {
        return if compare.matches(&stdout, expected) {
            r(Status::Pass, "")
        } else {
            r(Status::WrongAnswer, "output differs")
        };
    }
    let (shown, proof) = split_proof(&stdout, nonce);
    let shown = shown.to_string();
    let done = |s: Status, why: &str| (s, why.to_string(), shown.clone());
    let Some(payload) = proof else {
        return done(
            Status::WrongAnswer,
            "exited before the harness finished (no completion proof)",
        );
    };
    match case {
        TestCase::Call {
            expected,
            unwrap_single,
            ..
        } => {
            if let Some(bad) = payload.strip_prefix('!') {
                return done(
                    Status::WrongAnswer,
                    &format!("result is not plain JSON data: {bad}"),
                );
            }
            let Some(Ok(got)) = payload.strip_prefix('=').map(serde_json::from_str::<Value>) else {
                return done(Status::SandboxError, "unreadable result from the harness");
            };
            let single = match expected {
                Value::Array(a) if *unwrap_single && a.len() == 1 => compare.call_eq(&got, &a[0]),
                _ => false,
            };
            if compare.call_eq(&got, expected) || single {
                done(Status::Pass, "")
            } else {
                done(Status::WrongAnswer, "result differs")
            }
        }
        _ if payload == "ok" => done(Status::Pass, ""),
        _ => done(Status::SandboxError, "unexpected harness payload"),
    }
}

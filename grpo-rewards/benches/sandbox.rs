//! Sandbox benchmark: start-to-exit time of a trivial Python program in the full sandbox
//! (sequential), the same for a bare `python3 -I -S -B` without sandbox (baseline), and
//! throughput of trivial programs on pools of 2 and 4 concurrent sandboxes (2 cores).
//!
//! Run: `cargo bench -p grpo-rewards --bench sandbox` (`SANDBOX_BENCH_N` sets the count).
//! Goals (issue 6): overhead <= 15 ms per trivial program, >= 100 programs/s on 2 cores.

use std::process::Command;
use std::time::{Duration, Instant};

use grpo_rewards::code::sandbox::{self, Exit, RunSpec};
use grpo_rewards::code::{SandboxConfig, TestCase, verify};

/// CPU time (user + system) of this process and its reaped descendants.
fn cpu_now() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct it is given.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut ru);
            ru
        };
        for tv in [ru.ru_utime, ru.ru_stime] {
            total +=
                Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64);
        }
    }
    total
}

fn main() {
    let n: u32 = std::env::var("SANDBOX_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut cfg = SandboxConfig::detect().expect("python3");
    // Optional: leave layers out to see what each costs, e.g. SANDBOX_BENCH_DISABLE=net_ns.
    if let Ok(d) = std::env::var("SANDBOX_BENCH_DISABLE") {
        cfg.disabled_layers = d
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let spec = RunSpec {
        files: vec![("main.py".into(), b"pass\n".to_vec())],
        entry: "main.py".into(),
        args: Vec::new(),
        stdin: Vec::new(),
    };
    for _ in 0..3 {
        let _ = sandbox::run(&cfg, 1, &spec);
    }

    // Baseline: the interpreter alone.
    let c0 = cpu_now();
    let t = Instant::now();
    for _ in 0..n {
        let st = Command::new(&cfg.python)
            .args(["-I", "-S", "-B", "-c", "pass"])
            .status()
            .expect("python3");
        assert!(st.success());
    }
    let bare = t.elapsed() / n;
    let bare_cpu = (cpu_now() - c0) / n;

    // Sandbox, sequential.
    let c0 = cpu_now();
    let t = Instant::now();
    let mut setup = Duration::ZERO;
    let mut failed = 0u32;
    for _ in 0..n {
        let o = sandbox::run(&cfg, 1, &spec).expect("sandbox run");
        if o.exit != Exit::Code(0) {
            // On an oversubscribed host a run can miss its deadline: count it, do not abort.
            failed += 1;
            eprintln!(
                "run did not exit cleanly: {:?} (timed out: {})",
                o.exit, o.timed_out
            );
        }
        setup += o.setup_time.unwrap_or_default();
    }
    let sandboxed = t.elapsed() / n;
    let setup = setup / n;
    let sandboxed_cpu = (cpu_now() - c0) / n;

    // Throughput on 2 slots, through the whole verifier (harness + stdio comparison).
    let tests: Vec<TestCase> = (0..n)
        .map(|_| TestCase::Stdio {
            stdin: String::new(),
            stdout: "ok\n".into(),
        })
        .collect();
    // 2 slots = one per core; 4 slots overlap one program's start-up waits with another's run.
    let mut through = Vec::new();
    let mut verify_cpu = Duration::ZERO;
    let mut verify_failed = 0;
    for slots in [2usize, 4] {
        let opts = grpo_rewards::code::CodeOptions {
            max_parallel: slots,
            timeout_s: 5.0,
            ..Default::default()
        };
        let c0 = cpu_now();
        let t = Instant::now();
        let v = verify(&cfg, "print('ok')\n", &[], &tests, &opts).expect("verify");
        let el = t.elapsed();
        if slots == 2 {
            verify_cpu = (cpu_now() - c0) / n;
        }
        verify_failed += n - v.passed as u32;
        through.push((slots, f64::from(n) / el.as_secs_f64()));
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "runs that did not finish cleanly: sequential {failed}/{n}, verifier {verify_failed}/{}",
        2 * n
    );
    println!(
        "python3 -I -S -B (no sandbox):   {:8.2} ms/program",
        ms(bare)
    );
    println!(
        "sandboxed trivial program:       {:8.2} ms/program",
        ms(sandboxed)
    );
    println!(
        "  of which spawn -> ready to exec: {:8.2} ms/program",
        ms(setup)
    );
    println!(
        "sandbox overhead:                {:8.2} ms/program (goal <= 15)",
        ms(sandboxed) - ms(bare)
    );
    println!(
        "CPU per program (all processes): bare {:.2} ms, sandboxed {:.2} ms, verifier {:.2} ms",
        ms(bare_cpu),
        ms(sandboxed_cpu),
        ms(verify_cpu)
    );
    println!(
        "  => CPU-bound ceiling of the verifier on 2 idle cores: {:.0} programs/s",
        2.0 / verify_cpu.as_secs_f64()
    );
    for (slots, per_s) in through {
        println!(
            "verifier throughput, {slots} slots:    {per_s:8.1} programs/s on 2 cores (goal >= 100)"
        );
    }
}

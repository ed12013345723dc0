//! Hostile programs in the code sandbox: each must be contained, get the right status and
//! leave the host as it was (no leftover processes, temp dirs or descriptors).
//!
//! Every run passes a unique token in `argv`; after the run no process may carry it in its
//! command line and no sandbox dir may still hold the program (which contains it too).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use grpo_rewards::code::sandbox::{self, RunSpec};
use grpo_rewards::code::{CodeOptions, SandboxConfig, Status, TestCase, verify, verify_json};
use serde_json::{Value, json};

/// Tests that count this process's descriptors take the write side.
static FD_LOCK: RwLock<()> = RwLock::new(());

fn token() -> String {
    format!("grpo-hostile-{:016x}", rand::random::<u64>())
}

/// Processes whose command line contains `needle`.
fn procs_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// Sandbox dirs still holding a program that contains `needle`.
fn dirs_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return found;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("grpo-sbx-") {
            continue;
        }
        if let Ok(p) = std::fs::read_to_string(e.path().join("src/program.py"))
            && p.contains(needle)
        {
            found.push(e.path().display().to_string());
        }
    }
    found
}

fn assert_host_clean(tok: &str) {
    let t = Instant::now();
    // The kernel tears a PID namespace down asynchronously (slowly for a fork bomb on a
    // loaded 2-core machine): allow it time.
    while !procs_with(tok).is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(procs_with(tok), Vec::<String>::new(), "leftover processes");
    assert_eq!(
        dirs_with(tok),
        Vec::<String>::new(),
        "leftover sandbox dirs"
    );
}

/// Runs `program` (a stdio test with empty input, expected output `expected`) with a
/// 1 s limit, checks the host afterwards and returns the test's JSON result.
fn hostile(program: &str, expected: &str, extra_opts: Value) -> Value {
    let _g = FD_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let tok = token();
    let mut opts = json!({"timeout_s": 1, "memory_mib": 256});
    for (k, v) in extra_opts.as_object().unwrap() {
        opts[k] = v.clone();
    }
    let out = verify_json(&json!({
        "language": "python",
        "program": format!("# {tok}\n{program}"),
        "argv": [tok],
        "tests": [{"stdin": "", "stdout": expected}],
        "options": opts,
    }))
    .unwrap();
    assert_host_clean(&tok);
    out["tests"][0].clone()
}

fn status(t: &Value) -> &str {
    t["status"].as_str().unwrap()
}

#[test]
fn fork_bomb_is_contained() {
    let t = hostile(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "",
        json!({}),
    );
    assert!(["timeout", "cpu_limit"].contains(&status(&t)), "{t}");
    assert!(t["time_ms"].as_u64().unwrap() < 6000, "{t}");
}

#[test]
fn memory_bomb_is_memory_limit() {
    let t = hostile(
        "x = []\nwhile True:\n    x.append(bytearray(10**7))\n",
        "",
        json!({}),
    );
    assert_eq!(status(&t), "memory_limit", "{t}");
}

#[test]
fn cpu_spin_is_stopped() {
    let t = hostile("while True:\n    pass\n", "", json!({}));
    // SIGXCPU at 1 s of CPU; on a heavily loaded machine the 2 s wall clock may come first.
    assert!(["cpu_limit", "timeout"].contains(&status(&t)), "{t}");
}

#[test]
fn cpu_spin_gets_cpu_limit_with_slack() {
    // 1 s of CPU with a 30 s wall clock: even a heavily loaded machine reaches the CPU limit first.
    let t = hostile("while True:\n    pass\n", "", json!({"wall_timeout_s": 30}));
    assert_eq!(status(&t), "cpu_limit", "{t}");
}

#[test]
fn sleep_past_the_limit_is_timeout() {
    let start = Instant::now();
    let t = hostile("import time\ntime.sleep(60)\n", "", json!({}));
    assert_eq!(status(&t), "timeout", "{t}");
    assert!(start.elapsed() < Duration::from_secs(8));
}

#[test]
fn daemonized_children_die_with_the_run() {
    // A child that leaves the session and sleeps: must not outlive the run.
    let t = hostile(
        "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    sys.exit(0)\nprint('parent done')\n",
        "parent done",
        json!({}),
    );
    assert_eq!(status(&t), "pass", "{t}");
}

#[test]
fn output_flood_is_output_limit() {
    let t = hostile("while True:\n    print('x' * 1000)\n", "", json!({}));
    assert_eq!(status(&t), "output_limit", "{t}");
    assert!(t["stdout"].as_str().unwrap().len() <= 4096);
}

#[test]
fn stderr_flood_is_truncated_not_a_verdict() {
    // a correct program that logs megabytes to stderr still passes; its tail is kept
    let t = hostile(
        "import sys\nfor i in range(4000):\n    sys.stderr.write('e' * 1000 + '\\n')\nsys.stderr.write('last line\\n')\nprint(42)\n",
        "42",
        json!({}),
    );
    assert_eq!(status(&t), "pass", "{t}");
    assert_eq!(t["stderr_truncated"], true, "{t}");
    let e = t["stderr"].as_str().unwrap();
    assert!(e.len() <= 2048 && e.ends_with("last line\n"), "{t}");
    // an endless stderr flood runs into the time limit, not the output cap
    let t = hostile(
        "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n",
        "",
        json!({}),
    );
    assert!(["timeout", "cpu_limit"].contains(&status(&t)), "{t}");
    assert_eq!(t["stderr_truncated"], true, "{t}");
    // small stderr: not flagged
    let t = hostile(
        "import sys\nsys.stderr.write('hi')\nprint(1)\n",
        "1",
        json!({}),
    );
    assert_eq!(
        (status(&t), &t["stderr_truncated"]),
        ("pass", &json!(false)),
        "{t}"
    );
}

#[test]
fn writes_outside_the_work_dir_fail() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        outside.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let target = outside.path().join("pwned");
    let program = format!(
        r#"
import os
targets = [{target:?}, "/var/tmp/grpo-pwned", "/tmp/grpo-pwned", "/etc/grpo-pwned", "/root/grpo-pwned",
           "/dev/shm/grpo-pwned", "/usr/grpo-pwned"]
ok = 0
for t in targets:
    try:
        with open(t, "w") as f:
            f.write("x")
        print("WROTE", t)
    except OSError:
        ok += 1
with open("inside.txt", "w") as f:
    f.write("fine")
print(ok == len(targets) and open("inside.txt").read() == "fine")
"#,
        target = target.display().to_string()
    );
    let t = hostile(&program, "True", json!({}));
    assert_eq!(status(&t), "pass", "{t}");
    assert!(!target.exists());
    for p in [
        "/var/tmp/grpo-pwned",
        "/tmp/grpo-pwned",
        "/etc/grpo-pwned",
        "/dev/shm/grpo-pwned",
    ] {
        assert!(!Path::new(p).exists(), "{p} was written");
    }
}

#[test]
fn host_files_cannot_be_read() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        outside.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    // World-readable on purpose: only the sandbox stands in the way.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let program = format!(
        r#"
import os
leaks = []
for p in [{secret:?}, "/etc/shadow", "/root/.bash_history", "/proc/1/environ"]:
    try:
        with open(p) as f:
            data = f.read()
        if "TOPSECRET" in data or p != "/proc/1/environ":
            leaks.append(p)
    except OSError:
        pass
try:
    os.listdir({dir:?})
    leaks.append("listdir")
except OSError:
    pass
print("leaks:", leaks)
"#,
        secret = secret.display().to_string(),
        dir = outside.path().display().to_string()
    );
    let t = hostile(&program, "leaks: []", json!({}));
    assert_eq!(status(&t), "pass", "{t}");
}

#[test]
fn network_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!(
        r#"
import socket
results = []
for fam, addr in [(socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET, ("1.1.1.1", 53)),
                  (socket.AF_INET6, ("::1", {port}))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect(addr)
        results.append("connected")
    except OSError as e:
        results.append("blocked")
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", {port}))
    results.append("udp sent")
except OSError:
    results.append("blocked")
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
    results.append("unix ok")
except OSError:
    results.append("unix blocked")
print(results)
"#
    );
    let t = hostile(
        &program,
        "['blocked', 'blocked', 'blocked', 'blocked', 'unix ok']",
        json!({}),
    );
    assert_eq!(status(&t), "pass", "{t}");
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the host listener"
    );
}

#[test]
fn spawned_shell_is_contained() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        outside.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let target = outside.path().join("shell-pwned");
    let program = format!(
        r#"
import subprocess
r = subprocess.run(["/bin/sh", "-c", "echo hi > {target}; cat /etc/shadow; kill -9 1; echo shell-ran"],
                   capture_output=True, text=True)
print(r.stdout.strip())
"#,
        target = target.display()
    );
    let t = hostile(&program, "shell-ran", json!({}));
    assert_eq!(status(&t), "pass", "{t}");
    assert!(!target.exists());
}

#[test]
fn signalling_the_parent_does_nothing() {
    let me = std::process::id();
    let program = format!(
        r#"
import os, signal
for pid in [os.getppid(), 1, {me}]:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
print("alive", os.getpid())
"#
    );
    let t = hostile(&program, "alive 2", json!({}));
    assert_eq!(status(&t), "pass", "{t}");
}

#[test]
fn deep_recursion_is_runtime_error() {
    let t = hostile(
        // Recursion through C frames (map/list) so the C stack overflows: SIGSEGV.
        "import sys\nsys.setrecursionlimit(10**6)\ndef f():\n    return list(map(lambda _: f(), [0]))\nf()\n",
        "",
        json!({}),
    );
    assert_eq!(status(&t), "runtime_error", "{t}");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("signal 11") || t["stderr"].as_str().unwrap().contains("RecursionError"),
        "{t}"
    );
}

#[test]
fn fd_exhaustion_is_bounded() {
    let t = hostile(
        "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\nexcept OSError as e:\n    print(len(fs) < 64, e.errno)\n",
        "True 24",
        json!({}),
    );
    assert_eq!(status(&t), "pass", "{t}");
}

#[test]
fn large_file_is_file_size_limit() {
    let t = hostile(
        "with open('big', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * (1 << 20))\n",
        "",
        json!({"file_size_mib": 1}),
    );
    assert_eq!(status(&t), "file_size_limit", "{t}");
}

#[test]
fn dangerous_syscalls_are_denied() {
    let program = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = []
out.append(libc.unshare(0x10000000))            # CLONE_NEWUSER
out.append(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
out.append(libc.ptrace(16, 1, None, None))       # PTRACE_ATTACH to init
out.append(libc.syscall(321, 0, None, 0))        # bpf
out.append(libc.syscall(250, 0, 0, 0, 0, 0))     # keyctl
print(all(r == -1 for r in out), os.getuid())
"#;
    let t = hostile(program, "True 1000", json!({}));
    assert_eq!(status(&t), "pass", "{t}");
}

#[test]
fn syntax_error_is_compile_error() {
    let t = hostile("def f(:\n    pass\n", "", json!({}));
    assert_eq!(status(&t), "compile_error", "{t}");
}

#[test]
fn isolation_layers_are_reported() {
    let out = verify_json(&json!({
        "program": "print(1)",
        "tests": {"inputs": [""], "outputs": ["1"]},
        "options": {"timeout_s": 2}
    }))
    .unwrap();
    let iso: Vec<String> = out["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    for layer in [
        "user_ns",
        "pid_ns",
        "net_ns",
        "mount_ns",
        "ipc_ns",
        "readonly_root",
        "seccomp",
        "rlimits",
    ] {
        assert!(
            iso.iter().any(|l| l == layer),
            "{layer} missing from {iso:?}"
        );
    }
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if lsm.contains("landlock") {
        assert!(iso.iter().any(|l| l.starts_with("landlock_fs")), "{iso:?}");
    }
}

#[test]
fn weaker_mode_is_reported_never_silent() {
    let mut cfg = SandboxConfig::detect().unwrap();
    cfg.disabled_layers = vec!["net_ns".into(), "seccomp".into()];
    let tests = vec![TestCase::Stdio {
        stdin: String::new(),
        stdout: "1".into(),
    }];
    let opts = CodeOptions {
        timeout_s: 2.0,
        ..Default::default()
    };
    let v = verify(&cfg, "print(1)", &[], &tests, &opts).unwrap();
    assert_eq!(v.tests[0].status, Status::Pass);
    assert!(
        v.isolation
            .iter()
            .any(|l| l == "missing:net_ns (disabled by configuration)"),
        "{:?}",
        v.isolation
    );
    assert!(
        v.isolation.iter().any(|l| l.starts_with("missing:seccomp")),
        "{:?}",
        v.isolation
    );
    let strict = CodeOptions {
        require_full_isolation: true,
        ..opts
    };
    let v = verify(&cfg, "print(1)", &[], &tests, &strict).unwrap();
    assert_eq!(v.tests[0].status, Status::SandboxError, "{:?}", v.tests[0]);
    assert!(v.tests[0].reason.contains("net_ns"), "{:?}", v.tests[0]);
    assert_eq!(v.tests[0].time_ms, 0, "the program must not run at all");
    // With every layer available, strict mode runs normally.
    let v = verify(
        &SandboxConfig::detect().unwrap(),
        "print(1)",
        &[],
        &tests,
        &strict,
    )
    .unwrap();
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if lsm.contains("landlock") && v.isolation.iter().all(|l| !l.starts_with("missing:")) {
        assert_eq!(v.tests[0].status, Status::Pass, "{:?}", v);
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn many_parallel_runs_leak_nothing() {
    let _g = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let cfg = SandboxConfig::detect().unwrap();
    let tok = token();
    let before = open_fds();
    let program = format!(
        "# {tok}\nimport os, sys\nif os.fork() == 0:\n    import time; time.sleep(30)\nprint(sys.stdin.read().upper())\n"
    );
    let tests: Vec<TestCase> = (0..12)
        .map(|i| TestCase::Stdio {
            stdin: format!("abc{i}"),
            stdout: format!("ABC{i}"),
        })
        .collect();
    let opts = CodeOptions {
        timeout_s: 2.0,
        max_parallel: 4,
        ..Default::default()
    };
    let v = verify(&cfg, &program, std::slice::from_ref(&tok), &tests, &opts).unwrap();
    assert_eq!(v.passed, 12, "{:?}", v.tests);
    assert_host_clean(&tok);
    assert_eq!(open_fds(), before, "descriptor leak");
}

#[test]
fn big_stdin_and_stdout_round_trip() {
    let _g = FD_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let cfg = SandboxConfig::detect().unwrap();
    let input: String = (0..200_000).map(|i| format!("{}\n", i % 10)).collect();
    let spec = RunSpec {
        files: vec![(
            "main.py".into(),
            b"import sys\ndata = sys.stdin.read()\nsys.stdout.write(data)\n".to_vec(),
        )],
        entry: "main.py".into(),
        args: Vec::new(),
        stdin: input.clone().into_bytes(),
    };
    let out = sandbox::run(&cfg, 2, &spec).unwrap();
    assert_eq!(
        out.exit,
        sandbox::Exit::Code(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = String::new();
    out.stdout.as_slice().read_to_string(&mut s).unwrap();
    assert_eq!(s, input);
}

#[test]
fn program_ignoring_a_large_stdin_is_fine() {
    let _g = FD_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let cfg = SandboxConfig::detect().unwrap();
    let spec = RunSpec {
        files: vec![("main.py".into(), b"print('early')\n".to_vec())],
        entry: "main.py".into(),
        args: Vec::new(),
        stdin: vec![b'x'; 4 << 20],
    };
    let out = sandbox::run(&cfg, 2, &spec).unwrap();
    assert_eq!(out.exit, sandbox::Exit::Code(0));
    assert_eq!(out.stdout, b"early\n");
    assert!(!out.timed_out);
}

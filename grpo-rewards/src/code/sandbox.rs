//! A child process sandbox for untrusted programs: namespaces, read-only root, private
//! work dir, Landlock, seccomp, rlimits, a wall-clock deadline and output caps.
//!
//! # Why `pre_exec` with raw system calls, not a helper binary
//!
//! The usual safe shape is "spawn our own binary in a hidden helper mode, set everything up
//! after `exec`, then `exec` the interpreter". This is a *library*: it cannot assume that
//! `/proc/self/exe` is the `grpo` binary (it is a test harness, a bench, or a user's
//! trainer), and a libtest binary cannot grow a hidden entry point. So the setup runs in the
//! forked child through `CommandExt::pre_exec`, restricted to what is allowed between `fork`
//! and `exec`: every path, uid map, rlimit value and the compiled seccomp BPF are prepared
//! before the fork ([`child::ChildPlan`]), and the child performs only raw `libc` system calls
//! (no allocation, no locks). Landlock is driven through its raw system calls for the same
//! reason (the ruleset must be built *inside* the new mount namespace to cover the fresh
//! `/proc` and the private tmpfs).
//!
//! The child forks twice (see `child.rs`): P (session leader, unshares the namespaces and
//! waits), C (PID 1 of the new PID namespace: mounts, reaps, reports the program's exit
//! status and CPU time over a status pipe) and G (rlimits, uid drop, user namespace,
//! Landlock, seccomp, then `exec`). When G exits, C exits and the kernel kills everything
//! left in the namespace; on the wall deadline or an output cap the launcher SIGKILLs P's
//! process group and P (C dies with P through `PR_SET_PDEATHSIG` and the group kill).
//!
//! Each layer is independent: when the kernel refuses one, the run continues in a weaker
//! mode and [`Isolation::missing`] says which layer is missing and why (never silently).
//! `require_full_isolation` turns any missing layer into a `sandbox_error`.

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::child::{self, ChildPlan, PathRule, Report, layer, ll};
use crate::error::{Result, RewardError};

/// Resource limits of one sandboxed run.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Wall-clock limit; the whole process tree is killed when it passes.
    pub wall: Duration,
    /// CPU-time limit in whole seconds (`RLIMIT_CPU`, SIGXCPU then SIGKILL one second later).
    pub cpu_s: u64,
    /// Address-space limit in MiB (`RLIMIT_AS`).
    pub memory_mib: u64,
    /// Processes + threads of the sandbox uid (`RLIMIT_NPROC`).
    pub max_processes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
    /// Largest file the program may write, MiB (`RLIMIT_FSIZE`).
    pub file_size_mib: u64,
    /// Size of the private tmpfs work dir, MiB.
    pub work_tmpfs_mib: u64,
    /// Bytes of stdout kept; more is `output_limit`.
    pub stdout_cap: usize,
    /// Bytes of stderr kept (the tail); more is dropped and flagged
    /// (`RunOutcome::stderr_truncated`), never a verdict: a correct program may log.
    pub stderr_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(5),
            cpu_s: 5,
            memory_mib: 512,
            max_processes: 32,
            max_open_files: 64,
            file_size_mib: 16,
            work_tmpfs_mib: 64,
            stdout_cap: 1 << 20,
            stderr_cap: 64 << 10,
        }
    }
}

/// Sandbox configuration: the interpreter, limits and concurrency.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The interpreter (`python3`), an absolute path.
    pub python: PathBuf,
    /// Limits per run.
    pub limits: Limits,
    /// Extra read-only paths for Landlock (the interpreter's prefix is added automatically).
    pub extra_read_paths: Vec<PathBuf>,
    /// Fail runs (`sandbox_error`) instead of running in a weaker mode.
    pub require_full_isolation: bool,
    /// Layers to leave out on purpose (names as in [`Isolation::active`]: `user_ns`,
    /// `pid_ns`, `net_ns`, `mount_ns`, `ipc_ns`, `uts_ns`, `landlock_fs`, `seccomp`); they
    /// are reported as missing. For tests of the weaker modes and for measurements.
    pub disabled_layers: Vec<String>,
}

impl SandboxConfig {
    /// Finds `python3` (`/usr/bin/python3` first, then `PATH`) with default limits.
    pub fn detect() -> Result<Self> {
        Ok(SandboxConfig {
            python: find_python()?,
            limits: Limits::default(),
            extra_read_paths: Vec::new(),
            require_full_isolation: false,
            disabled_layers: Vec::new(),
        })
    }
}

/// Locates a `python3` interpreter.
pub fn find_python() -> Result<PathBuf> {
    let preferred = Path::new("/usr/bin/python3");
    if preferred.is_file() {
        return Ok(preferred.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join("python3");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(RewardError::InvalidInput {
        field: "language".into(),
        reason: "python3 not found (install it, e.g. `apt-get install -y python3`)".into(),
    })
}

/// What to run: files written to a read-only source dir, and the script's arguments.
#[derive(Clone, Debug, Default)]
pub struct RunSpec {
    /// `(file name, contents)` written into the run's source dir (names without `/`).
    pub files: Vec<(String, Vec<u8>)>,
    /// The script to run (one of `files`).
    pub entry: String,
    /// Arguments after the script path.
    pub args: Vec<String>,
    /// Bytes fed to stdin (then closed).
    pub stdin: Vec<u8>,
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with a code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
    /// The sandbox did not report (setup failure or killed before the report).
    Unknown,
}

/// Which isolation layers were active for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Active layers, e.g. `pid_ns`, `landlock_fs`, `seccomp`.
    pub active: Vec<String>,
    /// Missing layers with the reason, e.g. `landlock_scope (EOPNOTSUPP)`.
    pub missing: Vec<String>,
    /// Landlock ABI version used (0 = none).
    pub landlock_abi: i32,
}

impl Isolation {
    /// Labels for the `isolation` array of the verifier's output: the active layers, then
    /// `missing:<layer> (<reason>)` for each missing one.
    pub fn labels(&self) -> Vec<String> {
        let mut v = self.active.clone();
        v.extend(self.missing.iter().map(|m| format!("missing:{m}")));
        v
    }

    fn from_report(r: &Report, skipped: u32) -> Self {
        let mut iso = Isolation {
            landlock_abi: r.landlock_abi,
            ..Default::default()
        };
        for (i, name) in layer::NAMES.iter().enumerate() {
            let bit = 1u32 << i;
            if r.active & bit != 0 {
                if bit == layer::LANDLOCK_FS {
                    iso.active
                        .push(format!("landlock_fs(abi={})", r.landlock_abi));
                } else {
                    iso.active.push((*name).to_string());
                }
            } else {
                let e = r.errnos[i];
                let reason = if skipped & bit != 0 {
                    "disabled by configuration".to_string()
                } else if r.failed & bit != 0 && e != 0 {
                    std::io::Error::from_raw_os_error(e).to_string()
                } else {
                    "not set up".to_string()
                };
                iso.missing.push(format!("{name} ({reason})"));
            }
        }
        iso
    }
}

/// The result of one sandboxed run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Exit code or signal.
    pub exit: Exit,
    /// Captured stdout (at most `stdout_cap` bytes).
    pub stdout: Vec<u8>,
    /// Tail of stderr (at most `stderr_cap` bytes).
    pub stderr: Vec<u8>,
    /// Killed because stdout passed its cap.
    pub output_limit: bool,
    /// stderr passed its cap: only its last `stderr_cap` bytes were kept.
    pub stderr_truncated: bool,
    /// Killed at the wall-clock deadline.
    pub timed_out: bool,
    /// CPU time of the program (user + system), as reported by the namespace init.
    pub cpu_time: Duration,
    /// Peak RSS of the program, KiB.
    pub max_rss_kib: u64,
    /// Wall time from spawn to exit (sandbox setup included).
    pub wall: Duration,
    /// Time from spawn until the sandbox reported ready (just before `exec`).
    pub setup_time: Option<Duration>,
    /// Isolation layers (empty when the sandbox never reported).
    pub isolation: Isolation,
    /// Set when the sandbox could not start the program (reason).
    pub setup_error: Option<String>,
}

/// A bounded pool of sandbox slots shared by the whole process. Each slot owns a distinct
/// host uid, so `RLIMIT_NPROC` of one run does not count another run's processes.
struct Pool {
    busy: Mutex<Vec<u8>>,
    cv: Condvar,
}

/// Longest time the sandbox may take to get ready to `exec` the program.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

/// Most slots ever (uids per process).
const MAX_SLOTS: usize = 64;
/// First host uid used for sandboxed programs when the launcher runs as root.
const UID_BASE: u32 = 0x6000_0000;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        busy: Mutex::new(vec![FREE; MAX_SLOTS]),
        cv: Condvar::new(),
    })
}

/// Default number of concurrent sandboxes: the number of CPUs, at least 1, at most 64.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_SLOTS)
}

/// A pool slot: its index is the uid offset. A slot is *active* while its run counts toward
/// the parallelism limit and *draining* while the finished run's namespaces are torn down
/// (its uid is not reused until then).
struct Slot {
    index: usize,
}

const FREE: u8 = 0;
const ACTIVE: u8 = 1;
const DRAINING: u8 = 2;

impl Slot {
    fn acquire(limit: usize) -> Slot {
        let limit = limit.clamp(1, MAX_SLOTS);
        let p = pool();
        let mut st = p.busy.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let active = st.iter().filter(|s| **s == ACTIVE).count();
            if active < limit
                && let Some(i) = st.iter().position(|s| *s == FREE)
            {
                st[i] = ACTIVE;
                return Slot { index: i };
            }
            st = p.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The run's result is ready: stop counting toward the parallelism limit.
    fn drain(&self) {
        let p = pool();
        let mut st = p.busy.lock().unwrap_or_else(|e| e.into_inner());
        st[self.index] = DRAINING;
        p.cv.notify_all();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let p = pool();
        let mut st = p.busy.lock().unwrap_or_else(|e| e.into_inner());
        st[self.index] = FREE;
        p.cv.notify_all();
    }
}

fn seccomp_filters() -> &'static Result<Vec<Vec<libc::sock_filter>>, String> {
    static F: OnceLock<Result<Vec<Vec<libc::sock_filter>>, String>> = OnceLock::new();
    F.get_or_init(super::seccomp::build)
}

fn landlock_abi() -> i32 {
    static ABI: OnceLock<i32> = OnceLock::new();
    *ABI.get_or_init(child::landlock_abi)
}

fn disabled_bits(names: &[String]) -> Result<u32> {
    let mut bits = 0;
    for n in names {
        let i =
            layer::NAMES
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| RewardError::InvalidInput {
                    field: "disabled_layers".into(),
                    reason: format!("unknown layer `{n}`"),
                })?;
        bits |= 1u32 << i;
    }
    Ok(bits)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RewardError {
    let context = context.into();
    move |source| RewardError::Io { context, source }
}

fn cstring(p: &[u8], what: &str) -> Result<CString> {
    CString::new(p).map_err(|_| RewardError::InvalidInput {
        field: what.to_string(),
        reason: "contains a NUL byte".into(),
    })
}

const SYSTEM_READ_PATHS: [&str; 8] = [
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc",
];
const DEVICES: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// The interpreter's installation prefix (`/x/bin/python3` -> `/x`), resolved.
fn interpreter_prefix(python: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(python).ok()?;
    real.parent()?.parent().map(Path::to_path_buf)
}

/// The isolation this machine gives a sandbox with `cfg`, learnt once (per interpreter and
/// set of disabled layers) by running an empty program. Used to refuse work up front when
/// `require_full_isolation` is set, so no untrusted code runs in a weaker mode.
pub fn probe(cfg: &SandboxConfig) -> Result<Isolation> {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<String, Isolation>>> = OnceLock::new();
    let key = format!("{}|{}", cfg.python.display(), cfg.disabled_layers.join(","));
    let cache = CACHE.get_or_init(Default::default);
    if let Some(iso) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(iso.clone());
    }
    let spec = RunSpec {
        files: vec![("probe.py".into(), Vec::new())],
        entry: "probe.py".into(),
        ..RunSpec::default()
    };
    let mut probe_cfg = cfg.clone();
    probe_cfg.limits = Limits {
        wall: Duration::from_secs(10),
        ..Limits::default()
    };
    let out = run(&probe_cfg, MAX_SLOTS, &spec)?;
    if let Some(e) = out.setup_error {
        return Err(RewardError::Io {
            context: "probing the sandbox".into(),
            source: std::io::Error::other(e),
        });
    }
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, out.isolation.clone());
    Ok(out.isolation)
}

/// Runs one program in a fresh sandbox. Blocks until it exits or is killed.
pub fn run(cfg: &SandboxConfig, parallel: usize, spec: &RunSpec) -> Result<RunOutcome> {
    run_in_slot(cfg, Slot::acquire(parallel), spec)
}

fn run_in_slot(cfg: &SandboxConfig, slot_guard: Slot, spec: &RunSpec) -> Result<RunOutcome> {
    let slot = slot_guard.index;
    let lim = &cfg.limits;
    // SAFETY: geteuid/getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let is_root = euid == 0;
    let sandbox_id = UID_BASE + ((std::process::id() & 0x3fff) << 6) + slot as u32;
    let (uid, gid) = if is_root {
        (sandbox_id, sandbox_id)
    } else {
        (euid, egid)
    };

    let dir = tempfile::Builder::new()
        .prefix("grpo-sbx-")
        .tempdir()
        .map_err(io_err("creating the sandbox dir"))?;
    let src = dir.path().join("src");
    let work = dir.path().join("work");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod sandbox dir"))?;
    fs::create_dir(&src).map_err(io_err("creating the source dir"))?;
    fs::create_dir(&work).map_err(io_err("creating the work dir"))?;
    for (name, data) in &spec.files {
        if name.contains('/') || name.is_empty() || name == "." || name == ".." {
            return Err(RewardError::InvalidInput {
                field: "files".into(),
                reason: format!("bad file name {name:?}"),
            });
        }
        let p = src.join(name);
        fs::write(&p, data).map_err(io_err(format!("writing {}", p.display())))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .map_err(io_err("chmod source file"))?;
    }
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod source dir"))?;
    if is_root {
        std::os::unix::fs::chown(&work, Some(uid), Some(gid)).map_err(io_err("chown work dir"))?;
    }
    fs::set_permissions(&work, fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod work dir"))?;

    // Landlock rules: read+execute on system paths and the interpreter prefix, read on the
    // sources, everything on the work dir, read/write on a few devices.
    let read = ll::EXECUTE | ll::READ_FILE | ll::READ_DIR;
    let mut rules = Vec::new();
    let mut add = |p: &Path, access: u64| -> Result<()> {
        rules.push(PathRule {
            path: cstring(p.as_os_str().as_bytes(), "path")?,
            access,
        });
        Ok(())
    };
    for p in SYSTEM_READ_PATHS {
        add(Path::new(p), read)?;
    }
    if let Some(prefix) = interpreter_prefix(&cfg.python) {
        add(&prefix, read)?;
    }
    for p in &cfg.extra_read_paths {
        add(p, read)?;
    }
    for d in DEVICES {
        add(Path::new(d), ll::READ_FILE | ll::WRITE_FILE)?;
    }
    add(&src, read)?;
    add(&work, u64::MAX)?;

    let (seccomp, seccomp_err) = match seccomp_filters() {
        Ok(f) => (f.clone(), None),
        Err(e) => (Vec::new(), Some(e.clone())),
    };
    let (rd, wr) = pipe_cloexec()?;
    let rl = |r, soft: u64, hard: u64| (r, soft as libc::rlim_t, hard as libc::rlim_t);
    let mib = 1u64 << 20;
    let plan = ChildPlan {
        launcher_pid: std::process::id() as libc::pid_t,
        status_fd: wr.as_raw_fd(),
        is_root,
        sandbox_uid: uid,
        sandbox_gid: gid,
        outer_uid_map: cstring(format!("0 {euid} 1\n").as_bytes(), "uid map")?,
        outer_gid_map: cstring(format!("0 {egid} 1\n").as_bytes(), "gid map")?,
        inner_uid_map: cstring(
            format!("1000 {} 1\n", if is_root { uid } else { 0 }).as_bytes(),
            "uid map",
        )?,
        inner_gid_map: cstring(
            format!("1000 {} 1\n", if is_root { gid } else { 0 }).as_bytes(),
            "gid map",
        )?,
        work_dir: cstring(work.as_os_str().as_bytes(), "work dir")?,
        tmpfs_data: cstring(
            format!(
                "size={}m,mode=0700,uid={},gid={}",
                lim.work_tmpfs_mib.max(1),
                if is_root { uid } else { 0 },
                if is_root { gid } else { 0 }
            )
            .as_bytes(),
            "tmpfs options",
        )?,
        rlimits: vec![
            rl(libc::RLIMIT_CPU, lim.cpu_s.max(1), lim.cpu_s.max(1) + 1),
            rl(
                libc::RLIMIT_AS,
                lim.memory_mib.max(16) * mib,
                lim.memory_mib.max(16) * mib,
            ),
            rl(
                libc::RLIMIT_NPROC,
                lim.max_processes.max(1),
                lim.max_processes.max(1),
            ),
            rl(
                libc::RLIMIT_NOFILE,
                lim.max_open_files.max(8),
                lim.max_open_files.max(8),
            ),
            rl(
                libc::RLIMIT_FSIZE,
                lim.file_size_mib * mib,
                lim.file_size_mib * mib,
            ),
            rl(libc::RLIMIT_CORE, 0, 0),
        ],
        landlock_abi: landlock_abi(),
        landlock_rules: rules,
        seccomp,
        skip: disabled_bits(&cfg.disabled_layers)?,
    };
    let plan = Arc::new(plan);

    let mut cmd = Command::new(&cfg.python);
    cmd.arg("-I").arg("-S").arg("-B").arg(src.join(&spec.entry));
    cmd.args(spec.args.iter().map(OsString::from));
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("HOME", &work)
        .env("TMPDIR", &work)
        .current_dir(&work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child_plan = Arc::clone(&plan);
    // SAFETY: the closure only calls `child::enter`, which uses async-signal-safe raw
    // system calls on data prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            child::enter(&child_plan);
            Ok(())
        });
    }
    let start = Instant::now();
    let mut proc = cmd.spawn().map_err(io_err("spawning the sandbox"))?;
    drop(wr);
    let pid = proc.id() as libc::pid_t;
    let kill_all = || {
        // SAFETY: P is our unreaped child, so neither its pid nor its group id can have
        // been reused; SIGKILL of the group reaches C (and G unless it left the group).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    };

    let mut stdin = proc.stdin.take();
    let mut stdout = proc.stdout.take();
    let mut stderr = proc.stderr.take();
    let mut status = Some(fs::File::from(rd));
    for fd in [
        stdin.as_ref().map(|s| s.as_raw_fd()),
        stdout.as_ref().map(|s| s.as_raw_fd()),
        stderr.as_ref().map(|s| s.as_raw_fd()),
        status.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    if spec.stdin.is_empty() {
        stdin = None;
    }
    let mut stdin_pos = 0usize;
    let (mut out_buf, mut err_buf, mut st_buf) = (Vec::new(), Vec::new(), Vec::new());
    // The program's wall clock starts when the sandbox reports ready (just before exec), so
    // a slow setup on a loaded host (network namespace creation can stall) is never charged
    // to the program; the setup itself gets SETUP_LIMIT.
    let mut deadline = start + SETUP_LIMIT;
    let mut setup_timed_out = false;
    let (mut timed_out, mut output_limit, mut stderr_truncated) = (false, false, false);
    let mut killed_at: Option<Instant> = None;
    let mut setup_time: Option<Duration> = None;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if stdout.is_none() && stderr.is_none() && status.is_none() {
            break;
        }
        let now = Instant::now();
        if killed_at.is_none() && now >= deadline {
            if setup_time.is_some() {
                timed_out = true;
            } else {
                setup_timed_out = true;
            }
            kill_all();
            killed_at = Some(now);
        }
        if let Some(k) = killed_at
            && now.duration_since(k) > Duration::from_secs(2)
        {
            break;
        }
        let mut fds = Vec::with_capacity(4);
        let mut push = |fd: Option<i32>, ev: libc::c_short| {
            if let Some(fd) = fd {
                fds.push(libc::pollfd {
                    fd,
                    events: ev,
                    revents: 0,
                });
            }
        };
        push(stdout.as_ref().map(|s| s.as_raw_fd()), libc::POLLIN);
        push(stderr.as_ref().map(|s| s.as_raw_fd()), libc::POLLIN);
        push(status.as_ref().map(|s| s.as_raw_fd()), libc::POLLIN);
        push(stdin.as_ref().map(|s| s.as_raw_fd()), libc::POLLOUT);
        let wait_ms = match killed_at {
            Some(_) => 50,
            None => deadline
                .saturating_duration_since(now)
                .as_millis()
                .clamp(1, 1000) as i32,
        };
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            kill_all();
            let _ = proc.wait();
            return Err(RewardError::Io {
                context: "poll".into(),
                source: e,
            });
        }
        let ready = |fd: i32| fds.iter().any(|p| p.fd == fd && p.revents != 0);
        if let Some(s) = stdout.as_mut().filter(|s| ready(s.as_raw_fd())) {
            match drain(s, &mut chunk, &mut out_buf, lim.stdout_cap) {
                Drained::Eof => stdout = None,
                Drained::Open => {}
            }
            if out_buf.len() > lim.stdout_cap {
                out_buf.truncate(lim.stdout_cap);
                if !output_limit {
                    output_limit = true;
                    kill_all();
                    killed_at.get_or_insert(Instant::now());
                }
            }
        }
        if let Some(s) = stderr.as_mut().filter(|s| ready(s.as_raw_fd())) {
            let eof = matches!(
                drain(s, &mut chunk, &mut err_buf, lim.stderr_cap),
                Drained::Eof
            );
            if eof {
                stderr = None;
            }
            if err_buf.len() > lim.stderr_cap {
                // keep the tail and go on draining: logs are not a verdict
                let cut = err_buf.len() - lim.stderr_cap;
                err_buf.drain(..cut);
                stderr_truncated = true;
            }
        }
        if let Some(s) = status.as_mut().filter(|s| ready(s.as_raw_fd())) {
            if let Drained::Eof = drain(s, &mut chunk, &mut st_buf, 1 << 16) {
                status = None;
            }
            if setup_time.is_none() && st_buf.len() >= Report::SIZE {
                setup_time = Some(start.elapsed());
                deadline = Instant::now() + lim.wall;
            }
        }
        if let Some(s) = stdin.as_mut().filter(|s| ready(s.as_raw_fd())) {
            match write_no_sigpipe(s, &spec.stdin[stdin_pos..]) {
                Ok(k) => {
                    stdin_pos += k;
                    if stdin_pos >= spec.stdin.len() {
                        stdin = None;
                    }
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => stdin = None,
            }
        }
    }
    drop(stdin);
    // Every copy of the status pipe is closed, so P has exited (or we gave up after the
    // kill): clean up anything left in its group while P is still unreaped, then reap.
    kill_all();
    let wall = start.elapsed();
    // Reap P in the background: it exits once C's namespaces are torn down (unmounting the
    // copied mount tree waits for an RCU grace period), which the result need not wait for.
    // The slot's uid is reused only after that.
    slot_guard.drain();
    let reaper = std::thread::Builder::new()
        .name("grpo-sandbox-reaper".into())
        .spawn(move || {
            let _ = proc.wait();
            drop(slot_guard);
        });
    if let Err(e) = reaper {
        tracing::warn!(error = %e, "could not start a reaper thread");
    }

    let mut ready = None;
    let mut exited = None;
    let mut failed = None;
    for m in st_buf.chunks(Report::SIZE) {
        if let Some(r) = Report::from_bytes(m) {
            match r.tag {
                child::TAG_READY => ready = Some(r),
                child::TAG_EXITED => exited = Some(r),
                child::TAG_FAILED => failed = Some(r),
                _ => {}
            }
        }
    }
    let mut isolation = ready
        .or(failed)
        .map(|r| Isolation::from_report(&r, plan.skip))
        .unwrap_or_default();
    if let Some(e) = &seccomp_err {
        for m in isolation.missing.iter_mut() {
            if m.starts_with("seccomp") {
                *m = format!("seccomp ({e})");
            }
        }
    }
    if !isolation.missing.is_empty() {
        tracing::warn!(missing = ?isolation.missing, "sandbox running in a weaker mode");
    }
    let setup_error = match (ready, failed) {
        _ if setup_timed_out => Some(format!("sandbox setup took longer than {SETUP_LIMIT:?}")),
        (_, Some(f)) => Some(format!(
            "sandbox setup failed: {}",
            std::io::Error::from_raw_os_error(f.status)
        )),
        (None, None) if !timed_out && !output_limit => {
            Some("sandbox did not report readiness".into())
        }
        _ => None,
    };
    let (exit, cpu_time, max_rss_kib) = match exited {
        Some(r) => {
            let st = r.status;
            let exit = if libc::WIFEXITED(st) {
                Exit::Code(libc::WEXITSTATUS(st))
            } else if libc::WIFSIGNALED(st) {
                Exit::Signal(libc::WTERMSIG(st))
            } else {
                Exit::Unknown
            };
            (
                exit,
                Duration::from_micros(r.cpu_us.max(0) as u64),
                r.maxrss_kib.max(0) as u64,
            )
        }
        None => (Exit::Unknown, Duration::ZERO, 0),
    };
    drop(dir);
    Ok(RunOutcome {
        exit,
        stdout: out_buf,
        stderr: err_buf,
        output_limit,
        stderr_truncated,
        timed_out,
        cpu_time,
        max_rss_kib,
        wall,
        setup_time,
        isolation,
        setup_error,
    })
}

enum Drained {
    Eof,
    Open,
}

/// Reads everything currently available from a non-blocking fd.
fn drain(r: &mut impl Read, chunk: &mut [u8], buf: &mut Vec<u8>, cap: usize) -> Drained {
    loop {
        match r.read(chunk) {
            Ok(0) => return Drained::Eof,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > cap {
                    return Drained::Open; // let the caller apply its cap
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Open,
            Err(_) => return Drained::Eof,
        }
    }
}

/// Writes to a pipe without letting a reader that has gone away raise SIGPIPE in the
/// launcher (a host program may not ignore SIGPIPE the way Rust binaries do): SIGPIPE is
/// blocked in this thread around the write and a pending one is consumed.
fn write_no_sigpipe(w: &mut impl Write, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: signal-mask manipulation of the calling thread only, with valid sigset_t values.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let r = w.write(data);
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while libc::sigtimedwait(&block, std::ptr::null_mut(), &zero) == libc::SIGPIPE {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(RewardError::Io {
            context: "pipe2".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

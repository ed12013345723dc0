//! The part of the sandbox that runs in the forked child, between `fork` and `exec`.
//!
//! Everything here is called from [`std::os::unix::process::CommandExt::pre_exec`], so it
//! may only use async-signal-safe operations: raw system calls through `libc`, no heap
//! allocation, no locks, no `std::io` error construction that allocates. All paths, maps,
//! BPF programs and limits are prepared by the launcher *before* the fork ([`ChildPlan`]).
//!
//! Process shape (see `sandbox.rs` for the reasoning):
//!
//! ```text
//! launcher ── P (setsid, unshare NEWNS|NEWNET|NEWIPC|NEWUTS|NEWPID) waits for C, _exit
//!              └─ C = PID 1 of the new PID namespace: mounts, then reaps until G exits,
//!                   reports G's wait status and rusage, _exit (kernel kills the rest)
//!                   └─ G: rlimits, uid drop, new user namespace, Landlock, seccomp,
//!                        returns Ok(()) so std `exec`s the interpreter
//! ```

use std::ffi::CString;

/// Layer bits reported in [`Report::active`] / [`Report::failed`].
pub(crate) mod layer {
    pub const USER_NS: u32 = 1 << 0;
    pub const PID_NS: u32 = 1 << 1;
    pub const NET_NS: u32 = 1 << 2;
    pub const MOUNT_NS: u32 = 1 << 3;
    pub const IPC_NS: u32 = 1 << 4;
    pub const UTS_NS: u32 = 1 << 5;
    pub const READONLY_ROOT: u32 = 1 << 6;
    pub const WORK_TMPFS: u32 = 1 << 7;
    pub const PROC: u32 = 1 << 8;
    pub const UID_DROP: u32 = 1 << 9;
    pub const LANDLOCK_FS: u32 = 1 << 10;
    pub const LANDLOCK_NET: u32 = 1 << 11;
    pub const LANDLOCK_SCOPE: u32 = 1 << 12;
    pub const NO_NEW_PRIVS: u32 = 1 << 13;
    pub const SECCOMP: u32 = 1 << 14;
    pub const RLIMITS: u32 = 1 << 15;
    pub const SESSION: u32 = 1 << 16;
    pub const CLOSE_FDS: u32 = 1 << 17;
    /// Number of layer bits.
    pub const COUNT: usize = 18;
    /// Names, indexed by bit position.
    pub const NAMES: [&str; COUNT] = [
        "user_ns",
        "pid_ns",
        "net_ns",
        "mount_ns",
        "ipc_ns",
        "uts_ns",
        "readonly_root",
        "work_tmpfs",
        "proc",
        "uid_drop",
        "landlock_fs",
        "landlock_net",
        "landlock_scope",
        "no_new_privs",
        "seccomp",
        "rlimits",
        "session",
        "close_fds",
    ];
}

/// Message tags on the status pipe.
pub(crate) const TAG_READY: u32 = 0x4752_5001;
pub(crate) const TAG_EXITED: u32 = 0x4752_5002;
pub(crate) const TAG_FAILED: u32 = 0x4752_5003;

/// A fixed-size message written with one `write` (atomic: smaller than `PIPE_BUF`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report {
    pub tag: u32,
    /// Layers that were set up.
    pub active: u32,
    /// Layers that were attempted and failed (errno in `errnos`).
    pub failed: u32,
    /// Landlock ABI version (0 when unavailable).
    pub landlock_abi: i32,
    /// errno per failed layer bit.
    pub errnos: [i32; layer::COUNT],
    /// Wait status of the program (TAG_EXITED) or errno (TAG_FAILED).
    pub status: i32,
    pub _pad: i32,
    /// User + system CPU time of the program, microseconds.
    pub cpu_us: i64,
    /// Peak resident set size of the program, KiB.
    pub maxrss_kib: i64,
}

impl Report {
    pub(crate) const SIZE: usize = std::mem::size_of::<Report>();

    pub(crate) const fn empty() -> Self {
        Report {
            tag: 0,
            active: 0,
            failed: 0,
            landlock_abi: 0,
            errnos: [0; layer::COUNT],
            status: 0,
            _pad: 0,
            cpu_us: 0,
            maxrss_kib: 0,
        }
    }

    /// Decodes a report from exactly [`Report::SIZE`] bytes.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Report> {
        if bytes.len() != Self::SIZE {
            return None;
        }
        let mut r = Report::empty();
        // SAFETY: `Report` is `repr(C)` plain old data (integers only, any bit pattern is
        // valid) and `bytes` has exactly its size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (&mut r as *mut Report).cast::<u8>(),
                Self::SIZE,
            );
        }
        Some(r)
    }

    fn ok(&mut self, bit: u32) {
        self.active |= bit;
    }

    fn fail(&mut self, bit: u32) {
        self.failed |= bit;
        let e = errno();
        let idx = bit.trailing_zeros() as usize;
        if idx < layer::COUNT {
            self.errnos[idx] = e;
        }
    }

    fn check(&mut self, bit: u32, rc: libc::c_long) -> bool {
        if rc < 0 {
            self.fail(bit);
            false
        } else {
            self.ok(bit);
            true
        }
    }
}

/// One Landlock path rule, prepared before the fork.
pub(crate) struct PathRule {
    pub path: CString,
    /// Allowed access for a directory; the file-applicable subset is used for files.
    pub access: u64,
}

/// Everything the child needs, computed before the fork.
pub(crate) struct ChildPlan {
    pub launcher_pid: libc::pid_t,
    pub status_fd: libc::c_int,
    /// The launcher runs as root: namespaces are created as real root and the program
    /// drops to `sandbox_uid`; otherwise an outer user namespace comes first.
    pub is_root: bool,
    pub sandbox_uid: libc::uid_t,
    pub sandbox_gid: libc::gid_t,
    /// `0 <uid> 1\n` / `0 <gid> 1\n` for the outer user namespace (non-root launcher).
    pub outer_uid_map: CString,
    pub outer_gid_map: CString,
    /// `1000 <uid> 1\n` / `1000 <gid> 1\n` for the program's user namespace.
    pub inner_uid_map: CString,
    pub inner_gid_map: CString,
    pub work_dir: CString,
    pub tmpfs_data: CString,
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t)>,
    pub landlock_abi: i32,
    pub landlock_rules: Vec<PathRule>,
    /// Seccomp filters, installed in order (each a `sock_filter` array).
    pub seccomp: Vec<Vec<libc::sock_filter>>,
    /// Layers disabled by configuration (bits of [`layer`]).
    pub skip: u32,
}

fn errno() -> i32 {
    // SAFETY: reading the thread-local errno is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

const PROC_SELF_SETGROUPS: &[u8] = b"/proc/self/setgroups\0";
const PROC_SELF_UID_MAP: &[u8] = b"/proc/self/uid_map\0";
const PROC_SELF_GID_MAP: &[u8] = b"/proc/self/gid_map\0";
const DENY: &[u8] = b"deny";

/// Writes `data` to the file at NUL-terminated `path`. Returns -1 on failure.
unsafe fn write_file(path: &[u8], data: &[u8]) -> libc::c_long {
    // SAFETY: `path` is NUL-terminated; plain system calls.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return -1;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n != data.len() as isize {
            *libc::__errno_location() = e;
            return -1;
        }
        0
    }
}

unsafe fn write_maps(uid_map: &CString, gid_map: &CString) -> libc::c_long {
    // SAFETY: constant NUL-terminated paths.
    unsafe {
        // `setgroups` may not exist on very old kernels; the gid map then needs no deny.
        let _ = write_file(PROC_SELF_SETGROUPS, DENY);
        if write_file(PROC_SELF_UID_MAP, uid_map.as_bytes()) < 0 {
            return -1;
        }
        write_file(PROC_SELF_GID_MAP, gid_map.as_bytes())
    }
}

unsafe fn send(fd: libc::c_int, r: &Report) {
    // SAFETY: `r` is plain old data of `Report::SIZE` bytes.
    unsafe {
        let _ = libc::write(fd, (r as *const Report).cast(), Report::SIZE);
    }
}

unsafe fn close_other_fds(keep: libc::c_int) -> libc::c_long {
    // SAFETY: close_range only closes descriptors.
    unsafe {
        let mut rc = 0;
        if keep > 3 {
            rc = libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        if rc == 0 {
            rc = libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
        }
        if rc < 0 {
            // Old kernel: close a bounded range one by one.
            for fd in 3..4096 {
                if fd != keep {
                    libc::close(fd);
                }
            }
            rc = 0;
        }
        rc
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;

unsafe fn mount_setattr(
    path: *const libc::c_char,
    flags: libc::c_uint,
    set: u64,
    clr: u64,
) -> libc::c_long {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid pointers for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path,
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    }
}

/// Landlock constants (uapi `linux/landlock.h`).
pub(crate) mod ll {
    pub const CREATE_RULESET_VERSION: u32 = 1;
    pub const RULE_PATH_BENEATH: u32 = 1;
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// Rights that apply to a regular file (the rest only make sense on directories).
    pub const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
    pub const NET_BIND_TCP: u64 = 1 << 0;
    pub const NET_CONNECT_TCP: u64 = 1 << 1;
    pub const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
    pub const SCOPE_SIGNAL: u64 = 1 << 1;

    /// Filesystem rights handled by a ruleset at Landlock ABI `abi`.
    pub fn handled_fs(abi: i32) -> u64 {
        match abi {
            i32::MIN..=0 => 0,
            1 => (1 << 13) - 1,
            2 => (1 << 14) - 1,
            3 | 4 => (1 << 15) - 1,
            _ => (1 << 16) - 1,
        }
    }
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Probes the Landlock ABI version (0 when unsupported). Safe to call anywhere.
pub(crate) fn landlock_abi() -> i32 {
    // SAFETY: the version query takes no pointers.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            ll::CREATE_RULESET_VERSION,
        )
    };
    if v < 0 { 0 } else { v as i32 }
}

unsafe fn apply_landlock(plan: &ChildPlan, rep: &mut Report) {
    let abi = plan.landlock_abi;
    rep.landlock_abi = abi;
    if abi <= 0 {
        rep.failed |= layer::LANDLOCK_FS | layer::LANDLOCK_NET | layer::LANDLOCK_SCOPE;
        let i = layer::LANDLOCK_FS.trailing_zeros() as usize;
        rep.errnos[i] = libc::ENOSYS;
        return;
    }
    let handled = ll::handled_fs(abi);
    let attr = RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: if abi >= 4 {
            ll::NET_BIND_TCP | ll::NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            ll::SCOPE_ABSTRACT_UNIX | ll::SCOPE_SIGNAL
        } else {
            0
        },
    };
    // SAFETY: raw Landlock system calls with valid, live pointers.
    unsafe {
        let rfd = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        );
        if rfd < 0 {
            rep.fail(layer::LANDLOCK_FS);
            return;
        }
        let rfd = rfd as libc::c_int;
        for rule in &plan.landlock_rules {
            let pfd = libc::open(rule.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if pfd < 0 {
                continue; // best effort: a listed path that does not exist is skipped
            }
            let mut st: libc::stat = std::mem::zeroed();
            let mut access = rule.access & handled;
            if libc::fstat(pfd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) != libc::S_IFDIR {
                access &= ll::FILE_RIGHTS;
            }
            let pb = PathBeneathAttr {
                allowed_access: access,
                parent_fd: pfd,
            };
            if access != 0 {
                let _ = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    rfd,
                    ll::RULE_PATH_BENEATH,
                    &pb as *const PathBeneathAttr,
                    0u32,
                );
            }
            libc::close(pfd);
        }
        if rep.check(
            layer::NO_NEW_PRIVS,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
        ) {
            let rc = libc::syscall(libc::SYS_landlock_restrict_self, rfd, 0u32);
            if rep.check(layer::LANDLOCK_FS, rc) {
                if abi >= 4 {
                    rep.ok(layer::LANDLOCK_NET);
                } else {
                    rep.failed |= layer::LANDLOCK_NET;
                    rep.errnos[layer::LANDLOCK_NET.trailing_zeros() as usize] = libc::EOPNOTSUPP;
                }
                if abi >= 6 {
                    rep.ok(layer::LANDLOCK_SCOPE);
                } else {
                    rep.failed |= layer::LANDLOCK_SCOPE;
                    rep.errnos[layer::LANDLOCK_SCOPE.trailing_zeros() as usize] = libc::EOPNOTSUPP;
                }
            }
        }
        libc::close(rfd);
    }
}

unsafe fn apply_seccomp(plan: &ChildPlan, rep: &mut Report) {
    if plan.seccomp.is_empty() {
        rep.failed |= layer::SECCOMP;
        rep.errnos[layer::SECCOMP.trailing_zeros() as usize] = libc::ENOSYS;
        return;
    }
    // SAFETY: the filters live in `plan` for the duration of the calls; the kernel copies them.
    unsafe {
        if !rep.check(
            layer::NO_NEW_PRIVS,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
        ) {
            return;
        }
        for prog in &plan.seccomp {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut _,
            };
            let rc = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &fprog as *const libc::sock_fprog,
            );
            if rc < 0 {
                rep.fail(layer::SECCOMP);
                rep.active &= !layer::SECCOMP;
                return;
            }
        }
        rep.ok(layer::SECCOMP);
    }
}

/// Entry point in the forked child. Returns only in the process that must `exec` the
/// program (G); P and C `_exit` here.
///
/// # Safety
/// Must be called only between `fork` and `exec` of a `Command` child (or in another
/// single-threaded freshly forked process). Uses only async-signal-safe system calls.
pub(crate) unsafe fn enter(plan: &ChildPlan) {
    let mut rep = Report::empty();
    let sfd = plan.status_fd;
    // SAFETY: raw system calls only; see the function's safety contract.
    unsafe {
        // ---- P ----
        rep.check(layer::SESSION, libc::setsid() as libc::c_long);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != plan.launcher_pid {
            libc::_exit(125);
        }
        rep.check(layer::CLOSE_FDS, close_other_fds(sfd));

        let all_ns = [
            (libc::CLONE_NEWNS, layer::MOUNT_NS),
            (libc::CLONE_NEWNET, layer::NET_NS),
            (libc::CLONE_NEWIPC, layer::IPC_NS),
            (libc::CLONE_NEWUTS, layer::UTS_NS),
            (libc::CLONE_NEWPID, layer::PID_NS),
        ];
        let mut flags = 0;
        let mut ns_bits = 0;
        for (f, bit) in all_ns {
            if plan.skip & bit == 0 {
                flags |= f;
                ns_bits |= bit;
            }
        }
        let mut outer_user = false;
        if !plan.is_root {
            flags |= libc::CLONE_NEWUSER;
        }
        if libc::unshare(flags) == 0 {
            outer_user = !plan.is_root;
            rep.active |= ns_bits;
        } else {
            // Weaker mode: take whatever the kernel grants, one namespace at a time.
            if !plan.is_root && libc::unshare(libc::CLONE_NEWUSER) == 0 {
                outer_user = true;
            }
            for (f, bit) in all_ns {
                if plan.skip & bit == 0 {
                    rep.check(bit, libc::unshare(f) as libc::c_long);
                }
            }
        }
        if outer_user && write_maps(&plan.outer_uid_map, &plan.outer_gid_map) < 0 {
            rep.fail(layer::USER_NS);
        }

        let c = libc::fork();
        if c < 0 {
            let mut r = rep;
            r.tag = TAG_FAILED;
            r.status = errno();
            send(sfd, &r);
            libc::_exit(126);
        }
        if c > 0 {
            // P holds no pipe: the launcher sees EOF as soon as C and G have closed theirs,
            // without waiting for the namespace teardown that runs when C exits.
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            let mut st = 0;
            while libc::waitpid(c, &mut st, 0) < 0 && errno() == libc::EINTR {}
            libc::_exit(0);
        }

        // ---- C (PID 1 of the new PID namespace when it exists) ----
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let work = plan.work_dir.as_ptr();
        if rep.active & layer::MOUNT_NS != 0 {
            let root = c"/".as_ptr();
            let private = libc::mount(
                std::ptr::null(),
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            );
            if private != 0 {
                // Without private propagation, mounts could leak to the host: skip them all.
                rep.fail(layer::READONLY_ROOT);
                rep.fail(layer::WORK_TMPFS);
            } else {
                let tmpfs = libc::mount(
                    c"grpo-work".as_ptr(),
                    work,
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    plan.tmpfs_data.as_ptr().cast(),
                );
                if !rep.check(layer::WORK_TMPFS, tmpfs as libc::c_long) {
                    libc::mount(
                        work,
                        work,
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                }
                let ro =
                    mount_setattr(root, AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0);
                if rep.check(layer::READONLY_ROOT, ro) {
                    let _ = mount_setattr(work, 0, 0, MOUNT_ATTR_RDONLY);
                }
                if rep.active & layer::PID_NS != 0 {
                    let p = libc::mount(
                        c"proc".as_ptr(),
                        c"/proc".as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    );
                    rep.check(layer::PROC, p as libc::c_long);
                }
            }
        }

        let g = libc::fork();
        if g < 0 {
            let mut r = rep;
            r.tag = TAG_FAILED;
            r.status = errno();
            send(sfd, &r);
            libc::_exit(126);
        }
        if g > 0 {
            let mut st = 0;
            let mut ru: libc::rusage = std::mem::zeroed();
            loop {
                let r = libc::wait4(-1, &mut st, 0, &mut ru);
                if r == g {
                    break;
                }
                if r < 0 && errno() != libc::EINTR {
                    break;
                }
            }
            let mut done = Report::empty();
            done.tag = TAG_EXITED;
            done.status = st;
            let tv = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
            done.cpu_us = tv(ru.ru_utime) + tv(ru.ru_stime);
            done.maxrss_kib = ru.ru_maxrss;
            send(sfd, &done);
            libc::_exit(0);
        }

        // ---- G (the program) ----
        let mut rl_ok = true;
        for &(res, soft, hard) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(res, &lim) != 0 {
                rl_ok = false;
                rep.fail(layer::RLIMITS);
            }
        }
        if rl_ok {
            rep.ok(layer::RLIMITS);
        }
        if plan.is_root {
            let gid = plan.sandbox_gid;
            let uid = plan.sandbox_uid;
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(gid, gid, gid) == 0
                && libc::setresuid(uid, uid, uid) == 0;
            if !ok {
                rep.fail(layer::UID_DROP);
                // Never run the program as root: give up.
                let mut r = rep;
                r.tag = TAG_FAILED;
                r.status = errno();
                send(sfd, &r);
                libc::_exit(126);
            }
            rep.ok(layer::UID_DROP);
            // A uid change clears the dumpable flag, which makes /proc/self/* root-owned and
            // the uid map unwritable; the program is still its own uid's only process.
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        }
        if plan.skip & layer::USER_NS != 0 {
            // disabled by configuration
        } else if libc::unshare(libc::CLONE_NEWUSER) == 0 {
            rep.check(
                layer::USER_NS,
                write_maps(&plan.inner_uid_map, &plan.inner_gid_map),
            );
        } else {
            rep.fail(layer::USER_NS);
        }
        if libc::chdir(work) != 0 {
            let mut r = rep;
            r.tag = TAG_FAILED;
            r.status = errno();
            send(sfd, &r);
            libc::_exit(126);
        }
        if plan.skip & layer::LANDLOCK_FS == 0 {
            apply_landlock(plan, &mut rep);
        }
        if plan.skip & layer::SECCOMP == 0 {
            apply_seccomp(plan, &mut rep);
        }
        rep.tag = TAG_READY;
        send(sfd, &rep);
        // Return: std now execs the interpreter (the status fd is close-on-exec).
    }
}

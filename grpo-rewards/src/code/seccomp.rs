//! The seccomp filters of the sandbox, compiled to BPF once (before any fork) with
//! `seccompiler`.
//!
//! Default action: allow. Denied with `EPERM`: debugging/introspection of other
//! processes, mounting and namespace changes, kernel keyrings, BPF, module loading,
//! kexec/reboot, swap, host name changes, `userfaultfd`, `io_uring`, `perf_event_open`,
//! kernel log access, file handles by inode, and `socket` for every family other than
//! `AF_UNIX`; `clone` with any namespace flag. A second filter makes `clone3` return
//! `ENOSYS` so the C library falls back to `clone`, whose flags the first filter can see.
//! A non-native architecture (e.g. x32/i386 system calls) kills the process.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls denied unconditionally.
fn denied() -> Vec<i64> {
    #![allow(clippy::unnecessary_cast)] // `c_long` is not `i64` on every target
    let mut v = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_syslog,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_mount_setattr,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_vhangup,
        libc::SYS_fanotify_init,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib]);
    v.into_iter().map(|s| s as i64).collect()
}

const NS_FLAGS: [u64; 7] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn cond(arg: u8, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v)
}

/// Builds the filters. `Err` carries a human-readable reason (unsupported architecture).
#[allow(clippy::unnecessary_cast)] // `c_long` is not `i64` on every target
pub(crate) fn build() -> Result<Vec<Vec<libc::sock_filter>>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let err = |e: seccompiler::BackendError| e.to_string();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for s in denied() {
        rules.insert(s, Vec::new());
    }
    rules.insert(
        libc::SYS_socket as i64,
        vec![
            SeccompRule::new(vec![
                cond(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64).map_err(err)?,
            ])
            .map_err(err)?,
        ],
    );
    let mut clone_rules = Vec::new();
    for f in NS_FLAGS {
        clone_rules.push(
            SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(f), f).map_err(err)?])
                .map_err(err)?,
        );
    }
    rules.insert(libc::SYS_clone as i64, clone_rules);
    let main = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let mut c3: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    c3.insert(libc::SYS_clone3 as i64, Vec::new());
    let clone3 = SeccompFilter::new(
        c3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    let a: BpfProgram = main
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let b: BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let raw = |p: BpfProgram| {
        p.into_iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect::<Vec<_>>()
    };
    Ok(vec![raw(a), raw(b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_on_this_arch() {
        let f = build().unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].len() > denied().len());
    }
}

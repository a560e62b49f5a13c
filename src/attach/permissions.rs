//! Work out *why* the kernel refuses to let zhw read a process, and say the fix.
//!
//! Reading another process's memory needs ptrace "attach" rights: the same
//! uid plus a permissive Yama `ptrace_scope`, or `CAP_SYS_PTRACE`. Operators
//! meet this as a bare "Permission denied"; this module turns it into one
//! sentence naming the missing piece (case 17 in shared/cases).

use std::fs;

/// The facts that decide ptrace permission, gathered from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct PtraceContext {
    /// Our real uid.
    pub our_uid: u32,
    /// Whether `CAP_SYS_PTRACE` is in our effective set.
    pub have_cap_sys_ptrace: bool,
    /// `kernel.yama.ptrace_scope`, if Yama is enabled.
    pub yama_scope: Option<u8>,
    /// Real uid of the target, if /proc tells it.
    pub target_uid: Option<u32>,
}

const CAP_SYS_PTRACE_BIT: u32 = 19;

impl PtraceContext {
    /// Read the context for `pid` from /proc; unreadable facts stay `None`/false.
    pub fn gather(pid: u32) -> PtraceContext {
        let own_status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let target_status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        PtraceContext {
            our_uid: status_uid(&own_status).unwrap_or_else(|| nix::unistd::getuid().as_raw()),
            have_cap_sys_ptrace: status_field(&own_status, "CapEff:")
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE_BIT) != 0),
            yama_scope: fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            target_uid: status_uid(&target_status),
        }
    }

    /// One sentence: what is missing and how to grant it.
    pub fn hint(&self) -> String {
        const GRANT: &str = "run zhw as root (sudo), or grant the capability with \
             `setcap cap_sys_ptrace+ep /path/to/zhw` (in a container: --cap-add SYS_PTRACE)";
        if self.yama_scope == Some(3) {
            return "kernel.yama.ptrace_scope is 3, which forbids reading any process until \
                    reboot; set it lower at boot"
                .to_string();
        }
        if self.have_cap_sys_ptrace {
            return "zhw has CAP_SYS_PTRACE but was still refused; the target may be in another \
                    container or user namespace, or an LSM (SELinux/AppArmor) denies ptrace"
                .to_string();
        }
        if self.our_uid == 0 {
            return format!(
                "zhw runs as root but without CAP_SYS_PTRACE (dropped from its capability set, as \
                 in a container started without --cap-add SYS_PTRACE); {GRANT}"
            );
        }
        match (self.target_uid, self.yama_scope) {
            (Some(target), _) if target != self.our_uid => format!(
                "the process belongs to uid {target} and zhw runs as uid {} without \
                 CAP_SYS_PTRACE; {GRANT}",
                self.our_uid
            ),
            (_, Some(2)) => format!(
                "kernel.yama.ptrace_scope is 2, so only CAP_SYS_PTRACE may read other \
                 processes; {GRANT}"
            ),
            (_, Some(1)) => format!(
                "kernel.yama.ptrace_scope is 1, so a user may only read its own child \
                 processes; {GRANT}, or set kernel.yama.ptrace_scope=0"
            ),
            _ => format!("missing CAP_SYS_PTRACE; {GRANT}"),
        }
    }
}

/// The value of one `/proc/…/status` field (`key` includes the colon).
pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
}

fn status_uid(status: &str) -> Option<u32> {
    status_field(status, "Uid:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(our_uid: u32, cap: bool, yama: Option<u8>, target: Option<u32>) -> PtraceContext {
        PtraceContext {
            our_uid,
            have_cap_sys_ptrace: cap,
            yama_scope: yama,
            target_uid: target,
        }
    }

    #[test]
    fn hints_name_the_missing_piece() {
        let rows = [
            (
                ctx(0, false, Some(1), Some(0)),
                "runs as root but without CAP_SYS_PTRACE",
            ),
            (
                ctx(1000, false, Some(1), Some(0)),
                "belongs to uid 0 and zhw runs as uid 1000",
            ),
            (ctx(1000, false, Some(1), Some(1000)), "ptrace_scope is 1"),
            (ctx(1000, false, Some(2), Some(1000)), "ptrace_scope is 2"),
            (ctx(1000, false, Some(3), Some(1000)), "ptrace_scope is 3"),
            (ctx(1000, true, Some(1), Some(0)), "another container"),
        ];
        for (context, expected) in rows {
            let hint = context.hint();
            assert!(hint.contains(expected), "{context:?} gave {hint:?}");
        }
    }

    #[test]
    fn every_fixable_hint_names_cap_sys_ptrace() {
        for uid in [0, 1000] {
            let hint = ctx(uid, false, Some(1), Some(0)).hint();
            assert!(hint.contains("setcap cap_sys_ptrace+ep"), "{hint}");
        }
    }

    #[test]
    fn parses_status_uid_and_caps() {
        let status = "Name:\tpython\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000080000\n";
        assert_eq!(status_uid(status), Some(1000));
        assert_eq!(status_field(status, "CapEff:"), Some("0000000000080000"));
    }
}

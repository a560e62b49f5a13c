//! Who zhw is acting for, when it runs with more rights than its caller.
//!
//! Under `sudo` or with `cap_sys_ptrace` set on the binary, zhw can read what
//! its caller cannot. Files named on the command line (pidfiles, the state
//! file) are then accepted only if the caller could use them anyway, so a
//! sudoers line for zhw is not a way to probe other users' files.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The unprivileged caller's uid when zhw runs elevated, else `None`.
///
/// Elevated means: effective root with `SUDO_UID` naming another user, or a
/// non-root real user holding effective capabilities (a file capability).
pub fn elevated_caller() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| crate::attach::status_field(&status, key);
    let mut uids = field("Uid:")?
        .split_whitespace()
        .map(|v| v.parse::<u32>().ok());
    let (real, effective) = (uids.next()??, uids.next()??);
    if effective == 0 {
        return std::env::var("SUDO_UID")
            .ok()
            .and_then(|uid| uid.parse::<u32>().ok())
            .filter(|uid| *uid != 0);
    }
    let capabilities = u64::from_str_radix(field("CapEff:")?, 16).ok()?;
    (real != 0 && capabilities != 0).then_some(real)
}

/// Whether `caller` may have zhw use a file: it is owned by root or by the
/// caller, or anyone may read it.
pub fn caller_may_use(metadata: &Metadata, caller: u32) -> bool {
    metadata.uid() == 0 || metadata.uid() == caller || metadata.mode() & 0o004 != 0
}

/// The refusal message (never includes file contents).
pub fn refusal(what: &str, path: &str, metadata: &Metadata, caller: u32) -> String {
    format!(
        "refusing {what} {path}: it belongs to uid {}, and zhw runs with elevated privileges \
         on behalf of uid {caller}, who may not use it",
        metadata.uid()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ownership_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.pid");
        std::fs::write(&file, "1").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let meta = std::fs::metadata(&file).expect("meta");
        let owner = meta.uid();
        assert!(caller_may_use(&meta, owner));
        if owner != 0 {
            return; // the rest needs a root-owned file
        }
        assert!(caller_may_use(&meta, 1000), "root-owned files are trusted");
        std::os::unix::fs::chown(&file, Some(4321), Some(4321)).expect("chown");
        let foreign = std::fs::metadata(&file).expect("meta");
        assert!(
            !caller_may_use(&foreign, 1000),
            "another user's private file"
        );
        assert!(caller_may_use(&foreign, 4321), "the caller's own file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            caller_may_use(&std::fs::metadata(&file).expect("meta"), 1000),
            "world-readable"
        );
    }
}

//! Fetch the source line of a frame, traceback style, without becoming a
//! file-reading oracle.
//!
//! File names come from target memory, and zhw often runs as root: a hostile
//! target could name `/etc/shadow` as a code object's file. So a line is shown
//! only from a regular `.py` file that the target could read anyway — owned by
//! the target's uid or world-readable — and no larger than a bound. Files are
//! looked up through `/proc/PID/root` (relative names through `/proc/PID/cwd`),
//! so containerised targets show their own sources.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// Source files larger than this are not read.
const MAX_SOURCE_BYTES: u64 = 4 * 1024 * 1024;
/// Source lines are cut to this many characters.
const MAX_LINE_CHARS: usize = 200;

/// Per-report cache of source files, keyed by (pid, path).
#[derive(Default)]
pub struct SourceCache {
    files: HashMap<(u32, String), Option<Vec<String>>>,
}

impl SourceCache {
    /// The trimmed line `line` (1-based) of `file` as process `pid` sees it.
    pub fn line(&mut self, pid: u32, file: &str, line: u32) -> Option<String> {
        let lines = self
            .files
            .entry((pid, file.to_string()))
            .or_insert_with(|| load(pid, file))
            .as_ref()?;
        let text = lines
            .get(usize::try_from(line).ok()?.checked_sub(1)?)?
            .trim();
        if text.is_empty() {
            return None;
        }
        Some(text.chars().take(MAX_LINE_CHARS).collect())
    }
}

fn load(pid: u32, file: &str) -> Option<Vec<String>> {
    if !file.ends_with(".py") || file.starts_with('<') {
        return None;
    }
    let target_uid = fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    // A relative name (a script started as `python app.py`) is relative to
    // the target's working directory, seen through /proc like the root.
    let path = if file.starts_with('/') {
        format!("/proc/{pid}/root{file}")
    } else {
        format!("/proc/{pid}/cwd/{file}")
    };
    // Check the file actually opened, not the name: the target may swap a
    // symlink between a check and an open. O_NONBLOCK: a FIFO must not hang.
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    let meta = opened.metadata().ok()?;
    let world_readable = meta.mode() & 0o004 != 0;
    if !meta.is_file()
        || meta.len() > MAX_SOURCE_BYTES
        || !(world_readable || meta.uid() == target_uid)
    {
        return None;
    }
    let mut bytes = Vec::new();
    opened.take(MAX_SOURCE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shows_only_files_the_target_could_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = std::process::id();
        let readable = dir.path().join("app.py");
        fs::write(&readable, "first\n    second line\n").expect("write");
        let mut cache = SourceCache::default();
        let name = readable.to_string_lossy().into_owned();
        assert_eq!(cache.line(me, &name, 2).as_deref(), Some("second line"));
        assert_eq!(cache.line(me, &name, 3), None);
        assert_eq!(cache.line(me, &name, 0), None);

        // Not .py, or a FIFO: never opened for display.
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "password\n").expect("write");
        assert_eq!(cache.line(me, &secret.to_string_lossy(), 1), None);
        let fifo = dir.path().join("fifo.py");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        assert_eq!(cache.line(me, &fifo.to_string_lossy(), 1), None);

        // A file of another owner that is not world-readable stays unread
        // (root-owned files only matter when tests run as another user).
        let private = dir.path().join("private.py");
        fs::write(&private, "hidden\n").expect("write");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).expect("chmod");
        let owner_is_me =
            fs::metadata(&private).expect("meta").uid() == nix::unistd::getuid().as_raw();
        let shown = cache.line(me, &private.to_string_lossy(), 1);
        assert_eq!(shown.is_some(), owner_is_me);
    }
}

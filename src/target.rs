//! Turn what the user named — a PID, a pidfile or a systemd unit — into a
//! live PID; [`matching`] finds processes by command line.
//!
//! Zope and buildout write `var/client1.pid`; naming the file instead of a
//! number keeps an NRPE command valid across restarts. Pidfiles are read with
//! a small bound and their contents never appear in an error message.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod matching;
mod unit;

/// The most of a pidfile zhw reads; a PID is at most 10 digits plus whitespace.
const PIDFILE_READ_LIMIT: u64 = 64;

/// A target as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A process id.
    Pid(u32),
    /// A file holding a process id.
    Pidfile(PathBuf),
    /// A word that looks like a process id but cannot be one (`-1`, `99999999999`).
    InvalidPid(String),
    /// The main process of a systemd unit (`--unit zope-client1`).
    Unit(String),
}

/// Why a target did not resolve to a live PID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// The pidfile does not exist.
    #[error("pidfile {path} not found (is the server running?)")]
    PidfileMissing { path: String },
    /// The pidfile exists but could not be read.
    #[error("cannot read pidfile {path}: {reason}")]
    PidfileUnreadable { path: String, reason: String },
    /// The pidfile does not hold a PID.
    #[error("pidfile {path} does not contain a process id")]
    PidfileMalformed { path: String },
    /// zhw runs elevated and the caller could not have read this pidfile.
    #[error("{message}")]
    Refused { message: String },
    /// A number that cannot be a process id.
    #[error("{word} is not a valid process id")]
    InvalidPid { word: String },
    /// The pidfile names a process that is not running.
    #[error("stale pidfile {path}: process {pid} is not running")]
    Stale { path: String, pid: u32 },
    /// The systemd unit has no running main process.
    #[error("unit {unit} has no running main process")]
    UnitNotRunning { unit: String },
    /// systemctl could not tell the unit's main PID.
    #[error("cannot resolve unit {unit}: {reason}")]
    UnitUnresolved { unit: String, reason: String },
    /// `--match` found no process.
    #[error("no process matches {pattern:?}")]
    NoMatch { pattern: String },
}

impl TargetError {
    /// Machine-readable kind for JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetError::PidfileMissing { .. } => "pidfile_missing",
            TargetError::PidfileUnreadable { .. } => "pidfile_unreadable",
            TargetError::PidfileMalformed { .. } => "pidfile_malformed",
            TargetError::Stale { .. } => "stale_pidfile",
            TargetError::InvalidPid { .. } => "invalid_pid",
            TargetError::Refused { .. } => "pidfile_refused",
            TargetError::UnitNotRunning { .. } => "unit_not_running",
            TargetError::UnitUnresolved { .. } => "unit_unresolved",
            TargetError::NoMatch { .. } => "no_match",
        }
    }

    /// A server that is down leaves a missing or stale pidfile.
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            TargetError::PidfileMissing { .. }
                | TargetError::Stale { .. }
                | TargetError::UnitNotRunning { .. }
                | TargetError::NoMatch { .. }
        )
    }
}

impl Target {
    /// Parse a command-line word: all digits is a PID, a signed or oversized
    /// number is an invalid PID, anything else a pidfile path.
    pub fn parse(word: &OsStr) -> Target {
        let Some(text) = word.to_str() else {
            return Target::Pidfile(PathBuf::from(word));
        };
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Target::Pidfile(PathBuf::from(text));
        }
        match text.parse::<u32>() {
            Ok(pid) if digits.len() == text.len() => Target::Pid(pid),
            _ => Target::InvalidPid(text.to_string()),
        }
    }

    /// The name shown in reports and perfdata labels: `pid 1234`, or the
    /// pidfile's stem (`client1`), with characters that would break a status
    /// line or a perfdata label (controls, `|`, `=`, quotes) replaced by `_`.
    pub fn display_name(&self) -> String {
        let name = match self {
            Target::Pid(pid) => return format!("pid {pid}"),
            Target::InvalidPid(word) => word.clone(),
            Target::Unit(unit) => unit.strip_suffix(".service").unwrap_or(unit).to_string(),
            Target::Pidfile(path) => path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .filter(|stem| !stem.is_empty())
                .unwrap_or_else(|| path.to_string_lossy().into_owned()),
        };
        crate::sanitize::label(&name)
    }

    /// The target as the user wrote it (lossy for non-UTF-8 paths).
    pub fn as_given(&self) -> String {
        match self {
            Target::Pid(pid) => pid.to_string(),
            Target::Pidfile(path) => path.to_string_lossy().into_owned(),
            Target::InvalidPid(word) => word.clone(),
            Target::Unit(unit) => format!("unit {unit}"),
        }
    }

    /// Resolve to a PID. A plain PID is returned as is (attach checks that it
    /// runs); a pidfile's PID must be running, else the pidfile is stale.
    pub fn resolve(&self) -> Result<u32, TargetError> {
        match self {
            Target::Pid(pid) => Ok(*pid),
            Target::InvalidPid(word) => Err(TargetError::InvalidPid { word: word.clone() }),
            Target::Unit(unit) => unit::main_pid(unit),
            Target::Pidfile(path) => {
                let pid = read_pidfile(path)?;
                if Path::new(&format!("/proc/{pid}")).exists() {
                    Ok(pid)
                } else {
                    Err(TargetError::Stale {
                        path: path.to_string_lossy().into_owned(),
                        pid,
                    })
                }
            }
        }
    }
}

fn read_pidfile(file_name: &Path) -> Result<u32, TargetError> {
    // Opened by the name as given, bytes and all (lossy only in messages).
    let shown = file_name.to_string_lossy().into_owned();
    let path = shown.as_str();
    let unreadable = |err: &std::io::Error| TargetError::PidfileUnreadable {
        path: path.into(),
        reason: io_reason(err),
    };
    // O_NONBLOCK: opening a FIFO planted where a pidfile should be must not
    // hang the check; the type is checked on the open file, not the name.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(file_name)
        .map_err(|err| match err.kind() {
            ErrorKind::NotFound => TargetError::PidfileMissing { path: path.into() },
            _ => unreadable(&err),
        })?;
    let metadata = file.metadata().map_err(|err| unreadable(&err))?;
    if !metadata.is_file() {
        return Err(TargetError::PidfileUnreadable {
            path: path.into(),
            reason: "not a regular file".into(),
        });
    }
    if let Some(caller) = crate::privilege::elevated_caller()
        && !crate::privilege::caller_may_use(&metadata, caller)
    {
        return Err(TargetError::Refused {
            message: crate::privilege::refusal("pidfile", path, &metadata, caller),
        });
    }
    let mut bytes = Vec::new();
    file.take(PIDFILE_READ_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|err| unreadable(&err))?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.split_whitespace().next())
        .filter(|word| word.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|word| word.parse::<u32>().ok())
        .filter(|pid| *pid > 0)
        .ok_or_else(|| TargetError::PidfileMalformed { path: path.into() })
}

/// The OS's reason without anything read from the file.
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    #[test]
    fn parse_words() {
        let parse = |w: &str| Target::parse(OsStr::new(w));
        assert_eq!(parse("1234"), Target::Pid(1234));
        assert_eq!(
            parse("var/client1.pid"),
            Target::Pidfile("var/client1.pid".into())
        );
        assert_eq!(parse("+12"), Target::InvalidPid("+12".into()));
        assert_eq!(parse("-1"), Target::InvalidPid("-1".into()));
        assert_eq!(
            parse("99999999999"),
            Target::InvalidPid("99999999999".into())
        );
        assert_eq!(parse("12a.pid"), Target::Pidfile("12a.pid".into()));
        assert_eq!(parse("var/client1.pid").display_name(), "client1");
        assert_eq!(parse("42").display_name(), "pid 42");
        assert_eq!(
            parse("/x/evil\u{1b}]0;| a=b'.pid").display_name(),
            "evil_]0;_ a_b_"
        );
        assert_eq!(
            parse("-1").resolve().map_err(|e| e.to_string()),
            Err("-1 is not a valid process id".into())
        );
    }

    #[test]
    fn pidfile_names_need_not_be_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let name = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"\xff\xfeodd.pid"));
        std::fs::write(&name, format!("{}\n", std::process::id())).expect("write");
        let target = Target::parse(name.as_os_str());
        assert_eq!(target.resolve(), Ok(std::process::id()));
    }

    #[test]
    fn pidfile_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

        let missing = Target::Pidfile(path("nope.pid").into());
        assert!(matches!(
            missing.resolve(),
            Err(TargetError::PidfileMissing { .. })
        ));

        let garbage = path("garbage.pid");
        File::create(&garbage)
            .and_then(|mut f| f.write_all(b"secret-token\n"))
            .expect("write");
        let err = Target::Pidfile(garbage.into())
            .resolve()
            .expect_err("malformed");
        assert!(matches!(err, TargetError::PidfileMalformed { .. }));
        assert!(
            !err.to_string().contains("secret"),
            "content must not leak: {err}"
        );

        let stale = path("stale.pid");
        File::create(&stale)
            .and_then(|mut f| f.write_all(b"4194303\n"))
            .expect("write");
        let err = Target::Pidfile(stale.into()).resolve().expect_err("stale");
        assert!(err.to_string().starts_with("stale pidfile"), "{err}");
        assert!(err.is_not_running());

        let fifo = path("fifo.pid");
        nix::unistd::mkfifo(fifo.as_str(), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let err = Target::Pidfile(fifo.into()).resolve().expect_err("fifo");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read pidfile {}: not a regular file",
                path("fifo.pid")
            )
        );
        let err = Target::Pidfile("/dev/zero".into())
            .resolve()
            .expect_err("device");
        assert!(matches!(err, TargetError::PidfileUnreadable { .. }));

        for content in ["", "123abc\n", "-5\n", "0\n", "\u{0}\u{1}garbage"] {
            let odd = path("odd.pid");
            std::fs::write(&odd, content).expect("write");
            let err = Target::Pidfile(odd.into()).resolve().expect_err(content);
            assert!(
                matches!(err, TargetError::PidfileMalformed { .. }),
                "{content:?}: {err}"
            );
        }

        let live = path("live.pid");
        File::create(&live)
            .and_then(|mut f| writeln!(f, "{}", std::process::id()))
            .expect("write");
        assert_eq!(
            Target::Pidfile(live.into()).resolve(),
            Ok(std::process::id())
        );
    }
}

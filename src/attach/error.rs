//! Why a target could not be inspected, decided once at the attach boundary.
//!
//! Callers branch on these (a process that is gone is CRITICAL in the Nagios
//! mapping, one that cannot be read is UNKNOWN), so they are a typed enum and
//! not strings. Each message names the PID and, where there is one, the fix.

use thiserror::Error;

/// A target that could not be sampled.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AttachError {
    /// No process with this PID exists.
    #[error("no such process: pid {pid} is not running")]
    NoSuchProcess { pid: u32 },
    /// The kernel refused to let zhw read the process; `hint` says what to change.
    #[error("permission denied reading pid {pid}: {hint}")]
    PermissionDenied { pid: u32, hint: String },
    /// The process runs, but no CPython interpreter was found in it.
    #[error("pid {pid} is not a Python process ({detail})")]
    NotPython { pid: u32, detail: String },
    /// A CPython zhw cannot read (too old, too new, or an unknown build).
    #[error("pid {pid} runs an unsupported Python: {detail}")]
    Unsupported { pid: u32, detail: String },
    /// The process went away while zhw was reading it.
    #[error("pid {pid} exited while being inspected")]
    Exited { pid: u32 },
    /// Another tracer (a debugger, strace, a concurrent `zhw --blocking`)
    /// holds the process; ptrace allows only one.
    #[error(
        "pid {pid} is already being traced by pid {tracer} (a debugger, strace, or another \
         zhw --blocking); retry later, or drop --blocking"
    )]
    AlreadyTraced { pid: u32, tracer: u32 },
    /// Anything else, with the reader's own explanation.
    #[error("could not read pid {pid}: {detail}")]
    Failed { pid: u32, detail: String },
}

impl AttachError {
    /// True when the target is simply not running (as opposed to unreadable).
    ///
    /// The Nagios mapping reports a missing process as CRITICAL and an
    /// uninspectable one as UNKNOWN.
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            AttachError::NoSuchProcess { .. } | AttachError::Exited { .. }
        )
    }
}

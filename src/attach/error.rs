//! Why a target could not be inspected, decided once at the attach boundary.
//!
//! Callers branch on these (a process that is gone is CRITICAL in the Nagios
//! mapping, one that cannot be read is UNKNOWN), so they are a typed enum and
//! not strings. Each message names the PID and, where there is one, the fix.

use thiserror::Error;

/// A target that could not be sampled.
#[derive(Debug, Clone, Error, PartialEq)]
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
    /// Sampling did not finish within the deadline.
    #[error("timed out after {seconds}s inspecting pid {pid}")]
    Timeout { pid: u32, seconds: f64 },
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

//! zhw's own picture of one sampled process: what was read, nothing decided.
//!
//! A [`Snapshot`] is the only thing [`crate::attach`] hands to the rest of the
//! pipeline. It deliberately does not reuse py-spy's types, so recorded
//! snapshots (JSON files under `tests/fixtures/`) stay stable when the crate
//! changes, and classification can be tested without any process.

use serde::{Deserialize, Serialize};

/// Everything read from one target process in one sample.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Host PID of the target.
    pub pid: u32,
    /// Python version as read from the interpreter, e.g. `3.12.1`.
    pub python_version: String,
    /// Every Python thread the interpreter knows of, in interpreter order.
    pub threads: Vec<ThreadSample>,
    /// Facts about the process as the OS sees it (memory, CPU, age).
    #[serde(default)]
    pub process: ProcessFacts,
    /// How the stacks were read.
    #[serde(default)]
    pub sampling: SamplingFacts,
    /// Things that went partly wrong while reading, kept as data.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One Python thread's stack and OS-level state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThreadSample {
    /// Python's thread id (`threading.get_ident()`; the `pthread_t` on Linux).
    pub thread_id: u64,
    /// The kernel thread id, where it could be established.
    pub os_thread_id: Option<u32>,
    /// `threading.Thread.name`, where Python knows one.
    pub name: Option<String>,
    /// Whether the OS shows the thread on a CPU (`R`) or waiting; `None` if unknown.
    pub on_cpu: Option<bool>,
    /// Whether this thread held the GIL when sampled.
    pub holds_gil: bool,
    /// Running, waiting for the GIL, or blocked — the OS and interpreter
    /// view, decided in `attach::activity`; `None` in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// The activity in words: "waiting for the GIL", "sleeping (clock_nanosleep)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_detail: Option<String>,
    /// True for the process's main thread.
    pub is_main: bool,
    /// True when two consecutive reads of this stack agreed (see docs/explanation/sampling.md).
    #[serde(default = "default_true")]
    pub stack_consistent: bool,
    /// Python frames, innermost first (as py-spy returns them). A stack
    /// deeper than [`KEPT_FRAMES`] keeps its innermost and outermost frames
    /// only; `elided` says how many were left out between them.
    pub frames: Vec<Frame>,
    /// Python frames read but not kept, in the middle of a very deep stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elided: Option<ElidedFrames>,
    /// The stack is deeper than zhw walks ([`MAX_FRAME_WALK`] frames): its
    /// outermost frames were never read, so the last of `frames` is not the
    /// thread's first call, and a pool's worker loop may be among the unread.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frames_cut: bool,
    /// The request this thread is serving, read from the target's memory
    /// (WSGI `environ` or ZPublisher request); `None` when none was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestInfo>,
}

impl Default for ThreadSample {
    /// A thread with nothing known yet: no ids, no frames, consistent.
    fn default() -> Self {
        ThreadSample {
            thread_id: 0,
            os_thread_id: None,
            name: None,
            on_cpu: None,
            holds_gil: false,
            activity: None,
            activity_detail: None,
            is_main: false,
            stack_consistent: true,
            frames: Vec::new(),
            elided: None,
            frames_cut: false,
            request: None,
        }
    }
}

/// What a thread is doing at the OS level when sampled. Not busy or idle:
/// a worker blocked on a lock inside a request is busy but `Waiting`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// On a CPU, runnable, holding the GIL, or waiting only for the GIL:
    /// the thread wants to run Python.
    Active,
    /// Blocked: asleep, on a lock or condition, on I/O.
    Waiting,
    /// The whole process is stopped (SIGSTOP, a debugger): nothing runs.
    Stopped,
}

/// What a busy worker is serving, as read out of the target. Every value is
/// untrusted text from the target: renderers sanitize or escape it, and
/// secret query parameters are already replaced by `***` when it is built.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestInfo {
    /// HTTP method (`GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path without the query string (`/site/edit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query string with secret parameters redacted (`user=bob&password=***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Host header / server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// User-Agent header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Client address (`REMOTE_ADDR`, or the first `X-Forwarded-For` hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Address of the request object (environ dict or request instance) in
    /// the target: the same request seen in two samples has the same address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<u64>,
    /// What was cut while reading it (a huge dict, a 10 MB path), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// Where and how many frames of a deep stack were left out: `frames[..after]`
/// are the innermost frames, then `count` frames were read and dropped, then
/// `frames[after..]` follow. Keeping both ends bounds memory and output while
/// the frames that decide a thread's state (its innermost calls) and role
/// (its worker loop, near the outermost) stay visible.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElidedFrames {
    /// How many innermost frames come before the gap.
    pub after: usize,
    /// How many Python frames the gap stands for.
    pub count: u64,
}

/// Frames one thread keeps at most: the innermost and outermost halves of a
/// deeper stack (the reader's `KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES`).
pub const KEPT_FRAMES: usize = 4096;
/// Frames of one thread walked at most (the reader's `MAX_FRAME_WALK`).
pub const MAX_FRAME_WALK: usize = 65_536;

fn default_true() -> bool {
    true
}

/// One Python frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Function name as the code object names it (qualified on 3.11+).
    pub function: String,
    /// Source file as the code object names it.
    pub file: String,
    /// Line being executed, 0 if unknown.
    pub line: u32,
    /// The frame's local variables, read only with `--locals` and only for
    /// busy workers; secret-looking names show `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locals: Option<Vec<Local>>,
}

/// One local variable of a frame (`--locals`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Local {
    /// The variable's name.
    pub name: String,
    /// A bounded, Python-like repr read from the target (untrusted text:
    /// renderers sanitize it), or `***` when the name looks secret.
    pub repr: String,
}

/// What the OS says about the process as a whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcessFacts {
    /// Resident set size in bytes.
    pub rss_bytes: Option<u64>,
    /// Average CPU use since the process started, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// OS threads (Python or not).
    pub threads: Option<u64>,
    /// Seconds since the process started.
    pub uptime_seconds: Option<f64>,
    /// The process's command line, control characters removed at render time.
    pub command: Option<String>,
    /// Start time in clock ticks since boot: with the PID, identifies the
    /// process across runs (a restarted server has a new one).
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// Stopped (SIGSTOP, job control, a debugger) when sampled: no worker
    /// can serve a request until it is continued.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// How one sample was taken, for the curious and for benchmarks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SamplingFacts {
    /// `nonblocking-validated` (default) or `blocking`.
    pub mode: String,
    /// How many full passes over the thread list were made.
    pub reads: u32,
    /// Wall time spent reading, in seconds.
    pub duration_seconds: f64,
    /// Wall time spent afterwards reading busy workers' requests (and
    /// `--locals`), in seconds; 0 when nothing was read.
    #[serde(default)]
    pub details_seconds: f64,
}

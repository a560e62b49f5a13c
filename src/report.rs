//! The facts of one check: per target, every thread with its role, state,
//! reason and stack, the worker counts, and the process and system figures.
//!
//! Every output (text, JSON) is rendered from this one model. It holds no
//! judgement: thresholds and statuses are [`crate::policy`]'s business, so a
//! metrics endpoint or a dump needs no thresholds.

use serde::Serialize;

use crate::classify::{Classification, Role, State};
use crate::model::{
    Activity, ElidedFrames, Frame, ProcessFacts, RequestInfo, SamplingFacts, Snapshot,
};
use crate::policy::Counts;

/// Version of the JSON document layout (docs/reference/json.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `zhw check` or `zhw dump` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Facts about the host.
    pub system: SystemFacts,
    /// Problems of the run itself (an unusable state file), not of a target.
    pub warnings: Vec<String>,
    /// One entry per target, in the order given.
    pub targets: Vec<TargetReport>,
}

/// The host's figures, as the original's Information block showed them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemFacts {
    /// Local time of the check, ISO 8601.
    pub time: String,
    /// 1, 5 and 15 minute load averages.
    pub loadavg: Option<[f64; 3]>,
    /// `/proc/loadavg` as read.
    pub loadavg_raw: Option<String>,
    /// Memory totals.
    pub memory: Option<MemoryFacts>,
    /// `/proc/meminfo` as read (the original printed it whole).
    #[serde(skip)]
    pub meminfo_raw: Option<String>,
}

/// Memory figures from /proc/meminfo.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryFacts {
    /// MemTotal in bytes.
    pub total_bytes: u64,
    /// MemAvailable in bytes.
    pub available_bytes: u64,
}

/// One target: what the user named, and either an inspection or why not.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Display name: the pidfile's stem (`client1`) or `pid N`.
    pub name: String,
    /// The target as given on the command line.
    pub target: String,
    /// Host PID, once resolved.
    pub pid: Option<u32>,
    /// Present when the target could not be inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetError>,
    /// Present when it could.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub inspection: Option<Inspection>,
    /// Read from a live process (so its source files may be shown), not a recording.
    #[serde(skip)]
    pub live: bool,
    /// Given with `--optional`: its absence does not change the status.
    pub optional: bool,
    /// Worker-pool size this process had in earlier runs (`--state-file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remembered_workers: Option<u64>,
}

/// Why a target could not be inspected.
#[derive(Debug, Clone, Serialize)]
pub struct TargetError {
    /// Machine-readable kind (`no_such_process`, `permission_denied`, …).
    pub kind: &'static str,
    /// The whole explanation, including the fix where there is one.
    pub message: String,
    /// True when the process is simply not running (CRITICAL under `--exit-codes nagios`).
    pub not_running: bool,
}

/// A successfully read target.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// CPython version of the target.
    pub python_version: String,
    /// Server profile used to classify.
    pub profile: &'static str,
    /// Why that profile.
    pub profile_reason: String,
    /// Worker and thread counts.
    pub stats: Stats,
    /// OS figures for the process.
    pub process: ProcessFacts,
    /// How the stacks were read.
    pub sampling: SamplingFacts,
    /// Every Python thread.
    pub threads: Vec<ThreadReport>,
    /// Partial problems while reading.
    pub warnings: Vec<String>,
    /// Why the worker counts may be short, when they may be: a stack so
    /// deep that its outermost frames (where a worker loop sits) were not
    /// read. The status line says so (see [`crate::policy::evaluate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// Counts per target. `total_threads` counts worker threads only (as the
/// original's Idle/Busy did), service threads are counted apart.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Worker threads.
    pub total_threads: u64,
    /// Workers handling a request.
    pub busy_count: u64,
    /// Workers waiting for one.
    pub idle_count: u64,
    /// Threads that are not workers.
    pub service_count: u64,
}

impl Stats {
    /// The counts the status rules look at.
    pub fn counts(&self) -> Counts {
        Counts {
            busy: self.busy_count,
            idle: self.idle_count,
        }
    }
}

/// Whether the OS has a thread on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cpu {
    /// Runnable or running (`R`).
    Running,
    /// Sleeping, blocked, or stopped.
    Waiting,
}

/// One Python thread, classified.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadReport {
    /// Python thread id.
    pub thread_id: u64,
    /// Kernel thread id, if known.
    pub os_thread_id: Option<u32>,
    /// Thread name, if Python knows one.
    pub name: Option<String>,
    /// Worker or service.
    pub role: Role,
    /// Busy or idle.
    pub state: State,
    /// Why.
    pub reason: String,
    /// OS scheduler view; `None` where unknown.
    pub cpu: Option<Cpu>,
    /// Held the GIL when sampled.
    pub holds_gil: bool,
    /// Active (running, or waiting only for the GIL), waiting (asleep, on
    /// a lock, on I/O) or stopped; `null` where unknown. What the OS and
    /// the interpreter say, apart from busy/idle (a busy worker blocked on
    /// a lock is `waiting`).
    pub activity: Option<Activity>,
    /// The activity in words ("waiting for the GIL", "sleeping (clock_nanosleep)").
    pub activity_detail: Option<String>,
    /// The process's main thread.
    pub is_main: bool,
    /// Two reads of the stack agreed.
    pub stack_consistent: bool,
    /// Frames, innermost first; of a very deep stack, both ends only.
    pub frames: Vec<Frame>,
    /// Frames left out in the middle of a very deep stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elided: Option<ElidedFrames>,
    /// The stack was deeper than zhw walks; its outermost frames are unread.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub frames_cut: bool,
    /// The request a busy worker is serving, where it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestInfo>,
    /// Lower bound, in seconds, of how long this worker has been on its
    /// current request: known only across several samples (`zhw serve`,
    /// `zhw check --samples`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy_seconds: Option<f64>,
    /// Same request and same innermost line in every sample that saw it
    /// busy (several samples needed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stuck: bool,
}

impl ThreadReport {
    /// The short words shown beside a thread in text and HTML: its activity
    /// ("active: waiting for the GIL", "sleeping (clock_nanosleep)",
    /// "waiting on a lock or condition", "stopped"), or, in recordings made before activity was read, the
    /// scheduler's view; then "main". A dump's header line says "active"
    /// exactly for the threads that want the CPU.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        match (self.activity, &self.activity_detail) {
            (Some(Activity::Stopped), _) => flags.push("stopped".to_string()),
            (Some(Activity::Active), Some(detail)) => flags.push(format!("active: {detail}")),
            (Some(Activity::Active), None) => flags.push("active".to_string()),
            // A wait's words start with what it does ("sleeping (…)", "waiting for I/O (…)").
            (Some(Activity::Waiting), detail) => {
                flags.push(detail.clone().unwrap_or_else(|| "waiting".to_string()))
            }
            (None, _) => {
                match self.cpu {
                    Some(Cpu::Running) => flags.push("on CPU".to_string()),
                    Some(Cpu::Waiting) => flags.push("waiting".to_string()),
                    None => {}
                }
                if self.holds_gil {
                    flags.push("holds GIL".to_string());
                }
            }
        }
        if self.is_main {
            flags.push("main".to_string());
        }
        flags
    }
}

impl TargetReport {
    /// A target that was read and classified.
    pub fn inspected(
        name: String,
        target: String,
        snapshot: Snapshot,
        classes: Classification,
    ) -> Self {
        let mut warnings = snapshot.warnings;
        warnings.extend(snapshot.threads.iter().filter_map(deep_stack_warning));
        let threads: Vec<ThreadReport> = snapshot
            .threads
            .into_iter()
            .zip(classes.threads)
            .map(|(thread, verdict)| ThreadReport {
                thread_id: thread.thread_id,
                os_thread_id: thread.os_thread_id,
                name: thread.name,
                role: verdict.role,
                state: verdict.state,
                reason: verdict.reason,
                cpu: thread
                    .on_cpu
                    .map(|on| if on { Cpu::Running } else { Cpu::Waiting }),
                holds_gil: thread.holds_gil,
                activity: thread.activity,
                activity_detail: thread.activity_detail,
                is_main: thread.is_main,
                stack_consistent: thread.stack_consistent,
                frames: thread.frames,
                elided: thread.elided,
                frames_cut: thread.frames_cut,
                request: thread.request,
                busy_seconds: None,
                stuck: false,
            })
            .collect();
        let workers = || threads.iter().filter(|t| t.role == Role::Worker);
        let stats = Stats {
            total_threads: workers().count() as u64,
            busy_count: workers().filter(|t| t.state == State::Busy).count() as u64,
            idle_count: workers().filter(|t| t.state == State::Idle).count() as u64,
            service_count: threads.iter().filter(|t| t.role == Role::Service).count() as u64,
        };
        let cut = threads.iter().filter(|t| t.frames_cut).count();
        let incomplete = (cut > 0).then(|| {
            let at = group(crate::model::MAX_FRAME_WALK as u64);
            if cut == 1 {
                format!("1 stack cut at {at} frames, its thread may be an uncounted worker")
            } else {
                format!("{cut} stacks cut at {at} frames, their threads may be uncounted workers")
            }
        });
        if stats.total_threads == 0 {
            warnings.push(format!(
                "no worker threads found with profile {}; is this a threaded server?",
                classes.profile.name
            ));
        }
        TargetReport {
            name,
            target,
            pid: Some(snapshot.pid),
            error: None,
            live: false,
            optional: false,
            remembered_workers: None,
            inspection: Some(Inspection {
                python_version: snapshot.python_version,
                profile: classes.profile.name,
                profile_reason: classes.profile_reason,
                stats,
                process: snapshot.process,
                sampling: snapshot.sampling,
                threads,
                warnings,
                incomplete,
            }),
        }
    }

    /// A target that could not be inspected.
    pub fn failed(name: String, target: String, pid: Option<u32>, error: TargetError) -> Self {
        TargetReport {
            name,
            target,
            pid,
            error: Some(error),
            inspection: None,
            live: false,
            optional: false,
            remembered_workers: None,
        }
    }
}

/// What a deep stack lost, in one sentence; `None` for a stack kept whole.
fn deep_stack_warning(thread: &crate::model::ThreadSample) -> Option<String> {
    let who = match &thread.name {
        Some(name) => format!("thread {:#x} ({name})", thread.thread_id),
        None => format!("thread {:#x}", thread.thread_id),
    };
    let kept = thread.frames.len();
    let inner = thread.elided.map_or(kept, |gap| gap.after);
    let outer = kept - inner;
    let left_out = thread.elided.map_or(0, |gap| gap.count);
    if thread.frames_cut {
        return Some(format!(
            "{who}: stack deeper than {} frames, cut there: the frames beyond (its outermost, \
             where a worker loop would be) were not read; {} innermost and {} at the cut are \
             kept, {} between them left out",
            group(crate::model::MAX_FRAME_WALK as u64),
            group(inner as u64),
            group(outer as u64),
            group(left_out)
        ));
    }
    let gap = thread.elided?;
    Some(format!(
        "{who}: stack of {} Python frames; the middle {} left out (innermost {} and \
         outermost {} kept)",
        group(kept as u64 + gap.count),
        group(gap.count),
        group(inner as u64),
        group(outer as u64)
    ))
}

/// 12345 → `12,345`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl SystemFacts {
    /// Read time, load and memory of this host now. Missing facts stay `None`.
    pub fn read() -> SystemFacts {
        let loadavg_raw = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.trim().to_string());
        let loadavg = loadavg_raw.as_deref().and_then(|raw| {
            let mut fields = raw.split_whitespace().map(|f| f.parse::<f64>().ok());
            Some([fields.next()??, fields.next()??, fields.next()??])
        });
        let meminfo_raw = std::fs::read_to_string("/proc/meminfo").ok();
        let kib = |key: &str| -> Option<u64> {
            meminfo_raw
                .as_deref()?
                .lines()
                .find_map(|line| line.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|v| v.saturating_mul(1024))
        };
        let memory = match (kib("MemTotal:"), kib("MemAvailable:")) {
            (Some(total_bytes), Some(available_bytes)) => Some(MemoryFacts {
                total_bytes,
                available_bytes,
            }),
            _ => None,
        };
        SystemFacts {
            time: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            loadavg,
            loadavg_raw,
            memory,
            meminfo_raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ThreadSample;
    use crate::policy::{CheckPolicy, Status, evaluate};

    fn frame(function: &str, file: &str) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line: 1,
            locals: None,
        }
    }

    fn thread(id: u64, frames: Vec<Frame>) -> ThreadSample {
        ThreadSample {
            thread_id: id,
            frames,
            ..ThreadSample::default()
        }
    }

    const THREADING: &str = "/usr/lib/python3.12/threading.py";

    /// A generic pool: one idle worker, one busy one whose stack is 5000
    /// deep (elided) or deeper than the walk (cut), and the main thread.
    fn target(name: &str, cut: bool) -> TargetReport {
        let mut deep = thread(2, vec![frame("descend", "/srv/app.py"); 4096]);
        deep.elided = Some(ElidedFrames {
            after: 2048,
            count: if cut { 61_440 } else { 904 },
        });
        deep.frames_cut = cut;
        let mut main = thread(3, vec![frame("<module>", "/srv/app.py")]);
        main.is_main = true;
        let snapshot = Snapshot {
            pid: 1,
            python_version: "3.12.1".into(),
            threads: vec![thread(1, vec![frame("Event.wait", THREADING)]), deep, main],
            process: Default::default(),
            sampling: Default::default(),
            warnings: vec![],
        };
        let classes = crate::classify::classify(&snapshot, None, &[]);
        TargetReport::inspected(name.into(), name.into(), snapshot, classes)
    }

    fn report(targets: Vec<TargetReport>) -> Report {
        Report {
            system: SystemFacts::default(),
            warnings: vec![],
            targets,
        }
    }

    #[test]
    fn a_deep_stack_is_a_warning_and_still_a_complete_read() {
        let elided = target("client1", false);
        let inspection = elided.inspection.as_ref().expect("inspected");
        assert_eq!(inspection.incomplete, None);
        assert_eq!(
            inspection.warnings,
            [
                "thread 0x2: stack of 5,000 Python frames; the middle 904 left out (innermost \
              2,048 and outermost 2,048 kept)"
            ]
        );
        let eval = evaluate(&report(vec![elided]), &CheckPolicy::default());
        assert_eq!(eval.verdict.status, Status::Ok);
        assert_eq!(eval.verdict.message, "Everything looks fine");
    }

    /// A cut stack may hide a worker: the status is what the read part
    /// gives, and the status line says the read was partial.
    #[test]
    fn a_cut_stack_makes_the_status_line_say_incomplete() {
        let cut = target("client1", true);
        let inspection = cut.inspection.as_ref().expect("inspected");
        assert_eq!(
            inspection.incomplete.as_deref(),
            Some("1 stack cut at 65,536 frames, its thread may be an uncounted worker")
        );
        assert!(
            inspection.warnings[0].starts_with(
                "thread 0x2: stack deeper than 65,536 frames, cut there: the frames beyond"
            ),
            "{:?}",
            inspection.warnings
        );
        let alone = report(vec![cut]);
        let eval = evaluate(&alone, &CheckPolicy::default());
        let mut metrics = Vec::new();
        crate::render::prometheus::write(&mut metrics, &alone, &eval, &[]).expect("metrics");
        let metrics = String::from_utf8(metrics).expect("utf-8");
        assert!(
            metrics.contains("zhw_read_incomplete{target=\"client1\"} 1\n"),
            "{metrics}"
        );
        assert_eq!(eval.verdict.status, Status::Ok);
        assert_eq!(
            eval.verdict.message,
            "Everything looks fine [incomplete read: 1 stack cut at 65,536 frames, its thread \
             may be an uncounted worker]"
        );

        // Another target decides the status: the line still names the partial one.
        let mut policy = CheckPolicy::default();
        policy.thresholds.warning = Some(crate::threshold::Range::above(0));
        let both = report(vec![target("client1", true), target("client2", false)]);
        let eval = evaluate(&both, &policy);
        assert_eq!(eval.verdict.status, Status::Warning);
        assert!(
            eval.verdict.message.contains("[incomplete read: "),
            "{}",
            eval.verdict.message
        );
        let alone = report(vec![target("client2", false), target("client3", false)]);
        assert!(
            !evaluate(&alone, &policy)
                .verdict
                .message
                .contains("incomplete")
        );
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(4096), "4,096");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}

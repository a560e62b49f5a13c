//! Follow each worker's request across samples: how long it has been on it
//! (a lower bound), whether it is stuck, when to log it as a long request,
//! and how large the worker pool has been (so a shrunk pool means workers died).
//!
//! Pure bookkeeping over [`TargetReport`]s and instants handed in by the
//! caller (`zhw serve`'s scheduler, `zhw check --samples`); it never reads a
//! process or a clock itself, so every rule is tested with made-up times.
//!
//! The same request is recognised by the request object's address where
//! attach could read one ([`crate::model::RequestInfo::identity`]); without
//! it, a worker seen busy in consecutive samples is taken to be on the same
//! request. That can only over-estimate a duration when a worker finishes one
//! request and starts the next between two samples, which is why the
//! figure is reported as "at least" only when the identity is known.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::classify::{Role, State};
use crate::model::Frame;
use crate::report::{TargetReport, ThreadReport};

/// One process across restarts of zhw's view of it: a restarted server has
/// the same PID only by accident, never the same start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    /// Host PID.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: Option<u64>,
}

impl ProcessKey {
    /// The key of an inspected target, if it has a PID.
    pub fn of(target: &TargetReport) -> Option<ProcessKey> {
        Some(ProcessKey {
            pid: target.pid?,
            start_ticks: target
                .inspection
                .as_ref()
                .and_then(|i| i.process.start_ticks),
        })
    }
}

/// A worker that has been on one request for at least the long-request limit.
#[derive(Debug, Clone)]
pub struct LongRequest {
    /// The target's display name.
    pub target: String,
    /// Its PID.
    pub pid: u32,
    /// The thread as last sampled (request, stack, duration).
    pub thread: ThreadReport,
    /// False for the first log line about this request, true for the repeats.
    pub repeated: bool,
}

/// Per-process memory of ongoing requests and pool size.
#[derive(Debug)]
pub struct Tracker {
    long_request: Option<Duration>,
    stuck_after: u32,
    processes: HashMap<ProcessKey, ProcessTrack>,
}

#[derive(Debug, Default)]
struct ProcessTrack {
    /// Largest worker pool seen for this process.
    max_workers: u64,
    /// Busy workers by Python thread id.
    ongoing: HashMap<u64, Ongoing>,
}

#[derive(Debug)]
struct Ongoing {
    identity: Option<u64>,
    first_seen: Instant,
    innermost: Option<Frame>,
    same_line: bool,
    samples: u32,
    next_log: Option<Instant>,
}

impl Tracker {
    /// A tracker that reports requests longer than `long_request` (if any).
    pub fn new(long_request: Option<Duration>) -> Tracker {
        Tracker {
            long_request,
            stuck_after: 2,
            processes: HashMap::new(),
        }
    }

    /// Call a worker stuck only once it was seen on the same request and
    /// line in at least `samples` samples (`zhw check --samples N` asks for
    /// all N; the sidecar for 2).
    pub fn stuck_after(mut self, samples: u32) -> Tracker {
        self.stuck_after = samples.max(2);
        self
    }

    /// Take in one sample of a target taken at `now`: fill
    /// in each busy worker's `busy_seconds` and `stuck`, the target's
    /// `remembered_workers`, and return the long requests due for logging.
    pub fn observe(&mut self, target: &mut TargetReport, now: Instant) -> Vec<LongRequest> {
        let Some(key) = ProcessKey::of(target) else {
            return Vec::new();
        };
        let (name, pid) = (target.name.clone(), key.pid);
        let Some(inspection) = target.inspection.as_mut() else {
            return Vec::new();
        };
        let track = self.processes.entry(key).or_default();
        let workers = inspection.stats.total_threads;
        if track.max_workers > 0 {
            target.remembered_workers = Some(track.max_workers);
        }
        track.max_workers = track.max_workers.max(workers);

        let mut due = Vec::new();
        let mut still_busy = HashMap::with_capacity(track.ongoing.len());
        for thread in &mut inspection.threads {
            if thread.role != Role::Worker || thread.state != State::Busy {
                continue;
            }
            let identity = thread.request.as_ref().and_then(|r| r.identity);
            let innermost = thread.frames.first().cloned();
            let mut ongoing = match track.ongoing.remove(&thread.thread_id) {
                Some(previous) if previous.identity == identity => Ongoing {
                    same_line: previous.same_line && previous.innermost == innermost,
                    samples: previous.samples.saturating_add(1),
                    innermost,
                    ..previous
                },
                _ => Ongoing {
                    identity,
                    first_seen: now,
                    innermost,
                    same_line: true,
                    samples: 1,
                    next_log: None,
                },
            };
            let busy_for = now.saturating_duration_since(ongoing.first_seen);
            thread.busy_seconds = Some(busy_for.as_secs_f64());
            thread.stuck = ongoing.samples >= self.stuck_after && ongoing.same_line;
            if let Some(limit) = self.long_request
                && busy_for >= limit
                && ongoing.next_log.is_none_or(|at| now >= at)
            {
                due.push(LongRequest {
                    target: name.clone(),
                    pid,
                    thread: thread.clone(),
                    repeated: ongoing.next_log.is_some(),
                });
                ongoing.next_log = Some(now + limit);
            }
            still_busy.insert(thread.thread_id, ongoing);
        }
        // Workers that went idle (or vanished) have finished their request.
        track.ongoing = still_busy;
        due
    }

    /// Forget processes that are gone (exited, or restarted under a new
    /// start time). A process that is still there but could not be read
    /// this time keeps its memory: one failed read must not make a pool
    /// that lost workers look whole again.
    pub fn forget_all_but(&mut self, present: &std::collections::HashSet<ProcessKey>) {
        self.processes.retain(|key, _| present.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Classification, profiles};
    use crate::model::{RequestInfo, Snapshot, ThreadSample};

    fn frame(line: u32) -> Frame {
        Frame {
            function: "handle".into(),
            file: "app.py".into(),
            line,
            locals: None,
        }
    }

    /// A target with one worker per entry: `Some((identity, line))` busy, `None` idle.
    fn target(pid: u32, workers: &[Option<(Option<u64>, u32)>]) -> TargetReport {
        let threads = workers
            .iter()
            .enumerate()
            .map(|(i, w)| ThreadSample {
                thread_id: i as u64 + 1,
                frames: w.map(|(_, line)| vec![frame(line)]).unwrap_or_default(),
                request: w.and_then(|(identity, _)| {
                    identity.map(|identity| RequestInfo {
                        identity: Some(identity),
                        ..RequestInfo::default()
                    })
                }),
                ..ThreadSample::default()
            })
            .collect();
        let snapshot = Snapshot {
            pid,
            python_version: "3.12.1".into(),
            threads,
            process: Default::default(),
            sampling: Default::default(),
            warnings: vec![],
        };
        let classes = Classification {
            profile: &profiles::GENERIC,
            profile_reason: String::new(),
            threads: workers
                .iter()
                .map(|w| crate::classify::ThreadVerdict {
                    role: Role::Worker,
                    state: if w.is_some() {
                        State::Busy
                    } else {
                        State::Idle
                    },
                    reason: String::new(),
                })
                .collect(),
        };
        TargetReport::inspected("t".into(), "t".into(), snapshot, classes)
    }

    fn busy(report: &TargetReport) -> Vec<(Option<f64>, bool)> {
        report
            .inspection
            .as_ref()
            .map(|i| {
                i.threads
                    .iter()
                    .map(|t| (t.busy_seconds, t.stuck))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn durations_follow_the_same_request_and_reset_on_a_new_one() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut tracker = Tracker::new(None);
        let mut first = target(10, &[Some((Some(0xA), 5)), Some((None, 7)), None]);
        tracker.observe(&mut first, at(0));
        assert_eq!(busy(&first)[0], (Some(0.0), false));

        let mut second = target(10, &[Some((Some(0xA), 5)), Some((None, 8)), None]);
        tracker.observe(&mut second, at(5));
        // Same request and line twice: stuck; no identity but busy twice: same request, moving.
        assert_eq!(busy(&second)[0], (Some(5.0), true));
        assert_eq!(busy(&second)[1], (Some(5.0), false));
        assert_eq!(busy(&second)[2], (None, false));

        let mut third = target(10, &[Some((Some(0xB), 5)), None, Some((None, 1))]);
        tracker.observe(&mut third, at(9));
        assert_eq!(busy(&third)[0], (Some(0.0), false), "new request object");
        assert_eq!(busy(&third)[2], (Some(0.0), false), "was idle before");
    }

    #[test]
    fn stuck_can_require_every_sample() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(None).stuck_after(3);
        let mut stuck = Vec::new();
        for round in 0..3 {
            let mut t = target(10, &[Some((Some(0xA), 5))]);
            tracker.observe(&mut t, t0 + Duration::from_secs(round));
            stuck.push(busy(&t)[0].1);
        }
        assert_eq!(stuck, [false, false, true]);
    }

    #[test]
    fn long_requests_are_logged_once_then_every_limit() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut tracker = Tracker::new(Some(Duration::from_secs(30)));
        let logged: Vec<(u64, usize, bool)> = [0, 20, 30, 40, 59, 60, 95]
            .into_iter()
            .map(|s| {
                let mut t = target(10, &[Some((Some(1), 5))]);
                let due = tracker.observe(&mut t, at(s));
                (s, due.len(), due.first().is_some_and(|d| d.repeated))
            })
            .collect();
        assert_eq!(
            logged,
            [
                (0, 0, false),
                (20, 0, false),
                (30, 1, false),
                (40, 0, false),
                (59, 0, false),
                (60, 1, true),
                (95, 1, true)
            ]
        );
    }

    #[test]
    fn a_shrunk_pool_is_remembered_per_process() {
        let now = Instant::now();
        let mut tracker = Tracker::new(None);
        let mut full = target(10, &[None, None, None]);
        tracker.observe(&mut full, now);
        assert_eq!(full.remembered_workers, None);
        let mut shrunk = target(10, &[None, None]);
        tracker.observe(&mut shrunk, now);
        assert_eq!(shrunk.remembered_workers, Some(3));
        // Another process (a restart gets a new PID) starts afresh.
        let mut restarted = target(11, &[None, None]);
        tracker.observe(&mut restarted, now);
        assert_eq!(restarted.remembered_workers, None);
        tracker.forget_all_but(
            &[ProcessKey {
                pid: 11,
                start_ticks: None,
            }]
            .into_iter()
            .collect(),
        );
        let mut back = target(10, &[None]);
        tracker.observe(&mut back, now);
        assert_eq!(back.remembered_workers, None, "forgotten after it vanished");
    }
}

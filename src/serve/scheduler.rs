//! The sidecar's sampling loop: every interval, resolve each target afresh,
//! sample it through a [`Sampler`] kept per process, classify, follow
//! requests across samples ([`crate::track`]), judge, and publish one
//! immutable [`Published`] for the HTTP side to render.
//!
//! Runs on its own thread and never waits for HTTP: it hands each result
//! over by replacing an `Arc` in a watch channel. Attaching (symbol
//! discovery, the expensive part) happens once per process; a restarted
//! server (new PID or start time) gets a new Sampler, a vanished one is
//! reported as a failed target and its Sampler dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use regex::Regex;

use crate::attach::{Sampler, start_ticks};
use crate::classify;
use crate::inspect::{InspectOptions, attach_kind, disambiguate_names, read_details};
use crate::policy::{CheckPolicy, Evaluation, code_and_label, evaluate};
use crate::render::html::HistoryPoint;
use crate::render::prometheus::TargetCounters;
use crate::report::{Report, SystemFacts, TargetError, TargetReport};
use crate::sanitize::for_terminal;
use crate::target::Target;
use crate::track::{LongRequest, ProcessKey, Tracker};

use super::journal::{self, Level};

/// What the sidecar watches.
#[derive(Debug, Clone)]
pub enum Watched {
    /// A PID, pidfile or systemd unit: one target, resolved each round.
    Named(Target),
    /// Every process whose command line matches: zero or more targets.
    Matching(Regex),
}

/// The result of one sampling round, shared read-only with HTTP handlers.
#[derive(Debug)]
pub struct Published {
    /// The facts, with request durations filled in.
    pub report: Report,
    /// Statuses under the sidecar's policy.
    pub evaluation: Evaluation,
    /// Busy history per target (report order), oldest first.
    pub history: Vec<Vec<HistoryPoint>>,
    /// Counters per target (report order).
    pub counters: Vec<TargetCounters>,
    /// Rounds completed so far (this one included).
    pub round: u64,
    /// When this round started.
    pub sampled_at: SystemTime,
    /// How long the whole round took.
    pub round_seconds: f64,
}

/// Sampling state that lives as long as the sidecar.
pub struct Scheduler {
    watched: Vec<Watched>,
    options: InspectOptions,
    policy: CheckPolicy,
    history_span: Duration,
    samplers: HashMap<ProcessKey, Sampler>,
    tracker: Tracker,
    history: HashMap<String, VecDeque<HistoryPoint>>,
    counters: HashMap<String, TargetCounters>,
    last_label: HashMap<String, &'static str>,
    round: u64,
}

/// One target of a round, before sampling.
struct Resolved {
    name: String,
    given: String,
    pid: Result<u32, crate::target::TargetError>,
}

impl Scheduler {
    /// A scheduler for these targets; nothing is attached until the first round.
    pub fn new(
        watched: Vec<Watched>,
        options: InspectOptions,
        policy: CheckPolicy,
        history_span: Duration,
    ) -> Scheduler {
        let long_request = policy.long_request_seconds.map(Duration::from_secs_f64);
        Scheduler {
            watched,
            options,
            policy,
            history_span,
            samplers: HashMap::new(),
            tracker: Tracker::new(long_request),
            history: HashMap::new(),
            counters: HashMap::new(),
            last_label: HashMap::new(),
            round: 0,
        }
    }

    /// Sample every target once and publish the result.
    pub fn round(&mut self) -> Published {
        self.round += 1;
        let started = Instant::now();
        let sampled_at = SystemTime::now();
        let mut live_keys = HashSet::new();
        let mut present = HashSet::new();
        let mut targets = Vec::new();
        let mut seen_pids: HashMap<u32, String> = HashMap::new();
        let mut warnings = Vec::new();
        for resolved in self.resolve_all() {
            // One process named twice (a PID and a --match that finds it):
            // read and reported once, or its series would be doubled, and
            // said so, as `zhw check` does.
            if let Ok(pid) = resolved.pid {
                if let Some(first) = seen_pids.get(&pid) {
                    warnings.push(format!(
                        "{first} and {} are the same process (pid {pid}): counted once",
                        resolved.given
                    ));
                    continue;
                }
                seen_pids.insert(pid, resolved.given.clone());
            }
            let (name, given) = (resolved.name.clone(), resolved.given.clone());
            // A bug of zhw's own on one target's data fails that target, not
            // the sampling thread (whose death would stop the watchdog pings).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.sample(resolved, &mut live_keys, &mut present)
            }));
            targets.push(outcome.unwrap_or_else(|_| {
                TargetReport::failed(
                    name,
                    given,
                    None,
                    TargetError {
                        kind: "internal_error",
                        message: "zhw failed reading this target (a bug, please report it)".into(),
                        not_running: false,
                    },
                )
            }));
        }
        // A process that is gone (or restarted) no longer needs its Sampler.
        self.samplers.retain(|key, _| live_keys.contains(key));
        disambiguate_names(&mut targets);

        let now = Instant::now();
        let mut long_requests = Vec::new();
        for target in &mut targets {
            long_requests.extend(self.tracker.observe(target, now));
        }
        self.tracker.forget_all_but(&present);

        let report = Report {
            system: SystemFacts::read(),
            warnings,
            targets,
        };
        let evaluation = evaluate(&report, &self.policy);
        for long in &long_requests {
            log_long_request(long);
        }
        self.log_transitions(&report, &evaluation);

        let unix_seconds = sampled_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut history = Vec::with_capacity(report.targets.len());
        let mut counters = Vec::with_capacity(report.targets.len());
        let names: HashSet<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
        for target in &report.targets {
            let points = self.history.entry(target.name.clone()).or_default();
            if let Some(inspection) = &target.inspection {
                record_point(
                    points,
                    HistoryPoint::sample(
                        unix_seconds,
                        inspection.stats.busy_count,
                        inspection.stats.total_threads,
                    ),
                    self.history_span,
                );
            }
            let oldest = unix_seconds - self.history_span.as_secs() as i64;
            while points.front().is_some_and(|p| p.unix_seconds < oldest) {
                points.pop_front();
            }
            history.push(points.iter().copied().collect());
            let counter = self.counters.entry(target.name.clone()).or_default();
            counter.samples_total += 1;
            counter.errors_total += u64::from(target.error.is_some());
            counters.push(*counter);
        }
        // Targets that are no longer listed (a --match that stopped matching)
        // leave no state behind.
        self.history.retain(|name, _| names.contains(name.as_str()));
        self.counters
            .retain(|name, _| names.contains(name.as_str()));
        self.last_label
            .retain(|name, _| names.contains(name.as_str()));

        Published {
            report,
            evaluation,
            history,
            counters,
            round: self.round,
            sampled_at,
            round_seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn resolve_all(&self) -> Vec<Resolved> {
        let mut resolved = Vec::new();
        for watched in &self.watched {
            match watched {
                Watched::Named(target) => resolved.push(Resolved {
                    name: target.display_name(),
                    given: target.as_given(),
                    pid: target.resolve(),
                }),
                Watched::Matching(pattern) => {
                    let pids = crate::target::matching::matching_pids(pattern);
                    if pids.is_empty() {
                        resolved.push(Resolved {
                            name: crate::sanitize::label(&format!("match {}", pattern.as_str())),
                            given: format!("--match {}", pattern.as_str()),
                            pid: Err(crate::target::TargetError::NoMatch {
                                pattern: pattern.as_str().to_string(),
                            }),
                        });
                    }
                    for pid in pids {
                        resolved.push(Resolved {
                            name: format!("pid {pid}"),
                            given: pid.to_string(),
                            pid: Ok(pid),
                        });
                    }
                }
            }
        }
        resolved
    }

    /// Sample one resolved target. `live_keys` gathers the processes read
    /// (their Samplers are kept), `present` those that still exist (their
    /// request and pool memory is kept, even when this read failed).
    fn sample(
        &mut self,
        resolved: Resolved,
        live_keys: &mut HashSet<ProcessKey>,
        present: &mut HashSet<ProcessKey>,
    ) -> TargetReport {
        let Resolved { name, given, pid } = resolved;
        let pid = match pid {
            Ok(pid) => pid,
            Err(err) => {
                let error = TargetError {
                    kind: err.kind(),
                    message: err.to_string(),
                    not_running: err.is_not_running(),
                };
                return TargetReport::failed(name, given, None, error);
            }
        };
        let key = ProcessKey {
            pid,
            start_ticks: start_ticks(pid),
        };
        let sampler = match self.samplers.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                Sampler::attach(pid, self.options.sample).map(|sampler| entry.insert(sampler))
            }
        };
        let options = &self.options;
        let read = sampler.and_then(|sampler| {
            let mut snapshot = sampler.sample()?;
            let classes = classify::classify(&snapshot, options.profile, options.user_profiles);
            // The requests of busy workers: what identifies one request across rounds.
            read_details(sampler, &mut snapshot, &classes, options.details);
            Ok((snapshot, classes))
        });
        match read {
            Ok((snapshot, classes)) => {
                live_keys.insert(key);
                present.insert(key);
                let mut report = TargetReport::inspected(name, given, snapshot, classes);
                report.live = true;
                report
            }
            Err(err) => {
                if !err.is_not_running() {
                    present.insert(key);
                }
                TargetReport::failed(
                    name,
                    given,
                    Some(pid),
                    TargetError {
                        kind: attach_kind(&err),
                        message: err.to_string(),
                        not_running: err.is_not_running(),
                    },
                )
            }
        }
    }

    /// Log each target's status when it changes (and on the first round),
    /// so the journal tells the story without a line per sample.
    fn log_transitions(&mut self, report: &Report, evaluation: &Evaluation) {
        for (target, verdict) in report.targets.iter().zip(&evaluation.targets) {
            let (_, label) = code_and_label(verdict, evaluation.codes);
            let previous = self.last_label.insert(target.name.clone(), label);
            if previous == Some(label) {
                continue;
            }
            let level = match label {
                "OK" => Level::Info,
                "WARNING" => Level::Warning,
                _ => Level::Error,
            };
            let pid = target
                .pid
                .map(|p| pid_suffix(&target.name, p))
                .unwrap_or_default();
            journal::log(
                level,
                &format!(
                    "{}{pid}: {label} - {}",
                    for_terminal(&target.name),
                    for_terminal(&verdict.message)
                ),
            );
        }
    }
}

/// ` pid N` after a target's name in a log line, unless the name already is
/// `pid N` (`--match` targets).
fn pid_suffix(name: &str, pid: u32) -> String {
    if name.starts_with("pid ") {
        String::new()
    } else {
        format!(" pid {pid}")
    }
}

/// One long-request entry: a summary line, then the request and the stack
/// (most recent call last), as Products.LongRequestLogger wrote them.
fn log_long_request(long: &LongRequest) {
    let thread = &long.thread;
    // Whole seconds, rounded down: a lower bound stays one.
    let seconds = thread.busy_seconds.unwrap_or(0.0).max(0.0).floor();
    let who = match &thread.name {
        Some(name) => format!("thread {:?}", for_terminal(name)),
        None => format!("thread {:#x}", thread.thread_id),
    };
    let pid = pid_suffix(&long.target, long.pid);
    let mut text = format!(
        "{}long request: {}{pid} {who} busy for at least {seconds:.0}s{}",
        if long.repeated { "still " } else { "" },
        for_terminal(&long.target),
        if thread.stuck {
            " (stuck on one line)"
        } else {
            ""
        }
    );
    if let Some(request) = &thread.request {
        let method = request.method.as_deref().unwrap_or("?");
        let path = request.path.as_deref().unwrap_or("?");
        let query = request
            .query
            .as_deref()
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n  request: {} {}{}",
            for_terminal(method),
            for_terminal(path),
            for_terminal(&query)
        ));
        if let Some(client) = &request.client {
            text.push_str(&format!(" from {}", for_terminal(client)));
        }
    }
    text.push_str("\n  Traceback (most recent call last):");
    for frame in thread.frames.iter().rev() {
        text.push_str(&format!(
            "\n    File \"{}\", line {}, in {}",
            for_terminal(&frame.file),
            frame.line,
            for_terminal(&frame.function)
        ));
    }
    journal::log(Level::Warning, &text);
}

/// Points of busy history kept per target over its span: the sparkline
/// draws 360 units, so more would not show. Samples that fall into the same
/// stretch of `span / HISTORY_POINTS` are merged into one point (its peak
/// kept), so the history, its copy in each round's result and the
/// dashboard page stay the same size whatever the interval.
const HISTORY_POINTS: u64 = 360;

/// Add a sample's point to a target's history, merged into the last point
/// when both fall into the same stretch of time.
fn record_point(points: &mut VecDeque<HistoryPoint>, point: HistoryPoint, span: Duration) {
    let stretch = (span.as_secs() / HISTORY_POINTS).max(1) as i64;
    match points.back_mut() {
        Some(last)
            if last.unix_seconds.div_euclid(stretch) == point.unix_seconds.div_euclid(stretch) =>
        {
            last.absorb(point)
        }
        _ => points.push_back(point),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_holds_one_point_per_stretch_whatever_the_interval() {
        let hour = Duration::from_secs(3600);
        let mut points = VecDeque::new();
        // An hour of samples every 10 ms: 360,000 samples.
        for hundredth in 0..360_000i64 {
            let busy = if hundredth == 123_456 { 9 } else { 1 };
            record_point(
                &mut points,
                HistoryPoint::sample(1_000_000 + hundredth / 100, busy, 4),
                hour,
            );
        }
        assert!(points.len() <= 361, "{} points", points.len());
        assert_eq!(points.iter().map(|p| p.samples).sum::<u32>(), 360_000);
        assert_eq!(
            points.iter().map(|p| p.peak).max(),
            Some(9),
            "a burst is kept"
        );
        let last = points.back().copied().expect("points");
        assert_eq!((last.busy, last.unix_seconds), (1, 1_000_000 + 3599));
    }

    #[test]
    fn samples_in_different_stretches_stay_apart() {
        let mut points = VecDeque::new();
        for second in [0, 9, 10, 25] {
            record_point(
                &mut points,
                HistoryPoint::sample(second, 1, 4),
                Duration::from_secs(3600),
            );
        }
        let samples: Vec<u32> = points.iter().map(|p| p.samples).collect();
        assert_eq!(samples, [2, 1, 1]);
    }
}

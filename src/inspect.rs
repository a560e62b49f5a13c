//! Run one inspection of several targets in parallel, within a deadline.
//!
//! Each target is resolved, attached, sampled and classified on its own
//! thread; whatever has not answered by the deadline is reported as a
//! timeout, so `zhw check -t 10` always answers in about 10 seconds. A late
//! thread is abandoned, never joined: in the default nonblocking mode it holds
//! no lock on the target, and in blocking mode the kernel releases the ptrace
//! lock when zhw exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::attach::{AttachError, DetailOptions, SampleOptions, Sampler};
use crate::classify::{self, Classification, Profile, Role, State};
use crate::model::Snapshot;
use crate::report::{Report, SystemFacts, TargetError, TargetReport};
use crate::target::Target;

/// Where a target's snapshot comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A live process.
    Live(Target),
    /// A recorded snapshot file (tests and reproducible bug reports).
    Replay(PathBuf),
}

/// One target of a check: where to read it, and how the user labelled it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Where the snapshot comes from.
    pub source: Source,
    /// `--name`: the label in reports and perfdata instead of the pidfile's stem.
    pub name: Option<String>,
    /// `--optional`: absence does not change the status.
    pub optional: bool,
}

impl From<Source> for TargetSpec {
    fn from(source: Source) -> Self {
        TargetSpec {
            source,
            name: None,
            optional: false,
        }
    }
}

impl TargetSpec {
    /// Put the user's label and flags on a finished report.
    fn label(&self, mut report: TargetReport) -> TargetReport {
        if let Some(name) = &self.name {
            report.name = crate::sanitize::label(name);
        }
        report.optional = self.optional;
        report
    }
}

/// How to inspect.
#[derive(Debug, Clone, Copy)]
pub struct InspectOptions {
    /// How stacks are read.
    pub sample: SampleOptions,
    /// Answer within this long.
    pub timeout: Duration,
    /// Profile forced with `--profile`.
    pub profile: Option<&'static Profile>,
    /// Profiles from `--profiles` (or /etc/zhw/profiles.toml).
    pub user_profiles: &'static [&'static Profile],
    /// Test hook (hidden `--inject-delay-ms`): pause before attaching.
    pub inject_delay: Duration,
    /// What to read about busy workers beyond their stacks.
    pub details: DetailOptions,
}

/// Most targets inspected at once: enough to overlap attach latency on a
/// host with several Zope clients, few enough that a long target list cannot
/// starve the machine (or zhw's deadline) with threads.
const MAX_PARALLEL: usize = 8;

/// Inspect every source and gather the facts.
pub fn inspect(specs: &[TargetSpec], options: InspectOptions) -> Report {
    let deadline = Instant::now() + options.timeout;
    let queue = Arc::new(specs.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, receiver) = mpsc::channel();
    for worker in 0..specs.len().min(MAX_PARALLEL) {
        let (queue, next, sender) = (Arc::clone(&queue), Arc::clone(&next), sender.clone());
        // A failed spawn just means fewer workers; the others drain the queue,
        // and whatever is left at the deadline is reported as a timeout.
        let _ = std::thread::Builder::new()
            .name(format!("zhw-inspect-{worker}"))
            .spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = queue.get(index) else {
                        break;
                    };
                    if Instant::now() >= deadline {
                        break;
                    }
                    // A bug of zhw's own on one target's data is reported on
                    // that target, not mistaken for a timeout of all.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        inspect_one(&spec.source, options)
                    }));
                    let report = spec.label(outcome.unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        failure_for(
                            &spec.source,
                            None,
                            "internal_error",
                            format!(
                                "zhw failed inspecting {} (a bug, please report it): {what}",
                                describe(&spec.source)
                            ),
                            false,
                        )
                    }));
                    if sender.send((index, report)).is_err() {
                        break;
                    }
                }
            });
    }
    drop(sender);

    let mut results: Vec<Option<TargetReport>> = vec![None; specs.len()];
    while results.iter().any(Option::is_none) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok((index, report)) => results[index] = Some(report),
            Err(_) => break,
        }
    }
    let mut targets: Vec<TargetReport> = results
        .into_iter()
        .zip(specs)
        .map(|(result, spec)| {
            result.unwrap_or_else(|| {
                let message = format!(
                    "timed out after {}s inspecting {}",
                    options.timeout.as_secs_f64(),
                    describe(&spec.source)
                );
                spec.label(failure_for(&spec.source, None, "timeout", message, false))
            })
        })
        .collect();
    let warnings = drop_repeated_processes(&mut targets);
    disambiguate_names(&mut targets);
    Report {
        system: SystemFacts::read(),
        warnings,
        targets,
    }
}

/// One process named twice (by PID and by pidfile) is counted once: the
/// later mention is dropped, with a warning that says so.
fn drop_repeated_processes(targets: &mut Vec<TargetReport>) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut first: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    targets.retain(|target| {
        // Recordings (replays) are not processes: two may share a PID.
        let Some(pid) = target
            .pid
            .filter(|_| target.live && target.inspection.is_some())
        else {
            return true;
        };
        match first.get(&pid) {
            Some(earlier) => {
                warnings.push(format!(
                    "{} and {} are the same process (pid {pid}): counted once",
                    earlier, target.target
                ));
                false
            }
            None => {
                first.insert(pid, target.target.clone());
                true
            }
        }
    });
    warnings
}

/// Inspect every source `samples` times, `interval` apart, within the
/// one deadline of `options.timeout`, and report the last sample with each
/// busy worker's time on its current request (a lower bound: from the first
/// sample that saw it) and the `stuck` flag (same request and innermost line
/// in every sample). Fewer samples are taken when the deadline comes first;
/// the report then says so.
pub fn inspect_series(
    specs: &[TargetSpec],
    options: InspectOptions,
    samples: u32,
    interval: Duration,
) -> Report {
    let deadline = Instant::now() + options.timeout;
    let mut tracker = crate::track::Tracker::new(None).stuck_after(samples);
    let mut taken = 0;
    let mut failures = vec![0u32; specs.len()];
    let mut report = loop {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let mut report = inspect(
            specs,
            InspectOptions {
                timeout: remaining,
                ..options
            },
        );
        taken += 1;
        let now = Instant::now();
        for (target, failed) in report.targets.iter_mut().zip(&mut failures) {
            *failed += u32::from(target.error.is_some());
            tracker.observe(target, now);
        }
        // Another sample only if it fits: the pause plus about as long as this one took.
        if taken >= samples || now + interval + (now - started) >= deadline {
            break report;
        }
        std::thread::sleep(interval);
    };
    // A process read by an earlier sample and gone by the last one exited
    // while being inspected (not "no such process", which says it never ran).
    for (target, failed) in report.targets.iter_mut().zip(&failures) {
        if let (true, Some(pid), Some(error)) = (*failed < taken, target.pid, target.error.as_mut())
            && error.kind == "no_such_process"
        {
            *error = TargetError {
                kind: "exited",
                message: AttachError::Exited { pid }.to_string(),
                not_running: true,
            };
        }
    }
    for (target, failed) in report.targets.iter().zip(&failures) {
        if *failed > 0 && target.error.is_none() {
            report.warnings.push(format!(
                "{}: {failed} of {taken} samples could not be read; durations and stuck \
                 flags cover the others only",
                target.name
            ));
        }
    }
    if taken < samples {
        report.warnings.push(format!(
            "took {taken} of {samples} samples before the {}s deadline; durations and \
             stuck flags cover those only",
            options.timeout.as_secs_f64()
        ));
    }
    report
}

/// Two targets must not share a name (perfdata labels would collide, e.g.
/// `a/instance.pid` and `b/instance.pid`): colliding names become the target
/// as given, which is stable across restarts, unlike a PID.
pub(crate) fn disambiguate_names(targets: &mut [TargetReport]) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for target in targets.iter() {
        *seen.entry(target.name.clone()).or_default() += 1;
    }
    for target in targets.iter_mut() {
        if seen.get(&target.name).is_some_and(|count| *count > 1) {
            target.name = crate::sanitize::label(&target.target);
        }
    }
}

fn inspect_one(source: &Source, options: InspectOptions) -> TargetReport {
    let (mut snapshot, mut sampler) = match source {
        Source::Live(target) => {
            let pid = match target.resolve() {
                Ok(pid) => pid,
                Err(err) => {
                    let not_running = err.is_not_running();
                    return failure_for(source, None, err.kind(), err.to_string(), not_running);
                }
            };
            std::thread::sleep(options.inject_delay);
            let sampled = Sampler::attach(pid, options.sample)
                .and_then(|mut sampler| sampler.sample().map(|snapshot| (snapshot, sampler)));
            match sampled {
                Ok((snapshot, sampler)) => (snapshot, Some(sampler)),
                Err(err) => {
                    return failure_for(
                        source,
                        Some(pid),
                        attach_kind(&err),
                        err.to_string(),
                        err.is_not_running(),
                    );
                }
            }
        }
        Source::Replay(path) => match load_snapshot(path) {
            Ok(snapshot) => (snapshot, None),
            Err(message) => return failure_for(source, None, "replay_unreadable", message, false),
        },
    };
    let classes = classify::classify(&snapshot, options.profile, options.user_profiles);
    if let Some(sampler) = sampler.as_mut() {
        read_details(sampler, &mut snapshot, &classes, options.details);
    }
    let mut report =
        TargetReport::inspected(source_name(source), source_given(source), snapshot, classes);
    report.live = matches!(source, Source::Live(_));
    report
}

/// Read the requests (and with `--locals` the locals) of the busy workers
/// that `classes` found, where the chosen profile says requests live.
/// Classification decides which threads and where; attach does the reading.
pub fn read_details(
    sampler: &mut Sampler,
    snapshot: &mut Snapshot,
    classes: &Classification,
    details: DetailOptions,
) {
    let busy: Vec<u64> = snapshot
        .threads
        .iter()
        .zip(&classes.threads)
        .filter(|(_, verdict)| verdict.role == Role::Worker && verdict.state == State::Busy)
        .map(|(thread, _)| thread.thread_id)
        .collect();
    let locations: Vec<_> = classes.profile.request_locations().collect();
    sampler.read_details(snapshot, &busy, &locations, details);
}

/// Read a recorded snapshot (`zhw record`) from a JSON file.
pub fn load_snapshot(path: &std::path::Path) -> Result<Snapshot, String> {
    const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;
    let cannot = |why: String| format!("cannot read snapshot {}: {why}", path.display());
    let metadata = std::fs::metadata(path).map_err(|err| cannot(err.to_string()))?;
    if !metadata.is_file() || metadata.len() > MAX_SNAPSHOT_BYTES {
        return Err(cannot("not a regular file of at most 256 MiB".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|err| cannot(err.to_string()))?;
    serde_json::from_str(&text).map_err(|err| format!("bad snapshot {}: {err}", path.display()))
}

pub(crate) fn attach_kind(err: &AttachError) -> &'static str {
    match err {
        AttachError::NoSuchProcess { .. } => "no_such_process",
        AttachError::PermissionDenied { .. } => "permission_denied",
        AttachError::NotPython { .. } => "not_python",
        AttachError::Unsupported { .. } => "unsupported_python",
        AttachError::Exited { .. } => "exited",
        AttachError::AlreadyTraced { .. } => "already_traced",
        AttachError::Failed { .. } => "read_failed",
    }
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Live(target) => target.display_name(),
        Source::Replay(path) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "replay".into()),
    }
}

/// What a timeout message names: never re-reads a pidfile (which could
/// block) after the deadline.
fn describe(source: &Source) -> String {
    match source {
        Source::Live(Target::Pid(pid)) => format!("pid {pid}"),
        Source::Live(Target::Pidfile(path)) => format!("pidfile {}", path.display()),
        Source::Live(Target::InvalidPid(word)) => word.clone(),
        Source::Live(Target::Unit(unit)) => format!("unit {unit}"),
        Source::Replay(path) => format!("snapshot {}", path.display()),
    }
}

fn source_given(source: &Source) -> String {
    match source {
        Source::Live(target) => target.as_given(),
        Source::Replay(path) => path.display().to_string(),
    }
}

fn failure_for(
    source: &Source,
    pid: Option<u32>,
    kind: &'static str,
    message: String,
    not_running: bool,
) -> TargetReport {
    TargetReport::failed(
        source_name(source),
        source_given(source),
        pid,
        TargetError {
            kind,
            message,
            not_running,
        },
    )
}

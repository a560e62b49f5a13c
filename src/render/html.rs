//! HTML output: one self-contained page per check — the `zhw check --format
//! html` report file and the `zhw serve` dashboard are the same template,
//! differing only in [`PageOptions`].
//!
//! The page is rendered by askama templates (`templates/`), escaping every
//! interpolated value for HTML; no markup is ever built by string
//! concatenation here. askama rather than a runtime engine (minijinja, tera):
//! templates are compiled into the binary and checked against these view
//! structs at build time, so a typo is a compile error, not a blank field on
//! an operator's dashboard, and there is no template file to ship or to be
//! replaced on a host. Strings from the target also go
//! through [`crate::sanitize::for_terminal`] first (control and bidi
//! characters become visible escapes) and are capped in length. The page
//! carries a Content-Security-Policy that forbids every script, so even an
//! escaping bug could not run one. This module renders from a Report and its
//! Evaluation only: it never samples, decides statuses, or does I/O beyond its
//! writer.

use std::borrow::Cow;
use std::io::{self, Write};

use askama::Template;

use crate::classify::{Role, State};
use crate::model::RequestInfo;
use crate::policy::{Evaluation, code_and_label};
use crate::report::{Inspection, Report, TargetReport, ThreadReport};
use crate::sanitize::for_terminal;

use super::text::{StackLine, at_least, bytes, duration, stack_lines};

/// One point of a target's busy history (dashboard only): one sample, or
/// the samples of one stretch of time merged (the sidecar keeps one point
/// per sparkline unit, 10 s of the hour, whatever its interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPoint {
    /// When the latest of its samples was taken, seconds since the Unix epoch.
    pub unix_seconds: i64,
    /// Busy workers in the latest of its samples.
    pub busy: u64,
    /// Most busy workers in any of its samples (what the sparkline draws:
    /// a burst between two points is not lost).
    pub peak: u64,
    /// All workers in the latest of its samples (the pool size the busy
    /// count is out of).
    pub workers: u64,
    /// How many samples it stands for.
    pub samples: u32,
}

impl HistoryPoint {
    /// A point for one sample.
    pub fn sample(unix_seconds: i64, busy: u64, workers: u64) -> HistoryPoint {
        HistoryPoint {
            unix_seconds,
            busy,
            peak: busy,
            workers,
            samples: 1,
        }
    }

    /// Fold a later sample's point into this one.
    pub fn absorb(&mut self, later: HistoryPoint) {
        self.unix_seconds = later.unix_seconds;
        self.busy = later.busy;
        self.peak = self.peak.max(later.peak);
        self.workers = later.workers;
        self.samples = self.samples.saturating_add(later.samples);
    }
}

/// What differs between the check's report file and the sidecar's dashboard.
#[derive(Debug, Clone, Copy)]
pub struct PageOptions<'a> {
    /// Seconds between automatic reloads (dashboard); `None` for a static report file.
    pub refresh_seconds: Option<u32>,
    /// Busy history per target, same order as `report.targets`; empty slice = no history shown.
    pub history: &'a [Vec<HistoryPoint>],
    /// Page title, e.g. "zhw check" or "zhw serve on host1".
    pub title: &'a str,
}

/// The policy the page declares in its `<meta http-equiv>`: nothing may load
/// or run except the page's own inline stylesheet. A server sending the page
/// (`zhw serve`) should send it as a header too, where `frame-ancestors` also
/// applies.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// How much of one string from the target a page shows: enough for any real
/// path or function name, small enough that a corrupt 10 MB "name" cannot
/// bloat a page the dashboard re-renders every few seconds.
const MAX_SHOWN_CHARS: usize = 2000;

/// How far back the dashboard's history sparkline reaches.
const HISTORY_SECONDS: i64 = 3600;

/// Sparkline drawing area, in SVG user units (one unit per 10 seconds).
const SPARK_WIDTH: f64 = 360.0;
const SPARK_HEIGHT: f64 = 48.0;

/// Write the whole page for `report` as judged by `evaluation`.
///
/// Why a writer and not a String: the check writes straight to stdout and
/// the sidecar into its response buffer, like the other renderers.
pub fn page<W: Write>(
    out: &mut W,
    report: &Report,
    evaluation: &Evaluation,
    options: &PageOptions<'_>,
) -> io::Result<()> {
    PageView::new(report, evaluation, options).write_into(out)
}

/// A string from the target (or the user) made fit for a page: terminal
/// escapes and bidi controls shown as visible escapes, length capped. HTML
/// escaping itself is the template engine's job.
fn shown(text: &str) -> String {
    let clean: Cow<'_, str> = for_terminal(text);
    match clean.char_indices().nth(MAX_SHOWN_CHARS) {
        None => clean.into_owned(),
        Some((cut, _)) => {
            let dropped = clean[cut..].chars().count();
            format!("{}… ({dropped} more characters)", &clean[..cut])
        }
    }
}

/// CSS class for a status word, so colour follows the word the reader sees
/// (a not-running target is CRITICAL under Nagios codes, FAILURE otherwise).
fn status_class(label: &str) -> &'static str {
    match label {
        "OK" => "ok",
        "WARNING" => "warning",
        "CRITICAL" => "critical",
        _ => "unknown",
    }
}

#[derive(Template)]
#[template(path = "page.html", whitespace = "minimize")]
struct PageView {
    title: String,
    refresh_seconds: Option<u32>,
    label: &'static str,
    class: &'static str,
    status_line: String,
    idle: u64,
    busy: u64,
    host: Vec<(&'static str, String)>,
    warnings: Vec<String>,
    targets: Vec<TargetView>,
}

struct TargetView {
    name: String,
    /// pid, the target as given, Python version, profile: whichever are known.
    facts: Vec<String>,
    optional: bool,
    label: &'static str,
    class: &'static str,
    message: String,
    error: Option<ErrorView>,
    inspection: Option<InspectionView>,
    history: Option<HistoryView>,
}

struct ErrorView {
    kind: &'static str,
    /// Only when it says more than the verdict's message above it.
    message: Option<String>,
}

struct InspectionView {
    profile_reason: String,
    workers: u64,
    busy: u64,
    idle: u64,
    services: u64,
    remembered_workers: Option<u64>,
    bar: BarView,
    process: Vec<String>,
    /// How the stacks were read; `None` when the snapshot does not say.
    sampling: Option<String>,
    busy_threads: Vec<ThreadView>,
    idle_threads: Vec<ThreadView>,
    service_threads: Vec<ThreadView>,
    warnings: Vec<String>,
}

/// Widths of the busy/idle bar in percent, formatted for SVG attributes.
struct BarView {
    busy_width: String,
    idle_x: String,
    idle_width: String,
    empty: bool,
}

struct ThreadView {
    id: u64,
    tid: Option<u32>,
    name: Option<String>,
    role: &'static str,
    state: &'static str,
    flags: String,
    reason: String,
    consistent: bool,
    request: Option<RequestView>,
    busy_for: Option<String>,
    stuck: bool,
    frames: Vec<FrameView>,
}

struct RequestView {
    method: Option<String>,
    path: Option<String>,
    query: Option<String>,
    host: Option<String>,
    client: Option<String>,
    user_agent: Option<String>,
    truncated: Vec<String>,
}

/// A line of a stack: a frame, or (`note`) a repeat or elision note.
struct FrameView {
    note: Option<String>,
    file: String,
    line: u32,
    function: String,
}

struct HistoryView {
    empty: bool,
    busy_points: String,
    workers_points: String,
    last_x: String,
    last_y: String,
    latest: u64,
    peak: u64,
    workers: u64,
    samples: usize,
    minutes: i64,
    width: f64,
    height: f64,
}

impl PageView {
    fn new(report: &Report, evaluation: &Evaluation, options: &PageOptions<'_>) -> PageView {
        let verdict = &evaluation.verdict;
        let (idle, busy) = report
            .targets
            .iter()
            .filter_map(|t| t.inspection.as_ref())
            .fold((0u64, 0u64), |(idle, busy), i| {
                (
                    idle.saturating_add(i.stats.idle_count),
                    busy.saturating_add(i.stats.busy_count),
                )
            });
        let targets = report
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| {
                // A report and its evaluation always pair up; a missing verdict
                // (a caller's bug) shows as UNKNOWN rather than panicking.
                let verdict = evaluation.targets.get(index);
                let (label, message) = match verdict {
                    Some(v) => (code_and_label(v, evaluation.codes).1, shown(&v.message)),
                    None => ("UNKNOWN", "no verdict".to_string()),
                };
                let history = if options.history.is_empty() {
                    None
                } else {
                    Some(HistoryView::new(
                        options.history.get(index).map(Vec::as_slice).unwrap_or(&[]),
                    ))
                };
                TargetView::new(target, label, message, history)
            })
            .collect();
        PageView {
            title: shown(options.title),
            refresh_seconds: options.refresh_seconds.filter(|s| *s > 0),
            label: verdict.label,
            class: status_class(verdict.label),
            status_line: format!("{} - {}", verdict.label, shown(&verdict.message)),
            idle,
            busy,
            host: host_facts(report),
            warnings: report.warnings.iter().map(|w| shown(w)).collect(),
            targets,
        }
    }
}

fn host_facts(report: &Report) -> Vec<(&'static str, String)> {
    let system = &report.system;
    let load = match (&system.loadavg, &system.loadavg_raw) {
        (Some([one, five, fifteen]), _) => format!("{one:.2} {five:.2} {fifteen:.2}"),
        (None, Some(raw)) => shown(raw),
        (None, None) => "unknown".into(),
    };
    let memory = match &system.memory {
        Some(m) => format!(
            "{} available of {}",
            bytes(m.available_bytes),
            bytes(m.total_bytes)
        ),
        None => "unknown".into(),
    };
    vec![
        ("Time", shown(&system.time)),
        ("Load", load),
        ("Memory", memory),
    ]
}

impl TargetView {
    fn new(
        target: &TargetReport,
        label: &'static str,
        message: String,
        history: Option<HistoryView>,
    ) -> TargetView {
        let name = shown(&target.name);
        let given = shown(&target.target);
        let mut facts = Vec::new();
        if let Some(pid) = target.pid {
            facts.push(format!("pid {pid}"));
        }
        // What the user typed, unless the name or the pid already says it.
        if given != name && target.pid.is_none_or(|pid| given != pid.to_string()) {
            facts.push(given);
        }
        if let Some(i) = &target.inspection {
            facts.push(format!("Python {}", shown(&i.python_version)));
            facts.push(format!("profile {}", i.profile));
        }
        let error = target.error.as_ref().map(|e| {
            let detail = shown(&e.message);
            ErrorView {
                kind: e.kind,
                message: (detail != message).then_some(detail),
            }
        });
        TargetView {
            name,
            facts,
            optional: target.optional,
            label,
            class: status_class(label),
            message,
            error,
            inspection: target
                .inspection
                .as_ref()
                .map(|i| InspectionView::new(i, target.remembered_workers)),
            history,
        }
    }
}

impl InspectionView {
    fn new(i: &Inspection, remembered_workers: Option<u64>) -> InspectionView {
        let stats = &i.stats;
        let threads = |role: Role, state: Option<State>| -> Vec<ThreadView> {
            i.threads
                .iter()
                .filter(|t| t.role == role && state.is_none_or(|s| t.state == s))
                .map(ThreadView::new)
                .collect()
        };
        let p = &i.process;
        let mut process = Vec::new();
        if let Some(rss) = p.rss_bytes {
            process.push(format!("RSS {}", bytes(rss)));
        }
        if let Some(cpu) = p.cpu_percent {
            process.push(format!("CPU {cpu:.1}%"));
        }
        if let Some(threads) = p.threads {
            process.push(format!("{threads} OS threads"));
        }
        if let Some(up) = p.uptime_seconds {
            process.push(format!("up {}", duration(up)));
        }
        let s = &i.sampling;
        let plural = if s.reads == 1 { "" } else { "es" };
        InspectionView {
            profile_reason: shown(&i.profile_reason),
            workers: stats.total_threads,
            busy: stats.busy_count,
            idle: stats.idle_count,
            services: stats.service_count,
            remembered_workers,
            bar: BarView::new(stats.busy_count, stats.idle_count),
            process,
            sampling: (!s.mode.is_empty() || s.reads > 0).then(|| {
                format!(
                    "{}, {} pass{plural}, {:.1} ms",
                    shown(&s.mode),
                    s.reads,
                    s.duration_seconds * 1000.0
                )
            }),
            busy_threads: threads(Role::Worker, Some(State::Busy)),
            idle_threads: threads(Role::Worker, Some(State::Idle)),
            service_threads: threads(Role::Service, None),
            warnings: i.warnings.iter().map(|w| shown(w)).collect(),
        }
    }
}

impl BarView {
    fn new(busy: u64, idle: u64) -> BarView {
        let total = busy.saturating_add(idle);
        let busy_width = if total == 0 {
            0.0
        } else {
            busy as f64 * 100.0 / total as f64
        };
        BarView {
            busy_width: format!("{busy_width:.2}"),
            idle_x: format!("{busy_width:.2}"),
            idle_width: format!("{:.2}", 100.0 - busy_width),
            empty: total == 0,
        }
    }
}

impl ThreadView {
    fn new(t: &ThreadReport) -> ThreadView {
        let flags = t.flags();
        ThreadView {
            id: t.thread_id,
            tid: t.os_thread_id,
            name: t.name.as_deref().map(shown),
            role: match t.role {
                Role::Worker => "worker",
                Role::Service => "service",
            },
            state: match t.state {
                State::Busy => "busy",
                State::Idle => "idle",
            },
            flags: flags.join(", "),
            reason: shown(&t.reason),
            consistent: t.stack_consistent,
            request: t.request.as_ref().map(RequestView::new),
            busy_for: t
                .busy_seconds
                .filter(|s| s.is_finite())
                .map(|s| format!("≥ {}", at_least(s))),
            stuck: t.stuck,
            // Outermost first, as a Python traceback prints it, and as short
            // as the text renderer's at any depth (repeats and gaps as notes).
            frames: stack_lines(t)
                .into_iter()
                .map(|line| match line {
                    StackLine::Frame(f) => FrameView {
                        note: None,
                        file: shown(&f.file),
                        line: f.line,
                        function: shown(&f.function),
                    },
                    other => FrameView {
                        note: Some(other.note()),
                        file: String::new(),
                        line: 0,
                        function: String::new(),
                    },
                })
                .collect(),
        }
    }
}

impl RequestView {
    fn new(r: &RequestInfo) -> RequestView {
        let field = |v: &Option<String>| v.as_deref().map(shown);
        RequestView {
            method: field(&r.method),
            path: field(&r.path),
            query: field(&r.query),
            host: field(&r.host),
            client: field(&r.client),
            user_agent: field(&r.user_agent),
            truncated: r.truncated.iter().map(|t| shown(t)).collect(),
        }
    }
}

impl HistoryView {
    /// The sparkline of the last hour of `points`, measured back from the
    /// newest point (not the clock: the page is a pure function of its input).
    fn new(points: &[HistoryPoint]) -> HistoryView {
        let mut recent: Vec<HistoryPoint> = match points.iter().map(|p| p.unix_seconds).max() {
            Some(newest) => points
                .iter()
                .filter(|p| p.unix_seconds >= newest.saturating_sub(HISTORY_SECONDS))
                .copied()
                .collect(),
            None => Vec::new(),
        };
        recent.sort_by_key(|p| p.unix_seconds);
        let (Some(first), Some(last)) = (recent.first().copied(), recent.last().copied()) else {
            return HistoryView {
                empty: true,
                busy_points: String::new(),
                workers_points: String::new(),
                last_x: String::new(),
                last_y: String::new(),
                latest: 0,
                peak: 0,
                workers: 0,
                samples: 0,
                minutes: 0,
                width: SPARK_WIDTH,
                height: SPARK_HEIGHT,
            };
        };
        let peak = recent.iter().map(|p| p.peak).max().unwrap_or(0);
        let most_workers = recent.iter().map(|p| p.workers).max().unwrap_or(0);
        let top = peak.max(most_workers).max(1) as f64;
        let start = last.unix_seconds.saturating_sub(HISTORY_SECONDS);
        let x = |p: &HistoryPoint| {
            let offset = p.unix_seconds.saturating_sub(start) as f64;
            (offset / HISTORY_SECONDS as f64 * SPARK_WIDTH).clamp(0.0, SPARK_WIDTH)
        };
        // Keep a 2-unit margin so a line at 0 or at the top stays visible.
        let y = |value: u64| SPARK_HEIGHT - 2.0 - value as f64 / top * (SPARK_HEIGHT - 4.0);
        let line = |value: fn(&HistoryPoint) -> u64| -> String {
            recent
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p), y(value(p))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        HistoryView {
            empty: false,
            busy_points: line(|p| p.peak),
            workers_points: line(|p| p.workers),
            last_x: format!("{:.1}", x(&last)),
            last_y: format!("{:.1}", y(last.busy)),
            latest: last.busy,
            peak,
            workers: last.workers,
            samples: recent.iter().map(|p| p.samples as usize).sum(),
            minutes: last.unix_seconds.saturating_sub(first.unix_seconds) / 60,
            width: SPARK_WIDTH,
            height: SPARK_HEIGHT,
        }
    }
}

#[cfg(test)]
mod tests;

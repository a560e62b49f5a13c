//! Plain-text output: the Nagios-style check, the original's classic layout,
//! and the DeadlockDebugger-style dump.
//!
//! Pure functions of a Report and its Evaluation writing to any `io::Write`;
//! the only other I/O is reading source lines through [`SourceCache`]. Every
//! string that came from the target passes through
//! [`crate::sanitize::for_terminal`].

use std::io::{self, Write};

use crate::classify::{Role, State};
use crate::model::RequestInfo;
use crate::policy::{Evaluation, Status};
use crate::report::{Inspection, Report, TargetReport, ThreadReport};
use crate::sanitize::for_terminal as clean;
use crate::source::SourceCache;

/// Arrangement of the check's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layout {
    /// Status line (with perfdata) first, then `Idle/Busy`, then details.
    #[default]
    Nagios,
    /// The original's order: details, `Idle/Busy`, status line last.
    Classic,
}

/// Options for [`check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckText {
    /// Which arrangement.
    pub layout: Layout,
    /// Show details even when the status is OK.
    pub verbose: bool,
}

/// The `zhw check` output.
pub fn check<W: Write>(
    out: &mut W,
    report: &Report,
    eval: &Evaluation,
    options: CheckText,
) -> io::Result<()> {
    let status_line = format!("{} - {}", eval.verdict.label, clean(&eval.verdict.message));
    let (idle, busy) = totals(report);
    let idle_busy = format!("Idle: {idle}\tBusy: {busy}");
    let details = options.verbose || eval.verdict.status != Status::Ok;
    let mut sources = SourceCache::default();
    match options.layout {
        Layout::Nagios => {
            let perf: Vec<String> = eval.perfdata.iter().map(ToString::to_string).collect();
            if perf.is_empty() {
                writeln!(out, "{status_line}")?;
            } else {
                writeln!(out, "{status_line} | {}", perf.join(" "))?;
            }
            writeln!(out, "{idle_busy}")?;
            for warning in &report.warnings {
                writeln!(out, "warning: {}", clean(warning))?;
            }
            if details {
                writeln!(out)?;
                information(out, report, false)?;
                for (target, verdict) in report.targets.iter().zip(&eval.targets) {
                    writeln!(out)?;
                    let label = crate::policy::code_and_label(verdict, eval.codes).1;
                    target_header(
                        out,
                        target,
                        &format!("{label} - {}", clean(&verdict.message)),
                    )?;
                    if let Some(inspection) = &target.inspection {
                        for thread in &inspection.threads {
                            thread_block(out, &mut sources, target, thread, StackWhen::Busy)?;
                        }
                    }
                }
            }
        }
        Layout::Classic => {
            if details {
                information(out, report, true)?;
                writeln!(out)?;
                writeln!(out, "Dump:")?;
                for target in &report.targets {
                    classic_dump(out, &mut sources, target)?;
                }
                writeln!(out)?;
            }
            writeln!(out, "{idle_busy}")?;
            writeln!(out, "{status_line}")?;
        }
    }
    Ok(())
}

/// The `zhw dump` output: every thread of every target with its stack.
pub fn dump<W: Write>(out: &mut W, report: &Report) -> io::Result<()> {
    let mut sources = SourceCache::default();
    for (index, target) in report.targets.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        let summary = match (&target.inspection, &target.error) {
            (Some(i), _) => match &i.incomplete {
                None => format!("Idle: {}\tBusy: {}", i.stats.idle_count, i.stats.busy_count),
                Some(why) => format!(
                    "Idle: {}\tBusy: {} {}{}]",
                    i.stats.idle_count,
                    i.stats.busy_count,
                    crate::policy::INCOMPLETE,
                    clean(why)
                ),
            },
            (None, Some(error)) => format!("error: {}", clean(&error.message)),
            (None, None) => String::new(),
        };
        target_header(out, target, &summary)?;
        if let Some(inspection) = &target.inspection {
            for thread in &inspection.threads {
                thread_block(out, &mut sources, target, thread, StackWhen::Always)?;
            }
        }
    }
    Ok(())
}

fn totals(report: &Report) -> (u64, u64) {
    report
        .targets
        .iter()
        .filter_map(|t| t.inspection.as_ref())
        .fold((0, 0), |(idle, busy), i| {
            (idle + i.stats.idle_count, busy + i.stats.busy_count)
        })
}

fn information<W: Write>(out: &mut W, report: &Report, classic: bool) -> io::Result<()> {
    let system = &report.system;
    writeln!(out, "Information:")?;
    writeln!(out, "\tTime {}", system.time)?;
    writeln!(
        out,
        "\tSysload {}",
        system.loadavg_raw.as_deref().unwrap_or("unknown")
    )?;
    match (classic, &system.meminfo_raw, &system.memory) {
        (true, Some(raw), _) => writeln!(out, "\tMeminfo {}", raw.trim_end())?,
        (false, _, Some(memory)) => writeln!(
            out,
            "\tMeminfo total {}, available {}",
            bytes(memory.total_bytes),
            bytes(memory.available_bytes)
        )?,
        _ => writeln!(out, "\tMeminfo unknown")?,
    }
    for target in &report.targets {
        if let (Some(pid), Some(i)) = (target.pid, &target.inspection) {
            writeln!(out, "\tProcess {}", process_line(pid, i))?;
        }
    }
    Ok(())
}

fn process_line(pid: u32, i: &Inspection) -> String {
    let p = &i.process;
    let mut parts = vec![
        format!("pid {pid}"),
        format!("Python {}", clean(&i.python_version)),
    ];
    if let Some(rss) = p.rss_bytes {
        parts.push(format!("RSS {}", bytes(rss)));
    }
    if let Some(cpu) = p.cpu_percent {
        parts.push(format!("CPU {cpu:.1}%"));
    }
    if let Some(threads) = p.threads {
        parts.push(format!("{threads} OS threads"));
    }
    if let Some(up) = p.uptime_seconds {
        parts.push(format!("up {}", duration(up)));
    }
    parts.join(", ")
}

fn target_header<W: Write>(out: &mut W, target: &TargetReport, summary: &str) -> io::Result<()> {
    let pid = match target.pid {
        Some(p) if target.name != format!("pid {p}") => format!(" (pid {p})"),
        _ => String::new(),
    };
    let name = clean(&target.name);
    if summary.is_empty() {
        writeln!(out, "Target {name}{pid}")?;
    } else {
        writeln!(out, "Target {name}{pid}: {summary}")?;
    }
    if let Some(i) = &target.inspection {
        writeln!(
            out,
            "\tPython {}, profile {} ({}); {}, {}",
            clean(&i.python_version),
            i.profile,
            clean(&i.profile_reason),
            count(i.stats.total_threads, "worker"),
            count(i.stats.service_count, "service thread")
        )?;
        for warning in &i.warnings {
            writeln!(out, "\twarning: {}", clean(warning))?;
        }
    }
    Ok(())
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum StackWhen {
    Busy,
    Always,
}

fn thread_block<W: Write>(
    out: &mut W,
    sources: &mut SourceCache,
    target: &TargetReport,
    thread: &ThreadReport,
    when: StackWhen,
) -> io::Result<()> {
    let name = thread
        .name
        .as_deref()
        .map(|n| format!(" \"{}\"", clean(n)))
        .unwrap_or_default();
    let tid = thread
        .os_thread_id
        .map(|t| format!(" tid {t}"))
        .unwrap_or_default();
    let role = match thread.role {
        Role::Worker => "worker",
        Role::Service => "service",
    };
    let state = match thread.state {
        State::Busy => "busy",
        State::Idle => "idle",
    };
    let flags = thread.flags();
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    // Several samples tell how long a busy worker has been on its request.
    let since = match (thread.state, thread.busy_seconds) {
        (State::Busy, Some(seconds)) => format!(
            " for at least {}{}",
            at_least(seconds),
            if thread.stuck {
                ", STUCK on one line"
            } else {
                ""
            }
        ),
        _ => String::new(),
    };
    writeln!(
        out,
        "Thread {}{name}{tid}: {role} {state}{since}{flags}",
        thread.thread_id
    )?;
    writeln!(out, "\t{}", clean(&thread.reason))?;
    if let Some(request) = &thread.request {
        request_lines(out, request)?;
    }
    let show_stack = when == StackWhen::Always || thread.state == State::Busy;
    if show_stack {
        stack(out, sources, target.pid.filter(|_| target.live), thread)?;
    }
    Ok(())
}

fn classic_dump<W: Write>(
    out: &mut W,
    sources: &mut SourceCache,
    target: &TargetReport,
) -> io::Result<()> {
    let Some(inspection) = &target.inspection else {
        if let Some(error) = &target.error {
            writeln!(out, "{}: {}", clean(&target.name), clean(&error.message))?;
        }
        return Ok(());
    };
    for thread in &inspection.threads {
        writeln!(out, "Thread {}", thread.thread_id)?;
        if thread.role == Role::Worker && thread.state == State::Idle {
            writeln!(out, "not busy")?;
        } else {
            if let Some(request) = &thread.request {
                request_lines(out, request)?;
            }
            stack(out, sources, target.pid.filter(|_| target.live), thread)?;
        }
    }
    Ok(())
}

/// Frames outermost first, as `traceback.print_stack` prints them.
fn stack<W: Write>(
    out: &mut W,
    sources: &mut SourceCache,
    pid: Option<u32>,
    thread: &ThreadReport,
) -> io::Result<()> {
    if thread.frames.is_empty() {
        return writeln!(out, "  (no Python frames)");
    }
    for item in stack_lines(thread) {
        match item {
            StackLine::Frame(frame) => {
                writeln!(
                    out,
                    "  File \"{}\", line {}, in {}",
                    clean(&frame.file),
                    frame.line,
                    clean(&frame.function)
                )?;
                if let Some(line) = pid.and_then(|pid| sources.line(pid, &frame.file, frame.line)) {
                    writeln!(out, "    {}", clean(&line))?;
                }
                for local in frame.locals.iter().flatten() {
                    writeln!(out, "      {} = {}", clean(&local.name), clean(&local.repr))?;
                }
            }
            other => writeln!(out, "  {}", other.note())?,
        }
    }
    Ok(())
}

/// Lines shown per stack at most (frames, repeat notes and gaps): the
/// outermost [`SHOWN_OUTER`] and the rest innermost, the middle elided.
const SHOWN_LINES: usize = 60;
/// Of [`SHOWN_LINES`], how many from the outermost end.
const SHOWN_OUTER: usize = 15;
/// Identical consecutive frames printed before a repeat note, as Python's
/// own tracebacks do.
const SHOWN_REPEATS: usize = 3;

/// One line of a rendered stack (text and HTML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StackLine<'a> {
    Frame(&'a crate::model::Frame),
    /// The frame before it, this many more times.
    Repeated(u64),
    /// This many frames left out here.
    Elided(u64),
    /// The stack goes on beyond what was read (outermost end).
    Unread,
}

impl StackLine<'_> {
    /// Frames this line stands for.
    fn frames(&self) -> u64 {
        match self {
            StackLine::Frame(_) => 1,
            StackLine::Repeated(n) | StackLine::Elided(n) => *n,
            StackLine::Unread => 0,
        }
    }

    /// The words for a line that is not a frame (empty for a frame).
    pub(crate) fn note(&self) -> String {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        match *self {
            StackLine::Frame(_) => String::new(),
            StackLine::Repeated(n) => {
                format!("[Previous line repeated {n} more time{}]", plural(n))
            }
            StackLine::Elided(n) => format!(
                "... {} frame{} elided ...",
                crate::report::group(n),
                plural(n)
            ),
            StackLine::Unread => format!(
                "... deeper than {} frames: the outermost were not read ...",
                crate::report::group(crate::model::MAX_FRAME_WALK as u64)
            ),
        }
    }
}

/// A stack as lines, outermost first, readable at any depth: runs of one
/// frame (recursion) collapse into a repeat note, the reader's gap in a
/// deep stack is one line, and beyond [`SHOWN_LINES`] the middle is elided,
/// so the outermost calls and the innermost ones (what the thread is doing)
/// always show. JSON keeps every frame that was read.
pub(crate) fn stack_lines(thread: &ThreadReport) -> Vec<StackLine<'_>> {
    let (inner, outer) = match thread.elided {
        Some(gap) => thread.frames.split_at(gap.after.min(thread.frames.len())),
        None => (&thread.frames[..], &[][..]),
    };
    let mut lines = Vec::new();
    if thread.frames_cut {
        lines.push(StackLine::Unread);
    }
    collapse_repeats(outer.iter().rev(), &mut lines);
    if let Some(gap) = thread.elided {
        lines.push(StackLine::Elided(gap.count));
    }
    collapse_repeats(inner.iter().rev(), &mut lines);
    if lines.len() <= SHOWN_LINES {
        return lines;
    }
    let tail = lines.split_off(lines.len() - (SHOWN_LINES - SHOWN_OUTER - 1));
    let middle: u64 = lines[SHOWN_OUTER..].iter().map(StackLine::frames).sum();
    lines.truncate(SHOWN_OUTER);
    lines.push(StackLine::Elided(middle));
    lines.extend(tail);
    lines
}

fn collapse_repeats<'a>(
    frames: impl Iterator<Item = &'a crate::model::Frame>,
    lines: &mut Vec<StackLine<'a>>,
) {
    let mut run: Option<(&crate::model::Frame, u64)> = None;
    let flush = |run: Option<(&'a crate::model::Frame, u64)>, lines: &mut Vec<StackLine<'a>>| {
        if let Some((frame, times)) = run {
            let shown = times.min(SHOWN_REPEATS as u64);
            lines.extend((0..shown).map(|_| StackLine::Frame(frame)));
            if times > shown {
                lines.push(StackLine::Repeated(times - shown));
            }
        }
    };
    for frame in frames {
        match &mut run {
            Some((same, times)) if *same == frame => *times += 1,
            _ => {
                flush(run.take(), lines);
                run = Some((frame, 1));
            }
        }
    }
    flush(run, lines);
}

/// `Request: GET /path?query (host, client, user agent)`, then what was cut.
fn request_lines<W: Write>(out: &mut W, request: &RequestInfo) -> io::Result<()> {
    writeln!(out, "\tRequest: {}", clean(&request_summary(request)))?;
    if !request.truncated.is_empty() {
        writeln!(
            out,
            "\tRequest truncated: {}",
            clean(&request.truncated.join("; "))
        )?;
    }
    Ok(())
}

/// The one-line form of a request, as the text output shows it.
pub fn request_summary(request: &RequestInfo) -> String {
    let mut line = String::new();
    if let Some(method) = &request.method {
        line.push_str(method);
    }
    let target = match (&request.path, &request.query) {
        (Some(path), Some(query)) => format!("{path}?{query}"),
        (Some(path), None) => path.clone(),
        (None, Some(query)) => format!("?{query}"),
        (None, None) => String::new(),
    };
    if !target.is_empty() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&target);
    }
    let about: Vec<&str> = [&request.host, &request.client, &request.user_agent]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .filter(|v| !v.is_empty())
        .collect();
    if !about.is_empty() {
        line.push_str(&format!(" ({})", about.join(", ")));
    }
    if line.is_empty() {
        line.push_str("(unreadable)");
    }
    line
}

/// A byte count for people (`1.5 MiB`); shared with the HTML renderer so both say the same.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 worker`, `2 workers`.
fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A lower bound for people: tenths of a second under ten seconds (rounded
/// down, so that it stays a lower bound: a worker busy for 0.42 s is "at
/// least 0.4s", not "0s"), [`duration`] above; shared with the HTML renderer.
pub(crate) fn at_least(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 10.0 {
        format!("{:.1}s", (seconds * 10.0).floor() / 10.0)
    } else {
        duration(seconds)
    }
}

/// A duration for people (`59s`, `1h02m`); shared with the HTML renderer.
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m{sec:02}s"),
        (0, h, m, _) => format!("{h}h{m:02}m"),
        (d, h, _, _) => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ElidedFrames, Frame};

    fn frame(function: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: "/srv/app.py".into(),
            line,
            locals: None,
        }
    }

    fn thread(frames: Vec<Frame>, elided: Option<(usize, u64)>, cut: bool) -> ThreadReport {
        ThreadReport {
            thread_id: 1,
            os_thread_id: None,
            name: None,
            role: Role::Worker,
            state: State::Busy,
            reason: String::new(),
            cpu: None,
            holds_gil: false,
            activity: None,
            activity_detail: None,
            is_main: false,
            stack_consistent: true,
            frames,
            elided: elided.map(|(after, count)| ElidedFrames { after, count }),
            frames_cut: cut,
            request: None,
            busy_seconds: None,
            stuck: false,
        }
    }

    /// Innermost `bottom`, then `depth` calls of `descend`, then `<module>`.
    fn recursion(depth: usize) -> Vec<Frame> {
        let mut frames = vec![frame("bottom", 9)];
        frames.extend(std::iter::repeat_n(frame("descend", 5), depth));
        frames.push(frame("<module>", 1));
        frames
    }

    fn shown(lines: &[StackLine]) -> Vec<String> {
        lines
            .iter()
            .map(|line| match line {
                StackLine::Frame(f) => f.function.clone(),
                StackLine::Repeated(n) => format!("repeated {n}"),
                StackLine::Elided(n) => format!("elided {n}"),
                StackLine::Unread => "unread".into(),
            })
            .collect()
    }

    /// Every frame that was read is accounted for by exactly one line.
    fn accounted(thread: &ThreadReport) -> u64 {
        stack_lines(thread).iter().map(StackLine::frames).sum()
    }

    #[test]
    fn stacks_stay_short_at_any_depth() {
        // (frames, reader's gap, cut) -> lines, outermost first
        let distinct: Vec<Frame> = (0..4096).map(|i| frame(&format!("f{i}"), 1)).collect();
        let rows: Vec<(ThreadReport, Vec<&str>)> = vec![
            (
                thread(recursion(2), None, false),
                vec!["<module>", "descend", "descend", "bottom"],
            ),
            (
                thread(recursion(10), None, false),
                vec![
                    "<module>",
                    "descend",
                    "descend",
                    "descend",
                    "repeated 7",
                    "bottom",
                ],
            ),
            // 5003 frames deep, read as 2048 + 2048 with 907 between
            (
                thread(recursion(4094), Some((2048, 907)), false),
                vec![
                    "<module>",
                    "descend",
                    "descend",
                    "descend",
                    "repeated 2044",
                    "elided 907",
                    "descend",
                    "descend",
                    "descend",
                    "repeated 2044",
                    "bottom",
                ],
            ),
            (
                thread(recursion(4094), Some((2048, 61_440)), true),
                vec![
                    "unread",
                    "<module>",
                    "descend",
                    "descend",
                    "descend",
                    "repeated 2044",
                    "elided 61440",
                    "descend",
                    "descend",
                    "descend",
                    "repeated 2044",
                    "bottom",
                ],
            ),
        ];
        for (thread, expected) in rows {
            assert_eq!(shown(&stack_lines(&thread)), expected);
            let read = thread.frames.len() as u64 + thread.elided.map_or(0, |gap| gap.count);
            assert_eq!(accounted(&thread), read);
        }

        // Nothing repeats: the middle is elided, both ends shown.
        let deep = thread(distinct, Some((2048, 1000)), false);
        let lines = stack_lines(&deep);
        assert_eq!(lines.len(), SHOWN_LINES);
        let names = shown(&lines);
        assert_eq!(names[0], "f4095", "outermost first");
        assert_eq!(names[SHOWN_OUTER], format!("elided {}", 4096 + 1000 - 59));
        assert_eq!(names[SHOWN_LINES - 1], "f0", "innermost last");
        assert_eq!(accounted(&deep), 4096 + 1000);
    }

    #[test]
    fn deep_stacks_render_as_python_tracebacks_do() {
        let mut out = Vec::new();
        let mut sources = SourceCache::default();
        let deep = thread(recursion(4094), Some((2048, 907)), false);
        stack(&mut out, &mut sources, None, &deep).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("  [Previous line repeated 2044 more times]\n"),
            "{text}"
        );
        assert!(text.contains("  ... 907 frames elided ...\n"), "{text}");
        assert_eq!(text.lines().count(), 11);
        let mut out = Vec::new();
        let cut = thread(recursion(1), Some((2048, 1)), true);
        stack(&mut out, &mut sources, None, &cut).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with("  ... deeper than 65,536 frames: the outermost were not read ...\n"),
            "{text}"
        );
        assert!(text.contains("  ... 1 frame elided ...\n"), "{text}");
    }

    #[test]
    fn request_lines_are_sanitized() {
        let request = RequestInfo {
            method: Some("GET".into()),
            path: Some("/a\x1b[2Jb".into()),
            query: Some("q=x&password=***".into()),
            host: Some("example.org".into()),
            client: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            identity: Some(1),
            truncated: vec!["PATH_INFO: 10485760 long, only the first 2048 read".into()],
        };
        let mut out = Vec::new();
        request_lines(&mut out, &request).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\tRequest: GET /a\\x1b[2Jb?q=x&password=*** (example.org, 192.0.2.7, curl/8)\n\
             \tRequest truncated: PATH_INFO: 10485760 long, only the first 2048 read\n"
        );
        let bare = RequestInfo {
            path: Some("/x".into()),
            ..RequestInfo::default()
        };
        assert_eq!(request_summary(&bare), "/x");
        assert_eq!(request_summary(&RequestInfo::default()), "(unreadable)");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(at_least(0.42), "0.4s");
        assert_eq!(at_least(9.99), "9.9s");
        assert_eq!(at_least(75.0), "1m15s");
        assert_eq!(count(1u32, "service thread"), "1 service thread");
        assert_eq!(count(0u32, "worker"), "0 workers");
        assert_eq!(duration(59.0), "59s");
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(duration(90061.0), "1d01h");
    }
}

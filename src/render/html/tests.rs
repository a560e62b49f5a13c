//! Unit tests of the HTML page: escaping of hostile target strings, what the
//! dashboard options change, and the history sparkline. They render into a
//! `Vec<u8>` from hand-built Reports; nothing here starts a process.

use super::*;
use crate::classify::{Role, State};
use crate::model::{ElidedFrames, Frame, ProcessFacts, RequestInfo, SamplingFacts};
use crate::policy::{CheckPolicy, evaluate};
use crate::report::{Cpu, Inspection, Report, Stats, SystemFacts, TargetError, TargetReport};

const SCRIPT: &str = "<script>alert('x')</script>";
const ATTR_BREAKOUT: &str = "\"'><img src=x onerror=alert(1)>";
const CONTROLS: &str = "\u{1b}]0;pwned\u{7}\r\n\u{202e}";

fn hostile(what: &str) -> String {
    format!("{what}{SCRIPT}{ATTR_BREAKOUT}{CONTROLS}")
}

fn thread(name: &str, role: Role, state: State, request: Option<RequestInfo>) -> ThreadReport {
    ThreadReport {
        thread_id: 7,
        os_thread_id: Some(70),
        name: Some(name.to_string()),
        role,
        state,
        reason: hostile("reason"),
        cpu: Some(Cpu::Running),
        holds_gil: true,
        activity: None,
        activity_detail: None,
        is_main: false,
        stack_consistent: true,
        frames: vec![
            Frame {
                function: hostile("inner_fn"),
                file: hostile("/srv/inner.py"),
                line: 12,
                locals: None,
            },
            Frame {
                function: "outer_fn".into(),
                file: "/srv/outer.py".into(),
                line: 3,
                locals: None,
            },
        ],
        elided: None,
        frames_cut: false,
        request,
        busy_seconds: None,
        stuck: false,
    }
}

fn inspected(name: &str, threads: Vec<ThreadReport>) -> TargetReport {
    let workers = || threads.iter().filter(|t| t.role == Role::Worker);
    let stats = Stats {
        total_threads: workers().count() as u64,
        busy_count: workers().filter(|t| t.state == State::Busy).count() as u64,
        idle_count: workers().filter(|t| t.state == State::Idle).count() as u64,
        service_count: threads.iter().filter(|t| t.role == Role::Service).count() as u64,
    };
    TargetReport {
        name: name.to_string(),
        target: name.to_string(),
        pid: Some(4242),
        error: None,
        inspection: Some(Inspection {
            python_version: "3.12.1".into(),
            profile: "waitress",
            profile_reason: "waitress: test".into(),
            stats,
            process: ProcessFacts::default(),
            sampling: SamplingFacts::default(),
            threads,
            warnings: vec![hostile("inspection warning")],
            incomplete: None,
        }),
        live: false,
        optional: false,
        remembered_workers: None,
    }
}

fn report(targets: Vec<TargetReport>) -> Report {
    Report {
        system: SystemFacts {
            time: "2026-01-01T00:00:00+00:00".into(),
            ..SystemFacts::default()
        },
        warnings: vec![hostile("run warning")],
        targets,
    }
}

fn render(report: &Report, options: &PageOptions<'_>) -> String {
    let evaluation = evaluate(report, &CheckPolicy::default());
    let mut out = Vec::new();
    page(&mut out, report, &evaluation, options).expect("render into a Vec");
    String::from_utf8(out).expect("UTF-8 page")
}

const STATIC: PageOptions<'static> = PageOptions {
    refresh_seconds: None,
    history: &[],
    title: "zhw check",
};

fn hostile_report() -> Report {
    let request = RequestInfo {
        method: Some(hostile("GET")),
        path: Some(hostile("/path")),
        query: Some(hostile("q=1")),
        host: Some(hostile("host")),
        user_agent: Some(hostile("agent")),
        client: Some(hostile("client")),
        identity: Some(1),
        truncated: vec![hostile("cut")],
    };
    let mut busy = thread(&hostile("thread"), Role::Worker, State::Busy, Some(request));
    busy.busy_seconds = Some(42.0);
    busy.stuck = true;
    let idle = thread(&hostile("idle thread"), Role::Worker, State::Idle, None);
    let service = thread(&hostile("service thread"), Role::Service, State::Idle, None);
    let failed = TargetReport::failed(
        hostile("broken"),
        hostile("/run/broken.pid"),
        None,
        TargetError {
            kind: "no_such_process",
            message: hostile("error"),
            not_running: true,
        },
    );
    report(vec![
        inspected(&hostile("target"), vec![busy, idle, service]),
        failed,
    ])
}

#[test]
fn hostile_strings_come_out_as_text() {
    let html = render(&hostile_report(), &STATIC);
    // Exactly the page's own elements: none came from the data.
    for tag in ["<script", "<img", "<iframe", "<object"] {
        assert!(!html.contains(tag), "{tag} leaked into the page");
    }
    assert!(!html.contains("onerror=alert(1)>"), "attribute breakout");
    for control in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(!html.contains(control), "{control:?} leaked");
    }
    let escaped_script = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;";
    let escaped_breakout = "&#34;&#39;&#62;&#60;img src=x onerror=alert(1)&#62;";
    let escaped_controls = "\\x1b]0;pwned\\x07\\x0d\\x0a\\u{202e}";
    for what in [
        "inner_fn",
        "/srv/inner.py",
        "thread",
        "idle thread",
        "service thread",
        "GET",
        "/path",
        "q=1",
        "host",
        "agent",
        "client",
        "cut",
        "reason",
        "target",
        "broken",
        "error",
        "run warning",
        "inspection warning",
    ] {
        let expected = format!("{what}{escaped_script}{escaped_breakout}{escaped_controls}");
        assert!(
            html.contains(&expected),
            "{what} not shown escaped; page:\n{html}"
        );
    }
}

#[test]
fn hostile_title_is_escaped() {
    let options = PageOptions {
        title: "</title><script>x()</script>",
        ..STATIC
    };
    let html = render(&report(Vec::new()), &options);
    assert!(!html.contains("<script"));
    assert!(html.contains("<title>&#60;/title&#62;&#60;script&#62;x()&#60;/script&#62; — "));
}

#[test]
fn the_page_forbids_scripts_and_loads_nothing() {
    let html = render(&hostile_report(), &STATIC);
    let meta = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
    );
    let at = html
        .find(&meta)
        .expect("the CSP meta, equal to the constant");
    let first_data = html.find("<body").expect("body");
    assert!(at < first_data, "the policy comes before any content");
    assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none';"));
    assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
    for external in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn busy_workers_show_request_duration_stuck_and_stack_outermost_first() {
    let html = render(&hostile_report(), &STATIC);
    assert!(html.contains("<span class=\"badge duration\">≥ 42s</span>"));
    assert!(html.contains(">stuck</span>"));
    let outer = html.find("outer_fn").expect("outer frame");
    let inner = html.find("inner_fn").expect("inner frame");
    assert!(outer < inner, "traceback order: outermost first");
    assert!(html.contains("<dt>truncated</dt>"));
    // The idle worker and the service thread are folded away.
    assert!(html.contains("<summary>1 idle worker</summary>"));
    assert!(html.contains("<summary>1 service thread</summary>"));
}

#[test]
fn statuses_and_errors_per_card() {
    let html = render(&hostile_report(), &STATIC);
    assert!(html.contains("<header class=\"overall st-unknown\">"));
    assert!(html.contains("<h1 class=\"status-line\">FAILURE - error"));
    assert!(html.contains("<span class=\"badge st-ok\">OK</span>"));
    assert!(html.contains("<span class=\"badge st-unknown\">FAILURE</span>"));
    // The detail is the verdict's message already: said once.
    assert!(html.contains("<p class=\"error\">error (no_such_process)</p>"));
}

#[test]
fn refresh_only_on_the_dashboard() {
    let report = report(vec![inspected("a", Vec::new())]);
    assert!(!render(&report, &STATIC).contains("http-equiv=\"refresh\""));
    let dashboard = PageOptions {
        refresh_seconds: Some(15),
        ..STATIC
    };
    assert!(render(&report, &dashboard).contains("<meta http-equiv=\"refresh\" content=\"15\">"));
}

#[test]
fn history_covers_the_last_hour_of_each_target() {
    let point = |unix_seconds, busy| HistoryPoint::sample(unix_seconds, busy, 4);
    let history = vec![
        vec![
            point(1_000, 4), // more than an hour before the newest: dropped
            point(5_000, 1),
            point(6_800, 3),
            point(8_600, 2),
        ],
        Vec::new(),
    ];
    let report = report(vec![inspected("a", Vec::new()), inspected("b", Vec::new())]);
    let options = PageOptions {
        history: &history,
        ..STATIC
    };
    let html = render(&report, &options);
    assert!(
        html.contains("now 2 of 4, peak 3 (3 samples over 60 min)"),
        "{html}"
    );
    // x: 10 s per unit from an hour before the newest point; y: 0 busy at
    // 46, the 4-worker pool at 2 (a 2-unit margin keeps both lines visible).
    assert!(html.contains("class=\"busy\" points=\"0.0,35.0 180.0,13.0 360.0,24.0\""));
    assert!(html.contains("class=\"workers\" points=\"0.0,2.0 180.0,2.0 360.0,2.0\""));
    assert!(html.contains("No history yet."), "target b has none");
    assert!(
        !render(&report, &STATIC).contains("class=\"history\""),
        "no history slice, no sparkline"
    );
}

#[test]
fn history_tolerates_odd_input() {
    let view = HistoryView::new(&[
        HistoryPoint::sample(i64::MIN, u64::MAX, 0),
        HistoryPoint::sample(i64::MAX, 0, 0),
    ]);
    assert_eq!(view.samples, 1);
    assert!(!view.busy_points.contains("NaN") && !view.busy_points.contains("inf"));
}

#[test]
fn huge_strings_are_capped() {
    let long = "a".repeat(MAX_SHOWN_CHARS + 10);
    assert_eq!(
        shown(&long),
        format!("{}… (10 more characters)", "a".repeat(MAX_SHOWN_CHARS))
    );
    assert_eq!(shown("short"), "short");
}

#[test]
fn a_closed_pipe_stays_a_closed_pipe() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let report = hostile_report();
    let evaluation = evaluate(&report, &CheckPolicy::default());
    let err = page(&mut Closed, &report, &evaluation, &STATIC).expect_err("write fails");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

/// A stack 5000 frames deep (kept 2048 + 2048, 904 between) shows as a few
/// lines with the same notes as the text dump, and the partial read's note
/// reaches the card's status line.
#[test]
fn deep_stacks_are_short_and_partial_reads_say_so() {
    let mut deep = thread("deep", Role::Worker, State::Busy, None);
    deep.frames = std::iter::once(Frame {
        function: "bottom".into(),
        file: "/srv/app.py".into(),
        line: 9,
        locals: None,
    })
    .chain(std::iter::repeat_n(
        Frame {
            function: "descend".into(),
            file: "/srv/app.py".into(),
            line: 5,
            locals: None,
        },
        4095,
    ))
    .collect();
    deep.elided = Some(ElidedFrames {
        after: 2048,
        count: 904,
    });
    deep.frames_cut = true;
    let mut target = inspected("client1", vec![deep]);
    if let Some(inspection) = target.inspection.as_mut() {
        inspection.incomplete = Some("1 stack cut at 65,536 frames".into());
    }
    let html = render(&report(vec![target]), &STATIC);
    assert_eq!(
        html.matches("in <span class=\"function\">descend</span>")
            .count(),
        6
    );
    for note in [
        "<li class=\"note\">... deeper than 65,536 frames: the outermost were not read ...</li>",
        "<li class=\"note\">[Previous line repeated 2044 more times]</li>",
        "<li class=\"note\">... 904 frames elided ...</li>",
    ] {
        assert!(html.contains(note), "{note} not in the page");
    }
    assert!(html.contains("[incomplete read: 1 stack cut at 65,536 frames]"));
}

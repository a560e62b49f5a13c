//! Deterministic CLI tests on snapshots recorded from real servers with
//! `zhw record` (tests/fixtures/): every renderer, aggregation over several
//! targets, forced profiles, and hostile strings from target memory.

use std::path::PathBuf;

use crate::support::{repo, zhw};

fn fixture(name: &str) -> String {
    repo()
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

const TWO_BUSY: &str = "waitress-3.12-two-busy.json";
const ALL_BUSY: &str = "waitress-2.7-all-busy.json";
/// TWO_BUSY with request objects on both busy workers, one full of markup.
const HOSTILE_REQUEST: &str = "waitress-3.12-hostile-request.json";

/// Compare with a reviewed file under tests/golden/; `ZHW_BLESS=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path: PathBuf = repo().join("tests/golden").join(name);
    if std::env::var_os("ZHW_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("bless");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with ZHW_BLESS=1 to create)", path.display()));
    assert!(
        expected == actual,
        "{} differs; got:\n{actual}",
        path.display()
    );
}

#[test]
fn ok_check_is_two_lines_with_perfdata() {
    let run = zhw(&["check", "--replay", &fixture(TWO_BUSY)]);
    assert_eq!(
        run.stdout,
        "OK - Everything looks fine | busy=2;3;3;0;4 idle=2;;;0;4 workers=4;;;0;\nIdle: 2\tBusy: 2\n"
    );
    assert_eq!(run.code, 0);
    let classic = zhw(&[
        "check",
        "--layout",
        "classic",
        "--replay",
        &fixture(TWO_BUSY),
    ]);
    assert_eq!(
        classic.stdout,
        "Idle: 2\tBusy: 2\nOK - Everything looks fine\n"
    );
}

#[test]
fn thresholds_on_a_recording() {
    let rows: [(&[&str], &str, i32); 10] = [
        (
            &["-w", "1"],
            "WARNING - Warning, high load | busy=2;1;3;0;4",
            1,
        ),
        (
            &["-w", "2"],
            "OK - Everything looks fine | busy=2;2;3;0;4",
            0,
        ),
        (
            &["-c", "1"],
            "CRITICAL - No more Zeo client available | busy=2;3;1;0;4",
            3,
        ),
        (
            &["-c", "1", "--exit-codes", "nagios"],
            "CRITICAL - No more Zeo client available | busy=2;3;1;0;4",
            2,
        ),
        (
            &["-w", "0", "-c", "5"],
            "WARNING - Warning, high load | busy=2;0;5;0;4",
            1,
        ),
        // The monitoring-plugins range forms, on 2 busy of 4.
        (
            &["-w", "3:"],
            "WARNING - Warning, high load | busy=2;3:;3;0;4",
            1,
        ),
        (
            &["-w", "~:2"],
            "OK - Everything looks fine | busy=2;~:2;3;0;4",
            0,
        ),
        (
            &["-w", "1:3"],
            "OK - Everything looks fine | busy=2;1:3;3;0;4",
            0,
        ),
        (
            &["-c", "@2:3"],
            "CRITICAL - No more Zeo client available | busy=2;3;@2:3;0;4",
            3,
        ),
        (
            &["-w", "@0:1", "-c", "@5:9"],
            "OK - Everything looks fine | busy=2;@0:1;@5:9;0;4",
            0,
        ),
    ];
    for (extra, first, code) in rows {
        let mut args = vec!["check", "--replay"];
        args.extend_from_slice(extra);
        let path = fixture(TWO_BUSY);
        args.push(&path);
        let run = zhw(&args);
        assert!(
            run.first_line().starts_with(first),
            "{extra:?}: {}",
            run.first_line()
        );
        assert_eq!(run.code, code, "{extra:?}");
    }
}

#[test]
fn malformed_ranges_name_the_argument() {
    let path = fixture(TWO_BUSY);
    let run = zhw(&["check", "--replay", "-w", "5:1", &path]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--warning <RANGE>"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the start of \"5:1\" is greater than its end"),
        "{}",
        run.stderr
    );
    let run = zhw(&[
        "check",
        "--replay",
        "--exit-codes",
        "nagios",
        "-c",
        "lots",
        &path,
    ]);
    assert_eq!(run.code, 3);
    assert!(
        run.first_line().starts_with(
            "UNKNOWN - invalid arguments: invalid value 'lots' for '--critical <RANGE>'"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn several_targets_worst_wins_with_its_name() {
    let run = zhw(&["check", "--replay", &fixture(TWO_BUSY), &fixture(ALL_BUSY)]);
    assert!(run.first_line().starts_with("CRITICAL - No more Zeo client available (waitress-2.7-all-busy) | 'waitress-3.12-two-busy busy'=2;3;3;0;4 "), "{}", run.first_line());
    assert_eq!(run.line(1), "Idle: 2\tBusy: 6");
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.contains("\nTarget waitress-3.12-two-busy (pid "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(": OK - Everything looks fine\n"));
    let nagios = zhw(&[
        "check",
        "--exit-codes",
        "nagios",
        "--replay",
        &fixture(TWO_BUSY),
        &fixture(ALL_BUSY),
    ]);
    assert_eq!(nagios.code, 2);
    // An unreadable target next to a saturated one: CRITICAL (3) outranks FAILURE (2).
    let missing = fixture("no-such-recording.json");
    let mixed = zhw(&["check", "--replay", &fixture(ALL_BUSY), &missing]);
    assert_eq!(mixed.code, 3, "{}", mixed.stdout);
    let mixed = zhw(&["check", "--replay", &fixture(TWO_BUSY), &missing]);
    assert!(
        mixed
            .first_line()
            .starts_with("FAILURE - cannot read snapshot"),
        "{}",
        mixed.stdout
    );
    assert_eq!(mixed.code, 2);
}

#[test]
fn dump_golden() {
    let run = zhw(&["dump", "--replay", &fixture(TWO_BUSY)]);
    assert_eq!(run.code, 0);
    golden("dump-waitress-3.12-two-busy.txt", &run.stdout);
}

#[test]
fn classic_details_golden_without_volatile_lines() {
    let run = zhw(&[
        "check",
        "--layout",
        "classic",
        "--replay",
        &fixture(ALL_BUSY),
    ]);
    assert_eq!(run.code, 3);
    // The Information block (time, load, memory) changes every run; the rest is fixed.
    assert!(
        run.stdout.starts_with("Information:\n\tTime "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\n\tMeminfo MemTotal:"),
        "{}",
        run.stdout
    );
    let dump_at = run.stdout.find("\nDump:\n").expect("a Dump: section");
    let stable = &run.stdout[dump_at + 1..];
    golden("check-classic-waitress-2.7-all-busy.txt", stable);
}

/// An HTML page with what differs between runs and checkouts blanked: the
/// host facts (time, load, memory) and where the fixtures are checked out
/// (the recorded frames' own paths stay).
fn stable_html(page: &str) -> String {
    let start = page.find("<dl class=\"host\">").expect("host facts");
    let end = start + page[start..].find("</dl>").expect("end of host facts");
    let page = format!(
        "{}<dl class=\"host\">(host facts){}",
        &page[..start],
        &page[end..]
    );
    page.replace(
        &repo().join("tests/fixtures").display().to_string(),
        "$FIXTURES",
    )
}

#[test]
fn html_report_golden() {
    for (fixture_name, golden_name) in [
        (TWO_BUSY, "check-waitress-3.12-two-busy.html"),
        (HOSTILE_REQUEST, "check-waitress-3.12-hostile-request.html"),
    ] {
        let run = zhw(&[
            "check",
            "--format",
            "html",
            "--replay",
            &fixture(fixture_name),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        golden(golden_name, &stable_html(&run.stdout));
    }
}

#[test]
fn html_keeps_the_exit_codes() {
    let critical = zhw(&["check", "--format", "html", "--replay", &fixture(ALL_BUSY)]);
    assert_eq!(critical.code, 3);
    assert!(
        critical
            .stdout
            .contains("<h1 class=\"status-line\">CRITICAL - No more Zeo client available</h1>"),
        "{}",
        critical.stdout
    );
    let nagios = zhw(&[
        "check",
        "--format",
        "html",
        "--exit-codes",
        "nagios",
        "--replay",
        &fixture(ALL_BUSY),
    ]);
    assert_eq!(nagios.code, 2);
    let missing = fixture("no-such-recording.json");
    let failed = zhw(&["check", "--format", "html", "--replay", &missing]);
    assert_eq!(failed.code, 2);
    assert!(
        failed.stdout.contains("<p class=\"error\">error ("),
        "{}",
        failed.stdout
    );
    let dump = zhw(&["dump", "--format", "html", "--replay", &fixture(ALL_BUSY)]);
    assert_eq!(dump.code, 0, "a dump succeeds when every target was read");
    assert!(dump.stdout.contains("<title>zhw dump — CRITICAL</title>"));
}

#[test]
fn json_document_fields() {
    let run = zhw(&["check", "--format", "json", "--replay", &fixture(TWO_BUSY)]);
    let doc = run.json();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["status"], "OK");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["message"], "Everything looks fine");
    assert!(doc["system"]["time"].is_string());
    let t = &doc["targets"][0];
    assert_eq!(t["status"], "OK");
    assert_eq!(t["name"], "waitress-3.12-two-busy");
    assert_eq!(t["python_version"], "3.12.1");
    assert_eq!(t["profile"], "waitress");
    assert_eq!(t["stats"]["total_threads"], 4);
    assert_eq!(t["stats"]["busy_count"], 2);
    assert_eq!(t["stats"]["idle_count"], 2);
    assert_eq!(t["stats"]["service_count"], 1);
    assert_eq!(t["sampling"]["mode"], "nonblocking-validated");
    let threads = t["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 5);
    for thread in threads {
        for key in [
            "thread_id",
            "os_thread_id",
            "name",
            "role",
            "state",
            "reason",
            "cpu",
            "holds_gil",
            "is_main",
            "stack_consistent",
            "frames",
        ] {
            assert!(thread.get(key).is_some(), "thread lacks {key}: {thread}");
        }
    }
    let busy = threads
        .iter()
        .find(|t| t["state"] == "busy")
        .expect("a busy thread");
    let innermost = &busy["frames"][0];
    assert!(
        innermost["function"].is_string()
            && innermost["file"].is_string()
            && innermost["line"].is_u64()
    );
}

#[test]
fn forced_generic_profile_counts_every_pool_thread_as_application_code() {
    let run = zhw(&[
        "check",
        "--profile",
        "generic",
        "--format",
        "json",
        "--replay",
        &fixture(TWO_BUSY),
    ]);
    let t = &run.json()["targets"][0];
    assert_eq!(t["profile"], "generic");
    assert_eq!(t["profile_reason"], "generic: chosen with --profile");
    // waitress's own loop lives in site-packages: the generic rule never calls it idle.
    assert_eq!(t["stats"]["busy_count"], 4);
}

#[test]
fn hostile_strings_are_escaped_in_text_and_kept_in_json() {
    let text = std::fs::read_to_string(fixture(TWO_BUSY)).expect("fixture");
    let mut snapshot: serde_json::Value = serde_json::from_str(&text).expect("json");
    let thread = &mut snapshot["threads"][0];
    thread["name"] = "\r\nOK - forged status\u{1b}[2J".into();
    thread["frames"][0]["function"] = "evil\u{1b}]0;pwned\u{7}\u{202e}".into();
    thread["frames"][0]["file"] = "/srv/\u{9b}31mapp.py".into();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostile.json");
    std::fs::write(&path, serde_json::to_string(&snapshot).expect("serialize")).expect("write");
    let path = path.to_string_lossy().into_owned();

    for args in [
        vec!["dump", "--replay", &path],
        vec!["check", "-v", "--replay", &path],
    ] {
        let run = zhw(&args);
        assert!(
            !run.stdout.contains('\u{1b}')
                && !run.stdout.contains('\r')
                && !run.stdout.contains('\u{9b}')
                && !run.stdout.contains('\u{202e}'),
            "{args:?} leaked a control character"
        );
        assert!(
            run.stdout.contains("evil\\x1b]0;pwned\\x07\\u{202e}"),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains("\"\\x0d\\x0aOK - forged status\\x1b[2J\""),
            "{}",
            run.stdout
        );
    }
    let json = zhw(&["dump", "--format", "json", "--replay", &path]).json();
    assert_eq!(
        json["targets"][0]["threads"][0]["frames"][0]["function"],
        "evil\u{1b}]0;pwned\u{7}\u{202e}"
    );
}

#[test]
fn same_stem_targets_get_distinct_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        let path = dir.path().join(sub).join("instance.json");
        std::fs::copy(fixture(ALL_BUSY), &path).expect("copy");
        paths.push(path.to_string_lossy().into_owned());
    }
    let run = zhw(&["check", "--replay", &paths[0], &paths[1]]);
    let first = run.first_line();
    assert!(
        first.contains(&format!("({}, {})", paths[0], paths[1])),
        "{first}"
    );
    assert!(
        first.contains(&format!("'{} busy'=4", paths[0]))
            && first.contains(&format!("'{} busy'=4", paths[1])),
        "{first}"
    );
}

#[test]
fn dump_json_exit_code_is_the_dumps() {
    let run = zhw(&["dump", "--format", "json", "--replay", &fixture(ALL_BUSY)]);
    assert_eq!(run.code, 0);
    assert_eq!(run.json()["exit_code"], 0);
    assert_eq!(run.json()["status"], "CRITICAL");
}

/// Split plugin performance data into (label, [value, warn, crit, min, max])
/// as a monitoring system does: labels may be quoted, '' escapes a quote.
fn parse_perfdata(text: &str) -> Vec<(String, Vec<String>)> {
    let mut items = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (label, after) = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut label = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, n)| *n) == Some('\'') {
                        label.push('\'');
                        chars.next();
                    } else {
                        end = i + 1;
                        break;
                    }
                } else {
                    label.push(c);
                }
            }
            (label, &quoted[end..])
        } else {
            let eq = rest.find('=').expect("label=");
            (rest[..eq].to_string(), &rest[eq..])
        };
        let after = after.strip_prefix('=').expect("= after label");
        let end = after.find(' ').unwrap_or(after.len());
        let fields = after[..end].split(';').map(str::to_string).collect();
        items.push((label, fields));
        rest = after[end..].trim_start();
    }
    items
}

#[test]
fn perfdata_parses_back_per_the_plugin_guidelines() {
    let run = zhw(&[
        "check",
        "--replay",
        "-w",
        "~:2",
        "--name",
        "it's one",
        &fixture(TWO_BUSY),
        &fixture(ALL_BUSY),
    ]);
    let (_, perf) = run
        .first_line()
        .split_once(" | ")
        .expect("perfdata after ' | '");
    let items = parse_perfdata(perf);
    let labels: Vec<&str> = items.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "it_s one busy",
            "it_s one idle",
            "it_s one workers",
            "waitress-2.7-all-busy busy",
            "waitress-2.7-all-busy idle",
            "waitress-2.7-all-busy workers"
        ]
    );
    for (label, fields) in &items {
        assert_eq!(fields.len(), 5, "{label}: value;warn;crit;min;max");
        assert!(
            fields[0].parse::<u64>().is_ok(),
            "{label}: numeric value without unit"
        );
    }
    assert_eq!(items[0].1, ["2", "~:2", "3", "0", "4"]);
    assert_eq!(items[5].1, ["4", "", "", "0", ""]);
}

/// A recorded busy worker with a request and locals (as `zhw record` and
/// `--locals` put them in a snapshot): the text shows one sanitized
/// `Request:` line, what was cut, and the variables; the JSON keeps them.
#[test]
fn requests_and_locals_render_from_a_recording() {
    let text = std::fs::read_to_string(fixture(TWO_BUSY)).expect("fixture");
    let mut snapshot: serde_json::Value = serde_json::from_str(&text).expect("json");
    let busy = &mut snapshot["threads"][3];
    assert_eq!(busy["frames"][0]["function"], "hold_sleep");
    busy["request"] = serde_json::json!({
        "method": "GET",
        "path": "/site/\u{1b}[2Jedit",
        "query": "user=alice&password=***",
        "host": "example.org",
        "client": "192.0.2.7",
        "user_agent": "curl/8.5.0",
        "identity": 140459430761216u64,
        "truncated": ["PATH_INFO: 10485766 long, only the first 2048 read"]
    });
    busy["frames"][0]["locals"] = serde_json::json!([
        {"name": "tag", "repr": "'waitress-0'"},
        {"name": "password", "repr": "***"}
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("with-request.json");
    std::fs::write(&path, serde_json::to_string(&snapshot).expect("serialize")).expect("write");
    let path = path.to_string_lossy().into_owned();

    let run = zhw(&["dump", "--replay", &path]);
    let expected = "\tRequest: GET /site/\\x1b[2Jedit?user=alice&password=*** \
                    (example.org, 192.0.2.7, curl/8.5.0)\n\
                    \tRequest truncated: PATH_INFO: 10485766 long, only the first 2048 read\n";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("in hold_sleep\n      tag = 'waitress-0'\n      password = ***\n"),
        "{}",
        run.stdout
    );
    // Only the one busy worker with a request has a Request line.
    assert_eq!(
        run.stdout.matches("\tRequest: ").count(),
        1,
        "{}",
        run.stdout
    );
    let check = zhw(&["check", "-v", "--layout", "classic", "--replay", &path]);
    assert!(check.stdout.contains(expected), "{}", check.stdout);

    let json = zhw(&["dump", "--format", "json", "--replay", &path]).json();
    let thread = &json["targets"][0]["threads"][3];
    assert_eq!(thread["request"]["path"], "/site/\u{1b}[2Jedit");
    assert_eq!(
        thread["request"]["truncated"][0],
        "PATH_INFO: 10485766 long, only the first 2048 read"
    );
    assert_eq!(thread["frames"][0]["locals"][1]["repr"], "***");
    assert!(
        json["targets"][0]["threads"][0]["frames"][0]
            .get("locals")
            .is_none()
    );
}

//! The check against real waitress servers on every interpreter present:
//! requests held busy in app code (sleeping, spinning, blocked on a lock,
//! waiting on the app's own Condition), exact counts, status lines and exit
//! codes, with default rules, thresholds and both exit-code mappings; and
//! the request each busy worker serves, read from the target's memory with
//! its secret query parameter redacted.

use crate::support::{
    PyEnv, REDACTED_QUERY, SECRET_COOKIE, SECRET_QUERY, Server, env_for, record, repo, zhw,
};

fn start(env: &PyEnv, threads: &str) -> Server {
    Server::start(
        &env.python,
        &repo().join("tests/python/waitress_app.py"),
        &["--threads", threads],
    )
}

fn expect(pid: &str, extra: &[&str], status_line: &str, idle_busy: &str, code: i32, label: &str) {
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    args.push(pid);
    let run = zhw(&args);
    let status = run.first_line().split(" | ").next().unwrap_or("");
    assert_eq!(
        status, status_line,
        "[{label}] zhw {args:?}\n{}{}",
        run.stdout, run.stderr
    );
    assert_eq!(
        run.line(1),
        idle_busy,
        "[{label}] zhw {args:?}\n{}",
        run.stdout
    );
    assert_eq!(run.code, code, "[{label}] zhw {args:?}\n{}", run.stdout);
}

const OK: &str = "OK - Everything looks fine";
const WARNING: &str = "WARNING - Warning, high load";
const CRITICAL: &str = "CRITICAL - No more Zeo client available";

fn waitress_matrix(label: &str) {
    let Some(env) = env_for(label, label, "waitress") else {
        return;
    };
    record(&format!(
        "EXERCISED waitress {} on {label} ({})",
        env.package_version,
        env.python.display()
    ));

    // Four workers: 0, 1, 2, 3 and 4 busy.
    let mut server = start(&env, "4");
    let pid = server.pid.to_string();
    expect(&pid, &[], OK, "Idle: 4\tBusy: 0", 0, label);
    server.hold_http_query("sleep", SECRET_QUERY);
    expect(&pid, &[], OK, "Idle: 3\tBusy: 1", 0, label);
    server.hold_http("cond");
    expect(&pid, &[], OK, "Idle: 2\tBusy: 2", 0, label);
    server.hold_http("lock");
    expect(&pid, &[], OK, "Idle: 1\tBusy: 3", 0, label);
    // Thresholds replace the original rules.
    expect(&pid, &["-w", "2"], WARNING, "Idle: 1\tBusy: 3", 1, label);
    expect(&pid, &["-c", "2"], CRITICAL, "Idle: 1\tBusy: 3", 3, label);
    expect(
        &pid,
        &["--exit-codes", "nagios", "-c", "2"],
        CRITICAL,
        "Idle: 1\tBusy: 3",
        2,
        label,
    );
    server.hold_http("spin");
    expect(&pid, &[], CRITICAL, "Idle: 0\tBusy: 4", 3, label);
    expect(
        &pid,
        &["--exit-codes", "nagios"],
        CRITICAL,
        "Idle: 0\tBusy: 4",
        2,
        label,
    );
    expect(
        &pid,
        &["-w", "10", "-c", "10"],
        OK,
        "Idle: 0\tBusy: 4",
        0,
        label,
    );

    // The JSON agrees, and names profile, roles and the busy workers' code.
    let json = zhw(&["check", "--format", "json", &pid]).json();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["status"], "CRITICAL");
    assert_eq!(json["exit_code"], 3);
    let target = &json["targets"][0];
    // The label names the interpreter that ran (sid-3.14 is Debian's 3.14).
    let version = label.rsplit('-').next().unwrap_or("");
    assert!(
        target["python_version"]
            .as_str()
            .is_some_and(|found| found == version || found.starts_with(&format!("{version}."))),
        "{label}: {}",
        target["python_version"]
    );
    assert_eq!(target["profile"], "waitress", "{label}");
    assert_eq!(target["stats"]["busy_count"], 4, "{label}");
    assert_eq!(target["stats"]["idle_count"], 0, "{label}");
    assert_eq!(target["stats"]["total_threads"], 4, "{label}");
    assert!(
        target["stats"]["service_count"].as_u64().unwrap_or(0) >= 1,
        "{label}: main thread is a service thread"
    );
    let busy_functions: Vec<String> = target["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["role"] == "worker" && t["state"] == "busy")
        .filter_map(|t| {
            t["frames"].as_array()?.iter().find_map(|f| {
                let name = f["function"].as_str()?;
                name.starts_with("hold_").then(|| name.to_string())
            })
        })
        .collect();
    let mut sorted = busy_functions.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["hold_cond", "hold_lock", "hold_sleep", "hold_spin"],
        "{label}"
    );
    assert_busy_requests(target, "test", "127.0.0.1", label);
    // Every worker was mapped to a kernel thread and has a CPU state.
    for thread in target["threads"].as_array().expect("threads") {
        assert!(
            thread["os_thread_id"].as_u64().is_some(),
            "{label}: unmapped thread {thread}"
        );
        assert!(thread["cpu"].is_string(), "{label}: no cpu state {thread}");
    }

    // The details of a non-OK check show the busy stacks, outermost first.
    let run = zhw(&["check", &pid]);
    assert!(
        run.stdout.contains("\nInformation:\n\tTime "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("in hold_sleep"), "{}", run.stdout);
    let line =
        format!("\tRequest: GET /hold/sleep?{REDACTED_QUERY} (test, 127.0.0.1, zhw-test/1)\n");
    assert!(run.stdout.contains(&line), "{label}: {}", run.stdout);
    assert_no_secrets(&run.stdout, label);
    // --locals shows the busy workers' variables, still without secrets.
    let locals = zhw(&["dump", "--locals", "--format", "json", &pid]);
    assert_eq!(locals.code, 0, "{label}: {}", locals.stderr);
    assert_no_secrets(&locals.stdout, label);
    let doc = locals.json();
    let busy_frames: Vec<&serde_json::Value> = doc["targets"][0]["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["state"] == "busy" && t["role"] == "worker")
        .flat_map(|t| t["frames"].as_array().expect("frames"))
        .collect();
    let app = busy_frames
        .iter()
        .find(|f| f["function"] == "wsgi_app")
        .unwrap_or_else(|| panic!("{label}: no wsgi_app frame"));
    let environ = app["locals"]
        .as_array()
        .expect("locals of a busy frame")
        .iter()
        .find(|l| l["name"] == "environ")
        .unwrap_or_else(|| panic!("{label}: no environ local in {app}"));
    assert!(
        environ["repr"].as_str().is_some_and(|r| r.starts_with('{')),
        "{label}: {environ}"
    );
    // Idle workers' frames carry no locals.
    for thread in doc["targets"][0]["threads"].as_array().expect("threads") {
        if thread["state"] == "idle" {
            assert!(
                thread["frames"]
                    .as_array()
                    .expect("frames")
                    .iter()
                    .all(|f| f.get("locals").is_none()),
                "{label}: {thread}"
            );
        }
    }
    // --no-requests reads none.
    let plain = zhw(&["check", "--no-requests", "--format", "json", &pid]).json();
    assert!(
        plain["targets"][0]["threads"]
            .as_array()
            .expect("threads")
            .iter()
            .all(|t| t.get("request").is_none()),
        "{label}"
    );
    let classic = zhw(&["check", "--layout", "classic", &pid]);
    let lines: Vec<&str> = classic.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"Information:"), "{}", classic.stdout);
    assert_eq!(
        lines[lines.len() - 2..],
        ["Idle: 0\tBusy: 4", CRITICAL],
        "{}",
        classic.stdout
    );
    drop(server);

    // Six workers, four busy: high load but a worker is free.
    let mut server = start(&env, "6");
    let pid = server.pid.to_string();
    for kind in ["sleep", "sleep", "lock", "cond"] {
        server.hold_http(kind);
    }
    expect(&pid, &[], WARNING, "Idle: 2\tBusy: 4", 1, label);
    expect(
        &pid,
        &["--exit-codes", "nagios"],
        WARNING,
        "Idle: 2\tBusy: 4",
        1,
        label,
    );
    expect(&pid, &["--blocking"], WARNING, "Idle: 2\tBusy: 4", 1, label);
    expect(&pid, &["-w", "4"], OK, "Idle: 2\tBusy: 4", 0, label);

    // Several samples: how long each busy worker has been on its request (a
    // lower bound: from the first sample on), and who is stuck on one line.
    let run = zhw(&[
        "check",
        "--samples",
        "3",
        "--interval",
        "200ms",
        "--format",
        "json",
        &pid,
    ]);
    let document = run.json();
    let threads = document["targets"][0]["threads"]
        .as_array()
        .expect("threads");
    let busy: Vec<&serde_json::Value> = threads.iter().filter(|t| t["state"] == "busy").collect();
    assert_eq!(busy.len(), 4, "{label}: {document}");
    for thread in &busy {
        let seconds = thread["busy_seconds"].as_f64().unwrap_or(-1.0);
        assert!(seconds >= 0.4, "{label}: two intervals at least: {thread}");
        // The sleepers and lock/condition waiters sit on one line throughout
        // (unless a sample failed on an overloaded machine, which the report says).
        if document["warnings"]
            .as_array()
            .is_some_and(|w| w.is_empty())
        {
            assert_eq!(thread["stuck"], true, "{label}: {thread}");
        } else {
            eprintln!(
                "{label}: not all samples were read: {}",
                document["warnings"]
            );
        }
    }
    assert!(
        threads
            .iter()
            .filter(|t| t["state"] == "idle")
            .all(|t| t["busy_seconds"].is_null() && t["stuck"].is_null()),
        "{label}: idle workers have no duration"
    );
    let text = zhw(&["check", "--samples", "2", "--interval", "100", &pid]);
    assert!(
        text.stdout.contains(": worker busy for at least "),
        "{label}: {}",
        text.stdout
    );
}

/// Every busy worker serves `GET /hold/<its hold kind>` from `client` on
/// `host`; the one in `hold_sleep` has the secret query, redacted.
pub fn assert_busy_requests(target: &serde_json::Value, host: &str, client: &str, label: &str) {
    let mut seen = 0;
    for thread in target["threads"].as_array().expect("threads") {
        if thread["role"] != "worker" || thread["state"] != "busy" {
            assert!(thread.get("request").is_none(), "{label}: {thread}");
            continue;
        }
        let kind = thread["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .find_map(|f| f["function"].as_str()?.strip_prefix("hold_"))
            .unwrap_or_else(|| panic!("{label}: busy without a hold: {thread}"));
        let request = &thread["request"];
        assert_eq!(request["method"], "GET", "{label}: {thread}");
        assert_eq!(
            request["path"],
            format!("/hold/{kind}"),
            "{label}: {request}"
        );
        assert_eq!(request["host"], host, "{label}: {request}");
        assert_eq!(request["client"], client, "{label}: {request}");
        assert_eq!(request["user_agent"], "zhw-test/1", "{label}: {request}");
        assert!(request["identity"].as_u64().is_some(), "{label}: {request}");
        let expected_query = if kind == "sleep" {
            REDACTED_QUERY
        } else {
            "user=alice"
        };
        assert_eq!(request["query"], expected_query, "{label}: {request}");
        seen += 1;
    }
    assert!(seen > 0, "{label}: no busy worker");
}

/// Neither the password of the query nor the cookie/authorization value
/// appears anywhere in zhw's output.
pub fn assert_no_secrets(output: &str, label: &str) {
    assert!(
        !output.contains("hunter2"),
        "{label}: password leaked:\n{output}"
    );
    assert!(
        !output.contains(SECRET_COOKIE),
        "{label}: cookie leaked:\n{output}"
    );
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                waitress_matrix($label);
            }
        )*
    };
}

interpreters! {
    waitress_on_pyenv_2_7 => "pyenv-2.7.18",
    waitress_on_pyenv_3_6 => "pyenv-3.6.15",
    waitress_on_pyenv_3_7 => "pyenv-3.7.16",
    waitress_on_pyenv_3_8 => "pyenv-3.8.18",
    waitress_on_pyenv_3_9 => "pyenv-3.9.18",
    waitress_on_pyenv_3_10 => "pyenv-3.10.13",
    waitress_on_pyenv_3_11 => "pyenv-3.11.7",
    waitress_on_pyenv_3_12 => "pyenv-3.12.1",
    waitress_on_pyenv_3_13 => "pyenv-3.13.0",
    waitress_on_debian_3_11 => "debian-3.11",
    waitress_on_sid_3_14 => "sid-3.14",
}

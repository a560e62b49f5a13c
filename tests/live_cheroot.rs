//! The check against real cheroot (CherryPy's server) on every interpreter
//! present: workers held busy in app code, exact counts and statuses, and
//! each busy worker's request (read from cheroot's `Gateway.env`).

use crate::live_waitress::{assert_busy_requests, assert_no_secrets};
use crate::support::{SECRET_QUERY, Server, env_for, record, repo, zhw};

fn check(pid: &str, label: &str, idle_busy: &str, first: &str, code: i32) {
    let run = zhw(&["check", pid]);
    assert_eq!(
        run.first_line().split(" | ").next(),
        Some(first),
        "[{label}] {}",
        run.stdout
    );
    assert_eq!(run.line(1), idle_busy, "[{label}] {}", run.stdout);
    assert_eq!(run.code, code, "[{label}]");
}

fn cheroot_matrix(label: &str) {
    let Some(env) = env_for(label, label, "cheroot") else {
        return;
    };
    let ready = std::fs::read_to_string(crate::support::envs_root().join(label).join("zhw-ready"))
        .unwrap_or_default();
    let version = ready.lines().nth(2).unwrap_or("?").to_string();
    record(&format!(
        "EXERCISED cheroot {version} on {label} ({})",
        env.python.display()
    ));
    let app = repo().join("tests/python/cheroot_app.py");

    let mut server = Server::start(&env.python, &app, &["--threads", "4"]);
    let pid = server.pid.to_string();
    check(
        &pid,
        label,
        "Idle: 4\tBusy: 0",
        "OK - Everything looks fine",
        0,
    );
    let json = zhw(&["check", "--format", "json", &pid]).json();
    assert_eq!(json["targets"][0]["profile"], "cheroot", "{label}");
    server.hold_http_query("sleep", SECRET_QUERY);
    server.hold_http("cond");
    check(
        &pid,
        label,
        "Idle: 2\tBusy: 2",
        "OK - Everything looks fine",
        0,
    );
    let run = zhw(&["check", "--format", "json", &pid]);
    assert_no_secrets(&run.stdout, label);
    assert_busy_requests(&run.json()["targets"][0], "test", "127.0.0.1", label);
    server.hold_http("lock");
    server.hold_http("spin");
    check(
        &pid,
        label,
        "Idle: 0\tBusy: 4",
        "CRITICAL - No more Zeo client available",
        3,
    );
    drop(server);

    let mut server = Server::start(&env.python, &app, &["--threads", "6"]);
    let pid = server.pid.to_string();
    for kind in ["sleep", "sleep", "lock", "cond"] {
        server.hold_http(kind);
    }
    check(
        &pid,
        label,
        "Idle: 2\tBusy: 4",
        "WARNING - Warning, high load",
        1,
    );
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                cheroot_matrix($label);
            }
        )*
    };
}

interpreters! {
    cheroot_on_pyenv_2_7 => "pyenv-2.7.18",
    cheroot_on_pyenv_3_6 => "pyenv-3.6.15",
    cheroot_on_pyenv_3_7 => "pyenv-3.7.16",
    cheroot_on_pyenv_3_8 => "pyenv-3.8.18",
    cheroot_on_pyenv_3_9 => "pyenv-3.9.18",
    cheroot_on_pyenv_3_10 => "pyenv-3.10.13",
    cheroot_on_pyenv_3_11 => "pyenv-3.11.7",
    cheroot_on_pyenv_3_12 => "pyenv-3.12.1",
    cheroot_on_pyenv_3_13 => "pyenv-3.13.0",
    cheroot_on_debian_3_11 => "debian-3.11",
    cheroot_on_sid_3_14 => "sid-3.14",
}

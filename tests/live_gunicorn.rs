//! The check against a real gunicorn, `--worker-class gthread --threads 4`
//! with one worker process, on every interpreter present: the worker
//! process's pool threads held busy in app code, exact worker, service and
//! busy counts, the `gunicorn` profile and its reason, statuses and exit
//! codes; and what a cold pool (no request yet) looks like.

use crate::support::pools::{Expected, expect_pool};
use crate::support::{Server, env_for, record, repo};

const OK: &str = "OK - Everything looks fine";
const CRITICAL: &str = "CRITICAL - No more Zeo client available";

fn expected(idle: u64, busy: u64, status: &'static str, code: i32) -> Expected<'static> {
    // The worker process's main thread (ThreadWorker.run) is its only
    // thread besides the pool.
    Expected {
        profile: "gunicorn",
        idle,
        busy,
        service: 1,
        status,
        code,
        requests: true,
    }
}

fn gunicorn_matrix(label: &str) {
    let Some(env) = env_for(label, &format!("pools-{label}"), "gunicorn") else {
        return;
    };
    record(&format!(
        "EXERCISED gunicorn {} gthread on {label} ({})",
        env.package_version,
        env.python.display()
    ));
    let app = repo().join("tests/python/gunicorn_app.py");
    let mut server = Server::start(&env.python, &app, &["--threads", "4"]);
    // The master forks the worker; the threads are in the worker.
    let worker = server
        .ready_value("pid")
        .unwrap_or_else(|| panic!("[{label}] no worker pid in {:?}", server.ready));
    assert_ne!(
        worker, server.pid,
        "[{label}] inspect the worker, not the master"
    );

    let mut holds = Vec::new();
    expect_pool(worker, label, &expected(4, 0, OK, 0), &holds);
    holds.push(server.hold_http("sleep"));
    expect_pool(worker, label, &expected(3, 1, OK, 0), &holds);
    holds.push(server.hold_http("lock"));
    expect_pool(worker, label, &expected(2, 2, OK, 0), &holds);
    holds.push(server.hold_http("cond"));
    holds.push(server.hold_http("spin"));
    expect_pool(worker, label, &expected(0, 4, CRITICAL, 3), &holds);
    drop(server);

    // A known limit (docs/limits.md): a cold pool has no thread until
    // requests come, and zhw counts the threads that exist. The profile is
    // still gunicorn, and the main loop still a service thread.
    let mut server = Server::start(&env.python, &app, &["--threads", "4", "--cold"]);
    let worker = server
        .ready_value("pid")
        .unwrap_or_else(|| panic!("[{label}] no worker pid in {:?}", server.ready));
    expect_pool(worker, label, &expected(0, 0, CRITICAL, 3), &[]);
    let held = vec![server.hold_http("sleep")];
    expect_pool(worker, label, &expected(0, 1, CRITICAL, 3), &held);
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                gunicorn_matrix($label);
            }
        )*
    };
}

interpreters! {
    gunicorn_on_pyenv_2_7 => "pyenv-2.7.18",
    gunicorn_on_pyenv_3_6 => "pyenv-3.6.15",
    gunicorn_on_pyenv_3_7 => "pyenv-3.7.16",
    gunicorn_on_pyenv_3_8 => "pyenv-3.8.18",
    gunicorn_on_pyenv_3_9 => "pyenv-3.9.18",
    gunicorn_on_pyenv_3_10 => "pyenv-3.10.13",
    gunicorn_on_pyenv_3_11 => "pyenv-3.11.7",
    gunicorn_on_pyenv_3_12 => "pyenv-3.12.1",
    gunicorn_on_pyenv_3_13 => "pyenv-3.13.0",
    gunicorn_on_debian_3_11 => "debian-3.11",
    gunicorn_on_sid_3_14 => "sid-3.14",
}

//! The check against a real celery worker, `--pool threads --concurrency 4`
//! on kombu's in-memory broker, on every interpreter present: tasks held
//! busy in app code, exact worker, service and busy counts, the `celery`
//! profile and its reason, statuses and exit codes; and what a cold pool
//! (no task yet) looks like.

use crate::support::pools::{Expected, expect_pool};
use crate::support::{Server, env_for, record, repo};

const OK: &str = "OK - Everything looks fine";
const CRITICAL: &str = "CRITICAL - No more Zeo client available";

fn expected(idle: u64, busy: u64, status: &'static str, code: i32) -> Expected<'static> {
    // Service threads: the main thread (the consumer), celery's timer
    // thread (worker heartbeats) and the app's stdin-commands thread.
    Expected {
        profile: "celery",
        idle,
        busy,
        service: 3,
        status,
        code,
        requests: false,
    }
}

/// Send one task that holds a pool thread; returns its HOLD line.
fn hold(server: &mut Server, kind: &str) -> String {
    server.command(&format!("hold {kind}"));
    server.wait_line(&format!("HOLD {kind}"))
}

fn celery_matrix(label: &str) {
    let Some(env) = env_for(label, &format!("pools-{label}"), "celery") else {
        return;
    };
    let ready = std::fs::read_to_string(
        crate::support::envs_root()
            .join(format!("pools-{label}"))
            .join("zhw-ready"),
    )
    .unwrap_or_default();
    let version = ready.lines().nth(2).unwrap_or("?").to_string();
    record(&format!(
        "EXERCISED celery {version} thread pool on {label} ({})",
        env.python.display()
    ));
    let app = repo().join("tests/python/celery_app.py");
    let mut server = Server::start(&env.python, &app, &["--threads", "4"]);
    let pid = server.pid;

    let mut holds = Vec::new();
    expect_pool(pid, label, &expected(4, 0, OK, 0), &holds);
    holds.push(hold(&mut server, "sleep"));
    expect_pool(pid, label, &expected(3, 1, OK, 0), &holds);
    holds.push(hold(&mut server, "lock"));
    expect_pool(pid, label, &expected(2, 2, OK, 0), &holds);
    holds.push(hold(&mut server, "cond"));
    holds.push(hold(&mut server, "spin"));
    expect_pool(pid, label, &expected(0, 4, CRITICAL, 3), &holds);
    drop(server);

    // A known limit (docs/limits.md): a cold pool has no thread until tasks
    // come. The profile is still celery; its timer thread stays a service
    // thread (the generic rule would count it as a busy worker).
    let mut server = Server::start(&env.python, &app, &["--threads", "4", "--cold"]);
    let pid = server.pid;
    expect_pool(pid, label, &expected(0, 0, CRITICAL, 3), &[]);
    let held = vec![hold(&mut server, "sleep")];
    expect_pool(pid, label, &expected(0, 1, CRITICAL, 3), &held);
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                celery_matrix($label);
            }
        )*
    };
}

interpreters! {
    celery_on_pyenv_2_7 => "pyenv-2.7.18",
    celery_on_pyenv_3_6 => "pyenv-3.6.15",
    celery_on_pyenv_3_7 => "pyenv-3.7.16",
    celery_on_pyenv_3_8 => "pyenv-3.8.18",
    celery_on_pyenv_3_9 => "pyenv-3.9.18",
    celery_on_pyenv_3_10 => "pyenv-3.10.13",
    celery_on_pyenv_3_11 => "pyenv-3.11.7",
    celery_on_pyenv_3_12 => "pyenv-3.12.1",
    celery_on_pyenv_3_13 => "pyenv-3.13.0",
    celery_on_debian_3_11 => "debian-3.11",
    celery_on_sid_3_14 => "sid-3.14",
}

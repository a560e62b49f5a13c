//! The request of a busy worker inside a real Flask, Django and Pyramid app,
//! on every interpreter present (Flask 1.1, Django 1.11 and Pyramid 1.10 on
//! 2.7 up to Flask 3.1, Django 6.1 and Pyramid 2.1 on 3.12+). Each app runs
//! under the standard library's wsgiref server, which names no request
//! location of its own, so what zhw reports is read from the framework's
//! frame (`Flask.__call__`, Django's `WSGIHandler.__call__`, Pyramid's
//! `Router.__call__`, each with a local `environ`): the profile-independent
//! fallback of docs/explanation/classification.md. Two server shapes: a
//! warmed `ThreadPoolExecutor` (the `threadpool` profile, exact idle and busy
//! counts) and `socketserver.ThreadingMixIn`, a thread per request (the
//! `generic` profile: never an idle worker, so CRITICAL by the original rule,
//! OK under thresholds on the busy count while requests run, and CRITICAL
//! with no request at all, when no worker exists; docs/limits.md).

use crate::live_waitress::{assert_busy_requests, assert_no_secrets};
use crate::support::{
    PyEnv, REDACTED_QUERY, SECRET_QUERY, Server, env_for, envs_root, record, repo, zhw,
};

/// A framework and the frame whose `environ` local zhw must read: the
/// outermost frame of the request that has one.
struct Framework {
    name: &'static str,
    entry_function: &'static str,
    entry_file: &'static str,
}

const FRAMEWORKS: [Framework; 3] = [
    Framework {
        name: "flask",
        entry_function: "__call__",
        entry_file: "flask/app.py",
    },
    Framework {
        name: "django",
        entry_function: "__call__",
        entry_file: "django/core/handlers/wsgi.py",
    },
    Framework {
        name: "pyramid",
        entry_function: "__call__",
        entry_file: "pyramid/router.py",
    },
];

const OK: &str = "OK - Everything looks fine";

fn start(env: &PyEnv, framework: &Framework, server: &str) -> Server {
    Server::start(
        &env.python,
        &repo().join("tests/python/frameworks_app.py"),
        &[
            "--framework",
            framework.name,
            "--server",
            server,
            "--threads",
            "4",
        ],
    )
}

/// Hold `/hold/sleep` with the secret query and `/hold/lock`; returns the
/// address of each request's environ dict as the app printed it, by kind.
fn hold_two(server: &mut Server, label: &str) -> Vec<(&'static str, u64)> {
    let sleep = server.hold_http_at("sleep", "", SECRET_QUERY);
    let lock = server.hold_http_at("lock", "", "user=alice");
    [("sleep", sleep), ("lock", lock)]
        .into_iter()
        .map(|(kind, line)| {
            let id = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("environ="))
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("[{label}] no environ id in {line:?}"));
            (kind, id)
        })
        .collect()
}

/// The `hold_<kind>` a busy thread is in.
fn hold_kind(thread: &serde_json::Value) -> Option<&str> {
    thread["frames"]
        .as_array()?
        .iter()
        .find_map(|f| f["function"].as_str()?.strip_prefix("hold_"))
}

/// One framework under one server shape: counts, profile, status, each busy
/// worker's request (the very environ dict the framework's request object
/// holds, read from the framework's frame), the text of `zhw dump`, and no
/// secret anywhere.
fn check_framework(env: &PyEnv, framework: &Framework, shape: &str) {
    let label = format!("{} on {} ({shape} server)", framework.name, env.label);
    let mut server = start(env, framework, shape);
    let pid = server.pid.to_string();
    if shape == "threading" {
        // No request, no worker thread: CRITICAL under any threshold
        // (docs/limits.md, thread per request).
        for extra in [&[][..], &["-w", "8", "-c", "16"][..]] {
            let mut args = vec!["check"];
            args.extend_from_slice(extra);
            args.push(&pid);
            let run = zhw(&args);
            assert_eq!(
                run.line(1),
                "Idle: 0\tBusy: 0",
                "[{label}] {args:?}: {}",
                run.stdout
            );
            assert_eq!(run.code, 3, "[{label}] {args:?}: {}", run.stdout);
        }
    }
    let environs = hold_two(&mut server, &label);

    // Thread per request: only the held requests' threads exist, so no
    // worker is ever idle and the original rule says CRITICAL; thresholds
    // on the busy count are what suits such a server (docs/limits.md).
    let (profile, idle, status, code) = match shape {
        "pool" => ("threadpool", 2, "OK", 0),
        _ => ("generic", 0, "CRITICAL", 3),
    };
    let run = zhw(&["check", "--format", "json", &pid]);
    let json = run.json();
    assert_eq!(json["status"], status, "[{label}] {json:#}");
    assert_eq!(run.code, code, "[{label}] {json:#}");
    let target = &json["targets"][0];
    assert_eq!(target["profile"], profile, "[{label}] {target:#}");
    let stats = &target["stats"];
    assert_eq!(stats["busy_count"], 2, "[{label}] {target:#}");
    assert_eq!(stats["idle_count"], idle, "[{label}] {target:#}");
    assert_eq!(
        stats["service_count"], 1,
        "[{label}] main thread: {target:#}"
    );
    assert_busy_requests(target, "test", "127.0.0.1", &label);
    for thread in target["threads"].as_array().expect("threads") {
        let Some(kind) = hold_kind(thread) else {
            continue;
        };
        let expected = environs.iter().find(|(k, _)| *k == kind).map(|(_, id)| *id);
        assert_eq!(
            thread["request"]["identity"].as_u64(),
            expected,
            "[{label}] zhw read the framework request's own environ dict: {thread}"
        );
    }
    assert_no_secrets(&run.stdout, &label);
    if shape == "threading" {
        let run = zhw(&["check", "-w", "8", "-c", "16", &pid]);
        assert_eq!(
            run.first_line().split(" | ").next(),
            Some(OK),
            "[{label}] {}",
            run.stdout
        );
        assert_eq!(run.line(1), "Idle: 0\tBusy: 2", "[{label}] {}", run.stdout);
        assert_eq!(run.code, 0, "[{label}] {}", run.stdout);
    }

    // The dump shows the request under its thread, password masked.
    let dump = zhw(&["dump", &pid]);
    assert_eq!(dump.code, 0, "[{label}] {}{}", dump.stdout, dump.stderr);
    let line =
        format!("\tRequest: GET /hold/sleep?{REDACTED_QUERY} (test, 127.0.0.1, zhw-test/1)\n");
    assert!(dump.stdout.contains(&line), "[{label}] {}", dump.stdout);
    assert!(
        dump.stdout
            .contains("\tRequest: GET /hold/lock?user=alice (test, 127.0.0.1, zhw-test/1)\n"),
        "[{label}] {}",
        dump.stdout
    );
    assert_no_secrets(&dump.stdout, &label);

    // Where it was read: the outermost frame of each busy worker holding a
    // local `environ` (the fallback looks outermost first) is the
    // framework's entry; no server frame below it has one.
    let locals = zhw(&["dump", "--locals", "--format", "json", &pid]);
    assert_eq!(locals.code, 0, "[{label}] {}", locals.stderr);
    assert_no_secrets(&locals.stdout, &label);
    let doc = locals.json();
    for thread in doc["targets"][0]["threads"].as_array().expect("threads") {
        if hold_kind(thread).is_none() {
            continue;
        }
        let frames = thread["frames"].as_array().expect("frames");
        let outermost = frames
            .iter()
            .rev()
            .find(|frame| {
                frame["locals"].as_array().is_some_and(|locals| {
                    locals.iter().any(|l| {
                        l["name"] == "environ"
                            && l["repr"].as_str().is_some_and(|r| r.starts_with('{'))
                    })
                })
            })
            .unwrap_or_else(|| panic!("[{label}] no frame holds an environ: {thread}"));
        let function = outermost["function"].as_str().unwrap_or("");
        let file = outermost["file"].as_str().unwrap_or("");
        assert!(
            function.rsplit('.').next() == Some(framework.entry_function)
                && file.ends_with(framework.entry_file),
            "[{label}] environ read from {function} ({file}), not {} ({})",
            framework.entry_function,
            framework.entry_file
        );
    }
}

fn frameworks_matrix(label: &str) {
    // setup-envs.sh builds no frameworks env then: say so rather than fail.
    if std::env::var("ZHW_SKIP_FRAMEWORKS").is_ok_and(|v| !v.is_empty() && v != "0") {
        record(&format!(
            "SKIP Flask, Django and Pyramid on {label}: ZHW_SKIP_FRAMEWORKS is set"
        ));
        return;
    }
    let dir = format!("frameworks-{label}");
    let Some(env) = env_for(label, &dir, "Flask, Django and Pyramid") else {
        return;
    };
    // zhw-ready's third line: "Django <version> Pyramid <version>".
    let ready =
        std::fs::read_to_string(envs_root().join(&dir).join("zhw-ready")).unwrap_or_default();
    let others = ready
        .lines()
        .nth(2)
        .unwrap_or("Django ? Pyramid ?")
        .to_string();
    record(&format!(
        "EXERCISED Flask {} {others} (wsgiref pool and thread-per-request servers) on {label} ({})",
        env.package_version,
        env.python.display()
    ));
    for framework in &FRAMEWORKS {
        for shape in ["pool", "threading"] {
            check_framework(&env, framework, shape);
        }
    }
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                frameworks_matrix($label);
            }
        )*
    };
}

interpreters! {
    frameworks_on_pyenv_2_7 => "pyenv-2.7.18",
    frameworks_on_pyenv_3_6 => "pyenv-3.6.15",
    frameworks_on_pyenv_3_7 => "pyenv-3.7.16",
    frameworks_on_pyenv_3_8 => "pyenv-3.8.18",
    frameworks_on_pyenv_3_9 => "pyenv-3.9.18",
    frameworks_on_pyenv_3_10 => "pyenv-3.10.13",
    frameworks_on_pyenv_3_11 => "pyenv-3.11.7",
    frameworks_on_pyenv_3_12 => "pyenv-3.12.1",
    frameworks_on_pyenv_3_13 => "pyenv-3.13.0",
    frameworks_on_debian_3_11 => "debian-3.11",
    frameworks_on_sid_3_14 => "sid-3.14",
}

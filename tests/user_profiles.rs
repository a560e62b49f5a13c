//! User-defined profiles (`--profiles FILE`): an in-house server shape that
//! no built-in profile knows is classified right once a TOML profile
//! describes it; malformed files get errors naming file and line.

use crate::support::{Server, env_for, record, repo, zhw};

const INHOUSE: &str = r#"
# ACME's job server: workers loop in worker_loop and wait in wait_for_job.
[[profile]]
name = "inhouse"
description = "ACME job server"
task_loops = [{ function = "worker_loop", file = "inhouse_server.py" }]
idle_waits = [{ function = "wait_for_job", file = "inhouse_server.py" }, { file = "threading.py" }]
requests = [{ function = "worker_loop", file = "inhouse_server.py", local = "job", attribute = "env" }]
"#;

/// The same server recognised by its threads' names alone (no task loop).
const INHOUSE_BY_NAME: &str = r#"
[[profile]]
name = "inhouse-named"
thread_names = ["job-worker-*"]
idle_waits = [{ function = "wait_for_job", file = "inhouse_server.py" }, { file = "threading.py" }]
requests = [{ function = "worker_loop", file = "inhouse_server.py", local = "job", attribute = "env" }]
"#;

fn inhouse(label: &str) {
    let Some(env) = env_for(label, label, "in-house profile") else {
        return;
    };
    record(&format!("EXERCISED user profile on {label}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(&profiles, INHOUSE).expect("write");
    let profiles = profiles.to_string_lossy().into_owned();

    let mut server = Server::start(
        &env.python,
        &repo().join("tests/python/inhouse_server.py"),
        &["--threads", "4"],
    );
    let pid = server.pid.to_string();
    server.command("hold sleep");
    server.wait_line("HOLD sleep");

    // Without the profile, the generic rule sees application code in every
    // worker (wait_for_job is the app's own function) and calls them busy.
    let run = zhw(&["check", &pid]);
    assert_eq!(run.line(1), "Idle: 0\tBusy: 4", "[{label}] {}", run.stdout);
    assert_eq!(run.code, 3);

    // With it, only the worker running a job is busy.
    let run = zhw(&["check", "--profiles", &profiles, &pid]);
    assert_eq!(
        run.first_line().split(" | ").next(),
        Some("OK - Everything looks fine"),
        "[{label}] {}",
        run.stdout
    );
    assert_eq!(run.line(1), "Idle: 3\tBusy: 1", "[{label}] {}", run.stdout);
    let json = zhw(&["check", "--profiles", &profiles, "--format", "json", &pid]).json();
    assert_eq!(json["targets"][0]["profile"], "inhouse");
    // The profile says where the job's request lives; --redact adds a name.
    let busy: Vec<&serde_json::Value> = json["targets"][0]["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["state"] == "busy" && t["role"] == "worker")
        .collect();
    assert_eq!(busy.len(), 1, "[{label}]");
    let request = &busy[0]["request"];
    assert_eq!(request["method"], "POST", "[{label}] {request}");
    assert_eq!(request["path"], "/jobs/sleep", "[{label}] {request}");
    assert_eq!(
        request["query"], "api_key=***&priority=high",
        "[{label}] {request}"
    );
    assert_eq!(request["client"], "198.51.100.4", "[{label}] {request}");
    let redacted = zhw(&[
        "check",
        "--profiles",
        &profiles,
        "--redact",
        "PRIORITY",
        "--format",
        "json",
        &pid,
    ]);
    assert!(
        redacted
            .stdout
            .contains("\"query\": \"api_key=***&priority=***\""),
        "[{label}] {}",
        redacted.stdout
    );
    assert!(!redacted.stdout.contains("s3cr3t"), "[{label}]");
    assert_eq!(
        json["targets"][0]["stats"]["service_count"], 1,
        "the main thread"
    );
    // Thread names alone recognise the workers just as well.
    let by_name = dir.path().join("by-name.toml");
    std::fs::write(&by_name, INHOUSE_BY_NAME).expect("write");
    let by_name = by_name.to_string_lossy().into_owned();
    let json = zhw(&["check", "--profiles", &by_name, "--format", "json", &pid]).json();
    let target = &json["targets"][0];
    assert_eq!(target["profile"], "inhouse-named", "[{label}] {target:#}");
    assert_eq!(
        (
            &target["stats"]["idle_count"],
            &target["stats"]["busy_count"]
        ),
        (&serde_json::Value::from(3), &serde_json::Value::from(1)),
        "[{label}] {target:#}"
    );
    assert!(
        target["profile_reason"]
            .as_str()
            .is_some_and(|r| r.contains("job-worker-*")),
        "[{label}] {}",
        target["profile_reason"]
    );
    // --profile can name it too.
    let run = zhw(&[
        "dump",
        "--profiles",
        &profiles,
        "--profile",
        "inhouse",
        &pid,
    ]);
    assert!(
        run.stdout.contains("idle: worker_loop is parked in"),
        "[{label}] {}",
        run.stdout
    );
}

#[test]
fn inhouse_server_python_3_12() {
    inhouse("pyenv-3.12.1");
}

#[test]
fn inhouse_server_python_3_14() {
    inhouse("sid-3.14");
}

#[test]
fn inhouse_server_python_2_7() {
    inhouse("pyenv-2.7.18");
}

#[test]
fn malformed_profiles_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("profiles.toml");
    std::fs::write(
        &path,
        "[[profile]]\nname = \"x\"\npassword = \"hunter2\"\ntask_loops = []\n",
    )
    .expect("write");
    let shown = path.to_string_lossy().into_owned();
    let fixture = repo().join("tests/fixtures/waitress-3.12-two-busy.json");
    let run = zhw(&[
        "check",
        "--replay",
        "--profiles",
        &shown,
        &fixture.to_string_lossy(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.first_line().starts_with(&format!("FAILURE - invalid arguments: invalid profiles file {shown}, line 3: unknown field `password`")),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "content leaked"
    );
    let run = zhw(&[
        "check",
        "--exit-codes",
        "nagios",
        "--replay",
        "--profile",
        "nosuch",
        &fixture.to_string_lossy(),
    ]);
    assert_eq!(run.code, 3);
    assert!(
        run.first_line()
            .starts_with("UNKNOWN - invalid arguments: unknown profile \"nosuch\"; known: "),
        "{}",
        run.stdout
    );
}

/// A user profile's `markers` through the CLI, on a recorded waitress
/// snapshot: with its marker on the main thread's stack it wins the tie
/// with the built-in waitress profile (user profiles first); with a marker
/// nowhere in the process it does not apply at all.
#[test]
fn user_profile_markers_decide_whether_it_applies() {
    let fixture = repo().join("tests/fixtures/waitress-3.12-two-busy.json");
    let fixture = fixture.to_string_lossy();
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = [
        ("waitress_app.py", "ours"),
        ("no_such_server.py", "waitress"),
    ];
    for (marker_file, profile) in rows {
        let path = dir.path().join(format!("{profile}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[profile]]\nname = \"ours\"\n\
                 task_loops = [{{ function = \"handler_thread\", file = \"waitress/task.py\" }}]\n\
                 idle_waits = [{{ file = \"threading.py\" }}]\n\
                 markers = [{{ function = \"main\", file = \"{marker_file}\" }}]\n"
            ),
        )
        .expect("write");
        let shown = path.to_string_lossy().into_owned();
        let json = zhw(&[
            "check",
            "--replay",
            "--format",
            "json",
            "--profiles",
            &shown,
            &fixture,
        ])
        .json();
        let target = &json["targets"][0];
        assert_eq!(target["profile"], profile, "{target:#}");
        assert_eq!(target["stats"]["busy_count"], 2, "{target:#}");
        assert_eq!(target["stats"]["idle_count"], 2, "{target:#}");
        if profile == "ours" {
            assert_eq!(
                target["profile_reason"],
                "ours: 4 threads run handler_thread (waitress/task.py), \
                 and main (waitress_app.py) is on a stack"
            );
        }
    }
}

//! Monitoring-plugin conventions: worker pools that shrink (state file and
//! --expect-workers), optional targets, timeout statuses, target names, and
//! files refused under elevated privileges.

use std::process::Command;

use crate::support::{repo, run_command, zhw, zhw_binary};

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// A copy of the 4-worker recording with a known process identity, with
/// `drop_workers` of its idle waitress workers removed (as if they died).
fn recording(dir: &std::path::Path, name: &str, pid: u64, drop_workers: usize) -> String {
    let text = std::fs::read_to_string(fixture("waitress-3.12-two-busy.json")).expect("fixture");
    let mut snapshot: serde_json::Value = serde_json::from_str(&text).expect("json");
    snapshot["pid"] = pid.into();
    snapshot["process"]["start_ticks"] = 4242.into();
    let threads = snapshot["threads"].as_array_mut().expect("threads");
    for _ in 0..drop_workers {
        let idle = threads
            .iter()
            .position(|t| {
                t["frames"][0]["function"] == "Condition.wait"
                    && t["frames"][1]["function"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("handler_thread"))
            })
            .expect("an idle worker to drop");
        threads.remove(idle);
    }
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(&snapshot).expect("serialize")).expect("write");
    path.to_string_lossy().into_owned()
}

#[test]
fn expect_workers_reports_dead_workers() {
    let path = fixture("waitress-3.12-two-busy.json");
    let path = path.to_string_lossy();
    let run = zhw(&["check", "--replay", "--expect-workers", "6", &path]);
    assert!(
        run.first_line()
            .starts_with("CRITICAL - 2 worker threads died (6 expected, 4 found) | "),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 3);
    let run = zhw(&["check", "--replay", "--expect-workers", "4", &path]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn state_file_remembers_the_pool_across_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("zhw.state").to_string_lossy().into_owned();
    let full = recording(dir.path(), "client1.json", 100, 0);
    let run = zhw(&["check", "--replay", "--state-file", &state, &full]);
    assert_eq!(run.code, 0, "{}", run.stdout);

    // Same process, one worker fewer: it died.
    let shrunk = recording(dir.path(), "client1.json", 100, 1);
    let run = zhw(&["check", "--replay", "--state-file", &state, &shrunk]);
    assert!(
        run.first_line()
            .starts_with("CRITICAL - 1 worker thread died (4 expected, 3 found)"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 3);
    // It stays CRITICAL on the next run: the pool size is remembered, not replaced.
    let run = zhw(&[
        "check",
        "--replay",
        "--exit-codes",
        "nagios",
        "--state-file",
        &state,
        &shrunk,
    ]);
    assert!(
        run.first_line()
            .starts_with("CRITICAL - 1 worker thread died"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 2);

    // A restarted server (new PID) starts afresh.
    let restarted = recording(dir.path(), "client1.json", 200, 1);
    let run = zhw(&["check", "--replay", "--state-file", &state, &restarted]);
    assert_eq!(run.code, 0, "{}", run.stdout);

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("valid JSON");
    assert_eq!(saved["targets"][&restarted]["pid"], 200);
    assert_eq!(saved["targets"][&restarted]["workers"], 3);
}

#[test]
fn corrupt_state_file_is_kept_aside_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("zhw.state");
    std::fs::write(&state, "{ this is not json").expect("write");
    let target = recording(dir.path(), "client1.json", 100, 0);
    let run = zhw(&[
        "check",
        "-v",
        "--replay",
        "--state-file",
        &state.to_string_lossy(),
        &target,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("was unreadable"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("this is not json"),
        "contents must not be printed"
    );
    let aside = dir.path().join("zhw.state.corrupt");
    assert_eq!(
        std::fs::read_to_string(aside).expect("kept aside"),
        "{ this is not json"
    );
    let fresh: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("rewritten");
    assert_eq!(fresh["schema_version"], 1);
}

#[test]
fn concurrent_checks_lose_no_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("zhw.state").to_string_lossy().into_owned();
    let targets: Vec<String> = (0..8)
        .map(|i| recording(dir.path(), &format!("client{i}.json"), 100 + i, 0))
        .collect();
    let children: Vec<_> = targets
        .iter()
        .map(|t| {
            Command::new(zhw_binary())
                .args(["check", "--replay", "--state-file", &state, t])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").code().is_some());
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("valid JSON");
    let recorded = saved["targets"].as_object().expect("targets").len();
    assert_eq!(
        recorded, 8,
        "every concurrent run's target was kept: {saved}"
    );
}

#[test]
fn names_label_targets_and_perfdata() {
    let a = fixture("waitress-3.12-two-busy.json");
    let b = fixture("waitress-2.7-all-busy.json");
    let run = zhw(&[
        "check",
        "--replay",
        "--name",
        "client1",
        "--name",
        "client2",
        &a.to_string_lossy(),
        &b.to_string_lossy(),
    ]);
    assert!(
        run.first_line().starts_with(
            "CRITICAL - No more Zeo client available (client2) | 'client1 busy'=2;3;3;0;4 "
        ),
        "{}",
        run.first_line()
    );
    let run = zhw(&[
        "check",
        "--replay",
        "--name",
        "x",
        "--name",
        "y",
        &a.to_string_lossy(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.first_line()
            .starts_with("FAILURE - invalid arguments: 2 --name given for 1 target(s)"),
        "{}",
        run.stdout
    );
}

#[test]
fn timeout_status_is_selectable() {
    let target = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let guard = crate::errors::Reaped(target);
    let pid = guard.0.id().to_string();
    for (timeout, codes, line, code) in [
        (
            "0.3:CRITICAL",
            "original",
            "CRITICAL - timed out after 0.3s inspecting pid",
            3,
        ),
        (
            "0.3:CRITICAL",
            "nagios",
            "CRITICAL - timed out after 0.3s inspecting pid",
            2,
        ),
        (
            "0.3:OK",
            "original",
            "OK - timed out after 0.3s inspecting pid",
            0,
        ),
        (
            "0.3:WARNING",
            "nagios",
            "WARNING - timed out after 0.3s inspecting pid",
            1,
        ),
        (
            "0.3",
            "nagios",
            "UNKNOWN - timed out after 0.3s inspecting pid",
            3,
        ),
    ] {
        let run = zhw(&[
            "check",
            "-t",
            timeout,
            "--exit-codes",
            codes,
            "--inject-delay-ms",
            "20000",
            &pid,
        ]);
        assert!(
            run.first_line().starts_with(line),
            "-t {timeout}: {}",
            run.stdout
        );
        assert_eq!(run.code, code, "-t {timeout} {codes}");
    }
}

#[test]
fn optional_targets_do_not_decide_the_status_when_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Absence is "not running": a stale pidfile, next to a live target.
    let stale = dir.path().join("client9.pid");
    std::fs::write(&stale, "4194304\n").expect("write");
    let stale = stale.to_string_lossy().into_owned();
    let python = crate::errors::python_waiting(2);
    let pid = python.0.id().to_string();
    let run = zhw(&["check", &pid, "--optional", &stale]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.first_line().starts_with("OK - Everything looks fine"),
        "{}",
        run.stdout
    );
    let run = zhw(&["check", "-v", &pid, "--optional", &stale]);
    assert!(
        run.stdout.contains("is not running (optional)"),
        "{}",
        run.stdout
    );
    // The same target given as a required one fails the check.
    let run = zhw(&["check", &pid, &stale]);
    assert_eq!(run.code, 2, "{}", run.stdout);
}

/// Under sudo, a pidfile the calling user could not read is refused, and
/// its contents never shown (simulated with SUDO_UID as root).
#[test]
fn elevated_runs_refuse_other_users_private_files() {
    if !crate::errors::is_root() {
        crate::support::record("SKIP elevated_runs_refuse_other_users_private_files: needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("secret.pid");
    std::fs::write(&private, "1\n").expect("write");
    std::os::unix::fs::chown(&private, Some(4321), Some(4321)).expect("chown");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let private = private.to_string_lossy().into_owned();
    let run = run_command(
        Command::new(zhw_binary())
            .args(["check", &private])
            .env("SUDO_UID", "65534"),
    );
    assert_eq!(
        run.first_line(),
        format!(
            "FAILURE - refusing pidfile {private}: it belongs to uid 4321, and zhw runs with elevated privileges on behalf of uid 65534, who may not use it"
        )
    );
    // The owner themselves may.
    let run = run_command(
        Command::new(zhw_binary())
            .args(["check", &private])
            .env("SUDO_UID", "4321"),
    );
    assert!(!run.first_line().contains("refusing"), "{}", run.stdout);
}

/// Under sudo, --state-file must not become a way to create or replace
/// files as root (simulated with SUDO_UID as root).
#[test]
fn elevated_runs_never_replace_system_files_with_state() {
    if !crate::errors::is_root() {
        crate::support::record(
            "SKIP elevated_runs_never_replace_system_files_with_state: needs root",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir"); // root-owned
    let target = recording(dir.path(), "client1.json", 100, 0);
    let system_file = dir.path().join("passwd");
    std::fs::write(&system_file, "root:x:0:0:root:/root:/bin/bash\n").expect("write");
    let elevated = |state: &std::path::Path| {
        run_command(
            Command::new(zhw_binary())
                .args([
                    "check",
                    "-v",
                    "--replay",
                    "--state-file",
                    &state.to_string_lossy(),
                    &target,
                ])
                .env("SUDO_UID", "65534"),
        )
    };
    let run = elevated(&system_file);
    assert!(
        run.stdout.contains("not a zhw state file"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&system_file).expect("still there"),
        "root:x:0:0:root:/root:/bin/bash\n"
    );
    assert!(!dir.path().join("passwd.corrupt").exists());
    assert!(
        !dir.path().join("passwd.lock").exists(),
        "not even a lock file next to it"
    );
    assert!(
        !run.stdout.contains("root:x:0"),
        "contents must not be printed"
    );

    let new_in_root_dir = dir.path().join("new.state");
    let run = elevated(&new_in_root_dir);
    assert!(
        run.stdout.contains("refusing to create state file"),
        "{}",
        run.stdout
    );
    assert!(!new_in_root_dir.exists());
    // The check itself still answers.
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// Regression (found by trying zhw with nasty inputs): a FIFO named as the
/// profiles file or the state file, or a state file whose lock another run
/// holds, hung the check past `-t`. `timeout 30` turns a hang into exit 124.
#[test]
fn fifos_and_held_locks_do_not_hang_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("named.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let snapshot = fixture("waitress-3.12-two-busy.json");
    let bounded = |extra: &[&std::ffi::OsStr]| {
        let mut command = Command::new("timeout");
        command
            .arg("30")
            .arg(zhw_binary())
            .args(["check", "-t", "2", "--replay"])
            .args(extra)
            .arg(&snapshot);
        run_command(&mut command)
    };
    let run = bounded(&["--profiles".as_ref(), fifo.as_os_str()]);
    assert_ne!(run.code, 124, "hung on a FIFO as profiles file");
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("is not a regular file"),
        "{}",
        run.stdout
    );

    let run = bounded(&["--state-file".as_ref(), fifo.as_os_str()]);
    assert_ne!(run.code, 124, "hung on a FIFO as state file");
    assert!(run.stdout.contains("state file"), "{}", run.stdout);
    assert!(run.stdout.contains("not a regular file"), "{}", run.stdout);

    // Another run holding the state file's lock: this one goes on without memory.
    let state = dir.path().join("state.json");
    let lock = dir.path().join("state.json.lock");
    std::fs::write(&lock, "").expect("lock file");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let run = bounded(&["--state-file".as_ref(), state.as_os_str()]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ne!(run.code, 124, "hung on a held lock");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("another zhw has held it"),
        "{}",
        run.stdout
    );
}

/// The Icinga 2 CheckCommand names only options `zhw check` has, and every
/// option it has (but the few that make no sense from Icinga).
#[test]
fn icinga_check_command_covers_every_check_option() {
    let conf = std::fs::read_to_string(repo().join("examples/icinga2/zhw.conf")).expect("conf");
    let in_conf: std::collections::BTreeSet<String> = conf
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix('"')?
                .split('"')
                .next()
                .map(str::to_string)
        })
        .filter(|key| key.starts_with('-'))
        .collect();
    let help = zhw(&["check", "--help"]).stdout;
    let in_help: std::collections::BTreeSet<String> = help
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            word.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_string()
        })
        .collect();
    for key in &in_conf {
        let long = key.starts_with("--");
        assert!(
            !long || in_help.contains(key),
            "{key} is in the CheckCommand but not in zhw check --help"
        );
    }
    // Short forms stand for these long ones.
    let short = [
        ("-w", "--warning"),
        ("-c", "--critical"),
        ("-t", "--timeout"),
        ("-v", "--verbose"),
    ];
    let covered = |option: &str| {
        in_conf.contains(option)
            || short
                .iter()
                .any(|(s, l)| *l == option && in_conf.contains(*s))
    };
    for option in &in_help {
        if ["--help", "--version"].contains(&option.as_str()) {
            continue;
        }
        assert!(
            covered(option),
            "zhw check {option} is missing from the CheckCommand"
        );
    }
}

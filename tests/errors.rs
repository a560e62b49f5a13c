//! Every way a target can be uninspectable gives a clear status line and the
//! documented exit code — never a panic (Rust's panic exit code is 101).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{interpreter_path, record, repo, run_command, zhw, zhw_binary};

/// A PID that is not running: above any pid_max this kernel allows.
const ABSENT_PID: &str = "4194304";

pub struct Reaped(pub std::process::Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn any_python() -> std::path::PathBuf {
    ["pyenv-3.12.1", "pyenv-3.11.7", "debian-3.11"]
        .iter()
        .map(|label| interpreter_path(label))
        .find(|p| p.exists())
        .unwrap_or_else(|| "python3".into())
}

/// A Python process that prints READY and then sleeps.
fn sleeping_python() -> Reaped {
    python_waiting(0)
}

/// A Python process with `threads` extra sleeping threads that prints READY
/// once they run; killed and reaped on drop.
pub fn python_waiting(threads: usize) -> Reaped {
    let code = format!(
        "import threading,time,sys\n\
         for i in range({threads}): threading.Thread(target=time.sleep, args=(120,)).start()\n\
         print('READY'); sys.stdout.flush(); time.sleep(120)"
    );
    started(Command::new(any_python()).args(["-u", "-c", &code]))
}

/// A Python program that prints READY and sleeps.
const SLEEPER: &str = "import sys,time; print('READY'); sys.stdout.flush(); time.sleep(120)";

/// Spawn a Python command that prints a READY line, and wait for that line;
/// the process is killed and reaped on drop.
pub fn started(command: &mut Command) -> Reaped {
    let mut child = Reaped(
        command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("READY");
    child
}

#[test]
fn no_such_process() {
    let run = zhw(&["check", ABSENT_PID]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - no such process: pid {ABSENT_PID} is not running")
    );
    assert_eq!(run.code, 2);
    let nagios = zhw(&["check", "--exit-codes", "nagios", ABSENT_PID]);
    assert_eq!(
        nagios.first_line(),
        format!("CRITICAL - no such process: pid {ABSENT_PID} is not running")
    );
    assert_eq!(nagios.code, 2);
    let dump = zhw(&["dump", ABSENT_PID]);
    assert_eq!(dump.code, 2);
    assert!(dump.stdout.contains("is not running"), "{}", dump.stdout);
}

/// A process read by the first samples of one check and gone by the last
/// exited while being inspected; "no such process" would say it never ran
/// (a fresh-user trial's finding). Either is "not running" (FAILURE, or
/// CRITICAL under Nagios).
#[test]
fn a_target_gone_between_samples_exited_while_inspected() {
    let child = started(Command::new(any_python()).args([
        "-u",
        "-c",
        "import sys,time; print('READY'); sys.stdout.flush(); time.sleep(2)",
    ]));
    let pid = child.0.id();
    let run = zhw(&[
        "check",
        "--samples",
        "6",
        "--interval",
        "500",
        &pid.to_string(),
    ]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - pid {pid} exited while being inspected"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 2);
}

#[test]
fn pidfile_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    let missing = path("client1.pid");
    let run = zhw(&["check", &missing]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - pidfile {missing} not found (is the server running?)")
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        zhw(&["check", "--exit-codes", "nagios", &missing]).code,
        2,
        "missing = not running = CRITICAL"
    );

    let stale = path("client2.pid");
    std::fs::write(&stale, format!("{ABSENT_PID}\n")).expect("write");
    let run = zhw(&["check", &stale]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - stale pidfile {stale}: process {ABSENT_PID} is not running")
    );
    assert_eq!(run.code, 2);

    let garbage = path("client3.pid");
    std::fs::write(&garbage, "password=hunter2\n").expect("write");
    let run = zhw(&["check", "--exit-codes", "nagios", &garbage]);
    assert_eq!(
        run.first_line(),
        format!("UNKNOWN - pidfile {garbage} does not contain a process id")
    );
    assert_eq!(run.code, 3);
    assert!(
        !run.stdout.contains("hunter2"),
        "pidfile contents must never be printed"
    );

    let dir_as_file = dir.path().to_string_lossy().into_owned();
    let run = zhw(&["check", &dir_as_file]);
    assert!(
        run.first_line()
            .starts_with("FAILURE - cannot read pidfile"),
        "{}",
        run.stdout
    );
}

#[test]
fn not_a_python_process() {
    let child = Reaped(Command::new("sleep").arg("120").spawn().expect("sleep"));
    let pid = child.0.id().to_string();
    let run = zhw(&["check", &pid]);
    assert_eq!(
        run.first_line(),
        format!(
            "FAILURE - pid {pid} is not a Python process (no python binary or libpython is mapped)"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 2);
    let nagios = zhw(&["check", "--exit-codes", "nagios", &pid]);
    assert!(
        nagios.first_line().starts_with("UNKNOWN - "),
        "{}",
        nagios.stdout
    );
    assert_eq!(nagios.code, 3);
}

#[test]
fn timeout_answers_on_time() {
    let target = sleeping_python();
    let pid = target.0.id().to_string();
    let run = zhw(&["check", "-t", "0.5", "--inject-delay-ms", "30000", &pid]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - timed out after 0.5s inspecting pid {pid}")
    );
    assert_eq!(run.code, 2);
    let nagios = zhw(&[
        "check",
        "-t",
        "0.5",
        "--exit-codes",
        "nagios",
        "--inject-delay-ms",
        "30000",
        &pid,
    ]);
    assert_eq!(nagios.code, 3, "a timeout is UNKNOWN");
}

#[test]
fn usage_errors_are_not_panics() {
    for (args, code) in [
        (vec!["check"], 2),
        (vec!["check", "-t", "0", "1"], 2),
        (vec!["check", "-w", "many", "1"], 2),
        (vec!["check", "--exit-codes", "nagios", "-w", "-3", "1"], 3),
        (vec!["check", "--profile", "nosuch", "1"], 2),
        (vec!["frobnicate"], 2),
    ] {
        let run = zhw(&args);
        assert_eq!(run.code, code, "zhw {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("error:"),
            "zhw {args:?}: {}",
            run.stderr
        );
        let label = if code == 3 { "UNKNOWN" } else { "FAILURE" };
        let expected = format!("{label} - invalid arguments: ");
        assert!(
            run.first_line().starts_with(&expected),
            "zhw {args:?}: {}",
            run.stdout
        );
    }
    assert_eq!(zhw(&["--version"]).code, 0);
    assert_eq!(zhw(&["check", "--help"]).code, 0);
    // The plugin guidelines' short forms.
    let version = zhw(&["-V"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("zhw "), "{}", version.stdout);
    let help = zhw(&["check", "-h"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage: zhw check"), "{}", help.stdout);
}

#[test]
fn target_exiting_while_read_is_reported_not_panicked() {
    // A process that exits after a short while, checked in a loop until it is
    // gone: every outcome is a clean status, whatever moment the exit hits.
    let child = Reaped(
        Command::new(any_python())
            .args(["-c", "import threading,time\nfor i in range(8): threading.Thread(target=time.sleep, args=(0.4,)).start()\ntime.sleep(0.4)"])
            .spawn()
            .expect("start python"),
    );
    let pid = child.0.id().to_string();
    let mut seen = Vec::new();
    for _ in 0..400 {
        let run = zhw(&["check", &pid]);
        assert!(
            matches!(run.code, 0..=3),
            "zhw crashed ({}): {}{}",
            run.code,
            run.stdout,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        seen.push(run.first_line().to_string());
        if run.first_line().contains("not running") {
            break;
        }
    }
    drop(child); // killed and reaped
    let run = zhw(&["check", &pid]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    for line in &seen {
        let clean = line.starts_with("OK - ")
            || line.starts_with("WARNING - ")
            || line.starts_with("CRITICAL - ")
            || line.starts_with("FAILURE - ");
        assert!(clean, "unexpected status line {line:?}");
    }
}

/// A process on its way out has no memory for a moment before it becomes a
/// zombie: zhw once called it "not a Python process (it has no user memory:
/// a kernel thread)" or "(no python binary or libpython is mapped)",
/// UNKNOWN in the Nagios mapping, instead of gone (CRITICAL). Found by a
/// fresh-user trial: 3 of 40 exits of a 200-thread process, checked in a
/// loop. Here 40 such exits; each answer must be a status or "not running".
#[test]
fn a_process_exiting_is_gone_not_unpython() {
    let python = any_python();
    let code = "import threading,time,os\n\
                ts=[threading.Thread(target=time.sleep,args=(0.25,)) for _ in range(200)]\n\
                [t.start() for t in ts]\n\
                time.sleep(0.3)\n\
                os._exit(0)";
    let mut checks = 0;
    for _ in 0..40 {
        let mut child = Reaped(
            Command::new(&python)
                .args(["-c", code])
                .spawn()
                .expect("start python"),
        );
        let pid = child.0.id().to_string();
        std::thread::sleep(Duration::from_millis(250));
        while matches!(child.0.try_wait(), Ok(None)) {
            let run = zhw(&["check", "--exit-codes", "nagios", &pid]);
            checks += 1;
            let line = run.first_line().to_string();
            let status = ["OK - ", "WARNING - ", "CRITICAL - "]
                .iter()
                .any(|prefix| line.starts_with(prefix));
            assert!(
                status && run.code <= 2,
                "exit {} for a process that is exiting: {line}\n{}",
                run.code,
                run.stderr
            );
            assert!(
                !line.contains("not a Python") && !line.contains("could not read"),
                "{line}"
            );
        }
    }
    record(&format!(
        "EXERCISED a_process_exiting_is_gone_not_unpython: {checks} checks of 40 exiting \
         processes ({})",
        python.display()
    ));
}

/// A copy of the binary that user nobody can execute, wherever the repo lives.
fn binary_for_nobody() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let copy = dir.path().join("zhw");
    std::fs::copy(zhw_binary(), &copy).expect("copy binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, copy)
}

/// Root without CAP_SYS_PTRACE (a container started without
/// `--cap-add SYS_PTRACE`; shared case 17 a) is told so, on a threaded
/// target too: the kernel refuses the memory read with EACCES through
/// /proc/PID/mem, which once slipped past the check and blamed the Python
/// binary instead.
#[test]
fn root_without_the_capability_is_told_so() {
    let python = interpreter_path("pyenv-3.12.1");
    let capsh = std::path::Path::new("/usr/sbin/capsh");
    if !is_root() || !capsh.exists() || !python.exists() {
        record("SKIP root_without_the_capability_is_told_so: needs root, capsh and pyenv 3.12.1");
        return;
    }
    let server =
        crate::support::Server::start(&python, &repo().join("tests/python/five_states.py"), &[]);
    let pid = server.pid.to_string();
    let command = format!("{} check {pid}", zhw_binary().display());
    let run =
        run_command(Command::new(capsh).args(["--drop=cap_sys_ptrace", "--", "-c", &command]));
    let expected = format!(
        "FAILURE - permission denied reading pid {pid}: zhw runs as root but without \
         CAP_SYS_PTRACE (dropped from its capability set, as in a container started without \
         --cap-add SYS_PTRACE)"
    );
    assert!(
        run.first_line().starts_with(&expected),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        !run.stdout.contains("Thread "),
        "no stacks on a refused target"
    );
}

/// The third way to run zhw: as the target's own user, where the kernel's
/// Yama policy allows it (root only, to switch users).
#[test]
fn same_user_reads_its_own_processes_where_yama_allows() {
    let python = std::path::Path::new("/usr/bin/python3.11");
    if !is_root() || !python.exists() {
        record(
            "SKIP same_user_reads_its_own_processes_where_yama_allows: needs root and /usr/bin/python3.11",
        );
        return;
    }
    let target = started(
        Command::new(python)
            .args(["-u", "-c", SLEEPER])
            .current_dir("/")
            .uid(65534)
            .gid(65534),
    );
    let pid = target.0.id().to_string();
    let (_dir, copy) = binary_for_nobody();
    let run = run_command(
        Command::new(&copy)
            .args(["dump", &pid])
            .uid(65534)
            .gid(65534),
    );
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    match scope.as_deref().map(str::trim) {
        None | Some("0") => {
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            assert!(
                run.stdout.contains(&format!("tid {pid}: service idle")),
                "{}",
                run.stdout
            );
        }
        Some(level) => {
            assert_eq!(run.code, 2, "{}", run.stdout);
            assert!(
                run.stdout.contains(&format!("ptrace_scope is {level}")),
                "{}",
                run.stdout
            );
        }
    }
}

/// Run zhw as an unprivileged user against a root-owned Python (root only).
#[test]
fn permission_denied_names_the_fix() {
    if !is_root() {
        record("SKIP permission_denied_names_the_fix: needs root to start a root-owned target");
        return;
    }
    let target = sleeping_python();
    let pid = target.0.id().to_string();
    let (_dir, copy) = binary_for_nobody();
    let run = run_command(
        Command::new(&copy)
            .args(["check", &pid])
            .uid(65534)
            .gid(65534),
    );
    let expected = format!(
        "FAILURE - permission denied reading pid {pid}: the process belongs to uid 0 and zhw runs as uid 65534 without CAP_SYS_PTRACE; run zhw as root (sudo), or grant the capability with `setcap cap_sys_ptrace+ep /path/to/zhw` (in a container: --cap-add SYS_PTRACE)"
    );
    assert_eq!(run.first_line(), expected, "{}", run.stderr);
    assert_eq!(run.code, 2);
    assert!(
        !run.stdout.contains("Thread "),
        "no stacks on a refused target"
    );

    // The documented fix: the capability on the binary, run as the same
    // unprivileged user, now reads a root-owned Python whose files that user
    // can read (Debian's python3.11 links libpython statically).
    let setcap = Command::new("setcap")
        .arg("cap_sys_ptrace+ep")
        .arg(&copy)
        .status();
    if !setcap.is_ok_and(|s| s.success()) {
        record("SKIP setcap half of permission_denied_names_the_fix: setcap unavailable");
        return;
    }
    let debian = std::path::Path::new("/usr/bin/python3.11");
    if debian.exists() {
        let system_python = python_at(debian);
        let system_pid = system_python.0.id().to_string();
        let run = run_command(
            Command::new(&copy)
                .args(["dump", &system_pid])
                .uid(65534)
                .gid(65534),
        );
        assert_eq!(
            run.code, 0,
            "with CAP_SYS_PTRACE: {}{}",
            run.stdout, run.stderr
        );
        assert!(
            run.stdout
                .contains(&format!("tid {system_pid}: service idle")),
            "{}",
            run.stdout
        );
    } else {
        record("SKIP setcap success half: /usr/bin/python3.11 not found");
    }
    // A Python whose shared libpython lies where that user cannot read
    // (pyenv's under /root): the message names the file and the fix.
    let library_hidden =
        std::fs::metadata("/root").is_ok_and(|m| m.permissions().mode() & 0o005 == 0);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    if library_hidden && maps.contains("/root/") && maps.contains("libpython") {
        let run = run_command(
            Command::new(&copy)
                .args(["check", &pid])
                .uid(65534)
                .gid(65534),
        );
        assert!(
            run.first_line()
                .contains("but not its Python library /root/"),
            "{}",
            run.stdout
        );
        assert!(
            run.first_line().contains("cap_dac_read_search"),
            "{}",
            run.stdout
        );
    } else {
        record("SKIP unreadable-libpython half: the target's libpython is readable by nobody here");
    }
}

/// A Python from `path` that prints READY and sleeps, with `/` as its
/// working directory (so any user can follow it).
fn python_at(path: &std::path::Path) -> Reaped {
    started(
        Command::new(path)
            .args(["-u", "-c", SLEEPER])
            .current_dir("/"),
    )
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn odd_targets_get_precise_errors() {
    // A FIFO where a pidfile should be: refused at once, never waited on.
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("client1.pid");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let fifo = fifo.to_string_lossy().into_owned();
    let run = zhw(&["check", "-t", "2", &fifo]);
    assert_eq!(
        run.first_line(),
        format!("FAILURE - cannot read pidfile {fifo}: not a regular file")
    );

    let run = zhw(&["check", "--exit-codes", "nagios", "--", "-1"]);
    assert_eq!(run.first_line(), "UNKNOWN - -1 is not a valid process id");
    assert_eq!(run.code, 3);

    // A non-UTF-8 pidfile name is a path like any other, not a crash.
    let run = run_command(
        Command::new(zhw_binary())
            .arg("check")
            .arg(std::ffi::OsStr::from_bytes(b"/tmp/\xff.pid")),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.first_line().starts_with("FAILURE - pidfile /tmp/"),
        "{}",
        run.stdout
    );

    // A thread id is not a process id.
    let target = python_waiting(3);
    let pid = target.0.id();
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|tid| *tid != pid)
        .expect("a second thread");
    let run = zhw(&["check", &tid.to_string()]);
    assert_eq!(
        run.first_line(),
        format!(
            "FAILURE - could not read pid {tid}: {tid} is a thread of process {pid}, not a process; check {pid}"
        )
    );
}

#[test]
fn a_stopped_target_is_read_and_left_stopped() {
    let target = python_waiting(3);
    let pid = target.0.id();
    let state = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_string())
        };
        (
            field("State:").unwrap_or_default(),
            field("TracerPid:").unwrap_or_default(),
        )
    };
    let stopped = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let run = zhw(&["check", "-v", &pid.to_string()]);
    assert!(
        run.stdout.contains("warning: the process is stopped"),
        "{}",
        run.stdout
    );
    // A stopped server serves nobody: CRITICAL (503 from zhw serve's /status).
    assert!(
        run.first_line()
            .starts_with("CRITICAL - process is stopped (SIGSTOP, job control or a debugger)"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    // Case 15: every thread is shown stopped, none active or busy-on-CPU.
    let dump = zhw(&["dump", "--format", "json", &pid.to_string()]);
    let threads = dump.json()["targets"][0]["threads"].clone();
    let threads = threads.as_array().expect("threads");
    assert!(!threads.is_empty(), "{}", dump.stdout);
    for thread in threads {
        assert_eq!(thread["activity"], "stopped", "{thread}");
    }
    let blocking = zhw(&["check", "-t", "5", "--blocking", &pid.to_string()]);
    assert!(matches!(blocking.code, 0..=3), "{}", blocking.stderr);
    assert!(
        !blocking.stdout.contains("waitpid"),
        "no raw ptrace internals: {}",
        blocking.stdout
    );
    // A thread detached by ptrace passes through R on its way back into the
    // group stop; give the kernel a moment (bounded) before judging.
    let mut settled = state();
    for _ in 0..40 {
        if settled.0.starts_with('T') && settled.1 == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        settled = state();
    }
    let (process_state, tracer) = settled;
    assert!(
        process_state.starts_with('T'),
        "left in state {process_state}"
    );
    assert_eq!(tracer, "0", "a ptrace attachment was left behind");
}

#[test]
fn another_tracer_is_named_as_the_cause() {
    let target = python_waiting(3);
    let pid = target.0.id();
    // Hold the process with our own ptrace seize, as a debugger would.
    let raw = nix::unistd::Pid::from_raw(pid as i32);
    if let Err(err) = nix::sys::ptrace::seize(raw, nix::sys::ptrace::Options::empty()) {
        record(&format!(
            "SKIP another_tracer_is_named_as_the_cause: cannot ptrace here ({err})"
        ));
        return;
    }
    let run = zhw(&["check", "--blocking", &pid.to_string()]);
    assert!(
        run.first_line().starts_with(&format!(
            "FAILURE - pid {pid} is already being traced by pid "
        )),
        "{}",
        run.stdout
    );
    // The default mode does not need ptrace and still answers.
    let run = zhw(&["check", &pid.to_string()]);
    assert!(!run.first_line().starts_with("FAILURE"), "{}", run.stdout);
}

/// Hold `pid`'s main thread in a ptrace stop (state `t`), as a sampler or a
/// debugger does, for `hold`; `None` when this machine forbids ptrace.
fn hold_in_ptrace_stop(pid: u32, hold: Duration) -> Option<std::thread::JoinHandle<()>> {
    use nix::sys::{ptrace, wait};
    let (held, is_held) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        // ptrace requests must come from the thread that attached.
        let raw = nix::unistd::Pid::from_raw(pid as i32);
        let stopped = ptrace::seize(raw, ptrace::Options::empty())
            .and_then(|()| ptrace::interrupt(raw))
            .and_then(|()| wait::waitpid(raw, Some(wait::WaitPidFlag::__WALL)).map(drop));
        let _ = held.send(stopped.is_ok());
        if stopped.is_ok() {
            std::thread::sleep(hold);
        }
        let _ = ptrace::detach(raw, None);
    });
    is_held.recv().unwrap_or(false).then_some(holder)
}

/// Regression: a monitoring system ran `zhw check --blocking` and a plain
/// `zhw check` of the same client at once (tests/integration/icinga2.sh), and
/// the plain one called the client CRITICAL "process is stopped" because it
/// met the other's ptrace pause.
#[test]
fn another_samplers_brief_pause_is_not_a_stopped_process() {
    let target = python_waiting(3);
    let pid = target.0.id();
    let Some(holder) = hold_in_ptrace_stop(pid, Duration::from_millis(300)) else {
        record("SKIP another_samplers_brief_pause_is_not_a_stopped_process: cannot ptrace here");
        return;
    };
    let run = zhw(&["check", "-v", &pid.to_string()]);
    let _ = holder.join();
    assert!(!run.stdout.contains("stopped"), "{}", run.stdout);
    assert_ne!(run.code, 2, "{}", run.stdout);

    // A debugger that keeps it paused is a stopped server.
    let Some(holder) = hold_in_ptrace_stop(pid, Duration::from_secs(3)) else {
        panic!("ptrace worked a moment ago");
    };
    let run = zhw(&["check", &pid.to_string()]);
    let _ = holder.join();
    assert!(
        run.first_line()
            .starts_with("CRITICAL - process is stopped"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_target_named_twice_counts_once() {
    let fixture = crate::support::repo().join("tests/fixtures/waitress-3.12-two-busy.json");
    let fixture = fixture.to_string_lossy();
    let run = zhw(&["check", "--replay", &fixture, &fixture]);
    assert_eq!(run.line(1), "Idle: 2\tBusy: 2");
}

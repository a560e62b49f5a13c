//! Process shapes that break out-of-process stack tools (shared/cases):
//! containers with their own PID namespace, children forked from a threaded
//! Python 2.7 parent, a libpython deleted or replaced on disk under a running
//! process, stacks deeper than 4096 frames, more than 4096 threads; and the
//! OS and GIL state of spinning and sleeping threads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::errors::{Reaped, is_root};
use crate::support::{
    Server, find_interpreter, interpreter_path, record, repo, run_command, zhw, zhw_binary,
};

fn read_ready(child: &mut Reaped) -> String {
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("READY line");
    line
}

fn tasks(pid: &str) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// In its own PID namespace a Python knows only namespace-local tids (3.11+
/// stores them; glibc's pthread holds them on every version): zhw must
/// report host tids and CPU states (case 03).
fn namespaced(label: &str) {
    let python = interpreter_path(label);
    if !is_root() || !python.exists() {
        record(&format!(
            "SKIP pid namespace on {label}: needs root and {}",
            python.display()
        ));
        return;
    }
    let mut unshare = Reaped(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&python)
            .arg("-u")
            .arg(repo().join("tests/python/namespaced.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare"),
    );
    assert!(read_ready(&mut unshare).starts_with("READY"));
    let outer = unshare.0.id();
    let children =
        std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).expect("children");
    let pid = children
        .split_whitespace()
        .next()
        .expect("python in the namespace")
        .to_string();
    record(&format!("EXERCISED pid namespace on {label}"));
    let doc = zhw(&["dump", "--format", "json", &pid]).json();
    let target = &doc["targets"][0];
    let host_tids = tasks(&pid);
    let threads = target["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 5, "{label}: {target}");
    for thread in threads {
        let tid = thread["os_thread_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{label}: unmapped {thread}"));
        assert!(
            host_tids.contains(&tid),
            "{label}: tid {tid} is not a host tid of {pid}"
        );
        assert!(thread["cpu"].is_string(), "{label}: {thread}");
    }
    assert_eq!(
        target["warnings"].as_array().map(Vec::len),
        Some(0),
        "{label}: {target}"
    );
    let main = threads
        .iter()
        .find(|t| t["is_main"] == true)
        .expect("main thread");
    assert_eq!(
        main["os_thread_id"].as_u64().map(|t| t.to_string()),
        Some(pid.clone())
    );
    // Reaped kills unshare, and --kill-child takes the namespace's Python with it.
}

#[test]
fn pid_namespace_python_3_12() {
    namespaced("pyenv-3.12.1");
}

#[test]
fn pid_namespace_python_3_8() {
    namespaced("pyenv-3.8.18");
}

/// A 2.7 child forked from a threaded parent lists the parent's thread
/// states; only the one with a kernel thread is real (case 20).
fn forked_child(label: &str) {
    let python = interpreter_path(label);
    if !python.exists() {
        record(&format!(
            "SKIP forked child on {label}: {} not found",
            python.display()
        ));
        return;
    }
    let mut parent = Reaped(
        Command::new(&python)
            .arg("-u")
            .arg(repo().join("tests/python/forked_child.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parent"),
    );
    let line = read_ready(&mut parent);
    let child = line
        .trim()
        .strip_prefix("READY child=")
        .expect("child pid")
        .to_string();
    let _child_guard = KillOnDrop(child.clone());
    record(&format!("EXERCISED forked child on {label}"));
    let doc = zhw(&["dump", "--format", "json", &child]).json();
    let threads = doc["targets"][0]["threads"]
        .as_array()
        .expect("threads")
        .clone();
    assert_eq!(threads.len(), 1, "{label}: {threads:?}");
    assert_eq!(
        threads[0]["os_thread_id"].as_u64().map(|t| t.to_string()),
        Some(child.clone())
    );
    assert_eq!(
        threads[0]["frames"][0]["function"], "child_serve",
        "{label}"
    );
    // Case 20: the one real thread sleeps; it is not "active".
    assert_eq!(threads[0]["activity"], "waiting", "{label}: {}", threads[0]);
    assert!(
        doc["targets"][0]["warnings"]
            .to_string()
            .contains("left behind by fork")
            || label != "pyenv-2.7.18",
        "{label}: {}",
        doc["targets"][0]["warnings"]
    );
}

struct KillOnDrop(String);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0]).status();
    }
}

#[test]
fn forked_child_python_2_7() {
    forked_child("pyenv-2.7.18");
}

#[test]
fn forked_child_python_3_12() {
    forked_child("pyenv-3.12.1");
}

/// Every interpreter the live tests know; absent ones are skipped loudly.
macro_rules! on_every_interpreter {
    ($check:ident: $($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $check($label);
            }
        )*
    };
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/python").join(name)
}

fn threads_of(doc: &Value) -> Vec<Value> {
    doc["targets"][0]["threads"]
        .as_array()
        .unwrap_or_else(|| panic!("no threads in {doc}"))
        .clone()
}

fn function(frame: &Value) -> &str {
    frame["function"].as_str().unwrap_or("")
}

/// The thread with a frame in `function` (qualified names on 3.11+ end with
/// the plain name); thread names are not known on 2.7.
fn thread_in<'a>(threads: &'a [Value], name: &str) -> &'a Value {
    threads
        .iter()
        .find(|t| {
            t["frames"].as_array().is_some_and(|frames| {
                frames
                    .iter()
                    .any(|f| function(f) == name || function(f).ends_with(&format!(".{name}")))
            })
        })
        .unwrap_or_else(|| panic!("no thread in {name}: {threads:?}"))
}

fn innermost(thread: &Value) -> &str {
    function(&thread["frames"][0])
}

// ---------------------------------------------------------------------------
// Thread state: on CPU / waiting, holding the GIL or not.

/// Samples taken at most before giving up on seeing the spinner on a CPU
/// and holding the GIL (the OS state flickers: it may be preempted).
const STATE_SAMPLES: usize = 40;

/// A spinning thread shows `cpu: running` and holds the GIL in some sample;
/// threads asleep, blocked on a lock or on a socket are `waiting` and never
/// hold it, in every sample.
fn thread_states(label: &str) {
    let Some(python) = find_interpreter(label, "thread states") else {
        return;
    };
    let server = Server::start(&python, &script("five_states.py"), &[]);
    let pid = server.pid.to_string();
    record(&format!("EXERCISED thread states on {label}"));
    let (mut running, mut holding, mut samples) = (0, 0, 0);
    while samples < STATE_SAMPLES && (running == 0 || holding == 0 || samples < 5) {
        samples += 1;
        let run = zhw(&["dump", "--format", "json", &pid]);
        assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
        let threads = threads_of(&run.json());
        assert_eq!(threads.len(), 5, "{label}: {threads:?}");
        for parked in ["nap_in_sleep", "block_on_lock", "block_on_recv"] {
            let thread = thread_in(&threads, parked);
            assert_eq!(thread["cpu"], "waiting", "{label}: {parked} {thread}");
            assert_eq!(thread["holds_gil"], false, "{label}: {parked} {thread}");
        }
        let spinner = thread_in(&threads, "spin_cpu");
        assert!(spinner["cpu"].is_string(), "{label}: {spinner}");
        running += usize::from(spinner["cpu"] == "running");
        holding += usize::from(spinner["holds_gil"] == true);
    }
    assert!(
        running > 0,
        "{label}: the spinner was never on a CPU in {samples} samples"
    );
    assert!(
        holding > 0,
        "{label}: the spinner never held the GIL in {samples} samples"
    );
    eprintln!("{label}: spinner running in {running}, holding the GIL in {holding} of {samples}");
}

on_every_interpreter! { thread_states:
    thread_states_on_pyenv_2_7 => "pyenv-2.7.18",
    thread_states_on_pyenv_3_6 => "pyenv-3.6.15",
    thread_states_on_pyenv_3_7 => "pyenv-3.7.16",
    thread_states_on_pyenv_3_8 => "pyenv-3.8.18",
    thread_states_on_pyenv_3_9 => "pyenv-3.9.18",
    thread_states_on_pyenv_3_10 => "pyenv-3.10.13",
    thread_states_on_pyenv_3_11 => "pyenv-3.11.7",
    thread_states_on_pyenv_3_12 => "pyenv-3.12.1",
    thread_states_on_pyenv_3_13 => "pyenv-3.13.0",
    thread_states_on_debian_3_11 => "debian-3.11",
    thread_states_on_sid_3_14 => "sid-3.14",
}

// ---------------------------------------------------------------------------
// Activity: running, waiting for the GIL, or blocked (shared cases 01, 03, 19).

/// Samples of activity.py per interpreter: every one must give the same answer.
const ACTIVITY_SAMPLES: usize = 8;

/// The thread called `name` (activity.py names all of them, 2.7 too).
fn named<'a>(threads: &'a [Value], name: &str) -> &'a Value {
    threads
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no thread named {name}: {threads:?}"))
}

/// Threads that want the CPU are `active` in every sample (spinners are on
/// a CPU or waiting for the GIL, never "idle" as the OS's futex wait would
/// suggest), blocked ones `waiting` with what they wait in, and the check
/// counts the same workers busy every time: the generic profile calls the
/// threads blocked in their own top-level function idle, and the pool
/// worker blocked inside a job busy.
fn activity(label: &str) {
    let Some(python) = find_interpreter(label, "thread activity") else {
        return;
    };
    let server = Server::start(&python, &script("activity.py"), &[]);
    let pid = server.pid.to_string();
    record(&format!("EXERCISED thread activity on {label}"));
    let mut gil_waits = 0;
    for sample in 1..=ACTIVITY_SAMPLES {
        let run = zhw(&["check", "--format", "json", &pid]);
        assert_eq!(
            run.code, 1,
            "{label} sample {sample}: {}{}",
            run.stdout, run.stderr
        );
        let doc = run.json();
        let stats = &doc["targets"][0]["stats"];
        assert_eq!(
            (&stats["busy_count"], &stats["idle_count"]),
            (&Value::from(4), &Value::from(4)),
            "{label} sample {sample}: {doc:#}"
        );
        let threads = threads_of(&doc);
        for name in ["spinner-0", "spinner-1", "hog"] {
            let thread = named(&threads, name);
            assert_eq!(
                thread["activity"], "active",
                "{label} sample {sample}: {thread}"
            );
            assert_eq!(thread["state"], "busy", "{label} sample {sample}: {thread}");
            gil_waits += usize::from(thread["activity_detail"] == "waiting for the GIL");
        }
        for (name, state, waits_in) in [
            ("nap", "idle", "sleeping ("),
            ("lock-waiter", "idle", "waiting on a lock or condition"),
            ("socket-reader", "idle", "waiting for I/O (recvfrom)"),
            ("pool-idle", "idle", "waiting on a lock or condition"),
            ("pool-io", "busy", "waiting for I/O (recvfrom)"),
        ] {
            let thread = named(&threads, name);
            assert_eq!(
                thread["activity"], "waiting",
                "{label} sample {sample}: {thread}"
            );
            let detail = thread["activity_detail"].as_str().unwrap_or("");
            assert!(
                detail.starts_with(waits_in),
                "{label} sample {sample}: {thread}"
            );
            assert_eq!(thread["state"], state, "{label} sample {sample}: {thread}");
        }
        assert_eq!(named(&threads, "MainThread")["role"], "service", "{label}");
        let warnings = doc["targets"][0]["warnings"].to_string();
        assert!(
            warnings.contains("1 of the process's 10 kernel threads run no Python code"),
            "{label}: the native thread is not mentioned: {warnings}"
        );
    }
    // The hog keeps the GIL for long stretches: the spinners must have been
    // seen waiting for it (not merely on a CPU), or GIL waits go untested.
    assert!(
        gil_waits > 0,
        "{label}: no thread was ever seen waiting for the GIL in {ACTIVITY_SAMPLES} samples"
    );
    // The dump's header lines say "active" exactly for those three.
    let dump = zhw(&["dump", &pid]);
    let active: Vec<&str> = dump
        .stdout
        .lines()
        .filter(|line| line.starts_with("Thread ") && line.contains("[active"))
        .collect();
    assert!(
        (3..=4).contains(&active.len()),
        "{label}: {active:?}\n{}",
        dump.stdout
    );
}

on_every_interpreter! { activity:
    activity_on_pyenv_2_7 => "pyenv-2.7.18",
    activity_on_pyenv_3_6 => "pyenv-3.6.15",
    activity_on_pyenv_3_7 => "pyenv-3.7.16",
    activity_on_pyenv_3_8 => "pyenv-3.8.18",
    activity_on_pyenv_3_9 => "pyenv-3.9.18",
    activity_on_pyenv_3_10 => "pyenv-3.10.13",
    activity_on_pyenv_3_11 => "pyenv-3.11.7",
    activity_on_pyenv_3_12 => "pyenv-3.12.1",
    activity_on_pyenv_3_13 => "pyenv-3.13.0",
    activity_on_debian_3_11 => "debian-3.11",
    activity_on_sid_3_14 => "sid-3.14",
}

// ---------------------------------------------------------------------------
// A library deleted or replaced on disk after an upgrade (case 04).

/// The shared libpython next to `python` (`<prefix>/lib/libpython*.so.1.0`),
/// if it was built with one.
fn shared_libpython(python: &Path) -> Option<PathBuf> {
    let lib = python.parent()?.parent()?.join("lib");
    std::fs::read_dir(lib).ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_str()?;
        (name.starts_with("libpython") && name.ends_with(".so.1.0")).then_some(path)
    })
}

fn maps_line(pid: &str, needle: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()?
        .lines()
        .find(|line| line.contains(needle))
        .map(str::to_string)
}

/// zhw reads all five threads of five_states.py, as if nothing had changed.
fn reads_five_states(label: &str, pid: &str, when: &str) {
    let run = zhw(&["dump", "--format", "json", pid]);
    assert_eq!(run.code, 0, "{label} {when}: {}{}", run.stdout, run.stderr);
    let doc = run.json();
    let version = label.rsplit('-').next().unwrap_or("");
    let found = doc["targets"][0]["python_version"].as_str().unwrap_or("");
    assert!(
        found.starts_with(version) || (label == "debian-3.11" && found.starts_with("3.11")),
        "{label} {when}: python_version {found}"
    );
    let threads = threads_of(&doc);
    assert_eq!(threads.len(), 5, "{label} {when}: {threads:?}");
    for (function, innermost_expected) in [
        ("nap_in_sleep", "nap_in_sleep"),
        ("block_on_lock", "block_on_lock"),
        ("block_on_recv", "block_on_recv"),
        ("spin_cpu", "spin_cpu"),
    ] {
        let thread = thread_in(&threads, function);
        assert!(
            innermost(thread).ends_with(innermost_expected),
            "{label} {when}: {thread}"
        );
    }
    thread_in(&threads, "wait_for_shutdown");
}

/// Run zhw without CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (the rights
/// that open /proc/PID/map_files), or `None` where setpriv is missing.
fn zhw_without_map_files(args: &[&str]) -> Option<crate::support::Run> {
    if !Path::new("/usr/bin/setpriv").exists() {
        return None;
    }
    Some(run_command(
        Command::new("/usr/bin/setpriv")
            .args([
                "--bounding-set=-sys_admin,-checkpoint_restore",
                "--inh-caps=-sys_admin,-checkpoint_restore",
            ])
            .arg(zhw_binary())
            .args(args),
    ))
}

/// A service keeps running on a libpython that an upgrade deleted (then
/// replaced by another file at the same path): zhw reads the mapped copy
/// through /proc/PID/map_files, never the new file. A Python without a
/// shared library (Debian's) runs on its deleted executable instead, which
/// is read through /proc/PID/exe. Needs root (CAP_SYS_ADMIN opens map_files).
fn deleted_library(label: &str) {
    let Some(python) = find_interpreter(label, "deleted libpython") else {
        return;
    };
    if !is_root() {
        record(&format!(
            "SKIP deleted libpython on {label}: needs root (/proc/PID/map_files needs CAP_SYS_ADMIN)"
        ));
        return;
    }
    let upgrade = tempfile::tempdir().expect("temp dir");
    let (server, deleted) = match shared_libpython(&python) {
        Some(library) => {
            let lib_dir = upgrade.path().join("lib");
            std::fs::create_dir(&lib_dir).expect("lib dir");
            let copy = lib_dir.join(library.file_name().expect("file name"));
            std::fs::copy(&library, &copy).expect("copy libpython");
            let mut command = Command::new(&python);
            // pyenv builds use RUNPATH, so LD_LIBRARY_PATH picks the copy.
            command
                .env("LD_LIBRARY_PATH", &lib_dir)
                .arg("-u")
                .arg(script("five_states.py"));
            (Server::spawn(command), copy)
        }
        None => {
            let bin = upgrade.path().join("bin");
            std::fs::create_dir(&bin).expect("bin dir");
            let copy = bin.join(python.file_name().expect("file name"));
            std::fs::copy(&python, &copy).expect("copy python");
            let mut command = Command::new(&copy);
            command.arg("-u").arg(script("five_states.py"));
            (Server::spawn(command), copy)
        }
    };
    let pid = server.pid.to_string();
    let path = deleted.to_string_lossy().to_string();
    assert!(
        maps_line(&pid, &path).is_some(),
        "{label}: the process does not map {path}"
    );
    std::fs::remove_file(&deleted).expect("delete the mapped file");
    let line = maps_line(&pid, &path).expect("still mapped");
    assert!(line.ends_with("(deleted)"), "{label}: {line}");
    record(&format!("EXERCISED deleted libpython on {label} ({path})"));
    reads_five_states(label, &pid, "after the delete");

    // The upgrade puts a different file at the old path.
    std::fs::copy("/bin/true", &deleted).expect("replace");
    reads_five_states(label, &pid, "after the replace");

    // Without the right to open map_files, a deleted libpython is a clear
    // error; a deleted executable needs no more than ptrace rights.
    let Some(run) = zhw_without_map_files(&["check", &pid]) else {
        record(&format!(
            "SKIP deleted libpython without CAP_SYS_ADMIN on {label}: no /usr/bin/setpriv"
        ));
        return;
    };
    if shared_libpython(&python).is_some() {
        assert_eq!(run.code, 2, "{label}: {}{}", run.stdout, run.stderr);
        let first = run.first_line();
        for needle in [
            "FAILURE - permission denied reading pid",
            &format!("{path} was deleted or replaced on disk"),
            "map_files",
            "CAP_CHECKPOINT_RESTORE",
        ] {
            assert!(first.contains(needle), "{label}: {needle:?} not in {first}");
        }
    } else {
        assert_ne!(run.code, 2, "{label}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("Idle: "), "{label}: {}", run.stdout);
    }
}

on_every_interpreter! { deleted_library:
    deleted_libpython_on_pyenv_2_7 => "pyenv-2.7.18",
    deleted_libpython_on_pyenv_3_6 => "pyenv-3.6.15",
    deleted_libpython_on_pyenv_3_7 => "pyenv-3.7.16",
    deleted_libpython_on_pyenv_3_8 => "pyenv-3.8.18",
    deleted_libpython_on_pyenv_3_9 => "pyenv-3.9.18",
    deleted_libpython_on_pyenv_3_10 => "pyenv-3.10.13",
    deleted_libpython_on_pyenv_3_11 => "pyenv-3.11.7",
    deleted_libpython_on_pyenv_3_12 => "pyenv-3.12.1",
    deleted_libpython_on_pyenv_3_13 => "pyenv-3.13.0",
    deleted_executable_on_debian_3_11 => "debian-3.11",
    // Not on sid-3.14: Debian's python3.14 links libpython statically (no
    // shared library to delete), and a copy of its executable would have to
    // run inside the chroot; debian-3.11 covers the deleted executable.
}

// ---------------------------------------------------------------------------
// Stacks deeper than 4096 frames (case 06).

/// Frames kept per thread (innermost half, outermost half).
const KEPT: usize = 4096;
/// Frames walked per thread at most.
const WALKED: u64 = 65_536;

/// A thread 5000 calls deep is read whole: its innermost and outermost 2048
/// frames kept, the count of those between exact, every other thread
/// reported, and the text dump short and readable. 70,000 calls deep, the
/// walk stops at 65,536 frames, says so, and the check's status line says
/// its counts may be short.
fn deep_stack(label: &str) {
    let Some(python) = find_interpreter(label, "deep stack") else {
        return;
    };
    record(&format!("EXERCISED deep stack on {label}"));
    let depth: u64 = 5000;
    let server = Server::start(&python, &script("deep_stack.py"), &[&depth.to_string()]);
    let pid = server.pid.to_string();
    let run = zhw(&["dump", "--format", "json", &pid]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
    let doc = run.json();
    let threads = threads_of(&doc);
    assert_eq!(threads.len(), 3, "{label}: {threads:?}");
    // Case 06: the shallow thread sleeps in its own function: idle.
    let shallow = thread_in(&threads, "shallow_worker");
    assert_eq!(shallow["state"], "idle", "{label}: {shallow}");
    assert_eq!(shallow["activity"], "waiting", "{label}: {shallow}");
    let deep = thread_in(&threads, "descend");
    let frames = deep["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), KEPT, "{label}");
    let total = depth + 5;
    assert_eq!(
        deep["elided"],
        serde_json::json!({"after": 2048, "count": total - KEPT as u64}),
        "{label}"
    );
    assert!(
        deep.get("frames_cut").is_none(),
        "{label}: {}",
        deep["frames_cut"]
    );
    assert!(innermost(deep).ends_with("hold_at_bottom"), "{label}");
    assert!(
        function(&frames[KEPT - 1]).ends_with("_bootstrap"),
        "{label}: outermost {}",
        frames[KEPT - 1]
    );
    let warnings = doc["targets"][0]["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "stack of 5,005 Python frames; the middle {} left out",
            total - KEPT as u64
        )),
        "{label}: {warnings}"
    );

    let text = zhw(&["dump", &pid]);
    assert_eq!(text.code, 0, "{label}: {}", text.stdout);
    assert!(
        text.stdout.lines().count() < 300,
        "{label}: {} lines",
        text.stdout.lines().count()
    );
    for needle in [
        "in hold_at_bottom",
        "[Previous line repeated 204",
        &format!("... {} frames elided ...", total - KEPT as u64),
        "shallow_worker",
    ] {
        assert!(
            text.stdout.contains(needle),
            "{label}: {needle:?} in\n{}",
            text.stdout
        );
    }
    drop(server);

    let server = Server::start(&python, &script("deep_stack.py"), &["70000"]);
    let pid = server.pid.to_string();
    let run = zhw(&["check", "--format", "json", &pid]);
    let doc = run.json();
    let threads = threads_of(&doc);
    assert_eq!(threads.len(), 3, "{label}: {threads:?}");
    let deep = thread_in(&threads, "descend");
    assert_eq!(deep["frames_cut"], true, "{label}");
    assert_eq!(
        deep["frames"].as_array().map(Vec::len),
        Some(KEPT),
        "{label}"
    );
    let read = KEPT as u64 + deep["elided"]["count"].as_u64().expect("elided count");
    assert!(
        read <= WALKED && read + 8 >= WALKED,
        "{label}: {read} frames read"
    );
    assert!(innermost(deep).ends_with("hold_at_bottom"), "{label}");
    let message = doc["message"].as_str().unwrap_or("");
    assert!(
        message.contains("[incomplete read: 1 stack cut at 65,536 frames"),
        "{label}: {message}"
    );
    let text = zhw(&["check", "-v", &pid]);
    assert!(
        text.first_line()
            .contains("[incomplete read: 1 stack cut at 65,536 frames"),
        "{label}: {}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("... deeper than 65,536 frames: the outermost were not read ..."),
        "{label}: {}",
        text.stdout
    );
}

on_every_interpreter! { deep_stack:
    deep_stack_on_pyenv_2_7 => "pyenv-2.7.18",
    deep_stack_on_pyenv_3_6 => "pyenv-3.6.15",
    deep_stack_on_pyenv_3_7 => "pyenv-3.7.16",
    deep_stack_on_pyenv_3_8 => "pyenv-3.8.18",
    deep_stack_on_pyenv_3_9 => "pyenv-3.9.18",
    deep_stack_on_pyenv_3_10 => "pyenv-3.10.13",
    deep_stack_on_pyenv_3_11 => "pyenv-3.11.7",
    deep_stack_on_pyenv_3_12 => "pyenv-3.12.1",
    deep_stack_on_pyenv_3_13 => "pyenv-3.13.0",
    deep_stack_on_debian_3_11 => "debian-3.11",
    deep_stack_on_sid_3_14 => "sid-3.14",
}

// ---------------------------------------------------------------------------
// More than 4096 threads (case 07).

/// Parked threads in many_threads.py: above py-spy 0.4.3's 4096.
const MANY: usize = 4200;

/// Every one of 4202 threads is read and counted exactly.
fn many_threads(label: &str) {
    let Some(python) = find_interpreter(label, "many threads") else {
        return;
    };
    record(&format!("EXERCISED {MANY} threads on {label}"));
    let server = Server::start(&python, &script("many_threads.py"), &[&MANY.to_string()]);
    let pid = server.pid.to_string();
    // A debug build reads 4202 threads slowly; the default 10 s is for production.
    let run = zhw(&["check", "--format", "json", "-t", "600", &pid]);
    let doc = run.json();
    let target = &doc["targets"][0];
    let threads = threads_of(&doc);
    assert_eq!(threads.len(), MANY + 2, "{label}: {}", target["warnings"]);
    let parked = threads
        .iter()
        .filter(|t| {
            t["frames"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| function(f).ends_with("parked_worker")))
        })
        .count();
    assert_eq!(parked, MANY, "{label}");
    let busy = thread_in(&threads, "busy_worker");
    assert!(innermost(busy).ends_with("busy_worker"), "{label}: {busy}");
    // generic profile: every thread but the main one is a worker; the
    // parked ones wait in their own top-level function (idle), as case 07
    // expects, and the spinner is busy.
    assert_eq!(target["stats"]["total_threads"], MANY + 1, "{label}");
    assert_eq!(target["stats"]["busy_count"], 1, "{label}");
    assert_eq!(target["stats"]["idle_count"], MANY, "{label}");
    assert_eq!(busy["state"], "busy", "{label}: {busy}");
    assert_eq!(busy["activity"], "active", "{label}: {busy}");
    assert_eq!(doc["status"], "OK", "{label}: {}", doc["message"]);
    if label != "pyenv-2.7.18" {
        for i in [0, MANY / 2, MANY - 1] {
            let name = format!("parked-{i}");
            assert!(
                threads.iter().any(|t| t["name"] == name.as_str()),
                "{label}: no thread named {name}"
            );
        }
    }
    assert!(
        !doc["message"].as_str().unwrap_or("").contains("incomplete"),
        "{label}: {}",
        doc["message"]
    );
}

on_every_interpreter! { many_threads:
    many_threads_on_pyenv_2_7 => "pyenv-2.7.18",
    many_threads_on_pyenv_3_6 => "pyenv-3.6.15",
    many_threads_on_pyenv_3_7 => "pyenv-3.7.16",
    many_threads_on_pyenv_3_8 => "pyenv-3.8.18",
    many_threads_on_pyenv_3_9 => "pyenv-3.9.18",
    many_threads_on_pyenv_3_10 => "pyenv-3.10.13",
    many_threads_on_pyenv_3_11 => "pyenv-3.11.7",
    many_threads_on_pyenv_3_12 => "pyenv-3.12.1",
    many_threads_on_pyenv_3_13 => "pyenv-3.13.0",
    many_threads_on_debian_3_11 => "debian-3.11",
    many_threads_on_sid_3_14 => "sid-3.14",
}

// ---------------------------------------------------------------------------
// Free-threaded builds (3.13t, 3.14t) are refused, not misread.

/// A process whose `_Py_DebugOffsets` says its objects' type pointer is at
/// offset 24 (what 3.13t and 3.14t builds, and trace-refs builds, have)
/// is refused as an unsupported Python: the check fails with FAILURE (2) and
/// says why, and no stack or object is read at the default build's offsets.
/// No free-threaded interpreter is at hand, so fake_free_threaded.py turns a
/// default build into one that says it is (`offset`: where the table keeps
/// that entry, from py-spy's bindings of `_Py_DebugOffsets`).
fn free_threaded_refused(label: &str, offset: u32) {
    let Some(python) = find_interpreter(label, "free-threaded refusal") else {
        return;
    };
    let server = Server::start(
        &python,
        &script("fake_free_threaded.py"),
        &[&offset.to_string()],
    );
    let pid = server.pid.to_string();
    record(&format!("EXERCISED free-threaded refusal on {label}"));
    let run = zhw(&["check", &pid]);
    assert_eq!(run.code, 2, "{label}: {}{}", run.stdout, run.stderr);
    let first = run.first_line();
    for needle in [
        &format!("FAILURE - pid {pid} runs an unsupported Python: "),
        "is a free-threaded (no-GIL) or trace-refs build",
        "offset 24, not 8",
    ] {
        assert!(first.contains(needle), "{label}: {needle:?} not in {first}");
    }
    let doc = zhw(&["dump", "--format", "json", &pid]).json();
    assert!(
        doc["targets"][0]["threads"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{label}: {doc}"
    );
}

#[test]
fn free_threaded_build_refused_on_pyenv_3_13() {
    free_threaded_refused("pyenv-3.13.0", 360);
}

#[test]
fn free_threaded_build_refused_on_sid_3_14() {
    free_threaded_refused("sid-3.14", 408);
}

//! Process shapes that break out-of-process stack tools (shared/cases):
//! containers with their own PID namespace, and children forked from a
//! threaded Python 2.7 parent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::errors::{Reaped, is_root};
use crate::support::{interpreter_path, record, repo, zhw};

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

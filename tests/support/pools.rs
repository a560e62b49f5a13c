//! Checks shared by the tests of servers built on a library thread pool
//! (gunicorn's gthread worker, celery's thread pool): one sample, exact
//! worker, service and busy counts, the profile and why, and which threads
//! are busy. Only reads zhw's output; starts and stops nothing.

use super::zhw;

/// What one check of a pool-based server must find.
pub struct Expected<'a> {
    /// Profile name zhw must report (`gunicorn`, `celery`).
    pub profile: &'a str,
    /// Workers parked in the pool.
    pub idle: u64,
    /// Workers running a held request or task.
    pub busy: u64,
    /// Threads that are not the pool's (main loop, timers, …).
    pub service: u64,
    /// Status line before ` | ` (perfdata).
    pub status: &'a str,
    /// Exit code (original mapping).
    pub code: i32,
    /// Busy workers serve held HTTP requests (`GET /hold/<kind>?user=alice`),
    /// which zhw must read; celery's tasks have none.
    pub requests: bool,
}

/// `zhw check PID` (text, then JSON) against `expected`. `holds` are the
/// app's `HOLD <kind> <thread name>` lines: where the interpreter names its
/// threads (3.x), exactly those threads must be the busy workers.
pub fn expect_pool(pid: u32, label: &str, expected: &Expected, holds: &[String]) {
    let pid = pid.to_string();
    let run = zhw(&["check", &pid]);
    let context = format!("[{label}] zhw check {pid}\n{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.first_line().split(" | ").next(),
        Some(expected.status),
        "{context}"
    );
    assert_eq!(
        run.line(1),
        format!("Idle: {}\tBusy: {}", expected.idle, expected.busy),
        "{context}"
    );
    assert_eq!(run.code, expected.code, "{context}");

    let json = zhw(&["check", "--format", "json", &pid]).json();
    let target = &json["targets"][0];
    let context = format!("[{label}] {target:#}");
    let workers = expected.idle + expected.busy;
    assert_eq!(target["profile"], expected.profile, "{context}");
    let reason = target["profile_reason"].as_str().unwrap_or("");
    let claim = match workers {
        0 => "0 threads yet run".to_string(),
        1 => "1 thread runs".to_string(),
        n => format!("{n} threads run"),
    };
    assert!(
        reason.starts_with(&format!(
            "{}: {claim} _worker (concurrent/futures/thread.py), and ",
            expected.profile
        )),
        "{context}"
    );
    let stats = &target["stats"];
    assert_eq!(stats["total_threads"], workers, "{context}");
    assert_eq!(stats["idle_count"], expected.idle, "{context}");
    assert_eq!(stats["busy_count"], expected.busy, "{context}");
    assert_eq!(stats["service_count"], expected.service, "{context}");

    let threads = target["threads"].as_array().cloned().unwrap_or_default();
    for thread in &threads {
        if thread["is_main"] == true {
            assert_eq!(thread["role"], "service", "main thread: {context}");
        }
        if thread["role"] != "worker" || thread["state"] != "busy" {
            continue;
        }
        let kind = thread["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|f| f["function"].as_str()?.strip_prefix("hold_"))
            .unwrap_or_else(|| panic!("busy without a hold: {thread}\n{context}"));
        // A spinning worker wants the CPU; a sleeping one does not (both busy).
        match kind {
            "spin" => assert_eq!(thread["activity"], "active", "{thread}\n{context}"),
            "sleep" => assert!(
                thread["activity_detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sleeping")),
                "{thread}\n{context}"
            ),
            _ => {}
        }
        if expected.requests {
            let request = &thread["request"];
            assert_eq!(request["method"], "GET", "{thread}\n{context}");
            assert_eq!(
                request["path"],
                format!("/hold/{kind}"),
                "{thread}\n{context}"
            );
            assert_eq!(request["query"], "user=alice", "{thread}\n{context}");
        }
    }
    // Python 2.7 threads have no names in zhw's reading (docs/limits.md).
    if threads.iter().any(|t| t["name"].is_string()) {
        let mut busy: Vec<&str> = threads
            .iter()
            .filter(|t| t["role"] == "worker" && t["state"] == "busy")
            .filter_map(|t| t["name"].as_str())
            .collect();
        let mut held: Vec<&str> = holds
            .iter()
            .filter_map(|line| line.split_whitespace().nth(2))
            .collect();
        busy.sort_unstable();
        held.sort_unstable();
        assert_eq!(busy, held, "busy threads are the held ones: {context}");
    }
}

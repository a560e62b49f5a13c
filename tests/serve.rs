//! `zhw serve` against real waitress servers: busy workers, status codes,
//! metrics and the long-request log while requests are held; a shrunk worker
//! pool; a target that dies and comes back under a new PID; `--match` and
//! `--unit`; a thousand concurrent HTTP clients; systemd's notify protocol.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::sidecar::{Sidecar, request};
use crate::support::{PyEnv, Server, env_for, record, repo, zhw_binary};

fn waitress(env: &PyEnv, threads: &str) -> Server {
    Server::start(
        &env.python,
        &repo().join("tests/python/waitress_app.py"),
        &["--threads", threads],
    )
}

fn write_pidfile(path: &Path, pid: u32) {
    // Written aside and renamed, as servers do, so zhw never reads half a file.
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, format!("{pid}\n")).expect("write pidfile");
    std::fs::rename(&aside, path).expect("rename pidfile");
}

fn target(document: &Value) -> &Value {
    &document["targets"][0]
}

fn stat(document: &Value, field: &str) -> Option<u64> {
    target(document)["stats"][field].as_u64()
}

/// A metric's value for `target`, from the exposition text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Send a request that a worker answers at once (/shrink/N).
fn get_from(server: &Server, path: &str) -> u16 {
    request(server.port.expect("server port"), "GET", path).code
}

fn busy_workers_status_and_long_requests(label: &str) {
    let Some(env) = env_for(label, label, "serve") else {
        return;
    };
    record(&format!(
        "EXERCISED serve on {label} ({})",
        env.python.display()
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("client1.pid");
    let mut server = waitress(&env, "4");
    write_pidfile(&pidfile, server.pid);
    let sidecar = Sidecar::start(&[
        pidfile.to_str().expect("utf-8 path"),
        "--interval",
        "0.2",
        "--long-request",
        "1",
    ]);

    let idle = sidecar.wait_json("4 idle workers", |d| {
        stat(d, "idle_count") == Some(4) && stat(d, "busy_count") == Some(0)
    });
    assert_eq!(target(&idle)["name"], "client1");
    assert_eq!(target(&idle)["pid"], server.pid);
    let status = sidecar.get("/status");
    assert_eq!(status.code, 200, "{}", status.body);
    assert!(
        status.body.starts_with("OK - Everything looks fine | "),
        "{}",
        status.body
    );

    server.hold_http("sleep");
    server.hold_http("cond");
    let busy = sidecar.wait_json("2 busy workers on their request for 1 s", |d| {
        stat(d, "busy_count") == Some(2)
            && target(d)["threads"].as_array().is_some_and(|threads| {
                threads
                    .iter()
                    .filter(|t| t["busy_seconds"].as_f64().is_some_and(|s| s >= 1.0))
                    .count()
                    == 2
            })
    });
    assert_eq!(busy["status"], "WARNING", "long requests raise WARNING");
    assert_eq!(
        target(&busy)["message"],
        "2 requests running longer than 1s"
    );
    let status = sidecar.get("/status");
    assert_eq!(status.code, 200, "a free worker is left: {}", status.body);
    assert!(status.body.starts_with("WARNING - "), "{}", status.body);
    let metrics = sidecar.get("/metrics");
    assert_eq!(metrics.code, 200);
    assert_eq!(
        metric(&metrics.body, r#"zhw_busy_workers{target="client1"}"#),
        Some(2.0),
        "{}",
        metrics.body
    );
    assert_eq!(
        metric(
            &metrics.body,
            r#"zhw_worker_threads{target="client1",state="idle"}"#
        ),
        Some(2.0)
    );
    assert!(
        metric(
            &metrics.body,
            r#"zhw_longest_request_seconds{target="client1"}"#
        )
        .is_some_and(|s| s >= 1.0),
        "{}",
        metrics.body
    );
    assert_eq!(
        metric(&metrics.body, r#"zhw_target_up{target="client1"}"#),
        Some(1.0)
    );
    // Each long request is logged with its stack (once, then every --long-request).
    sidecar.wait_log(&[
        "long request: client1 pid",
        "request: GET /hold/sleep?user=alice",
        "request: GET /hold/cond?user=alice",
        "in hold_sleep",
        "in hold_cond",
        "still long request: client1",
    ]);

    // A worker thread exits: the pool shrank, CRITICAL, and 503 for load balancers.
    assert_eq!(get_from(&server, "/shrink/3"), 200);
    let died = sidecar.wait_json("a dead worker", |d| stat(d, "total_threads") == Some(3));
    assert_eq!(died["status"], "CRITICAL", "{died}");
    assert!(
        target(&died)["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("1 worker thread died (4 expected, 3 found)")),
        "{died}"
    );
    let status = sidecar.get("/status");
    assert_eq!(status.code, 503, "{}", status.body);
    assert!(
        status.body.starts_with("CRITICAL - 1 worker thread died"),
        "{}",
        status.body
    );
    let per_target = sidecar.get("/status/client1");
    assert_eq!(per_target.code, 503, "{}", per_target.body);
}

#[test]
fn serve_restarted_and_dead_targets() {
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve restart") else {
        return;
    };
    record(&format!("EXERCISED serve restart on {label}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("client2.pid");
    let first = waitress(&env, "2");
    let first_pid = first.pid;
    write_pidfile(&pidfile, first_pid);
    let sidecar = Sidecar::start(&[
        pidfile.to_str().expect("utf-8 path"),
        "--interval",
        "0.2",
        "--exit-codes",
        "nagios",
    ]);
    sidecar.wait_json("the first server", |d| {
        target(d)["pid"] == first_pid && stat(d, "idle_count") == Some(2)
    });

    // The server dies; its pidfile stays behind.
    drop(first);
    let dead = sidecar.wait_json("the server gone", |d| {
        target(d)["error"]["kind"] == "stale_pidfile"
    });
    assert_eq!(
        dead["status"], "CRITICAL",
        "not running is CRITICAL under nagios codes"
    );
    let status = sidecar.get("/status");
    assert_eq!(status.code, 503);
    assert!(
        status.body.starts_with("CRITICAL - stale pidfile"),
        "{}",
        status.body
    );
    let metrics = sidecar.get("/metrics").body;
    assert_eq!(
        metric(&metrics, r#"zhw_target_up{target="client2"}"#),
        Some(0.0)
    );
    assert!(
        metric(&metrics, r#"zhw_sample_errors_total{target="client2"}"#).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    // It comes back with a new PID: picked up without restarting zhw.
    let mut second = waitress(&env, "2");
    write_pidfile(&pidfile, second.pid);
    let back = sidecar.wait_json("the new server", |d| {
        target(d)["pid"] == second.pid && stat(d, "idle_count") == Some(2)
    });
    assert_eq!(back["status"], "OK");
    assert_eq!(sidecar.get("/status").code, 200);

    // Every worker busy: no client available, 503.
    second.hold_http("sleep");
    second.hold_http("lock");
    sidecar.wait_json("both workers busy", |d| stat(d, "busy_count") == Some(2));
    let status = sidecar.get("/status");
    assert_eq!(status.code, 503, "{}", status.body);
    assert!(
        status
            .body
            .starts_with("CRITICAL - No more Zeo client available"),
        "{}",
        status.body
    );
    sidecar.wait_log(&[
        "client2 pid",
        "CRITICAL - stale pidfile",
        "OK - Everything looks fine",
    ]);
}

#[test]
fn serve_match_and_unit_targets() {
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve --match") else {
        return;
    };
    let server = waitress(&env, "3");
    let pid = server.pid.to_string();
    let sidecar = Sidecar::start(&[
        // The same process by PID and by --match: read and reported once.
        &pid,
        "--match",
        r"waitress_app\.py --threads 3$",
        "--unit",
        "zhw-test-no-such-unit.service",
        "--interval",
        "0.2",
    ]);
    let document = sidecar.wait_json("the matched server", |d| {
        d["targets"]
            .as_array()
            .is_some_and(|targets| targets.iter().any(|t| t["pid"] == server.pid))
    });
    let targets = document["targets"].as_array().expect("targets");
    let matched: Vec<&Value> = targets.iter().filter(|t| t["pid"] == server.pid).collect();
    assert_eq!(matched.len(), 1, "{document}");
    // ... and said so (it once was dropped silently).
    assert!(
        document["warnings"]
            .as_array()
            .is_some_and(|warnings| warnings.iter().any(|w| w
                .as_str()
                .is_some_and(|w| w.contains("are the same process")))),
        "{document}"
    );
    assert_eq!(matched[0]["name"], format!("pid {}", server.pid));
    assert_eq!(matched[0]["stats"]["total_threads"], 3);
    let unit = targets
        .iter()
        .find(|t| t["target"] == "unit zhw-test-no-such-unit.service")
        .unwrap_or_else(|| panic!("the unit is reported: {document}"));
    assert!(
        matches!(
            unit["error"]["kind"].as_str(),
            Some("unit_not_running" | "unit_unresolved")
        ),
        "{unit}"
    );
    // zhw never matches itself, though its own command line matches.
    assert!(targets.iter().all(|t| t["pid"] != sidecar.pid()));
    let metrics = sidecar.get("/metrics").body;
    let up_lines = metrics
        .lines()
        .filter(|l| l.starts_with("zhw_target_up{"))
        .count();
    assert_eq!(up_lines, targets.len(), "one series per target: {metrics}");

    // The check, too, counts a process named twice once.
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("same.pid");
    write_pidfile(&pidfile, server.pid);
    let run = crate::support::zhw(&["check", &pid, pidfile.to_str().expect("utf-8")]);
    assert_eq!(run.line(1), "Idle: 3\tBusy: 0", "{}", run.stdout);
    assert!(
        run.stdout.contains("are the same process"),
        "{}",
        run.stdout
    );
}

#[test]
fn serve_answers_a_thousand_concurrent_clients() {
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve load") else {
        return;
    };
    raise_open_file_limit(4096);
    let server = waitress(&env, "4");
    let pid = server.pid.to_string();
    let sidecar = Sidecar::start(&[&pid, "--interval", "0.1"]);
    let before = sidecar.wait_json("a first sample", |d| {
        d["sidecar"]["round"].as_u64().is_some()
    });
    let round_before = before["sidecar"]["round"].as_u64().unwrap_or(0);

    // All connections open and all requests sent before any answer is read.
    const CLIENTS: usize = 1000;
    let mut streams = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", sidecar.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        use std::io::Write;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
            .expect("send");
        streams.push(stream);
    }
    let mut answered = 0;
    for mut stream in streams {
        use std::io::Read;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let answer = crate::support::sidecar::parse(&raw);
        if answer.code == 200 && answer.body.contains("zhw_busy_workers{") {
            answered += 1;
        }
    }
    assert_eq!(answered, CLIENTS, "every client gets the metrics");
    // Sampling went on meanwhile (its own thread; HTTP never waits for it).
    sidecar.wait_json("sampling continuing after the load", |d| {
        d["sidecar"]["round"]
            .as_u64()
            .is_some_and(|r| r > round_before + 2)
    });
}

fn raise_open_file_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < want
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
    }
}

#[test]
fn serve_speaks_systemd_notify_and_stops_cleanly() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixDatagram;
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve notify") else {
        return;
    };
    let server = waitress(&env, "2");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    // stderr goes to a file that JOURNAL_STREAM names, as systemd's journal stream would be.
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let meta = stderr.metadata().expect("stat");
    let mut child = std::process::Command::new(zhw_binary())
        .args(["serve", &server.pid.to_string(), "--interval", "0.2"])
        .args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start zhw serve");
    let guard = Reap(&mut child);

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline
        && !(seen.iter().any(|m: &String| m.contains("READY=1"))
            && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        if let Ok(n) = socket.recv(&mut buffer) {
            seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
    let ready = seen
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {seen:?}"));
    assert!(
        ready.contains("STATUS=OK - Everything looks fine; 0/2 workers busy in 1 target(s)"),
        "{ready}"
    );
    assert!(
        seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{seen:?}"
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status();
    let mut stopping = false;
    let mut code = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && code.is_none() {
        if let Ok(n) = socket.recv(&mut buffer) {
            stopping |= String::from_utf8_lossy(&buffer[..n]).contains("STOPPING=1");
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            code = status.code();
        }
    }
    while let Ok(n) = socket.recv(&mut buffer) {
        stopping |= String::from_utf8_lossy(&buffer[..n]).contains("STOPPING=1");
    }
    assert_eq!(code, Some(0), "SIGTERM is a clean shutdown");
    assert!(stopping, "STOPPING=1 sent");
    let log = std::fs::read_to_string(&stderr_path).expect("stderr");
    assert!(
        log.lines().all(|line| line.starts_with('<')),
        "journald priority prefixes on every line:\n{log}"
    );
    assert!(log.contains("<6>stopping on SIGTERM"), "{log}");
}

struct Reap<'a>(&'a mut std::process::Child);

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_slow_clients_do_not_hold_up_others() {
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve slow clients") else {
        return;
    };
    let server = waitress(&env, "2");
    let pid = server.pid.to_string();
    let sidecar = Sidecar::start(&[&pid, "--interval", "0.2"]);
    let first = sidecar.wait_json("a sample", |d| stat(d, "idle_count") == Some(2));
    let round = first["sidecar"]["round"].as_u64().unwrap_or(0);
    // Clients that send half a request and then nothing, and one that never reads.
    use std::io::Write;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", sidecar.port)).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: l")
            .expect("send half");
        stalled.push(stream);
    }
    let mut greedy = std::net::TcpStream::connect(("127.0.0.1", sidecar.port)).expect("connect");
    for _ in 0..200 {
        let _ = greedy.write_all(b"GET / HTTP/1.1\r\nHost: l\r\n\r\n");
    }
    // Everyone else is answered, and sampling goes on.
    for path in ["/status", "/json", "/metrics", "/"] {
        assert_eq!(sidecar.get(path).code, 200, "{path}");
    }
    sidecar.wait_json("sampling continuing", |d| {
        d["sidecar"]["round"]
            .as_u64()
            .is_some_and(|r| r > round + 3)
    });
    drop(stalled);
}

#[test]
fn serve_http_edges_and_bad_arguments() {
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve http") else {
        return;
    };
    let server = waitress(&env, "2");
    let pid = server.pid.to_string();
    let mut sidecar = Sidecar::start(&[&pid, "--interval", "0.2"]);
    sidecar.wait_json("a sample", |d| stat(d, "idle_count") == Some(2));
    assert_eq!(sidecar.get("/nope").code, 404);
    assert_eq!(request(sidecar.port, "POST", "/status").code, 405);
    let head = request(sidecar.port, "HEAD", "/status");
    assert_eq!(head.code, 200);
    assert!(head.body.is_empty());
    let single = sidecar.get(&format!("/status/pid%20{pid}"));
    assert_eq!(single.code, 200, "{}", single.body);
    assert!(single.body.starts_with("OK - Everything looks fine"));
    let json = sidecar.get("/json");
    assert!(
        json.head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let metrics = sidecar.get("/metrics");
    assert!(metrics.body.contains("# TYPE zhw_samples_total counter"));
    assert_eq!(
        sidecar.stop_with(2),
        Some(0),
        "SIGINT is a clean shutdown too"
    );

    // A taken port is a start-up error (1), bad arguments are 2.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let run = crate::support::zhw(&["serve", &pid, "--listen", &address]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("cannot listen on {address}")),
        "{}",
        run.stderr
    );
    let run = crate::support::zhw(&["serve"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nothing to watch"), "{}", run.stderr);
    let run = crate::support::zhw(&["serve", "--match", "("]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--match"), "{}", run.stderr);
    let run = crate::support::zhw(&["serve", &pid, "--interval", "0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                busy_workers_status_and_long_requests($label);
            }
        )*
    };
}

interpreters! {
    serve_on_pyenv_2_7 => "pyenv-2.7.18",
    serve_on_pyenv_3_6 => "pyenv-3.6.15",
    serve_on_pyenv_3_7 => "pyenv-3.7.16",
    serve_on_pyenv_3_8 => "pyenv-3.8.18",
    serve_on_pyenv_3_9 => "pyenv-3.9.18",
    serve_on_pyenv_3_10 => "pyenv-3.10.13",
    serve_on_pyenv_3_11 => "pyenv-3.11.7",
    serve_on_pyenv_3_12 => "pyenv-3.12.1",
    serve_on_pyenv_3_13 => "pyenv-3.13.0",
    serve_on_debian_3_11 => "debian-3.11",
    serve_on_sid_3_14 => "sid-3.14",
}

#[test]
fn serve_dashboard_in_a_real_browser() {
    use crate::support::browser::{chromium, dump_dom, skip};
    let label = "pyenv-3.12.1";
    let Some(env) = env_for(label, label, "serve dashboard") else {
        return;
    };
    let Some(browser) = chromium() else {
        skip("zhw serve dashboard");
        return;
    };
    record(&format!(
        "EXERCISED serve dashboard in {} on {label}",
        browser.display()
    ));
    let mut server = waitress(&env, "3");
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("client7.pid");
    write_pidfile(&pidfile, server.pid);
    server.hold_http_at(
        "sleep",
        "/<script>document.title='PWNED'</script>",
        "user=alice",
    );
    let sidecar = Sidecar::start(&[pidfile.to_str().expect("utf-8 path"), "--interval", "0.2"]);
    sidecar.wait_json("one busy worker", |d| stat(d, "busy_count") == Some(1));
    let page = sidecar.get("/");
    assert_eq!(page.code, 200);
    let head = page.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );

    let url = format!("http://127.0.0.1:{}/", sidecar.port);
    let dom = dump_dom(&url).expect("chromium is installed");
    assert!(dom.contains("client7"), "the target's card:\n{dom}");
    assert!(dom.contains("OK"), "its status:\n{dom}");
    assert!(
        dom.contains("hold_sleep"),
        "the busy worker's stack:\n{dom}"
    );
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "it refreshes itself"
    );
    assert!(!dom.contains("<title>PWNED"), "nothing from the target ran");
}

/// The line of the `park` frame of the thread named "mover", if sampled.
fn mover_line(document: &Value) -> Option<u64> {
    target(document)["threads"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == "mover")?["frames"]
        .as_array()?
        .iter()
        .find(|f| f["function"].as_str().is_some_and(|n| n.ends_with("park")))?["line"]
        .as_u64()
}

/// The request path of the thread named "mover", if read.
fn mover_path(document: &Value) -> Option<&str> {
    target(document)["threads"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == "mover")?["request"]["path"]
        .as_str()
}

/// Stacks of threads that did not run are reused from the previous read
/// (py-spy patch 5), and so are their requests: a thread that woke and went
/// to sleep elsewhere between two samples must show where it is now, and
/// the request it holds there.
fn sleeping_thread_moves(label: &str) {
    let Some(env) = env_for(label, label, "serve stack reuse") else {
        return;
    };
    record(&format!("EXERCISED serve stack reuse on {label}"));
    let script = repo().join("tests/python/mover.py");
    let source = std::fs::read_to_string(&script).expect("mover.py");
    let line_of = |marker: &str| {
        source
            .lines()
            .position(|l| l.contains(marker))
            .map(|i| i as u64 + 1)
            .expect("marker line")
    };
    let (first, second) = (line_of("PARK_FIRST_LINE"), line_of("PARK_SECOND_LINE"));
    let mut server = Server::start(&env.python, &script, &[]);
    let pid = server.pid.to_string();
    let sidecar = Sidecar::start(&[&pid, "--interval", "0.1"]);
    let before = sidecar.wait_json("the mover at its first wait", |d| {
        mover_line(d) == Some(first) && mover_path(d) == Some("/first")
    });
    let round = before["sidecar"]["round"].as_u64().unwrap_or(0);
    // Several rounds with the thread asleep: its stack is served from reuse.
    sidecar.wait_json("a few more rounds", |d| {
        d["sidecar"]["round"]
            .as_u64()
            .is_some_and(|r| r > round + 3)
            && mover_line(d) == Some(first)
            && mover_path(d) == Some("/first")
    });
    server.command("move");
    server.wait_line("MOVED");
    let after = sidecar.wait_json("the mover at its second wait", |d| {
        mover_line(d) == Some(second)
    });
    assert_eq!(mover_path(&after), Some("/second"), "{after:#}");
}

#[test]
fn serve_sees_a_sleeping_thread_move_on_pyenv_2_7() {
    sleeping_thread_moves("pyenv-2.7.18");
}

#[test]
fn serve_sees_a_sleeping_thread_move_on_pyenv_3_12() {
    sleeping_thread_moves("pyenv-3.12.1");
}

//! Shared test machinery: the Python environments, server processes that are
//! always reaped, and running the zhw binary.

#![allow(dead_code)]

pub mod browser;
pub mod pools;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

pub mod sidecar;

/// Sent in every held request's Cookie and Authorization headers, which zhw
/// must never read: no output may contain it.
pub const SECRET_COOKIE: &str = "c2VjcmV0Q29va2ll";
/// A query whose password zhw must redact (and show `q=x`).
pub const SECRET_QUERY: &str = "user=alice&password=hunter2&q=x";
/// What zhw must show for [`SECRET_QUERY`].
pub const REDACTED_QUERY: &str = "user=alice&password=***&q=x";

/// How long a server may take to answer a handshake line.
const HANDSHAKE: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreters zhw is tested on: pyenv's, Debian's, and Debian sid's
/// Python 3.14 in a chroot (`sid-3.14`, a wrapper that tests/python/setup-sid.sh
/// writes, so the envs are set up before its path is known to exist).
pub fn interpreter_path(label: &str) -> PathBuf {
    if let Some(version) = label.strip_prefix("pyenv-") {
        let root = std::env::var("PYENV_ROOT").unwrap_or_else(|_| {
            format!(
                "{}/.pyenv",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into())
            )
        });
        PathBuf::from(root)
            .join("versions")
            .join(version)
            .join("bin/python")
    } else if label.starts_with("sid-") {
        if nix::unistd::geteuid().is_root() {
            ensure_envs();
        }
        envs_root().join(label).join("bin/python")
    } else {
        PathBuf::from("/usr/bin/python3.11")
    }
}

/// The interpreter for `label`, or `None` after a loud SKIP line saying why
/// (`what` names the test): not on this machine, or, for the sid chroot,
/// not built (setup-sid.sh says why) or not runnable without root.
pub fn find_interpreter(label: &str, what: &str) -> Option<PathBuf> {
    let python = interpreter_path(label);
    let missing = if label.starts_with("sid-") && !nix::unistd::geteuid().is_root() {
        Some("needs root (the chroot runs in a mount namespace of its own)".to_string())
    } else if python.exists() {
        None
    } else if label.starts_with("sid-") {
        let why = std::fs::read_to_string(envs_root().join(format!("{label}.skipped")))
            .unwrap_or_else(|_| "not built".into());
        Some(format!(
            "{} is absent: tests/python/setup-sid.sh skipped it: {}",
            python.display(),
            why.trim()
        ))
    } else {
        Some(format!("interpreter {} not found", python.display()))
    };
    match missing {
        Some(why) => {
            record(&format!("SKIP {what} on {label}: {why}"));
            None
        }
        None => Some(python),
    }
}

pub fn envs_root() -> PathBuf {
    std::env::var_os("ZHW_TEST_ENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/test-envs"))
}

/// Run tests/python/setup-envs.sh once per test run (idempotent, locked).
fn ensure_envs() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo().join("tests/python/setup-envs.sh"))
            .env("ZHW_TEST_ENVS", envs_root())
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run setup-envs.sh: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("tests/python/setup-envs.sh failed: {status}"))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// A virtual env prepared by setup-envs.sh.
pub struct PyEnv {
    pub label: String,
    pub python: PathBuf,
    pub package_version: String,
}

/// The env for `label`, or `None` (with a loud SKIP) when the machine lacks the interpreter.
/// An interpreter that exists but whose env is missing is a test failure.
pub fn env_for(label: &str, env_dir: &str, what: &str) -> Option<PyEnv> {
    find_interpreter(label, what)?;
    ensure_envs();
    let ready = envs_root().join(env_dir).join("zhw-ready");
    let text = std::fs::read_to_string(&ready).unwrap_or_else(|e| {
        panic!(
            "{label} exists but {} is missing ({e}): setup-envs.sh did not build it",
            ready.display()
        )
    });
    let mut lines = text.lines();
    let python = PathBuf::from(lines.next().expect("zhw-ready names the python"));
    let package_version = lines.next().unwrap_or("?").to_string();
    Some(PyEnv {
        label: label.to_string(),
        python,
        package_version,
    })
}

/// Note which interpreter a test exercised (or skipped) on stderr and in
/// target/zhw-interpreters.log, which scripts/test prints at the end.
pub fn record(line: &str) {
    eprintln!("{line}");
    let log = repo().join("target/zhw-interpreters.log");
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(log) {
        // One write per line: tests run in parallel and append to one file.
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// A Python process started by a test; killed and reaped on drop, even when
/// an assertion fails.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    held: Vec<TcpStream>,
    pub pid: u32,
    pub port: Option<u16>,
    /// The whole `READY` line (gunicorn's names its worker's pid there).
    pub ready: String,
}

impl Server {
    /// Start `python script args...` and wait for its `READY` line.
    pub fn start(python: &Path, script: &Path, args: &[&str]) -> Server {
        let mut command = Command::new(python);
        command.arg("-u").arg(script).args(args);
        Server::spawn(command)
    }

    /// Start a prepared command (extra environment, another executable)
    /// and wait for its `READY` line.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut server = Server {
            child,
            lines,
            stdin,
            held: Vec::new(),
            pid,
            port: None,
            ready: String::new(),
        };
        let ready = server.wait_line("READY");
        server.port = ready
            .split_whitespace()
            .find_map(|word| word.strip_prefix("port="))
            .and_then(|p| p.parse().ok());
        server.ready = ready;
        server
    }

    /// A `key=value` number from the `READY` line (`pid`, `port`, …).
    pub fn ready_value(&self, key: &str) -> Option<u32> {
        self.ready
            .split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
    }

    /// Wait for the next stdout line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(HANDSHAKE) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => panic!(
                    "pid {} did not print {prefix:?} within {HANDSHAKE:?}",
                    self.pid
                ),
            }
        }
    }

    /// Send an HTTP request that a worker will hold, and wait until it
    /// does; returns the server's `HOLD <kind> <thread>` line.
    pub fn hold_http(&mut self, kind: &str) -> String {
        self.hold_http_at(kind, "", "user=alice")
    }

    /// The same with a query string of its own. Every held request also
    /// sends `User-Agent: zhw-test/1` and a cookie that must never show
    /// ([`SECRET_COOKIE`]).
    pub fn hold_http_query(&mut self, kind: &str, query: &str) {
        self.hold_http_at(kind, "", query);
    }

    /// Like [`Server::hold_http_query`], with `suffix` appended to the path
    /// (`/hold/<kind><suffix>`), e.g. hostile text for rendering tests.
    pub fn hold_http_at(&mut self, kind: &str, suffix: &str, query: &str) -> String {
        let port = self.port.expect("server printed a port");
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            stream,
            "GET /hold/{kind}{suffix}?{query} HTTP/1.0\r\nHost: test\r\nUser-Agent: zhw-test/1\r\n\
             Cookie: __ac={SECRET_COOKIE}\r\nAuthorization: Basic {SECRET_COOKIE}\r\n\r\n"
        )
        .expect("send");
        self.held.push(stream);
        self.wait_line(&format!("HOLD {kind}"))
    }

    /// Write a command line to the server's stdin.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write command");
        stdin.flush().expect("flush");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one zhw run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
    pub fn line(&self, n: usize) -> &str {
        self.stdout.lines().nth(n).unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

pub fn zhw_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zhw"))
}

/// Run the zhw binary with `args`.
pub fn zhw(args: &[&str]) -> Run {
    run_command(Command::new(zhw_binary()).args(args))
}

/// Run zhw and also return its peak resident set size in KiB (the
/// kernel's `ru_maxrss` for that one child, from `wait4`).
pub fn zhw_with_peak_rss(args: &[&str]) -> (Run, u64) {
    use std::io::Read;
    let mut child = Command::new(zhw_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zhw");
    let (mut out, mut err) = (
        child.stdout.take().expect("out"),
        child.stderr.take().expect("err"),
    );
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let stderr = reader.join().unwrap_or_default();
    let pid = child.id() as nix::libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 reaps our own child `pid`,
    // which std has not waited for (the Child is forgotten below).
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    std::mem::forget(child);
    let code = if nix::libc::WIFEXITED(status) {
        nix::libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        Run {
            stdout,
            stderr,
            code,
        },
        usage.ru_maxrss as u64,
    )
}

pub fn run_command(command: &mut Command) -> Run {
    // A binary copied by a test (a setcap or a nobody-owned copy) can be
    // "busy" for a moment: another test thread's fork inherited the copy's
    // write descriptor until its own exec. Bounded retries, then fail.
    let mut attempts = 0;
    let output = loop {
        match command.stdin(Stdio::null()).output() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 40 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            result => break result.expect("run zhw"),
        }
    };
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

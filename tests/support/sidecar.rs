//! A `zhw serve` started by a test: listens on an ephemeral loopback port,
//! its stderr collected for log assertions; killed and reaped on drop, even
//! when an assertion fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::zhw_binary;

/// How long a test waits for the sidecar to reach a state.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Sidecar {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub head: String,
    pub body: String,
}

impl Sidecar {
    /// `zhw serve ARGS --listen 127.0.0.1:0`, waiting until it listens.
    pub fn start(args: &[&str]) -> Sidecar {
        Sidecar::start_with(Command::new(zhw_binary()).arg("serve").args(args))
    }

    /// Start a prepared `zhw serve` command (extra environment, say).
    pub fn start_with(command: &mut Command) -> Sidecar {
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zhw serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (sender, ports) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(port) = line
                        .split("http://127.0.0.1:")
                        .nth(1)
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|port| port.parse::<u16>().ok())
                    {
                        let _ = sender.send(port);
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            });
        }
        let mut sidecar = Sidecar {
            child,
            port: 0,
            log,
        };
        match ports.recv_timeout(PATIENCE) {
            Ok(port) => sidecar.port = port,
            Err(_) => panic!("zhw serve did not start listening:\n{}", sidecar.log()),
        }
        sidecar
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// GET `path` (HTTP/1.1, connection closed after).
    pub fn get(&self, path: &str) -> Answer {
        request(self.port, "GET", path)
    }

    /// Poll `/json` until `ready` holds for it; panics with the last document after PATIENCE.
    pub fn wait_json(
        &self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            let answer = self.get("/json");
            if answer.code == 200
                && let Ok(document) = serde_json::from_str::<serde_json::Value>(&answer.body)
            {
                if ready(&document) {
                    return document;
                }
                last = answer.body;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "sidecar never showed {what}; last /json:\n{last}\nlog:\n{}",
            self.log()
        );
    }

    /// Wait until the log contains every needle.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if needles.iter().all(|needle| log.contains(needle)) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("log never showed {needles:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Send `signal` and wait (bounded) for the exit code.
    pub fn stop_with(&mut self, signal: i32) -> Option<i32> {
        // SAFETY-free: kill(1) keeps the test free of libc bindings.
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(port: u16, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to zhw serve");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    parse(&raw)
}

/// Split a raw HTTP answer into code, head and body.
pub fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Answer {
        code,
        head: head.to_string(),
        body: body.to_string(),
    }
}

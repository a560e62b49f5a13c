//! `zhw demo`: the main job on a target the project ships, so a fresh
//! machine can see zhw work with nothing but a Python 3.
//!
//! Starts examples/demo_server.py (embedded in the binary) with 4 pool
//! workers, holds some requests busy, waits for the server to confirm each
//! hold (no sleeps), runs `zhw check -v` on it, and always stops the server.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::inspect::{InspectOptions, Source, inspect};
use crate::policy::{CheckPolicy, evaluate};
use crate::render::text::{CheckText, Layout};
use crate::target::Target;

const DEMO_SERVER: &str = include_str!("../examples/demo_server.py");
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills and reaps the demo server however the demo ends.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run the demo; returns the check's exit code.
pub fn run(python: &str, busy: u8) -> io::Result<u8> {
    let script = tempfile_with(DEMO_SERVER)?;
    let child = Command::new(python)
        .arg("-u")
        .arg(script.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot start {python}: {err}")))?;
    let mut server = ServerGuard(child);
    let pid = server.0.id();
    let stdout = server
        .0
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("demo server has no stdout"))?;
    let lines = spawn_line_reader(stdout);

    let port = wait_for(&lines, "READY port=")?
        .trim()
        .parse::<u16>()
        .map_err(|_| io::Error::other("demo server printed a bad port"))?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "demo: started {python} as pid {pid} on examples/demo_server.py (the copy built into \
         zhw, written to {}), 4 workers, port {port}",
        script.path().display()
    )?;
    let mut held = Vec::new();
    for _ in 0..busy {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(b"GET /hold HTTP/1.0\r\nHost: demo\r\n\r\n")?;
        held.push(stream);
        let thread = wait_for(&lines, "HOLD ")?;
        writeln!(out, "demo: request held busy in worker {}", thread.trim())?;
    }
    writeln!(out, "demo: zhw check -v {pid}\n")?;

    let report = inspect(
        &[Source::Live(Target::Pid(pid)).into()],
        InspectOptions {
            sample: Default::default(),
            timeout: Duration::from_secs(10),
            profile: None,
            user_profiles: &[],
            inject_delay: Duration::ZERO,
            details: Default::default(),
        },
    );
    let eval = evaluate(&report, &CheckPolicy::default());
    crate::render::text::check(
        &mut out,
        &report,
        &eval,
        CheckText {
            layout: Layout::Nagios,
            verbose: true,
        },
    )?;
    writeln!(
        out,
        "\ndemo: exit code {} (stopping the demo server)",
        eval.verdict.exit_code
    )?;
    drop(held);
    drop(server);
    Ok(eval.verdict.exit_code)
}

fn tempfile_with(contents: &str) -> io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("zhw-demo-")
        .suffix(".py")
        .tempfile()?;
    file.write_all(contents.as_bytes())?;
    file.flush()?;
    Ok(file)
}

fn spawn_line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Wait for the next line starting with `prefix`; return the rest of it.
fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str) -> io::Result<String> {
    loop {
        match lines.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other(format!(
                    "the demo server exited before printing {prefix:?} (it needs Python 3; \
                     see its error above, or pick another with --python)"
                )));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(io::Error::other(format!(
                    "demo server did not print {prefix:?} within {}s",
                    HANDSHAKE_TIMEOUT.as_secs()
                )));
            }
        }
    }
}

//! A real browser for tests: Debian's chromium, headless, loads one page and
//! prints the DOM as it stands after the load (scripts, where the page lets
//! them, have run). Used for the HTML report file and the `zhw serve`
//! dashboard alike.
//!
//! Each run gets a fresh profile directory, no network extras (no sync,
//! updates, QUIC or first-run pages), a deadline, and its own process group,
//! which is killed and reaped whatever happens, so no renderer or GPU helper
//! outlives the test. (Chromium's crash handler puts itself in a session of
//! its own and exits when the browser does; it is not this helper's child.) A machine without chromium makes [`dump_dom`] return
//! `None`: the caller prints a loud SKIP line ([`skip`]) and passes nothing
//! silently. A chromium that is installed but fails or hangs is a test failure.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

/// Debian's package installs the browser here (scripts/test installs it as root).
pub const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a page load may take. Generous: a cold start on a loaded 2-core
/// CI machine takes seconds; a hang must still end the test.
const DEADLINE: Duration = Duration::from_secs(120);

/// Largest DOM read back; a runaway page must not exhaust the test's memory.
const MAX_DOM_BYTES: u64 = 64 << 20;

/// The chromium to use: `ZHW_CHROMIUM` if set, else Debian's, if installed.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("ZHW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_CHROMIUM));
    path.is_file().then_some(path)
}

/// Record a loud SKIP for `what` because no browser is installed.
pub fn skip(what: &str) {
    super::record(&format!(
        "SKIP {what}: no chromium at {DEBIAN_CHROMIUM} (or $ZHW_CHROMIUM); \
         scripts/test installs it when run as root"
    ));
}

/// `file://` URL for a path; a string that already has a scheme is kept.
fn url_for(url_or_file: &str) -> String {
    if url_or_file.contains("://") {
        return url_or_file.to_string();
    }
    let path = std::fs::canonicalize(url_or_file).unwrap_or_else(|e| {
        panic!("{url_or_file}: {e} (dump_dom wants a URL or an existing file)")
    });
    let mut url = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// Load `url_or_file` (an `http://…` URL or a path to an HTML file) in
/// headless chromium and return the serialised DOM after the load event;
/// `None` when chromium is not installed (call [`skip`]).
pub fn dump_dom(url_or_file: &str) -> Option<String> {
    let browser = chromium()?;
    let url = url_for(url_or_file);
    let profile = tempfile::tempdir().expect("tempdir for the browser profile");
    let stderr_path = profile.path().join("chromium.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        // Keep the tester's home untouched: caches and crash reports go to the profile.
        .env("HOME", profile.path())
        .env("XDG_CONFIG_HOME", profile.path())
        .env("XDG_CACHE_HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own process group, so its helpers can be killed with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut guard = Browser { child };
    let mut stdout = guard.child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut dom = Vec::new();
        let read = (&mut stdout).take(MAX_DOM_BYTES).read_to_end(&mut dom);
        read.map(|_| dom)
    });
    let started = Instant::now();
    let exited = loop {
        if let Some(status) = guard.exited() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = || tail(&stderr_path);
    let Some(code) = exited else {
        drop(guard); // kill the group now, so the reader sees end of file
        panic!(
            "chromium did not finish loading {url} within {DEADLINE:?}; stderr:\n{}",
            log()
        );
    };
    drop(guard);
    let dom = reader
        .join()
        .expect("reader thread")
        .unwrap_or_else(|e| panic!("reading chromium's output: {e}"));
    let dom = String::from_utf8_lossy(&dom).into_owned();
    assert!(
        code == 0 && dom.contains("<html"),
        "chromium exited with {code} for {url}, {} bytes of DOM; stderr:\n{}",
        dom.len(),
        log()
    );
    Some(dom)
}

/// The last lines of chromium's stderr, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The browser's process group, killed and reaped on drop.
struct Browser {
    child: Child,
}

impl Browser {
    /// The exit code once the browser process has exited, without reaping
    /// it: while it is unreaped its PID (the group's id) cannot be reused,
    /// so killing the group afterwards cannot hit a stranger.
    fn exited(&self) -> Option<i32> {
        let pid = Pid::from_raw(self.child.id() as i32);
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => Some(128 + signal as i32),
            Ok(_) => None,
            Err(e) => panic!("waitid on chromium: {e}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        // ESRCH (group already gone) is the normal case after a clean exit.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

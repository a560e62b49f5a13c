//! The sidecar's voice: log lines on stderr, and systemd's notify protocol.
//!
//! Under systemd (stderr connected to the journal, `JOURNAL_STREAM` set)
//! each line starts with a `<N>` priority prefix that journald turns into
//! the entry's priority, so `journalctl -p warning -u zhw` shows only the
//! long requests and status changes that matter. On a terminal lines carry
//! a UTC timestamp and the level in words instead. Notify messages
//! (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`) go to `$NOTIFY_SOCKET`
//! when systemd started zhw with `Type=notify`, and are no-ops otherwise.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Syslog priorities used by zhw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A target cannot be read, the sidecar cannot serve.
    Error = 3,
    /// A long request, a target at WARNING.
    Warning = 4,
    /// Start, stop, a target back to OK.
    Info = 6,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        }
    }
}

/// Write one entry (possibly several lines) to stderr in one write.
pub fn log(level: Level, message: &str) {
    let journald = stderr_is_journal();
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut entry = String::with_capacity(message.len() + 32);
    for (index, line) in message.lines().enumerate() {
        if journald {
            entry.push_str(&format!("<{}>", level as u8));
        } else if index == 0 {
            entry.push_str(&format!("{stamp} zhw {}: ", level.word()));
        } else {
            entry.push_str("    ");
        }
        entry.push_str(line);
        entry.push('\n');
    }
    // A closed stderr must not stop the sidecar.
    let _ = std::io::stderr().lock().write_all(entry.as_bytes());
}

/// True when stderr is the stream systemd connected to the journal
/// (`JOURNAL_STREAM=dev:inode` matches stderr's device and inode).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|d| d == meta.dev())
        && ino.parse::<u64>().is_ok_and(|i| i == meta.ino())
}

/// systemd's service manager, when zhw runs under `Type=notify`.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    /// Ping at least this often (half of `WatchdogSec=`), if the watchdog is on.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// Read the watchdog setting from the environment systemd gave us.
    pub fn from_env() -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled().map(|period| period / 2),
        }
    }

    /// Tell systemd zhw is serving, with the first status.
    pub fn ready(&self, status: &str) {
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// The one-line summary `systemctl status zhw` shows.
    pub fn status(&self, status: &str) {
        notify(&[sd_notify::NotifyState::Status(status)]);
    }

    /// Tell the watchdog the sampling loop is alive.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }

    /// Tell systemd zhw is shutting down.
    pub fn stopping(&self) {
        notify(&[sd_notify::NotifyState::Stopping]);
    }
}

fn notify(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(states) {
        log(Level::Warning, &format!("cannot notify systemd: {err}"));
    }
}

//! `--state-file`: remember each target's worker pool between one-shot checks.
//!
//! A Zope client's pool has a fixed size; a pool that shrinks means worker
//! threads died (an uncaught error in the pool loop), and the client serves
//! fewer requests until restarted. The sidecar sees this across samples; a
//! check run by NRPE every few minutes needs this file to see it across runs.
//!
//! Per target (keyed by the target as given) the file keeps the process
//! identity (PID and start time) and the largest pool seen for it. A new
//! process starts afresh. Updates hold an exclusive lock on `PATH.lock` and
//! replace the file atomically, so concurrent checks lose nothing; a file that
//! cannot be parsed is kept aside as `PATH.corrupt` and replaced.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// State files larger than this are treated as corrupt, not read.
const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    schema_version: u32,
    targets: BTreeMap<String, PoolEntry>,
}

/// What is remembered of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PoolEntry {
    pid: u32,
    start_ticks: u64,
    /// Largest worker pool seen for this process.
    workers: u64,
}

/// The outcome of one update: per report target, the pool size remembered
/// for the same process before this run; and warnings about the file.
#[derive(Debug, Default)]
pub struct Remembered {
    /// One entry per target of the report, in order.
    pub workers: Vec<Option<u64>>,
    /// Problems with the file (kept aside, unusable); the check goes on.
    pub warnings: Vec<String>,
}

/// Read what earlier runs remembered, record this run, and return the
/// remembered pool sizes. Never fails: problems become warnings.
pub fn remember(path: &Path, report: &Report) -> Remembered {
    match update(path, report) {
        Ok(remembered) => remembered,
        Err(message) => Remembered {
            workers: vec![None; report.targets.len()],
            warnings: vec![format!(
                "state file {}: {message}; worker-pool memory is off for this run",
                path.display()
            )],
        },
    }
}

fn update(path: &Path, report: &Report) -> Result<Remembered, String> {
    let elevated = crate::privilege::elevated_caller();
    if let Some(caller) = elevated {
        authorize(path, caller)?;
    }
    let lock_path = with_suffix(path, ".lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&lock_path)
        .map_err(|e| format!("cannot open lock {}: {e}", lock_path.display()))?;
    if !lock_file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "lock {} is not a regular file",
            lock_path.display()
        ));
    }
    let _lock = lock_within(lock_file, LOCK_WAIT)
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;

    let mut warnings = Vec::new();
    let mut state = match read_state(path)? {
        Parsed::Missing => StateFile::default(),
        Parsed::Ok(state) => state,
        // Elevated, an unparsable file may be anything root can write (a
        // symlink to a system file): never move or replace it.
        Parsed::Corrupt(why) if elevated.is_some() => {
            return Err(format!(
                "not a zhw state file ({why}); refusing to replace it with elevated privileges"
            ));
        }
        Parsed::Corrupt(why) => {
            let aside = with_suffix(path, ".corrupt");
            fs::rename(path, &aside)
                .map_err(|e| format!("cannot move the corrupt file aside: {e}"))?;
            warnings.push(format!(
                "state file {} was unreadable ({why}); kept as {} and started afresh",
                path.display(),
                aside.display()
            ));
            StateFile::default()
        }
    };

    let mut workers = Vec::with_capacity(report.targets.len());
    for target in &report.targets {
        let (Some(inspection), Some(pid)) = (&target.inspection, target.pid) else {
            workers.push(None);
            continue;
        };
        let Some(start_ticks) = inspection.process.start_ticks else {
            workers.push(None);
            continue;
        };
        let now = inspection.stats.total_threads;
        let same_process = state
            .targets
            .get(&target.target)
            .filter(|entry| entry.pid == pid && entry.start_ticks == start_ticks)
            .copied();
        workers.push(same_process.map(|entry| entry.workers));
        let largest = same_process.map_or(now, |entry| entry.workers.max(now));
        state.targets.insert(
            target.target.clone(),
            PoolEntry {
                pid,
                start_ticks,
                workers: largest,
            },
        );
    }
    state.schema_version = 1;
    write_state(path, &state)?;
    Ok(Remembered { workers, warnings })
}

enum Parsed {
    Missing,
    Ok(StateFile),
    Corrupt(String),
}

/// How long a check waits for another run's lock on the state file: the
/// other run only reads and writes a small file, so a lock held longer is a
/// stuck run, which must not stall every later check (NRPE runs them in turn).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Take an exclusive lock, giving up after `wait`.
fn lock_within(file: File, wait: std::time::Duration) -> Result<Flock<File>, String> {
    let deadline = std::time::Instant::now() + wait;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                if std::time::Instant::now() >= deadline {
                    return Err(format!(
                        "another zhw has held it for over {}s",
                        wait.as_secs_f64()
                    ));
                }
                file = back;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err((_, err)) => return Err(err.to_string()),
        }
    }
}

fn read_state(path: &Path) -> Result<Parsed, String> {
    // O_NONBLOCK: a FIFO planted as the state file must not hang the check.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Parsed::Missing),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    if let Err(e) = (&mut file)
        .take(MAX_STATE_BYTES + 1)
        .read_to_string(&mut text)
    {
        return Ok(Parsed::Corrupt(e.to_string()));
    }
    if text.len() as u64 > MAX_STATE_BYTES {
        return Ok(Parsed::Corrupt("larger than 16 MiB".into()));
    }
    // serde_json's messages name a position, never the file's content.
    Ok(serde_json::from_str(&text).map_or_else(|e| Parsed::Corrupt(e.to_string()), Parsed::Ok))
}

fn write_state(path: &Path, state: &StateFile) -> Result<(), String> {
    let temporary = with_suffix(path, &format!(".tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temporary)?;
        serde_json::to_writer_pretty(&mut file, state).map_err(std::io::Error::other)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write: {e}")
    })
}

/// Under sudo or a file capability, write only where the caller could:
/// an existing state file of the caller's, an existing root-owned one (set
/// up by the administrator; it must parse as a state file, checked when
/// read), or a new file in a directory the caller owns. Anything else could
/// make a root-run zhw create or replace a system file.
fn authorize(path: &Path, caller: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    match fs::metadata(path) {
        Ok(metadata) if metadata.uid() == caller => Ok(()),
        // Root's file: only one that already is a zhw state file (checked
        // before anything, even the lock file, is created next to it).
        Ok(metadata) if metadata.uid() == 0 => match read_state(path)? {
            Parsed::Ok(_) => Ok(()),
            Parsed::Missing => Err("it vanished".into()),
            Parsed::Corrupt(why) => Err(format!(
                "not a zhw state file ({why}); refusing to replace it with elevated privileges"
            )),
        },
        Ok(metadata) => Err(crate::privilege::refusal(
            "state file",
            &shown,
            &metadata,
            caller,
        )),
        Err(_) => {
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            let directory =
                fs::metadata(parent).map_err(|e| format!("cannot use its directory: {e}"))?;
            if directory.uid() == caller {
                Ok(())
            } else {
                Err(format!(
                    "refusing to create state file {shown}: its directory belongs to uid {}, and zhw \
                     runs with elevated privileges on behalf of uid {caller}; create the file first \
                     or use a directory of uid {caller}",
                    directory.uid()
                ))
            }
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

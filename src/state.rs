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
    let lock_path = with_suffix(path, ".lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| format!("cannot open lock {}: {e}", lock_path.display()))?;
    check_ownership(&lock_file, &lock_path)?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))?;

    let mut warnings = Vec::new();
    let mut state = match read_state(path)? {
        Parsed::Missing => StateFile::default(),
        Parsed::Ok(state) => state,
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

fn read_state(path: &Path) -> Result<Parsed, String> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Parsed::Missing),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    check_ownership(&file, path)?;
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
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
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

/// Under sudo or a file capability, use only files the caller owns (or root does).
fn check_ownership(file: &File, path: &Path) -> Result<(), String> {
    let Some(caller) = crate::privilege::elevated_caller() else {
        return Ok(());
    };
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    use std::os::unix::fs::MetadataExt;
    if metadata.uid() == 0 || metadata.uid() == caller {
        Ok(())
    } else {
        Err(crate::privilege::refusal(
            "state file",
            &path.display().to_string(),
            &metadata,
            caller,
        ))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

//! `--match REGEX`: every process whose command line matches.
//!
//! For hosts where clients come and go (a buildout with client1..clientN),
//! the sidecar re-scans /proc each round. zhw itself and its ancestors
//! (`sudo zhw serve --match zope` has "zope" in its own command line) are
//! never matched.

use std::collections::HashSet;

use regex::Regex;

/// The most of a command line read per process.
const CMDLINE_LIMIT: usize = 64 * 1024;

/// PIDs of processes whose command line (arguments joined by spaces)
/// matches, in ascending order.
pub fn matching_pids(pattern: &Regex) -> Vec<u32> {
    let excluded = self_and_ancestors();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !excluded.contains(pid))
        .filter(|pid| command_line(*pid).is_some_and(|line| pattern.is_match(&line)))
        .collect();
    pids.sort_unstable();
    pids
}

/// The command line of a process, NULs turned into spaces; `None` for a
/// kernel thread (empty) or a process that is gone.
pub fn command_line(pid: u32) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(format!("/proc/{pid}/cmdline")).ok()?;
    let mut raw = Vec::new();
    file.take(CMDLINE_LIMIT as u64).read_to_end(&mut raw).ok()?;
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw);
    Some(text.trim_end_matches('\0').replace('\0', " "))
}

fn self_and_ancestors() -> HashSet<u32> {
    let mut seen = HashSet::new();
    let mut pid = std::process::id();
    // Bounded: a PID chain cannot be longer than the PID space, and a loop
    // (impossible, but /proc is read racily) stops at a repeat.
    while pid > 1 && seen.insert(pid) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        let Some(parent) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|field| field.parse::<u32>().ok())
        else {
            break;
        };
        pid = parent;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_matches_itself() {
        let own = command_line(std::process::id()).unwrap_or_default();
        let anything = Regex::new(".").expect("valid regex");
        assert!(!own.is_empty());
        assert!(!matching_pids(&anything).contains(&std::process::id()));
    }
}

//! The OS's view of a whole process: memory, CPU, age, command line.
//!
//! All of it comes from /proc through the `procfs` crate; a fact that cannot
//! be read is left out rather than failing the sample.

use crate::model::ProcessFacts;

/// Read what /proc says about `pid`. Never fails: missing facts are `None`.
pub fn read(pid: u32) -> ProcessFacts {
    let Ok(process) = i32::try_from(pid)
        .map_err(|_| ())
        .and_then(|p| procfs::process::Process::new(p).map_err(|_| ()))
    else {
        return ProcessFacts::default();
    };
    let stat = process.stat().ok();
    // statm's resident pages are status's VmRSS, without parsing the ~55
    // other lines of status on every sample.
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok());
    let rss_bytes = process
        .statm()
        .ok()
        .zip(page_size)
        .map(|(statm, page)| statm.resident.saturating_mul(page));
    // sysconf, not procfs::ticks_per_second: rustix's auxv walk behind the
    // latter reads the vDSO's ELF header, which valgrind does not map
    // (a SIGSEGV under callgrind, where zhw's profiles come from).
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(0.0, |ticks| ticks as f64);
    let system_uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok());
    let uptime_seconds = match (&stat, system_uptime) {
        (Some(stat), Some(up)) if ticks > 0.0 => {
            Some((up - stat.starttime as f64 / ticks).max(0.0))
        }
        _ => None,
    };
    let cpu_percent = match (&stat, uptime_seconds) {
        (Some(stat), Some(age)) if age > 0.0 && ticks > 0.0 => {
            Some(100.0 * (stat.utime + stat.stime) as f64 / ticks / age)
        }
        _ => None,
    };
    ProcessFacts {
        rss_bytes,
        cpu_percent,
        threads: stat
            .as_ref()
            .and_then(|s| u64::try_from(s.num_threads).ok()),
        uptime_seconds,
        command: process.cmdline().ok().map(|args| args.join(" ")),
        start_ticks: stat.as_ref().map(|s| s.starttime),
        stopped: false,
    }
}

/// Start time of `pid` in clock ticks since boot: with the PID, it tells a
/// process from a later one that reuses the PID.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    process.stat().ok().map(|stat| stat.starttime)
}

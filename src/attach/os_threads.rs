//! Match Python threads to kernel threads and read each one's scheduler state.
//!
//! py-spy (without its libunwind feature) only knows the kernel tid from 3.11
//! on, where `PyThreadState.native_thread_id` holds it — and even then the
//! value is namespace-local for containerised targets. Earlier versions store
//! only the `pthread_t`. On glibc x86-64 the `pthread_t` is the address of
//! the thread's `struct pthread`, whose `tid` field sits at offset 0x2d0.
//! Every candidate tid is checked against `/proc/PID/task` before use, so a
//! wrong guess (musl, another libc, another architecture) yields "unknown",
//! never a wrong thread.

use std::collections::HashSet;
use std::fs;

use remoteprocess::ProcessMemory;

/// Offset of `tid` inside glibc's `struct pthread` on x86-64 (stable since glibc 2.x).
const GLIBC_X86_64_PTHREAD_TID_OFFSET: usize = 0x2d0;

/// The kernel's view of a process's threads at one moment.
#[derive(Debug, Default)]
pub struct TaskList {
    tids: HashSet<u32>,
}

impl TaskList {
    /// List `/proc/PID/task`; an unreadable list is empty (every tid unknown).
    pub fn read(pid: u32) -> TaskList {
        let tids = fs::read_dir(format!("/proc/{pid}/task"))
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        TaskList { tids }
    }

    /// Whether the kernel lists this tid for the process.
    pub fn contains(&self, tid: u32) -> bool {
        self.tids.contains(&tid)
    }
}

/// Decide the kernel tid of one Python thread.
///
/// `reported` is what py-spy read (3.11+); `pthread` is Python's thread id.
pub fn resolve_tid<M: ProcessMemory>(
    memory: &M,
    tasks: &TaskList,
    reported: Option<u64>,
    pthread: u64,
) -> Option<u32> {
    if let Some(tid) = reported.and_then(|t| u32::try_from(t).ok())
        && tasks.contains(tid)
    {
        return Some(tid);
    }
    tid_from_pthread(memory, pthread).filter(|tid| tasks.contains(*tid))
}

fn tid_from_pthread<M: ProcessMemory>(memory: &M, pthread: u64) -> Option<u32> {
    if !cfg!(target_arch = "x86_64") || pthread == 0 {
        return None;
    }
    let address = usize::try_from(pthread)
        .ok()?
        .checked_add(GLIBC_X86_64_PTHREAD_TID_OFFSET)?;
    let tid: i32 = memory.copy_struct(address).ok()?;
    u32::try_from(tid).ok().filter(|tid| *tid > 0)
}

/// Whether the kernel shows the thread running (`R`); `None` if it cannot be read.
pub fn on_cpu(pid: u32, tid: u32) -> Option<bool> {
    let stat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    scheduler_state(&stat).map(|state| state == 'R')
}

/// The state letter of a `stat` line; the command name may contain spaces and
/// parentheses, so the state is the first field after the *last* `)`.
fn scheduler_state(stat: &str) -> Option<char> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_hostile_command_names() {
        assert_eq!(scheduler_state("12 (python) S 1 2"), Some('S'));
        assert_eq!(scheduler_state("12 (a) R (b) R 1"), Some('R'));
        assert_eq!(scheduler_state("12 (x) ) D 1"), Some('D'));
        assert_eq!(scheduler_state("garbage"), None);
    }
}

//! What each thread is doing at the OS level: running, waiting for the GIL,
//! or blocked (asleep, on a lock, on I/O), from the scheduler state, the GIL
//! holder and the system call a blocked thread sits in
//! (`/proc/PID/task/TID/syscall`).
//!
//! py-spy's own active/idle flag is the scheduler's `R` alone, so a thread
//! that wants the CPU but waits for the GIL (parked in a futex inside
//! `take_gil`) reads as idle, and the answer flips from dump to dump (shared
//! case 01). Here a thread blocked in a futex is *waiting for the GIL* when
//! the futex word lies inside the interpreter's GIL, and *waiting on a lock*
//! anywhere else. Reading `syscall` needs the same ptrace rights as reading
//! memory and never stops or signals the thread.
//!
//! Nothing here decides busy or idle for a worker: that is the stack's job
//! (crate::classify). Activity tells what the OS and the interpreter say.

use std::ops::Range;

use py_spy::PythonSpy;
use remoteprocess::ProcessMemory;

use crate::model::Activity;

/// Bytes searched for the GIL's condition variables and mutexes around the
/// address py-spy uses for it: `struct _gil_runtime_state` is 208 bytes on
/// x86-64 (3.7–3.14).
const GIL_STRUCT_SPAN: usize = 256;
/// One `pthread_cond_t` or `pthread_mutex_t` (48 and 40 bytes on x86-64).
const PTHREAD_OBJECT_SPAN: usize = 48;
/// One `sem_t` (2.x's GIL is a plain lock: a semaphore on Linux).
const SEMAPHORE_SPAN: usize = 32;

/// Where the target's GIL lives, found once per attach.
#[derive(Debug, Clone)]
pub enum GilLocation {
    /// Fixed ranges of the interpreter's static data (3.2 and later).
    Fixed(Vec<Range<usize>>),
    /// 2.x: the address of `interpreter_lock`, a pointer to the semaphore;
    /// re-read each sample, since a fork re-creates the lock.
    Pointer(usize),
    /// Not known (stripped 2.x/3.6 binary, or no GIL address): a futex wait
    /// is then reported without telling GIL from lock.
    Unknown,
}

impl GilLocation {
    /// Find the GIL of the interpreter py-spy attached to.
    pub fn of(spy: &PythonSpy) -> GilLocation {
        let state = spy.addresses.threadstate_address;
        let (major, minor) = (spy.version.major, spy.version.minor);
        match (major, minor) {
            // py-spy's address is the GIL struct itself (`interp->ceval.gil`).
            (3, 12..) if state != 0 => GilLocation::Fixed(
                std::iter::once(state..state.saturating_add(GIL_STRUCT_SPAN)).collect(),
            ),
            // py-spy's address is `_PyRuntime.gilstate.tstate_current`; the
            // GIL (`_PyRuntime.ceval.gil`) ends shortly before it. Measured
            // on 3.7–3.11 here: the waiters' futex words sit 188–192 bytes
            // before it, inside the GIL's condition variable; its mutex and
            // the switch condition and mutex follow, closer still.
            (3, 7..=11) if state > GIL_STRUCT_SPAN => {
                GilLocation::Fixed(std::iter::once(state - GIL_STRUCT_SPAN..state).collect())
            }
            (3, _) => {
                let ranges: Vec<Range<usize>> =
                    ["gil_cond", "gil_mutex", "switch_cond", "switch_mutex"]
                        .iter()
                        .filter_map(|name| spy.gil_symbols.get(name))
                        .map(|&at| at..at.saturating_add(PTHREAD_OBJECT_SPAN))
                        .collect();
                if ranges.is_empty() {
                    GilLocation::Unknown
                } else {
                    GilLocation::Fixed(ranges)
                }
            }
            (2, _) => spy
                .gil_symbols
                .get("interpreter_lock")
                .map_or(GilLocation::Unknown, |&at| GilLocation::Pointer(at)),
            _ => GilLocation::Unknown,
        }
    }

    /// The address ranges of the GIL's futex words now.
    pub fn ranges<M: ProcessMemory>(&self, memory: &M) -> Vec<Range<usize>> {
        match self {
            GilLocation::Fixed(ranges) => ranges.clone(),
            GilLocation::Pointer(at) => memory
                .copy_struct::<usize>(*at)
                .ok()
                .filter(|lock| *lock != 0)
                .map(|lock| std::iter::once(lock..lock.saturating_add(SEMAPHORE_SPAN)).collect())
                .unwrap_or_default(),
            GilLocation::Unknown => Vec::new(),
        }
    }
}

/// Where a thread that is not running sits, per `/proc/…/syscall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The kernel says it is running (it was on a CPU while read).
    Running,
    /// Blocked in this system call, with its first argument.
    Syscall { number: u64, first_argument: u64 },
    /// Not in a system call (`-1`), or the file could not be read.
    Unknown,
}

/// Read `/proc/PID/task/TID/syscall` into `buffer`.
pub fn read_wait(pid: u32, tid: u32, buffer: &mut [u8]) -> Wait {
    match super::os_threads::read_small(&format!("/proc/{pid}/task/{tid}/syscall"), buffer) {
        Some(text) => parse_wait(text),
        None => Wait::Unknown,
    }
}

fn parse_wait(text: &str) -> Wait {
    let mut fields = text.split_whitespace();
    let Some(first) = fields.next() else {
        return Wait::Unknown;
    };
    if first == "running" {
        return Wait::Running;
    }
    let number = first.parse::<u64>().ok();
    let argument = fields
        .next()
        .and_then(|arg| u64::from_str_radix(arg.trim_start_matches("0x"), 16).ok());
    match (number, argument) {
        (Some(number), Some(first_argument)) => Wait::Syscall {
            number,
            first_argument,
        },
        _ => Wait::Unknown,
    }
}

/// Everything known about one thread at the moment of the sample.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// The whole process is stopped (SIGSTOP, a debugger).
    pub process_stopped: bool,
    /// py-spy found this thread holding the GIL.
    pub holds_gil: bool,
    /// The scheduler state was `R`.
    pub runnable: bool,
    /// What `syscall` said (read only for threads not runnable).
    pub wait: Wait,
}

/// Decide a thread's activity and say why, in a few words.
pub fn decide(observed: Observed, gil: &[Range<usize>]) -> (Activity, String) {
    if observed.process_stopped {
        return (Activity::Stopped, "process stopped".into());
    }
    if observed.runnable || observed.wait == Wait::Running {
        let what = if observed.holds_gil {
            "on CPU, holds the GIL"
        } else {
            "on CPU"
        };
        return (Activity::Active, what.into());
    }
    match observed.wait {
        Wait::Syscall {
            number,
            first_argument,
        } if number == FUTEX => {
            let word = usize::try_from(first_argument).unwrap_or(usize::MAX);
            if gil.iter().any(|range| range.contains(&word)) {
                (Activity::Active, "waiting for the GIL".into())
            } else if observed.holds_gil {
                // A GIL holder in a futex is between bytecodes and a lock
                // of the interpreter's own: it is running Python.
                (Activity::Active, "holds the GIL".into())
            } else if gil.is_empty() {
                (
                    Activity::Waiting,
                    "waiting in a futex (a lock, or the GIL: not told apart here)".into(),
                )
            } else {
                (Activity::Waiting, "waiting on a lock or condition".into())
            }
        }
        Wait::Syscall {
            number,
            first_argument,
        } => (Activity::Waiting, describe_syscall(number, first_argument)),
        Wait::Running => (Activity::Active, "on CPU".into()),
        Wait::Unknown if observed.holds_gil => (Activity::Active, "holds the GIL".into()),
        Wait::Unknown => (Activity::Waiting, "waiting (not running)".into()),
    }
}

#[cfg(target_arch = "x86_64")]
const FUTEX: u64 = 202;
#[cfg(not(target_arch = "x86_64"))]
const FUTEX: u64 = u64::MAX;

/// A blocked thread's system call in an operator's words (x86-64 numbers).
/// A `select` on no descriptors is a sleep (Python 2's `time.sleep`).
fn describe_syscall(number: u64, first_argument: u64) -> String {
    let (what, name) = if cfg!(target_arch = "x86_64") {
        match number {
            23 if first_argument == 0 => ("sleeping", "select"),
            270 if first_argument == 0 => ("sleeping", "pselect6"),
            35 => ("sleeping", "nanosleep"),
            230 => ("sleeping", "clock_nanosleep"),
            34 => ("sleeping", "pause"),
            7 => ("waiting for I/O", "poll"),
            23 => ("waiting for I/O", "select"),
            232 => ("waiting for I/O", "epoll_wait"),
            270 => ("waiting for I/O", "pselect6"),
            271 => ("waiting for I/O", "ppoll"),
            281 => ("waiting for I/O", "epoll_pwait"),
            441 => ("waiting for I/O", "epoll_pwait2"),
            0 => ("waiting for I/O", "read"),
            1 => ("waiting for I/O", "write"),
            17 => ("waiting for I/O", "pread64"),
            19 => ("waiting for I/O", "readv"),
            42 => ("waiting for I/O", "connect"),
            43 => ("waiting for I/O", "accept"),
            288 => ("waiting for I/O", "accept4"),
            44 => ("waiting for I/O", "sendto"),
            45 => ("waiting for I/O", "recvfrom"),
            46 => ("waiting for I/O", "sendmsg"),
            47 => ("waiting for I/O", "recvmsg"),
            61 => ("waiting for a child", "wait4"),
            247 => ("waiting for a child", "waitid"),
            128 => ("waiting for a signal", "rt_sigtimedwait"),
            130 => ("waiting for a signal", "rt_sigsuspend"),
            _ => return format!("blocked in system call {number}"),
        }
    } else {
        return format!("blocked in system call {number}");
    };
    format!("{what} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(runnable: bool, holds_gil: bool, wait: Wait) -> Observed {
        Observed {
            process_stopped: false,
            holds_gil,
            runnable,
            wait,
        }
    }

    fn futex(word: u64) -> Wait {
        Wait::Syscall {
            number: FUTEX,
            first_argument: word,
        }
    }

    #[test]
    fn parses_the_syscall_file() {
        assert_eq!(parse_wait("running\n"), Wait::Running);
        assert_eq!(
            parse_wait("202 0x7f87c2656204 0x89 0x0 0x0 0x0 0x0 0x7ffd 0x7f87\n"),
            Wait::Syscall {
                number: 202,
                first_argument: 0x7f87c2656204
            }
        );
        assert_eq!(parse_wait("-1 0x7ffd 0x7f87\n"), Wait::Unknown);
        assert_eq!(parse_wait(""), Wait::Unknown);
        assert_eq!(parse_wait("202 zz"), Wait::Unknown);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_futex_in_the_gil_is_cpu_demand_elsewhere_a_lock() {
        let gil: Vec<Range<usize>> = std::iter::once(0x1000..0x1100).collect();
        let table = [
            (
                observed(true, false, Wait::Unknown),
                Activity::Active,
                "on CPU",
            ),
            (
                observed(false, false, Wait::Running),
                Activity::Active,
                "on CPU",
            ),
            (
                observed(false, false, futex(0x1048)),
                Activity::Active,
                "waiting for the GIL",
            ),
            (
                observed(false, false, futex(0x9000)),
                Activity::Waiting,
                "waiting on a lock or condition",
            ),
            (
                observed(false, true, futex(0x9000)),
                Activity::Active,
                "holds the GIL",
            ),
            (
                observed(
                    false,
                    false,
                    Wait::Syscall {
                        number: 230,
                        first_argument: 1,
                    },
                ),
                Activity::Waiting,
                "sleeping (clock_nanosleep)",
            ),
            (
                observed(
                    false,
                    false,
                    Wait::Syscall {
                        number: 45,
                        first_argument: 3,
                    },
                ),
                Activity::Waiting,
                "waiting for I/O (recvfrom)",
            ),
            (
                observed(
                    false,
                    false,
                    Wait::Syscall {
                        number: 270,
                        first_argument: 0,
                    },
                ),
                Activity::Waiting,
                "sleeping (pselect6)",
            ),
            (
                observed(
                    false,
                    false,
                    Wait::Syscall {
                        number: 270,
                        first_argument: 5,
                    },
                ),
                Activity::Waiting,
                "waiting for I/O (pselect6)",
            ),
            (
                observed(
                    false,
                    false,
                    Wait::Syscall {
                        number: 999,
                        first_argument: 3,
                    },
                ),
                Activity::Waiting,
                "blocked in system call 999",
            ),
        ];
        for (seen, activity, why) in table {
            assert_eq!(decide(seen, &gil), (activity, why.to_string()), "{seen:?}");
        }
        let unknown_gil = decide(observed(false, false, futex(0x1048)), &[]);
        assert_eq!(unknown_gil.0, Activity::Waiting);
        assert!(unknown_gil.1.contains("not told apart"), "{unknown_gil:?}");
    }

    #[test]
    fn a_stopped_process_stops_every_thread() {
        let seen = Observed {
            process_stopped: true,
            holds_gil: true,
            runnable: true,
            wait: Wait::Running,
        };
        assert_eq!(decide(seen, &[]).0, Activity::Stopped);
    }
}

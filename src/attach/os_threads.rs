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
//!
//! The same listing records each thread's scheduler counters, which tell
//! whether a thread ran at all while its stack was being read.

use std::collections::HashMap;
use std::fs;

use remoteprocess::ProcessMemory;

/// Offset of `tid` inside glibc's `struct pthread` on x86-64 (stable since glibc 2.x).
const GLIBC_X86_64_PTHREAD_TID_OFFSET: usize = 0x2d0;

/// What the scheduler says about one kernel thread at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedMark {
    /// State `R`: on a CPU or waiting for one.
    pub runnable: bool,
    /// Times the thread was put on a CPU (`/proc/…/schedstat`, third
    /// field), and its accumulated run time in ns (first field); `None`
    /// where the kernel has no schedstat.
    pub runs: Option<(u64, u64)>,
}

/// The scheduler's view of every thread of a process at one moment.
#[derive(Debug, Default, Clone)]
pub struct TaskList {
    pid: u32,
    marks: HashMap<u32, SchedMark>,
    /// Namespace-local tid → host tid, read on first need (containers).
    namespace_tids: std::cell::OnceCell<HashMap<u32, u32>>,
}

/// Reads a process's [`TaskList`] again and again, keeping each thread's
/// `stat` and `schedstat` open between views: a view is then one
/// `getdents` plus one `pread` per file, instead of an open, a path lookup,
/// a read and a close (the sidecar takes two or three views per sample of
/// every target). The kernel regenerates a /proc file on each read from
/// offset 0. Open files are bounded ([`TaskReader::new`]); threads beyond
/// the bound are read the plain way.
#[derive(Debug)]
pub struct TaskReader {
    pid: u32,
    /// `/proc/PID/task`, kept open and rewound for each view: an `opendir`
    /// per view would allocate and free glibc's 32 KiB directory buffer
    /// every time. Once the process is gone it lists nothing, even if its
    /// PID is reused.
    directory: Option<nix::dir::Dir>,
    /// The tids of the view being taken (kept to reuse the allocation).
    listed: Vec<u32>,
    open: HashMap<u32, ThreadFiles>,
    /// Most threads whose files stay open (two descriptors each).
    most_open: usize,
}

#[derive(Debug)]
struct ThreadFiles {
    stat: fs::File,
    schedstat: Option<fs::File>,
}

impl ThreadFiles {
    /// The thread's state and counters now; `None` if it is gone.
    fn mark(&self, buffer: &mut [u8]) -> Option<SchedMark> {
        let runnable = pread_small(&self.stat, buffer)
            .and_then(scheduler_state)
            .map(|state| state == 'R')?;
        let runs = self
            .schedstat
            .as_ref()
            .and_then(|file| pread_small(file, buffer))
            .and_then(parse_schedstat);
        Some(SchedMark { runnable, runs })
    }
}

impl TaskReader {
    /// A reader for `pid` that keeps at most a quarter of the open-file
    /// limit (and at most 2048 threads' files) open.
    pub fn new(pid: u32) -> TaskReader {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let most_open = usize::try_from(soft / 8).unwrap_or(usize::MAX).min(2048);
        TaskReader {
            pid,
            directory: None,
            listed: Vec::new(),
            open: HashMap::new(),
            most_open,
        }
    }

    /// The scheduler's view of every thread now; an unreadable list is
    /// empty (every tid unknown). Threads that exit while being listed are
    /// left out, and their files closed.
    pub fn read(&mut self) -> TaskList {
        use nix::fcntl::OFlag;
        let pid = self.pid;
        if self.directory.is_none() {
            self.directory = nix::dir::Dir::open(
                format!("/proc/{pid}/task").as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ok();
        }
        let Some(directory) = self.directory.as_mut() else {
            self.open.clear();
            return TaskList::default();
        };
        let mut listed = std::mem::take(&mut self.listed);
        listed.clear();
        // Dropping the iterator rewinds the directory for the next view.
        listed.extend(
            directory
                .iter()
                .filter_map(|entry| entry.ok()?.file_name().to_str().ok()?.parse::<u32>().ok()),
        );
        let mut buffer = [0u8; 1024];
        // Sized for the threads seen last time: no rehashing as it fills.
        let mut marks = HashMap::with_capacity(self.open.len() + 8);
        for &tid in &listed {
            if let Some(mark) = self.mark(tid, &mut buffer) {
                marks.insert(tid, mark);
            }
        }
        self.listed = listed;
        self.open.retain(|tid, _| marks.contains_key(tid));
        TaskList {
            pid,
            marks,
            namespace_tids: std::cell::OnceCell::new(),
        }
    }

    /// One thread's state and counters, through its open files if it has
    /// them (opened now if there is room); `None` if it is gone.
    fn mark(&mut self, tid: u32, buffer: &mut [u8]) -> Option<SchedMark> {
        if let Some(files) = self.open.get(&tid) {
            if let Some(mark) = files.mark(buffer) {
                return Some(mark);
            }
            // Gone, or a new thread under a recycled tid: look again.
            self.open.remove(&tid);
        }
        let pid = self.pid;
        let stat_path = format!("/proc/{pid}/task/{tid}/stat");
        let schedstat_path = format!("/proc/{pid}/task/{tid}/schedstat");
        if self.open.len() < self.most_open
            && let Ok(stat) = fs::File::open(&stat_path)
        {
            let files = ThreadFiles {
                stat,
                schedstat: fs::File::open(&schedstat_path).ok(),
            };
            let mark = files.mark(buffer)?;
            self.open.insert(tid, files);
            return Some(mark);
        }
        let runnable = read_small(&stat_path, buffer)
            .and_then(scheduler_state)
            .map(|state| state == 'R')?;
        let runs = read_small(&schedstat_path, buffer).and_then(parse_schedstat);
        Some(SchedMark { runnable, runs })
    }

    /// Threads whose files are open now (for tests).
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.open.len()
    }
}

impl TaskList {
    /// Number of kernel threads listed.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// True when nothing could be listed.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The host tid of a thread known by its tid inside the process's own
    /// PID namespace (`NSpid` in /proc/PID/task/TID/status: host first,
    /// innermost last). A containerised Python knows only the inner one.
    pub fn host_tid(&self, namespace_tid: u32) -> Option<u32> {
        self.namespace_tids
            .get_or_init(|| {
                self.marks
                    .keys()
                    .filter_map(|&host| {
                        let status =
                            fs::read_to_string(format!("/proc/{}/task/{host}/status", self.pid))
                                .ok()?;
                        let inner = status
                            .lines()
                            .find_map(|line| line.strip_prefix("NSpid:"))?
                            .split_whitespace()
                            .last()?
                            .parse()
                            .ok()?;
                        Some((inner, host))
                    })
                    .collect()
            })
            .get(&namespace_tid)
            .copied()
    }

    /// Whether the kernel lists this tid for the process.
    pub fn contains(&self, tid: u32) -> bool {
        self.marks.contains_key(&tid)
    }

    /// The scheduler's view of one thread, if listed.
    pub fn mark(&self, tid: u32) -> Option<SchedMark> {
        self.marks.get(&tid).copied()
    }

    /// Whether the thread was runnable (`R`) when listed.
    pub fn runnable(&self, tid: u32) -> Option<bool> {
        self.marks.get(&tid).map(|mark| mark.runnable)
    }

    /// True when the thread provably did not run between `self` and
    /// `later`: not runnable at either moment, never put on a CPU in
    /// between, no run time added. A thread that did not run cannot have
    /// changed its Python stack.
    pub fn stayed_asleep(&self, later: &TaskList, tid: u32) -> bool {
        match (self.marks.get(&tid), later.marks.get(&tid)) {
            (Some(before), Some(after)) => {
                !before.runnable
                    && !after.runnable
                    && before.runs.is_some()
                    && before.runs == after.runs
            }
            _ => false,
        }
    }
}

/// An open /proc file's whole text, regenerated by reading from offset 0
/// (at most `buffer`'s size: these files are far shorter).
///
/// One read: `stat`, `schedstat` and `syscall` are seq files, generated
/// whole on each read from offset 0, and a read returns all of the text
/// that fits. Reading on until the `0` that marks the end would double the
/// `pread`s of every view (two files per thread, two or three views per
/// sample: docs/performance.md).
fn pread_small<'a>(file: &fs::File, buffer: &'a mut [u8]) -> Option<&'a str> {
    use std::os::unix::fs::FileExt;
    let filled = file.read_at(buffer, 0).ok()?;
    (filled > 0).then(|| std::str::from_utf8(&buffer[..filled]).ok())?
}

/// A small /proc file as text, read into `buffer` (at most its size: a
/// stat line is far shorter) in one read, as [`pread_small`] does; `None`
/// if it cannot be read.
pub(super) fn read_small<'a>(path: &str, buffer: &'a mut [u8]) -> Option<&'a str> {
    let file = fs::File::open(path).ok()?;
    pread_small(&file, buffer)
}

fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let runtime = fields.next()??;
    let _run_delay = fields.next()??;
    let switches_in = fields.next()??;
    Some((switches_in, runtime))
}

/// Decide the kernel tid of one Python thread.
///
/// `reported` is what py-spy read (3.11+); `pthread` is Python's thread id;
/// `known` the tid this `pthread` had in the previous sample. A `pthread_t`
/// is reused only after its thread exited, and an exited thread's tid is no
/// longer listed, so a known tid still listed is still right, and the
/// `struct pthread` need not be read again.
pub fn resolve_tid<M: ProcessMemory>(
    memory: &M,
    tasks: &TaskList,
    reported: Option<u64>,
    pthread: u64,
    known: Option<u32>,
) -> Option<u32> {
    let reported = reported.and_then(|t| u32::try_from(t).ok());
    if let Some(tid) = reported
        .into_iter()
        .chain(known)
        .find(|tid| tasks.contains(*tid))
    {
        return Some(tid);
    }
    let candidates = [reported, tid_from_pthread(memory, pthread)];
    // A tid the host lists as is; else a namespace-local one, translated.
    candidates
        .iter()
        .flatten()
        .find(|tid| tasks.contains(**tid))
        .copied()
        .or_else(|| {
            candidates
                .iter()
                .flatten()
                .find_map(|tid| tasks.host_tid(*tid))
        })
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

/// The state letter of a `stat` line; the command name may contain spaces and
/// parentheses, so the state is the first field after the *last* `)`.
pub(super) fn scheduler_state(stat: &str) -> Option<char> {
    fields_after_name(stat)?.next()?.chars().next()
}

/// The task's flags (`PF_*`), the ninth field of a stat line.
pub(super) fn task_flags(stat: &str) -> Option<u64> {
    // state, ppid, pgrp, session, tty_nr, tpgid, flags
    fields_after_name(stat)?.nth(6)?.parse().ok()
}

/// A stat line's fields after the command name, which may contain spaces
/// and parentheses (the last `)` ends it).
fn fields_after_name(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(runnable: bool, runs: Option<(u64, u64)>) -> SchedMark {
        SchedMark { runnable, runs }
    }

    fn list(marks: &[(u32, SchedMark)]) -> TaskList {
        TaskList {
            pid: 0,
            marks: marks.iter().copied().collect(),
            namespace_tids: std::cell::OnceCell::new(),
        }
    }

    #[test]
    fn only_a_thread_that_provably_slept_is_quiet() {
        let asleep = mark(false, Some((7, 1000)));
        let before = list(&[
            (1, asleep),
            (2, asleep),
            (3, asleep),
            (4, mark(true, Some((5, 9)))),
            (5, mark(false, None)),
        ]);
        let after = list(&[
            (1, asleep),                       // untouched
            (2, mark(false, Some((8, 1200)))), // woke, ran, slept again
            (3, mark(true, Some((7, 1000)))),  // runnable now
            (4, mark(true, Some((5, 9)))),     // on a CPU throughout: counters lag
            (5, mark(false, None)),            // no schedstat: cannot tell
        ]);
        let quiet: Vec<u32> = (1..=6)
            .filter(|tid| before.stayed_asleep(&after, *tid))
            .collect();
        assert_eq!(quiet, [1]);
    }

    #[test]
    fn kept_files_follow_the_threads() {
        // Other tests' threads come and go in this process: follow one of ours.
        let gettid = || u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or(0);
        let mut reader = TaskReader::new(std::process::id());
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let (told, tid) = std::sync::mpsc::channel::<u32>();
        let helper = std::thread::spawn(move || {
            let _ = told.send(gettid());
            let _ = parked.recv();
        });
        let helper_tid = tid.recv().unwrap_or(0);
        let with_helper = reader.read();
        assert!(with_helper.contains(helper_tid));
        assert_eq!(reader.open_count(), with_helper.len());
        // The same open files give fresh values: this thread, reading, runs.
        let again = reader.read();
        assert_eq!(again.runnable(gettid()), Some(true));
        drop(release);
        let _ = helper.join();
        let after = reader.read();
        assert!(!after.contains(helper_tid));
        assert_eq!(
            reader.open_count(),
            after.len(),
            "the helper's files are closed"
        );
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat("613771 0 1\n"), Some((1, 613771)));
        assert_eq!(parse_schedstat("x"), None);
    }

    #[test]
    fn flags_survive_hostile_command_names() {
        assert_eq!(
            task_flags("42 (a) b) R 1 2 3 0 -1 4202560 5 0"),
            Some(4_202_560)
        );
        assert_eq!(
            task_flags("42 (a) 1 2 3 4 5 6 7 ) R 1 2 3 0 -1 4 5"),
            Some(4)
        );
        assert_eq!(
            task_flags("42 (kworker/0:1) I 2 0 0 0 -1 69238880 0"),
            Some(69_238_880)
        );
        assert_eq!(task_flags("garbage"), None);
    }

    #[test]
    fn state_survives_hostile_command_names() {
        assert_eq!(scheduler_state("12 (python) S 1 2"), Some('S'));
        assert_eq!(scheduler_state("12 (a) R (b) R 1"), Some('R'));
        assert_eq!(scheduler_state("12 (x) ) D 1"), Some('D'));
        assert_eq!(scheduler_state("garbage"), None);
    }
}

//! The only code that touches a target process: attach with py-spy, read
//! every Python thread's stack, and hand back a [`Snapshot`].
//!
//! Read-only by construction: memory is read with `process_vm_readv` (through
//! py-spy/remoteprocess); nothing is written or injected. In the default
//! *validated nonblocking* mode the target is never stopped: the thread list is
//! read until every thread's stack is known consistent — the thread provably
//! did not run during the read (its scheduler counters did not move), or two
//! consecutive reads agree on its code path — at most [`MAX_READS`] reads.
//! Threads that keep changing are running code, are reported from the last
//! read, and are flagged `stack_consistent: false`. `--blocking` uses py-spy's ptrace lock instead
//! (one consistent read, the whole process paused meanwhile); the kernel
//! releases that lock if zhw dies, so the target is never left stopped.
//!
//! Beyond stacks, zhw reads a few Python objects itself ([`objects`], bounded,
//! per-version [`layout`]s): thread names from `threading._active` on every
//! sample, and — for the busy workers classification points at — the request
//! each serves and, with `--locals`, their frames' local variables
//! ([`Sampler::read_details`]). Nothing else in zhw touches the target.

mod activity;
mod error;
mod frames;
mod layout;
mod names;
mod objects;
mod os_threads;
mod permissions;
mod process_facts;
mod requests;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use py_spy::config::LockingStrategy;
use py_spy::{Config, PythonSpy, StackTrace};

pub use error::AttachError;
pub use permissions::PtraceContext;
pub(crate) use permissions::status_field;
pub use process_facts::start_ticks;

use crate::classify::RequestLocation;
use crate::model::{
    Activity, ElidedFrames, Frame, Local, ProcessFacts, RequestInfo, SamplingFacts, Snapshot,
    ThreadSample,
};
use crate::redact::{MASK, Redactor};
use activity::{GilLocation, Observed, Wait};
use frames::{WalkedFrame, Walker};
use layout::Layout;
use names::NameCache;
use objects::{Limits, ReadError, Reader};
use os_threads::{SchedMark, TaskList, TaskReader};

/// Upper bound on full reads of the thread list in one validated sample.
pub const MAX_READS: u32 = 4;
/// Retries of a read that failed outright (a torn frame chain mid-change).
const MAX_READ_RETRIES: u32 = 3;
/// How the patched reader (vendor/py-spy) says a mapped library is gone from disk.
const DELETED_LIBRARY: &str = " was deleted or replaced on disk after the process mapped it";

// The model documents the reader's bounds; keep them in step.
const _: () = assert!(
    py_spy::stack_trace::KEEP_INNER_FRAMES + py_spy::stack_trace::KEEP_OUTER_FRAMES
        == crate::model::KEPT_FRAMES
);
const _: () = assert!(py_spy::stack_trace::MAX_FRAME_WALK == crate::model::MAX_FRAME_WALK);

/// How to read the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleOptions {
    /// Pause the whole process with ptrace for each read (py-spy's default).
    pub blocking: bool,
}

/// What to read beyond stacks for the threads that need it (busy workers).
#[derive(Debug, Clone, Copy)]
pub struct DetailOptions {
    /// Read the request each one serves (method, path, query, host, client).
    pub requests: bool,
    /// Read their frames' local variables (`--locals`).
    pub locals: bool,
    /// Names whose values are replaced by `***`.
    pub redactor: &'static Redactor,
}

impl Default for DetailOptions {
    fn default() -> Self {
        static DEFAULT: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        DetailOptions {
            requests: true,
            locals: false,
            redactor: DEFAULT.get_or_init(Redactor::default),
        }
    }
}

/// An attached target: py-spy's handle, kept across samples so symbol
/// discovery (the expensive part of attaching) happens once.
pub struct Sampler {
    pid: u32,
    spy: PythonSpy,
    options: SampleOptions,
    /// Object layout of the target's Python; `None` for a version zhw does
    /// not know, which then gets stacks (and py-spy's thread names) only.
    layout: Option<Layout>,
    names: NameCache,
    /// The last read of the thread list, with the scheduler's view taken
    /// just before it: a thread that has not run since keeps that stack.
    last_read: Option<LastRead>,
    /// Where the target's GIL lives (to tell a GIL wait from a lock wait).
    gil: GilLocation,
    /// Each blocked thread's activity, by kernel tid, with the scheduler
    /// counters seen before its `syscall` file was read: a thread whose
    /// counters have not moved since has not run, so it sits in the same
    /// system call and the file need not be read again.
    waits: HashMap<u32, (SchedMark, Activity, String)>,
    /// The scheduler's view of the target's threads, files kept open.
    tasks: TaskReader,
    /// Kernel tid of each Python thread (`pthread_t`) in the last read.
    known_tids: HashMap<u64, u32>,
    /// The scheduler's view right after the last sample's stack read.
    last_tasks: TaskList,
    /// The request each busy worker served when last read, with the
    /// scheduler counters seen before that read: a worker whose counters
    /// have not moved since has not run, so its frames and the request in
    /// them are the same, and are not walked again.
    requests_read: HashMap<u64, (SchedMark, Option<RequestInfo>)>,
}

/// One read of the thread list and the scheduler's view just before it.
struct LastRead {
    before: TaskList,
    traces: Vec<StackTrace>,
    tids: Vec<Option<u32>>,
}

impl Sampler {
    /// Attach to `pid`: check it exists and is readable, then find its interpreter.
    pub fn attach(pid: u32, options: SampleOptions) -> Result<Sampler, AttachError> {
        preflight(pid)?;
        let config = Config {
            blocking: if options.blocking {
                LockingStrategy::Lock
            } else {
                LockingStrategy::NonBlocking
            },
            // zhw reads names itself (every version, renamed threads too).
            collect_thread_names: false,
            ..Config::default()
        };
        let raw_pid =
            remoteprocess::Pid::try_from(pid).map_err(|_| AttachError::NoSuchProcess { pid })?;
        let mut spy = PythonSpy::new(raw_pid, &config).map_err(|err| diagnose(pid, &err))?;
        let layout = Layout::for_version(spy.version.major, spy.version.minor);
        if layout.is_none() {
            spy.config.collect_thread_names = true;
        }
        // zhw reads each thread's scheduler state itself (TaskList).
        spy.skip_thread_activity = true;
        let gil = GilLocation::of(&spy);
        Ok(Sampler {
            pid,
            spy,
            options,
            layout,
            names: NameCache::default(),
            last_read: None,
            gil,
            waits: HashMap::new(),
            tasks: TaskReader::new(pid),
            known_tids: HashMap::new(),
            last_tasks: TaskList::default(),
            requests_read: HashMap::new(),
        })
    }

    /// The target's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Read every thread once (validated unless blocking) into a Snapshot.
    pub fn sample(&mut self) -> Result<Snapshot, AttachError> {
        let started = Instant::now();
        let (pass, before, consistent, reads) = if self.options.blocking {
            // ptrace cannot pause what is already stopped; say so up front.
            if process_is_stopped(self.pid) {
                return Err(stopped_for_blocking(self.pid));
            }
            let traces = self.read_once()?;
            (self.finish_pass(traces), None, None, 1)
        } else {
            let (pass, before, consistent, reads) = self.read_validated()?;
            (pass, Some(before), Some(consistent), reads)
        };
        let duration = started.elapsed();

        let mut warnings = Vec::new();
        let mut threads: Vec<ThreadSample> = pass
            .traces
            .iter()
            .zip(&pass.tids)
            .map(|(trace, &os_thread_id)| ThreadSample {
                thread_id: trace.thread_id,
                os_thread_id,
                name: trace.thread_name.clone(),
                on_cpu: os_thread_id.and_then(|tid| pass.tasks.runnable(tid)),
                holds_gil: trace.owns_gil,
                activity: None,
                activity_detail: None,
                is_main: os_thread_id == Some(self.pid),
                stack_consistent: consistent
                    .as_ref()
                    .is_none_or(|set| set.contains(&trace.thread_id)),
                frames: trace.frames.iter().map(convert_frame).collect(),
                elided: (trace.frames_elided > 0).then(|| ElidedFrames {
                    after: py_spy::stack_trace::KEEP_INNER_FRAMES.min(trace.frames.len()),
                    count: trace.frames_elided as u64,
                }),
                frames_cut: trace.frames_cut,
                request: None,
            })
            .collect();
        self.read_names(&mut threads, &mut warnings);
        // After a fork, a 2.7 child keeps the parent's thread states though
        // only the forking thread exists: more Python threads than kernel
        // threads, and the extra ones match none. Those are dropped.
        if threads.len() > pass.tasks.len()
            && !pass.tasks.is_empty()
            && threads.iter().any(|t| t.os_thread_id.is_some())
        {
            let before = threads.len();
            threads.retain(|t| t.os_thread_id.is_some());
            warnings.push(format!(
                "dropped {} Python thread states with no kernel thread (threads that just \
                 ended, or left behind by fork); the process has {} kernel thread{}",
                before - threads.len(),
                pass.tasks.len(),
                if pass.tasks.len() == 1 { "" } else { "s" }
            ));
        }
        mark_main_thread(&mut threads);
        // Threads that never ran Python have no thread state: say they exist.
        let native = pass.tasks.len().saturating_sub(threads.len());
        if native > 0 && !pass.tasks.is_empty() {
            warnings.push(format!(
                "{native} of the process's {} kernel threads run no Python code (native \
                 threads): not shown",
                pass.tasks.len()
            ));
        }
        if let Some(warning) = event_loop_warning(&threads) {
            warnings.push(warning);
        }

        let unmapped = threads.iter().filter(|t| t.os_thread_id.is_none()).count();
        if unmapped > 0 {
            warnings.push(format!(
                "{unmapped} of {} Python threads could not be matched to a kernel thread; \
                 their CPU state is unknown",
                threads.len()
            ));
        }
        let stopped = process_is_stopped(self.pid);
        self.read_activity(&mut threads, &pass.tasks, stopped);
        // Kept, not copied: the next sample offers these stacks again.
        if let Some(before) = before {
            self.last_read = Some(LastRead {
                before,
                traces: pass.traces,
                tids: pass.tids,
            });
        }
        self.last_tasks = pass.tasks;
        if stopped {
            warnings.push(
                "the process is stopped (SIGSTOP, job control or a debugger): no thread can run \
                 until it is continued"
                    .to_string(),
            );
        }
        for thread in threads.iter().filter(|t| !t.stack_consistent) {
            warnings.push(format!(
                "thread {:#x}: stack changed on each of {reads} reads; showing the last read",
                thread.thread_id
            ));
        }

        Ok(Snapshot {
            pid: self.pid,
            python_version: self.spy.version.to_string(),
            threads,
            process: ProcessFacts {
                stopped,
                ..process_facts::read(self.pid)
            },
            sampling: SamplingFacts {
                mode: if self.options.blocking {
                    "blocking".into()
                } else {
                    "nonblocking-validated".into()
                },
                reads,
                duration_seconds: duration.as_secs_f64(),
                details_seconds: 0.0,
            },
            warnings,
        })
    }

    /// Decide each thread's activity (running, waiting for the GIL, or
    /// blocked, and on what) from the scheduler view taken right after the
    /// read, the GIL holder, and — for threads not runnable — the system
    /// call each sits in. A thread with no known kernel tid gets none,
    /// unless the GIL or a stopped process tells.
    fn read_activity(&mut self, threads: &mut [ThreadSample], tasks: &TaskList, stopped: bool) {
        let gil = self.gil.ranges(&self.spy.process);
        let mut buffer = [0u8; 256];
        let mut waits = HashMap::with_capacity(self.waits.len());
        for thread in threads.iter_mut() {
            let listed = thread
                .os_thread_id
                .and_then(|tid| Some((tid, tasks.mark(tid)?)));
            if listed.is_none() && !stopped && !thread.holds_gil {
                continue;
            }
            // Only a blocked thread's system call is worth reading.
            let blocked =
                listed.filter(|(_, mark)| !stopped && !thread.holds_gil && !mark.runnable);
            let (activity, detail) = match blocked {
                Some((tid, mark)) => {
                    let known = self
                        .waits
                        .get(&tid)
                        .filter(|(then, ..)| mark.runs.is_some() && *then == mark)
                        .map(|(_, activity, detail)| (*activity, detail.clone()));
                    let decided = known.unwrap_or_else(|| {
                        let wait = activity::read_wait(self.pid, tid, &mut buffer);
                        let observed = Observed {
                            process_stopped: false,
                            holds_gil: false,
                            runnable: false,
                            wait,
                        };
                        activity::decide(observed, &gil)
                    });
                    // Only a wait is remembered: a thread found running
                    // may be anywhere by the next sample.
                    if decided.0 == Activity::Waiting {
                        waits.insert(tid, (mark, decided.0, decided.1.clone()));
                    }
                    decided
                }
                None => {
                    let observed = Observed {
                        process_stopped: stopped,
                        holds_gil: thread.holds_gil,
                        runnable: listed.map_or(thread.on_cpu == Some(true), |(_, m)| m.runnable),
                        wait: Wait::Unknown,
                    };
                    activity::decide(observed, &gil)
                }
            };
            thread.activity = Some(activity);
            thread.activity_detail = Some(detail);
        }
        self.waits = waits;
    }

    /// Put the names `threading` gives the threads on them (one retry from
    /// scratch if the cached lookup fails: the module may have changed).
    /// Read afresh on every sample: another thread may rename a sleeping one.
    fn read_names(&mut self, threads: &mut [ThreadSample], warnings: &mut Vec<String>) {
        let Some(layout) = &self.layout else {
            return;
        };
        // A name costs a handful of reads per thread: the budget grows with
        // the thread count (itself bounded by the attach layer), so 4,000
        // threads keep their names and a corrupt dict still cannot loop.
        let defaults = Limits::default();
        let limits = Limits {
            reads: defaults.reads.saturating_add(
                u32::try_from(threads.len().saturating_mul(16)).unwrap_or(u32::MAX),
            ),
            bytes: defaults
                .bytes
                .saturating_add(threads.len().saturating_mul(4096)),
            ..defaults
        };
        let reader = Reader::new(&self.spy.process, layout, limits);
        reader.py2_unicode_width.set(self.names.unicode_width);
        let modules = self.spy.addresses.imports_modules_address;
        let expected = threads.len();
        let mut result = names::thread_names(&reader, modules, &mut self.names, expected);
        if result.is_err() {
            self.names = NameCache::default();
            reader.reset_budget();
            result = names::thread_names(&reader, modules, &mut self.names, expected);
        }
        match result {
            Ok(names) => {
                for thread in threads {
                    if let Some(name) = names.get(&thread.thread_id) {
                        thread.name = Some(name.clone());
                    }
                }
            }
            Err(err) => warnings.push(format!("thread names could not be read: {err}")),
        }
    }

    /// For the threads in `thread_ids` (the busy workers), read the request
    /// each serves from the first of `locations` that holds one, and with
    /// `options.locals` their frames' local variables, into `snapshot`.
    ///
    /// A second, targeted read after the stack sample, without pausing the
    /// target (in either mode): frames are walked from the thread state
    /// again, so a thread that finished its request in between simply has
    /// none. Locals are attached only when the walk agrees with the sampled
    /// stack. Partial failures become warnings.
    pub fn read_details(
        &mut self,
        snapshot: &mut Snapshot,
        thread_ids: &[u64],
        locations: &[&RequestLocation],
        options: DetailOptions,
    ) {
        if thread_ids.is_empty() || !(options.requests || options.locals) {
            return;
        }
        let started = Instant::now();
        self.read_details_now(snapshot, thread_ids, locations, options);
        snapshot.sampling.details_seconds = started.elapsed().as_secs_f64();
    }

    fn read_details_now(
        &mut self,
        snapshot: &mut Snapshot,
        thread_ids: &[u64],
        locations: &[&RequestLocation],
        options: DetailOptions,
    ) {
        let Some(layout) = &self.layout else {
            snapshot.warnings.push(format!(
                "request info and locals are not read on Python {}: zhw does not know its \
                 object layout",
                snapshot.python_version
            ));
            return;
        };
        let mut warnings = Vec::new();
        // Requests of workers that have not run since they were read are
        // still the same (not with --locals, whose values come with frames).
        let mut read_now = HashMap::new();
        let mut thread_ids: Vec<u64> = thread_ids.to_vec();
        if options.requests && !options.locals {
            thread_ids.retain(|thread_id| {
                let Some(sample) = snapshot
                    .threads
                    .iter_mut()
                    .find(|t| t.thread_id == *thread_id)
                else {
                    return false;
                };
                let mark = sample
                    .os_thread_id
                    .and_then(|tid| self.last_tasks.mark(tid));
                let unchanged = self.requests_read.remove(thread_id).filter(|(then, _)| {
                    mark.is_some_and(|now| !now.runnable && now.runs.is_some() && now == *then)
                });
                match unchanged {
                    Some((then, request)) => {
                        sample.request = request.clone();
                        read_now.insert(*thread_id, (then, request));
                        false
                    }
                    None => true,
                }
            });
        }
        if thread_ids.is_empty() {
            self.requests_read = read_now;
            return;
        }
        // Never paused, not even with --blocking: this read is built for a
        // running target (bounded, torn reads retried), and a second ptrace
        // stop would double the stall --blocking imposes (tens of ms at 512
        // threads, mostly stopping and resuming them).
        let reader = Reader::new(&self.spy.process, layout, Limits::default());
        reader.py2_unicode_width.set(self.names.unicode_width);
        let walker = Walker::new(&reader);
        let states = match walker.thread_states(self.spy.addresses.interpreter_address) {
            Ok(states) => states,
            Err(err) => {
                snapshot
                    .warnings
                    .push(format!("requests and locals not read: thread list: {err}"));
                self.requests_read = read_now;
                return;
            }
        };
        for &thread_id in &thread_ids {
            let Some(sample) = snapshot
                .threads
                .iter_mut()
                .find(|t| t.thread_id == thread_id)
            else {
                continue;
            };
            // Gone since the stack read: nothing to say about it.
            let Some(&(_, state)) = states.iter().find(|(id, _)| *id == thread_id) else {
                continue;
            };
            // A running thread can change its frames under the walk: one
            // retry of a torn read (a spent budget is final).
            let mut walked = None;
            for attempt in 1..=2 {
                reader.reset_budget();
                let result = walker.frames(state).and_then(|frames| {
                    let request = if options.requests {
                        requests::find(
                            &walker,
                            &frames,
                            locations.iter().copied(),
                            options.redactor,
                        )?
                    } else {
                        None
                    };
                    Ok((frames, request))
                });
                match result {
                    Ok(done) => {
                        walked = Some(done);
                        break;
                    }
                    Err(err) if attempt == 2 || err == ReadError::Budget => {
                        warnings.push(format!("thread {thread_id:#x}: request not read: {err}"));
                        break;
                    }
                    Err(_) => {}
                }
            }
            let Some((frames, request)) = walked else {
                continue;
            };
            if let Some(mark) = sample
                .os_thread_id
                .and_then(|tid| self.last_tasks.mark(tid))
                && !mark.runnable
                && !options.locals
            {
                read_now.insert(thread_id, (mark, request.clone()));
            }
            sample.request = request;
            if options.locals {
                reader.reset_budget();
                if let Err(why) = read_locals(&walker, &frames, sample, options.redactor) {
                    warnings.push(format!("thread {thread_id:#x}: locals not shown: {why}"));
                }
            }
        }
        snapshot.warnings.extend(warnings);
        self.requests_read = read_now;
    }

    /// Read the thread list without stopping the target until every
    /// thread's stack is known to be consistent: either the thread provably
    /// did not run during the read (scheduler counters unchanged, asleep
    /// before and after), or two consecutive reads agree on its code path.
    /// In a server whose workers mostly wait, one read suffices. Returns the
    /// last read with the scheduler's view taken just before it.
    fn read_validated(&mut self) -> Result<(Pass, TaskList, HashSet<u64>, u32), AttachError> {
        let mut reads = 0;
        // The view taken right after one read is also the view before the next.
        let mut next_before: Option<TaskList> = None;
        loop {
            let before = next_before.take().unwrap_or_else(|| self.tasks.read());
            let mut previous = self.offer_unchanged_stacks(&before);
            let offered: HashSet<u64> = self.spy.reusable_stacks.keys().copied().collect();
            let traces = self.read_once()?;
            previous.extend(std::mem::take(&mut self.spy.unused_stacks));
            let pass = self.finish_pass(traces);
            reads += 1;
            let consistent: HashSet<u64> = pass
                .traces
                .iter()
                .zip(&pass.tids)
                .filter(|(now, tid)| {
                    tid.is_some_and(|tid| before.stayed_asleep(&pass.tasks, tid))
                        || (reads > 1
                            && match previous.get(&now.thread_id) {
                                Some(then) => same_code_path(then, now),
                                // Taken by the read: the very stack the
                                // previous read found.
                                None => offered.contains(&now.thread_id),
                            })
                })
                .map(|(trace, _)| trace.thread_id)
                .collect();
            if consistent.len() == pass.traces.len() || reads >= MAX_READS {
                return Ok((pass, before, consistent, reads));
            }
            next_before = Some(pass.tasks.clone());
            self.last_read = Some(LastRead {
                before,
                traces: pass.traces,
                tids: pass.tids,
            });
        }
    }

    /// Offer py-spy the stacks of the last read whose threads provably did
    /// not run since the scheduler view taken before it: not runnable then
    /// or `now`, never put on a CPU in between, no run time added. A thread
    /// that did not run cannot have changed its stack, so its frames are not
    /// walked again (py-spy still checks that its innermost frame is the
    /// same). In a server whose workers wait, this is most of the cost of a
    /// sample saved (docs/performance.md).
    ///
    /// The stacks are moved, not copied; the ones not offered are returned
    /// (with the offers py-spy does not take, they are what the next read
    /// of the same sample is compared with).
    fn offer_unchanged_stacks(&mut self, now: &TaskList) -> HashMap<u64, StackTrace> {
        let mut offers = HashMap::new();
        let mut kept = HashMap::new();
        if let Some(last) = self.last_read.take() {
            for (trace, tid) in last.traces.into_iter().zip(last.tids) {
                if tid.is_some_and(|tid| last.before.stayed_asleep(now, tid)) {
                    offers.insert(trace.thread_id, trace);
                } else {
                    kept.insert(trace.thread_id, trace);
                }
            }
        }
        self.spy.reusable_stacks = offers;
        kept
    }

    /// List the kernel's threads right after a read and match each Python
    /// thread to its kernel thread.
    fn finish_pass(&mut self, traces: Vec<StackTrace>) -> Pass {
        let tasks = self.tasks.read();
        let tids: Vec<Option<u32>> = traces
            .iter()
            .map(|trace| {
                os_threads::resolve_tid(
                    &self.spy.process,
                    &tasks,
                    trace.os_thread_id,
                    trace.thread_id,
                    self.known_tids.get(&trace.thread_id).copied(),
                )
            })
            .collect();
        self.known_tids.clear();
        self.known_tids.extend(
            traces
                .iter()
                .zip(&tids)
                .filter_map(|(trace, tid)| Some((trace.thread_id, (*tid)?))),
        );
        Pass {
            traces,
            tids,
            tasks,
        }
    }

    fn read_once(&mut self) -> Result<Vec<StackTrace>, AttachError> {
        let mut attempt = 0;
        loop {
            match self.spy.get_stack_traces() {
                Ok(traces) => return Ok(traces),
                Err(err) => {
                    attempt += 1;
                    if !process_alive(self.pid) {
                        return Err(AttachError::Exited { pid: self.pid });
                    }
                    if attempt > MAX_READ_RETRIES {
                        return Err(diagnose(self.pid, &err));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Put each walked frame's locals on the sampled frame it corresponds to,
/// if the walk still sees the sampled stack.
fn read_locals<P: remoteprocess::ProcessMemory>(
    walker: &Walker<'_, '_, P>,
    walked: &[WalkedFrame],
    sample: &mut ThreadSample,
    redactor: &Redactor,
) -> Result<(), &'static str> {
    let same = walked.len() == sample.frames.len()
        && walked
            .iter()
            .zip(&sample.frames)
            .all(|(w, f)| w.code.function == f.function && w.code.file == f.file);
    if !same {
        return Err("its stack changed between the stack read and the locals read");
    }
    for (frame, target) in walked.iter().zip(sample.frames.iter_mut()) {
        let mut locals = Vec::with_capacity(frame.code.locals.len());
        for (name, slot) in &frame.code.locals {
            let repr = if redactor.is_secret(name) {
                MASK.to_string()
            } else {
                match walker.local(frame, *slot) {
                    Ok(Some(addr)) => walker.reader.repr(addr, redactor),
                    // Not assigned yet, or deleted.
                    Ok(None) => continue,
                    Err(ReadError::Budget) => "…".to_string(),
                    Err(_) => "<unreadable>".to_string(),
                }
            };
            locals.push(Local {
                name: name.to_string(),
                repr,
            });
        }
        target.locals = Some(locals);
    }
    Ok(())
}

/// One read of the thread list with the kernel's view right after it.
struct Pass {
    traces: Vec<StackTrace>,
    /// Kernel tid of each trace, where established.
    tids: Vec<Option<u32>>,
    tasks: TaskList,
}

/// Two reads of one thread show the same code path: same functions in the
/// same files at the same depth. Line numbers may differ — a thread looping
/// in one function is stable even though its line moves.
fn same_code_path(a: &StackTrace, b: &StackTrace) -> bool {
    a.frames.len() == b.frames.len()
        && a.frames_elided == b.frames_elided
        && a.frames_cut == b.frames_cut
        && a.frames
            .iter()
            .zip(&b.frames)
            .all(|(x, y)| x.name == y.name && x.filename == y.filename)
}

fn convert_frame(frame: &py_spy::Frame) -> Frame {
    Frame {
        function: frame.name.clone(),
        file: frame.filename.clone(),
        line: u32::try_from(frame.line).unwrap_or(0),
        locals: None,
    }
}

/// Where no kernel tid identified the main thread, fall back to its name,
/// then to the interpreter's oldest thread state (CPython links new thread
/// states at the head of the list, so the main thread is last).
fn mark_main_thread(threads: &mut [ThreadSample]) {
    if threads.iter().any(|t| t.is_main) {
        return;
    }
    if let Some(main) = threads
        .iter_mut()
        .find(|t| t.name.as_deref() == Some("MainThread"))
    {
        main.is_main = true;
    } else if let Some(last) = threads.last_mut() {
        last.is_main = true;
    }
}

/// Event loops that run many requests on one OS thread (asyncio, gevent,
/// eventlet), by a frame of theirs: zhw sees each thread's current stack
/// only, so the report says what it cannot count.
const EVENT_LOOPS: &[(&str, &str)] = &[
    ("asyncio/base_events.py", "asyncio"),
    ("gevent/hub.py", "gevent"),
    ("gevent/_hub_primitives.py", "gevent"),
    ("eventlet/hubs/hub.py", "eventlet"),
];

/// A warning naming the threads that run an event loop, if any.
fn event_loop_warning(threads: &[ThreadSample]) -> Option<String> {
    let mut loops: Vec<&str> = Vec::new();
    let mut count = 0;
    for thread in threads {
        let found = thread.frames.iter().find_map(|frame| {
            EVENT_LOOPS
                .iter()
                .find(|(file, _)| frame.file.ends_with(file))
                .map(|(_, name)| *name)
        });
        if let Some(name) = found {
            count += 1;
            if !loops.contains(&name) {
                loops.push(name);
            }
        }
    }
    (count > 0).then(|| {
        format!(
            "{count} thread{} run{} an event loop ({}): the requests or tasks it interleaves \
             are not seen one by one, only what runs at the moment of the sample",
            if count == 1 { "" } else { "s" },
            if count == 1 { "s" } else { "" },
            loops.join(", ")
        )
    })
}

/// Whether the process still runs. A zombie main thread does not end a
/// process whose other threads still run (the main thread called
/// `pthread_exit`), so those are looked at too.
fn process_alive(pid: u32) -> bool {
    match scheduler_state(&format!("/proc/{pid}/stat")) {
        Some('Z') | Some('X') => !every_thread(pid, |stat| {
            matches!(os_threads::scheduler_state(stat), Some('Z' | 'X') | None)
        }),
        Some(_) => true,
        None => false,
    }
}

/// Whether every thread of the process (its /proc stat line) is `leaving`;
/// a thread gone since it was listed counts as leaving, and so does a
/// process whose thread list cannot be read any more.
fn every_thread(pid: u32, leaving: impl Fn(&str) -> bool) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        fs::read_to_string(task.path().join("stat")).map_or(true, |stat| leaving(&stat))
    })
}

/// `PF_EXITING` in a task's flags: it has begun to exit.
const PF_EXITING: u64 = 0x4;
/// `PF_KTHREAD` in a task's flags: a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The flags of the process's main task; `None` once it is gone.
fn task_flags(pid: u32) -> Option<u64> {
    os_threads::task_flags(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether the process is on its way out though not yet gone: for that
/// moment its maps are empty and a read fails, and it must be reported as
/// exited, not as "not a Python process". It is when its main task has
/// begun to exit or has no memory left (which only a kernel thread has
/// otherwise), or, the main task being a zombie already, every other
/// thread is exiting too (a main thread that called `pthread_exit` leaves
/// a zombie beside threads that run on).
fn process_exiting(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let flags = os_threads::task_flags(&stat).unwrap_or(0);
    if flags & PF_KTHREAD != 0 {
        return false;
    }
    if !matches!(os_threads::scheduler_state(&stat), Some('Z' | 'X')) {
        return flags & PF_EXITING != 0
            || fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| maps.is_empty());
    }
    every_thread(pid, |stat| {
        matches!(os_threads::scheduler_state(stat), Some('Z' | 'X'))
            || os_threads::task_flags(stat).is_some_and(|flags| flags & PF_EXITING != 0)
    })
}

/// The state letter of a /proc stat file (after the command name, which may
/// contain spaces and parentheses).
fn scheduler_state(stat_path: &str) -> Option<char> {
    os_threads::scheduler_state(&fs::read_to_string(stat_path).ok()?)
}

/// A `/proc/PID/status` field's first value.
fn status_value(pid: u32, key: &str) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    permissions::status_field(&status, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Start address of the first readable mapping in a /proc/PID/maps text.
fn first_readable_address(maps: &str) -> Option<usize> {
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        if !perms.starts_with('r') {
            return None;
        }
        usize::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

/// Cheap checks that give precise errors before py-spy's generic ones.
fn preflight(pid: u32) -> Result<(), AttachError> {
    if pid == 0 || !process_alive(pid) {
        return Err(AttachError::NoSuchProcess { pid });
    }
    // /proc/TID exists (hidden) for every thread; only a thread group leader is a process.
    if let Some(process) = status_value(pid, "Tgid:").filter(|tgid| *tgid != pid) {
        return Err(AttachError::Failed {
            pid,
            detail: format!(
                "{pid} is a thread of process {process}, not a process; check {process}"
            ),
        });
    }
    // Read one word of the process's memory the way sampling will
    // (process_vm_readv: ptrace-attach rights, which CAP_SYS_PTRACE grants
    // whatever the file modes under /proc say).
    let maps = match fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => maps,
        Err(err) if err.kind() == ErrorKind::PermissionDenied => {
            return Err(permission_denied(pid));
        }
        Err(_) if !process_alive(pid) => return Err(AttachError::NoSuchProcess { pid }),
        Err(err) => {
            return Err(AttachError::Failed {
                pid,
                detail: err.to_string(),
            });
        }
    };
    let Some(address) = first_readable_address(&maps) else {
        return Err(match task_flags(pid) {
            Some(flags) if flags & PF_KTHREAD != 0 => AttachError::NotPython {
                pid,
                detail: "it has no user memory: a kernel thread".into(),
            },
            // A user process drops its memory on its way out.
            Some(_) => AttachError::Exited { pid },
            None => AttachError::NoSuchProcess { pid },
        });
    };
    let Ok(raw_pid) = remoteprocess::Pid::try_from(pid) else {
        return Err(AttachError::NoSuchProcess { pid });
    };
    let memory = remoteprocess::Process::new(raw_pid).map_err(|err| AttachError::Failed {
        pid,
        detail: err.to_string(),
    })?;
    match remoteprocess::ProcessMemory::copy(&memory, address, 8) {
        Ok(_) => {}
        // process_vm_readv says EPERM; remoteprocess's /proc/PID/mem fallback, EACCES.
        Err(remoteprocess::Error::IOError(err))
            if matches!(
                err.raw_os_error(),
                Some(nix::libc::EPERM | nix::libc::EACCES)
            ) =>
        {
            return Err(permission_denied(pid));
        }
        Err(_) if !process_alive(pid) => return Err(AttachError::NoSuchProcess { pid }),
        // Anything else (a mapping that just went away) is left to the sampler.
        Err(_) => {}
    }
    Ok(())
}

fn permission_denied(pid: u32) -> AttachError {
    AttachError::PermissionDenied {
        pid,
        hint: PtraceContext::gather(pid).hint(),
    }
}

/// How long a ptrace stop may last before zhw calls the process stopped.
/// Samplers (py-spy, another `zhw --blocking`, a monitoring system running
/// two checks at once) hold one for milliseconds; a debugger at a breakpoint
/// holds it for as long as its user wants.
const TRACING_STOP_GRACE: Duration = Duration::from_millis(500);

/// Whether the whole process is stopped: `T` (SIGSTOP, job control) at once;
/// `t` (a ptrace stop) only when it outlasts [`TRACING_STOP_GRACE`], so that
/// another tool's brief pause never makes a healthy server CRITICAL.
fn process_is_stopped(pid: u32) -> bool {
    let deadline = Instant::now() + TRACING_STOP_GRACE;
    loop {
        match scheduler_state(&format!("/proc/{pid}/stat")) {
            Some('T') => return true,
            Some('t') if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Some('t') => return true,
            _ => return false,
        }
    }
}

fn stopped_for_blocking(pid: u32) -> AttachError {
    AttachError::Failed {
        pid,
        detail: "the process is stopped (SIGSTOP, job control or a debugger), so --blocking \
                 cannot pause it; read it without --blocking"
            .into(),
    }
}

/// Turn py-spy's error chain into the precise reason, checking the process
/// itself rather than trusting the message: is it gone, refused, or not Python?
fn diagnose(pid: u32, err: &anyhow::Error) -> AttachError {
    if !process_alive(pid) || process_exiting(pid) {
        return AttachError::Exited { pid };
    }
    // The state may already have flickered back from T while ptrace let go:
    // the reader's own words tell a stop it met, too.
    let described = format!("{err:#}");
    if described.contains("PtraceEvent")
        || (process_is_stopped(pid) && described.contains("suspend"))
    {
        return stopped_for_blocking(pid);
    }
    let mut chain: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
    chain.dedup();
    let text = chain.join(": ");
    // The patched reader names a library that was deleted or replaced on disk
    // after the process mapped it and whose mapped copy it may not open.
    if let Some(library) = chain
        .iter()
        .find_map(|cause| cause.split_once(DELETED_LIBRARY).map(|(path, _)| path))
    {
        return AttachError::PermissionDenied {
            pid,
            hint: format!(
                "{library} was deleted or replaced on disk after the process started (an \
                 upgrade?); zhw reads the copy the process still runs through \
                 /proc/{pid}/map_files, which the kernel opens only with CAP_SYS_ADMIN or \
                 CAP_CHECKPOINT_RESTORE: run zhw as root (sudo), add cap_checkpoint_restore to \
                 its file capabilities (Linux 5.9+), or restart the service so it runs the new \
                 library"
            ),
        };
    }
    let refused = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::PermissionDenied)
    }) || text.contains("Permission denied")
        || text.contains("Operation not permitted")
        || text.contains("EPERM");
    if refused {
        let ours = std::process::id();
        if let Some(tracer) = status_value(pid, "TracerPid:").filter(|t| *t != 0 && *t != ours) {
            return AttachError::AlreadyTraced { pid, tracer };
        }
        // Memory was readable (preflight passed), so the refusal may be about
        // the interpreter's files, which py-spy opens to find its symbols.
        if let Some(file) = unreadable_python_file(pid) {
            return AttachError::PermissionDenied {
                pid,
                hint: format!(
                    "zhw may read the process's memory but not its Python library {file}, which \
                     it needs to find the interpreter: run zhw as root (sudo), give the binary \
                     cap_dac_read_search as well as cap_sys_ptrace, or install Python where the \
                     user running zhw can read it"
                ),
            };
        }
        return permission_denied(pid);
    }
    if text.contains("Unsupported version") {
        return AttachError::Unsupported { pid, detail: text };
    }
    if !maps_mention_python(pid) {
        return AttachError::NotPython {
            pid,
            detail: "no python binary or libpython is mapped".into(),
        };
    }
    AttachError::Failed { pid, detail: text }
}

/// A mapped python binary or libpython that zhw cannot open (through the
/// process's root, as py-spy does).
fn unreadable_python_file(pid: u32) -> Option<String> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    // The executable itself is opened through /proc/PID/exe, which needs
    // only ptrace rights; shared libraries are opened by path.
    let executable = fs::read_link(format!("/proc/{pid}/exe")).ok();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| executable.as_deref() != Some(Path::new(path)))
        .filter(|path| {
            Path::new(path)
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.to_ascii_lowercase().contains("python"))
        })
        .find(|path| {
            fs::File::open(format!("/proc/{pid}/root{path}"))
                .is_err_and(|err| err.kind() == ErrorKind::PermissionDenied)
        })
        .map(str::to_string)
}

fn maps_mention_python(pid: u32) -> bool {
    let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return true; // cannot tell; do not claim it is not Python
    };
    maps.lines().any(|line| {
        line.split_whitespace()
            .nth(5)
            .and_then(|path| Path::new(path).file_name())
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.to_ascii_lowercase().contains("python"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PID above the kernel's maximum, so never running.
    const ABSENT: u32 = 4_194_304;

    #[test]
    fn diagnosis_checks_the_process_not_just_the_message() {
        let me = std::process::id();
        let unsupported = anyhow::anyhow!("Unsupported version of Python: 3.99.0");
        assert!(matches!(
            diagnose(me, &unsupported),
            AttachError::Unsupported { .. }
        ));

        let refused = anyhow::Error::new(std::io::Error::from(ErrorKind::PermissionDenied))
            .context("Failed to copy PyThreadState");
        assert!(matches!(
            diagnose(me, &refused),
            AttachError::PermissionDenied { .. }
        ));

        // The test binary maps no python: any other failure means "not Python".
        let other = anyhow::anyhow!("Failed to find python version from target process");
        assert!(matches!(
            diagnose(me, &other),
            AttachError::NotPython { .. }
        ));

        // Whatever the message, a process that is gone has exited.
        assert_eq!(
            diagnose(ABSENT, &unsupported),
            AttachError::Exited { pid: ABSENT }
        );
    }

    /// A free-threaded 3.13t/3.14t (or trace-refs) build is refused as
    /// unsupported, by name, not read with the default build's layouts:
    /// the patched reader compares the object header in the target's
    /// `_Py_DebugOffsets` with its bindings' (vendor/py-spy/ZHW-PATCH.md, 7).
    #[test]
    fn free_threaded_builds_are_unsupported() {
        use py_spy::python_process_info::{UnsupportedBuild, check_object_header};
        assert_eq!(check_object_header("3.14.10", 8, 8), Ok(()));
        let refused = check_object_header("3.14.0", 24, 8).expect_err("free-threaded");
        let err = anyhow::Error::new(refused.clone());
        assert!(err.is::<UnsupportedBuild>());
        match diagnose(std::process::id(), &err) {
            AttachError::Unsupported { detail, .. } => {
                assert!(
                    detail.contains("3.14.0 is a free-threaded (no-GIL)"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((refused.ob_type, refused.expected), (24, 8));
    }

    #[test]
    fn preflight_rejects_absent_and_zero_pids() {
        assert_eq!(
            preflight(ABSENT),
            Err(AttachError::NoSuchProcess { pid: ABSENT })
        );
        assert_eq!(preflight(0), Err(AttachError::NoSuchProcess { pid: 0 }));
        assert_eq!(preflight(std::process::id()), Ok(()));
    }

    #[test]
    fn finds_a_readable_mapping() {
        let maps = "55d0-55d1 ---p 0 00:00 0\n7f00-7f10 r-xp 0 08:01 12 /usr/bin/python3\n";
        assert_eq!(first_readable_address(maps), Some(0x7f00));
        assert_eq!(first_readable_address(""), None);
    }

    #[test]
    fn event_loops_are_named() {
        let with = |file: &str| ThreadSample {
            frames: vec![Frame {
                function: "run_forever".into(),
                file: file.into(),
                line: 1,
                locals: None,
            }],
            ..sample_thread()
        };
        assert_eq!(event_loop_warning(&[sample_thread()]), None);
        let one = event_loop_warning(&[
            with("/usr/lib/python3.11/asyncio/base_events.py"),
            sample_thread(),
        ]);
        assert!(
            one.as_deref()
                .is_some_and(|w| w.starts_with("1 thread runs an event loop (asyncio)")),
            "{one:?}"
        );
        let two = event_loop_warning(&[
            with("/venv/site-packages/gevent/hub.py"),
            with("/venv/site-packages/eventlet/hubs/hub.py"),
        ]);
        assert!(
            two.as_deref()
                .is_some_and(|w| w.starts_with("2 threads run an event loop (gevent, eventlet)")),
            "{two:?}"
        );
    }

    fn sample_thread() -> ThreadSample {
        ThreadSample {
            thread_id: 1,
            ..ThreadSample::default()
        }
    }

    #[test]
    fn main_thread_fallbacks() {
        let thread = |name: Option<&str>| ThreadSample {
            thread_id: 1,
            name: name.map(str::to_string),
            ..ThreadSample::default()
        };
        let mut named = vec![thread(Some("MainThread")), thread(None)];
        mark_main_thread(&mut named);
        assert!(named[0].is_main && !named[1].is_main);
        let mut unnamed = vec![thread(None), thread(None)];
        mark_main_thread(&mut unnamed);
        assert!(
            !unnamed[0].is_main && unnamed[1].is_main,
            "oldest thread state is last"
        );
    }
}

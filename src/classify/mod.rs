//! Decide, from stacks alone, each thread's role (worker or service) and
//! state (busy or idle), with a reason a person can check.
//!
//! Pure functions of a [`Snapshot`]: no process, no OS calls, so every rule is
//! unit-tested on recorded stacks. The OS's "on CPU" flag is deliberately
//! *not* used for workers: a worker asleep in a view, blocked on a lock or
//! waiting for the database is busy, and a worker waiting for the GIL is busy
//! too. Decisions made from frames are also stable from one sample to the next.
//! Two rules look at a thread's activity (running, waiting for the GIL, or
//! blocked: `attach::activity`), which is stable in the same way: service
//! threads are busy while active, and the generic profile calls a thread
//! idle that is blocked in its own top-level function.

pub mod profiles;
pub mod user;

use serde::Serialize;

use crate::model::{Activity, Frame, Snapshot, ThreadSample};
pub use profiles::{FrameMatcher, NamePattern, Profile, RequestLocation, WorkerRule};

/// What a thread is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of the server's request-handling threads: counted.
    Worker,
    /// Anything else (main loop, ZEO client thread, …): shown, never counted.
    Service,
}

/// What a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Handling a request (workers) or running (service threads).
    Busy,
    /// Parked waiting for work (workers) or waiting (service threads).
    Idle,
}

/// The decision for one thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadVerdict {
    /// Worker or service.
    pub role: Role,
    /// Busy or idle.
    pub state: State,
    /// Why, in words (shown in JSON and `zhw dump`).
    pub reason: String,
}

/// The decisions for one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The profile used.
    pub profile: &'static Profile,
    /// Why that profile was chosen.
    pub profile_reason: String,
    /// One verdict per thread, in the snapshot's order.
    pub threads: Vec<ThreadVerdict>,
}

/// Classify every thread, with `forced` if the user named a profile, else
/// the best-matching one among the user's profiles and the built-in ones.
pub fn classify(
    snapshot: &Snapshot,
    forced: Option<&'static Profile>,
    user_profiles: &[&'static Profile],
) -> Classification {
    let (profile, profile_reason) = match forced {
        Some(profile) => (profile, format!("{}: chosen with --profile", profile.name)),
        None => detect(snapshot, user_profiles),
    };
    let threads = snapshot
        .threads
        .iter()
        .map(|thread| classify_thread(profile, thread))
        .collect();
    Classification {
        profile,
        profile_reason,
        threads,
    }
}

/// Pick the pool profile that claims the most threads (the user's profiles
/// first on a tie, then [`profiles::BUILTIN`]'s order); the generic one if
/// none does. A profile with markers applies only when one of them is on
/// some thread, which is how gunicorn and celery beat the plain `threadpool`
/// they share a task loop with; it may claim no thread yet.
fn detect(snapshot: &Snapshot, user_profiles: &[&'static Profile]) -> (&'static Profile, String) {
    type Best<'a> = (
        &'static Profile,
        &'static [FrameMatcher],
        &'static [NamePattern],
        usize,
        Option<(&'a Frame, &'static FrameMatcher)>,
    );
    let mut best: Option<Best> = None;
    for profile in user_profiles.iter().copied().chain(profiles::BUILTIN) {
        let WorkerRule::PoolLoop {
            task_loops,
            thread_names,
            markers,
            ..
        } = &profile.rule
        else {
            continue;
        };
        let workers = snapshot
            .threads
            .iter()
            .filter(|thread| worker_loop_at(thread, task_loops, thread_names).is_some())
            .count();
        if best.is_some_and(|(_, _, _, most, _)| workers <= most) {
            continue;
        }
        // A marked profile needs its marker, and then applies even before
        // its pool has a thread (an executor starts them on demand): the
        // report names the server instead of calling its threads generic.
        let marker = match (markers.is_empty(), workers) {
            (true, 0) => continue,
            (true, _) => None,
            (false, _) => match find_marker(snapshot, markers) {
                Some(found) => Some(found),
                None => continue,
            },
        };
        best = Some((profile, task_loops, thread_names, workers, marker));
    }
    match best {
        Some((profile, task_loops, thread_names, workers, marker)) => {
            let mut names: Vec<&str> = task_loops
                .iter()
                .map(|m| m.function.unwrap_or("*"))
                .collect();
            let file = task_loops
                .first()
                .map_or(String::new(), |m| m.file_suffix.to_string());
            let file = if thread_names.is_empty() {
                file
            } else {
                let patterns: Vec<&str> = thread_names.iter().map(|p| p.0).collect();
                names.push("a thread named");
                if file.is_empty() {
                    patterns.join(" or ")
                } else {
                    format!("{file}; named {}", patterns.join(" or "))
                }
            };
            let (plural, verb) = match workers {
                0 => ("s yet", "run"),
                1 => ("", "runs"),
                _ => ("s", "run"),
            };
            let beside = match marker {
                Some((frame, matcher)) => format!(
                    ", and {} ({}) is on a stack",
                    frame.function, matcher.file_suffix
                ),
                None => String::new(),
            };
            (
                profile,
                format!(
                    "{}: {workers} thread{plural} {verb} {} ({}){beside}",
                    profile.name,
                    names.join(" or "),
                    file
                ),
            )
        }
        None => (
            &profiles::GENERIC,
            "generic: no thread runs a known server's worker loop".to_string(),
        ),
    }
}

/// The outermost frame matching one of `markers` (`ThreadWorker.run` rather
/// than what it called), looking at the main thread first (where servers run
/// their own loop), then the others in order.
fn find_marker<'a>(
    snapshot: &'a Snapshot,
    markers: &'static [FrameMatcher],
) -> Option<(&'a Frame, &'static FrameMatcher)> {
    let main_first = snapshot
        .threads
        .iter()
        .filter(|thread| thread.is_main)
        .chain(snapshot.threads.iter().filter(|thread| !thread.is_main));
    main_first
        .flat_map(|thread| thread.frames.iter().rev())
        .find_map(|frame| {
            markers
                .iter()
                .find(|marker| marker.matches(&frame.function, &frame.file))
                .map(|marker| (frame, marker))
        })
}

/// Where a worker's loop is on its stack: the innermost task-loop frame;
/// for a thread whose name matches one of `thread_names` but runs no
/// task-loop frame, its outermost application frame (its own code),
/// else its outermost frame. `None`: not a worker of this pool.
fn worker_loop_at(
    thread: &ThreadSample,
    task_loops: &[FrameMatcher],
    thread_names: &[NamePattern],
) -> Option<usize> {
    loop_index(&thread.frames, task_loops).or_else(|| {
        let name = thread.name.as_deref()?;
        if thread.frames.is_empty() || !thread_names.iter().any(|p| p.matches(name)) {
            return None;
        }
        let application = thread
            .frames
            .iter()
            .rposition(|frame| !profiles::is_stdlib_file(&frame.file));
        Some(application.unwrap_or(thread.frames.len() - 1))
    })
}

/// Index of the innermost frame that is the pool's task loop.
fn loop_index(frames: &[Frame], task_loops: &[FrameMatcher]) -> Option<usize> {
    frames.iter().position(|frame| {
        task_loops
            .iter()
            .any(|task_loop| task_loop.matches(&frame.function, &frame.file))
    })
}

fn classify_thread(profile: &Profile, thread: &ThreadSample) -> ThreadVerdict {
    match &profile.rule {
        WorkerRule::PoolLoop {
            task_loops,
            thread_names,
            idle_waits,
            ..
        } => match worker_loop_at(thread, task_loops, thread_names) {
            Some(index) => pool_worker(&thread.frames, index, idle_waits),
            None => service(
                thread,
                &format!("not running {}'s worker loop", profile.name),
            ),
        },
        WorkerRule::Generic if thread.is_main => service(thread, "main thread"),
        WorkerRule::Generic => generic_worker(thread),
    }
}

fn pool_worker(frames: &[Frame], loop_at: usize, idle_waits: &[FrameMatcher]) -> ThreadVerdict {
    let task_loop = &frames[loop_at];
    let callees = &frames[..loop_at];
    let parked = callees.iter().all(|frame| {
        idle_waits
            .iter()
            .any(|w| w.matches(&frame.function, &frame.file))
    });
    let (state, reason) = match (parked, callees.last(), callees.first()) {
        (true, None, _) => (
            State::Idle,
            format!(
                "idle: in the pool loop {} itself, waiting for work",
                task_loop.function
            ),
        ),
        (true, Some(_), Some(innermost)) => (
            State::Idle,
            format!(
                "idle: {} is parked in {} ({})",
                task_loop.function,
                innermost.function,
                file_name(&innermost.file)
            ),
        ),
        (false, Some(callee), Some(innermost)) => (
            State::Busy,
            format!(
                "busy: {} called {} ({}); innermost {} ({}:{})",
                task_loop.function,
                callee.function,
                file_name(&callee.file),
                innermost.function,
                file_name(&innermost.file),
                innermost.line
            ),
        ),
        // `parked` is vacuously true for an empty callee list, so this arm
        // is only reached on inconsistent input; stay on the safe side.
        _ => (State::Busy, "busy: unrecognised stack".to_string()),
    };
    ThreadVerdict {
        role: Role::Worker,
        state,
        reason,
    }
}

/// A thread of an unknown server. Idle when it runs no application code,
/// or when its one application frame is its own top-level function and the
/// OS shows it blocked there (directly, as in `recv` or `sleep`, or through
/// standard-library waits such as `Queue.get` or `Event.wait`): a thread
/// parked in its own loop is waiting for work. Busy when application code
/// calls further application code (a request being handled, even while it
/// blocks), and when the thread runs or its activity is unknown.
fn generic_worker(thread: &ThreadSample) -> ThreadVerdict {
    let frames = &thread.frames;
    let mut application = frames
        .iter()
        .filter(|frame| !profiles::is_stdlib_file(&frame.file));
    let (innermost_app, second_app) = (application.next(), application.next());
    let blocked = matches!(thread.activity, Some(Activity::Waiting | Activity::Stopped));
    let (state, reason) = match (innermost_app, second_app, frames.first()) {
        (Some(app), None, _) if blocked && !thread.frames_cut => (
            State::Idle,
            format!(
                "idle: {} ({}:{}) is the only application frame and the thread is {}",
                app.function,
                file_name(&app.file),
                app.line,
                activity_words(thread)
            ),
        ),
        (Some(app), _, _) => (
            State::Busy,
            format!(
                "busy: application code on the stack: {} ({}:{})",
                app.function,
                file_name(&app.file),
                app.line
            ),
        ),
        (None, _, Some(innermost)) => (
            State::Idle,
            format!(
                "idle: only standard-library frames; innermost {} ({})",
                innermost.function,
                file_name(&innermost.file)
            ),
        ),
        (None, _, None) => (State::Idle, "idle: no Python frames".to_string()),
    };
    ThreadVerdict {
        role: Role::Worker,
        state,
        reason,
    }
}

/// "waiting on a lock or condition", "stopped with its process".
fn activity_words(thread: &ThreadSample) -> String {
    match (thread.activity, &thread.activity_detail) {
        (Some(Activity::Stopped), _) => "stopped with its process".to_string(),
        (_, Some(detail)) => detail.clone(),
        _ => "blocked".to_string(),
    }
}

/// A service thread is busy while it wants the CPU: running, or waiting
/// only for the GIL (its activity), so the answer does not flip with the
/// scheduler; recordings without activity fall back to the OS's `R`.
fn service(thread: &ThreadSample, why: &str) -> ThreadVerdict {
    let running = match thread.activity {
        Some(activity) => activity == Activity::Active,
        None => thread.on_cpu == Some(true),
    };
    let state = if running { State::Busy } else { State::Idle };
    ThreadVerdict {
        role: Role::Service,
        state,
        reason: format!("service: {why}"),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests;

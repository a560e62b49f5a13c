//! Server profiles as data: how to recognise a server's worker threads and
//! the wait in which an idle worker parks.
//!
//! A worker is a thread whose stack contains the pool's *task loop* frame.
//! It is idle only when every frame inside that loop (the loop's callees) is
//! one of the pool's own *idle waits*; anything else — application code, or a
//! stdlib wait that application code called — means it is serving a request.
//! This is why a waitress worker sitting in `Condition.wait` can be busy: what
//! matters is who called the wait.
//!
//! Several servers share one pool (gunicorn's `gthread` worker and celery's
//! `threads` pool both run `concurrent.futures.ThreadPoolExecutor`): their
//! profiles add *markers*, frames that must be on some thread of the process
//! for the profile to apply, so the server is named instead of the generic
//! `threadpool`.
//!
//! A profile also says where a busy worker's request lives ([`RequestLocation`]):
//! which local variable of which frame holds the WSGI `environ` dict or a
//! request object. Profiles are data only: nothing here looks at a
//! process; [`crate::attach`] does the reading.

use serde::Serialize;

/// Matches one frame by function name and the end of its file path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameMatcher {
    /// Function name; `None` matches any function in the file. A qualified
    /// name (`Class.method`, as 3.11+ reports) matches its last part too.
    pub function: Option<&'static str>,
    /// Suffix of the file path, with `/` separators (e.g. `waitress/task.py`).
    pub file_suffix: &'static str,
}

impl FrameMatcher {
    /// A matcher for one function in one file.
    pub const fn function(function: &'static str, file_suffix: &'static str) -> Self {
        FrameMatcher {
            function: Some(function),
            file_suffix,
        }
    }

    /// A matcher for any function in one file.
    pub const fn any_in(file_suffix: &'static str) -> Self {
        FrameMatcher {
            function: None,
            file_suffix,
        }
    }

    /// Whether a frame (function, file) matches.
    pub fn matches(&self, function: &str, file: &str) -> bool {
        let file_ok = file.ends_with(self.file_suffix)
            && (file.len() == self.file_suffix.len()
                || self.file_suffix.starts_with('/')
                || file.as_bytes()[file.len() - self.file_suffix.len() - 1] == b'/');
        file_ok
            && self.function.is_none_or(|name| {
                function == name
                    || function
                        .rsplit_once('.')
                        .is_some_and(|(_, last)| last == name)
            })
    }
}

/// A thread-name pattern: `*` stands for any run of characters, every
/// other character for itself (`job-worker-*`, `*-pool`, `exact-name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamePattern(pub &'static str);

impl NamePattern {
    /// Whether a thread name matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Where a busy worker's request can be read: a local variable of a frame,
/// holding either a WSGI `environ` dict or a request object with one in an
/// attribute (Zope's `HTTPRequest.environ`, cheroot's `Gateway.env`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLocation {
    /// The frame to look in; `None` looks in every frame, outermost first.
    pub frame: Option<FrameMatcher>,
    /// The local variable.
    pub local: &'static str,
    /// For a request object, the attribute holding its environ dict
    /// (`None`: `environ`, then `_environ`).
    pub attribute: Option<&'static str>,
}

impl RequestLocation {
    /// The environ dict or request object in local `local` of `function` in `file`.
    pub const fn local(
        function: &'static str,
        file_suffix: &'static str,
        local: &'static str,
    ) -> Self {
        RequestLocation {
            frame: Some(FrameMatcher::function(function, file_suffix)),
            local,
            attribute: None,
        }
    }
}

/// Tried after a profile's own locations, for every profile: a local named
/// `environ` in any frame whose dict holds `REQUEST_METHOD` — what WSGI
/// servers and frameworks call it (gunicorn's `handle_request`, Zope 4+'s
/// `WSGIPublisher.publish_module`, Django's `WSGIHandler.__call__`, Flask's
/// `wsgi_app`, Pyramid's `Router.__call__`, and any WSGI app).
pub const FALLBACK_REQUESTS: &[RequestLocation] = &[RequestLocation {
    frame: None,
    local: "environ",
    attribute: None,
}];

/// How a profile decides which threads are workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerRule {
    /// Workers run a known pool loop; idle ones are parked in its own wait.
    PoolLoop {
        /// The pool's task loop (a frame every worker has); several when
        /// versions of the server moved the loop (the innermost match counts).
        task_loops: &'static [FrameMatcher],
        /// Thread names that make a thread a worker too (user profiles): for
        /// a named worker without a task-loop frame, its outermost
        /// application frame stands for the loop.
        thread_names: &'static [NamePattern],
        /// Frames allowed inside the task loop while the worker waits for work.
        idle_waits: &'static [FrameMatcher],
        /// Frames of which at least one must be on some thread of the process
        /// for this profile to apply (empty: no condition). Told apart servers
        /// whose task loop is the same library pool, such as gunicorn's and
        /// celery's `ThreadPoolExecutor`, where an idle worker's stack alone
        /// cannot say whose pool it is.
        markers: &'static [FrameMatcher],
    },
    /// Unknown server: every thread but the main one is a worker, and it is
    /// idle only when no frame on its stack is application code.
    Generic,
}

/// A named way of reading one kind of server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Short name used by `--profile` and shown in reports.
    pub name: &'static str,
    /// What servers this profile covers.
    pub description: &'static str,
    /// How workers and their idle wait are recognised.
    pub rule: WorkerRule,
    /// Where a busy worker's request lives, tried in order before
    /// [`FALLBACK_REQUESTS`].
    pub requests: &'static [RequestLocation],
}

impl Profile {
    /// Every place to look for a busy worker's request, in order.
    pub fn request_locations(&self) -> impl Iterator<Item = &'static RequestLocation> + use<> {
        self.requests.iter().chain(FALLBACK_REQUESTS)
    }
}

/// The stdlib's thread and queue waits, which pool loops call to park.
const STDLIB_WAITS: &[FrameMatcher] = &[
    FrameMatcher::any_in("threading.py"),
    FrameMatcher::any_in("queue.py"),
    FrameMatcher::any_in("Queue.py"),
];

/// Zope's classic ZServer: `ZServerPublisher.__init__` loops on
/// `ZRendevous.accept`, which parks on `l.acquire()` (a C call, so `accept`
/// is the innermost Python frame of an idle worker).
pub const ZSERVER: Profile = Profile {
    name: "zserver",
    description: "Zope's classic ZServer worker pool (ZServer.PubCore, Zope 2 and Zope 4 on Python 2.7)",
    rule: WorkerRule::PoolLoop {
        task_loops: &[FrameMatcher::function(
            "__init__",
            "ZServer/PubCore/ZServerPublisher.py",
        )],
        idle_waits: &[FrameMatcher::function(
            "accept",
            "ZServer/PubCore/ZRendezvous.py",
        )],
        thread_names: &[],
        markers: &[],
    },
    // The publisher loop's `a` is the ZPublisher HTTPRequest (module
    // "Zope2") or the WSGI environ ("Zope2WSGI"); the publish functions
    // below it hold the request as `request`, as ZopeHealthWatcher read it.
    requests: &[
        RequestLocation::local("__init__", "ZServer/PubCore/ZServerPublisher.py", "a"),
        RequestLocation::local(
            "publish_module_standard",
            "ZServer/ZPublisher/Publish.py",
            "request",
        ),
        RequestLocation::local("publish", "ZServer/ZPublisher/Publish.py", "request"),
        RequestLocation::local("publish", "ZPublisher/Publish.py", "request"),
    ],
};

/// waitress: `ThreadedTaskDispatcher.handler_thread` waits on its
/// `queue_cv` Condition (2.x/3.x) or `Queue.get` (1.x) between tasks.
pub const WAITRESS: Profile = Profile {
    name: "waitress",
    description: "waitress's ThreadedTaskDispatcher (Zope 4+, Plone 5.2+, Pyramid)",
    rule: WorkerRule::PoolLoop {
        task_loops: &[FrameMatcher::function("handler_thread", "waitress/task.py")],
        idle_waits: STDLIB_WAITS,
        thread_names: &[],
        markers: &[],
    },
    requests: &[RequestLocation::local(
        "execute",
        "waitress/task.py",
        "environ",
    )],
};

/// `concurrent.futures.ThreadPoolExecutor`'s worker loop (also the `futures`
/// backport's on 2.7, at the same path under site-packages).
const EXECUTOR_LOOP: &[FrameMatcher] = &[FrameMatcher::function(
    "_worker",
    "concurrent/futures/thread.py",
)];

/// gunicorn's `gthread` worker (`ThreadWorker`, gunicorn 19.x to 27.x): the
/// worker process's main thread polls its sockets in `ThreadWorker.run` and
/// hands each connection to a `ThreadPoolExecutor`, whose threads run
/// `ThreadWorker.handle` and then the WSGI application. The main thread is
/// a service thread; the pool's threads are the workers. Markers: the main
/// thread's `run`, or a busy worker's `handle` (while the main thread is
/// still starting or already stopping).
pub const GUNICORN: Profile = Profile {
    name: "gunicorn",
    description: "gunicorn's gthread worker (--worker-class gthread --threads N); inspect the worker processes, not the master",
    rule: WorkerRule::PoolLoop {
        task_loops: EXECUTOR_LOOP,
        idle_waits: STDLIB_WAITS,
        thread_names: &[],
        markers: &[
            FrameMatcher::function("run", "gunicorn/workers/gthread.py"),
            FrameMatcher::function("handle", "gunicorn/workers/gthread.py"),
        ],
    },
    // `handle_request` builds the WSGI `environ` (gunicorn/workers/gthread.py).
    requests: &[RequestLocation::local(
        "handle_request",
        "gunicorn/workers/gthread.py",
        "environ",
    )],
};

/// celery's `threads` pool (`celery worker --pool threads`, celery 4.4+):
/// `celery/concurrency/thread.py` submits every task to a
/// `ThreadPoolExecutor`; the main thread runs the consumer inside
/// `WorkController.start`, and the timer and heartbeat threads are service
/// threads. A busy worker runs `apply_target` (`celery/concurrency/base.py`).
pub const CELERY: Profile = Profile {
    name: "celery",
    description: "celery's thread pool (celery worker --pool threads)",
    rule: WorkerRule::PoolLoop {
        task_loops: EXECUTOR_LOOP,
        idle_waits: STDLIB_WAITS,
        thread_names: &[],
        markers: &[
            FrameMatcher::any_in("celery/worker/worker.py"),
            FrameMatcher::function("apply_target", "celery/concurrency/base.py"),
        ],
    },
    // A task has no request; a task that runs a WSGI app is found by the fallback.
    requests: &[],
};

/// `concurrent.futures.ThreadPoolExecutor`: `_worker` blocks in
/// `work_queue.get` (C `SimpleQueue` on 3.7+, so `_worker` is innermost).
pub const THREADPOOL: Profile = Profile {
    name: "threadpool",
    description: "concurrent.futures.ThreadPoolExecutor workers",
    rule: WorkerRule::PoolLoop {
        task_loops: EXECUTOR_LOOP,
        idle_waits: STDLIB_WAITS,
        thread_names: &[],
        markers: &[],
    },
    requests: &[],
};

/// cheroot (CherryPy's server): `WorkerThread.run` (up to 9.x) or, from
/// 10.x, its `_process_connections_until_interrupted` loops on
/// `server.requests.get()`, a `queue.Queue`.
pub const CHEROOT: Profile = Profile {
    name: "cheroot",
    description: "cheroot/CherryPy's worker thread pool",
    rule: WorkerRule::PoolLoop {
        task_loops: &[
            FrameMatcher::function(
                "_process_connections_until_interrupted",
                "cheroot/workers/threadpool.py",
            ),
            FrameMatcher::function("run", "cheroot/workers/threadpool.py"),
        ],
        idle_waits: STDLIB_WAITS,
        thread_names: &[],
        markers: &[],
    },
    // The WSGI gateway keeps the environ as `self.env` while the app runs.
    requests: &[RequestLocation {
        frame: Some(FrameMatcher::function("respond", "cheroot/wsgi.py")),
        local: "self",
        attribute: Some("env"),
    }],
};

/// The fallback for servers no profile knows.
pub const GENERIC: Profile = Profile {
    name: "generic",
    description: "any threaded Python program: non-main threads are workers, idle only when no application code is on the stack",
    rule: WorkerRule::Generic,
    requests: &[],
};

/// Every built-in profile, in the order detection prefers them on a tie: a
/// profile with markers comes before the plain pool it refines.
pub const BUILTIN: &[Profile] = &[
    ZSERVER, WAITRESS, CHEROOT, GUNICORN, CELERY, THREADPOOL, GENERIC,
];

/// Look a built-in profile up by name.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    BUILTIN.iter().find(|profile| profile.name == name)
}

/// Whether a file belongs to the Python standard library (not site-packages).
///
/// The generic rule treats such frames as "not application code".
pub fn is_stdlib_file(file: &str) -> bool {
    if file.starts_with("<frozen ") {
        return true;
    }
    let in_lib = file.contains("/lib/python") || file.contains("/lib64/python");
    in_lib && !file.contains("/site-packages/") && !file.contains("/dist-packages/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_respects_path_components_and_qualnames() {
        let m = FrameMatcher::function("handler_thread", "waitress/task.py");
        assert!(m.matches(
            "handler_thread",
            "/venv/lib/python3.12/site-packages/waitress/task.py"
        ));
        assert!(m.matches("ThreadedTaskDispatcher.handler_thread", "waitress/task.py"));
        assert!(!m.matches("handler_thread", "/x/notwaitress/task.py"));
        assert!(!m.matches("service", "/x/waitress/task.py"));
        let any = FrameMatcher::any_in("queue.py");
        assert!(any.matches("get", "/usr/lib/python3.11/queue.py"));
        assert!(!any.matches("get", "/usr/lib/python3.11/myqueue.py"));
    }

    #[test]
    fn stdlib_detection() {
        assert!(is_stdlib_file(
            "/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py"
        ));
        assert!(is_stdlib_file("/usr/lib/python2.7/Queue.py"));
        assert!(is_stdlib_file("<frozen importlib._bootstrap>"));
        assert!(!is_stdlib_file(
            "/usr/lib/python3/dist-packages/waitress/task.py"
        ));
        assert!(!is_stdlib_file("/venv/lib/python3.12/site-packages/app.py"));
        assert!(!is_stdlib_file("/srv/app/views.py"));
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in BUILTIN.iter().enumerate() {
            assert!(BUILTIN[i + 1..].iter().all(|b| b.name != a.name));
            assert_eq!(by_name(a.name), Some(a));
        }
    }
}

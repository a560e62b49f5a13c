//! Table-driven classifier tests on stacks recorded from real servers
//! (outermost frame last, as py-spy reports innermost first).

use super::*;
use crate::model::{Activity, Frame, Snapshot, ThreadSample};

const THREADING: &str = "/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py";
const THREADING27: &str = "/root/.pyenv/versions/2.7.18/lib/python2.7/threading.py";
const QUEUE27: &str = "/root/.pyenv/versions/2.7.18/lib/python2.7/Queue.py";
const TASK: &str = "/venv/lib/python3.12/site-packages/waitress/task.py";
const APP: &str = "/srv/app/views.py";
const FUTURES: &str = "/usr/lib/python3.11/concurrent/futures/thread.py";
const RENDEZVOUS: &str = "/venv/lib/python2.7/site-packages/ZServer/PubCore/ZRendezvous.py";
const PUBLISHER: &str = "/venv/lib/python2.7/site-packages/ZServer/PubCore/ZServerPublisher.py";

fn f(function: &str, file: &str) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line: 1,
        locals: None,
    }
}

fn thread(frames: Vec<Frame>) -> ThreadSample {
    ThreadSample {
        thread_id: 1,
        frames,
        ..ThreadSample::default()
    }
}

fn bootstrap(mut inner: Vec<Frame>, file: &str) -> Vec<Frame> {
    inner.extend([
        f("Thread.run", file),
        f("Thread._bootstrap_inner", file),
        f("Thread._bootstrap", file),
    ]);
    inner
}

fn verdict(profile: &'static Profile, frames: Vec<Frame>) -> (Role, State) {
    let v = classify_thread(profile, &thread(frames));
    (v.role, v.state)
}

#[test]
fn waitress_workers() {
    use {Role::*, State::*};
    let rows: Vec<(&str, Vec<Frame>, (Role, State))> = vec![
        (
            "3.x idle: handler_thread -> Condition.wait",
            bootstrap(
                vec![
                    f("Condition.wait", THREADING),
                    f("ThreadedTaskDispatcher.handler_thread", TASK),
                ],
                THREADING,
            ),
            (Worker, Idle),
        ),
        (
            "1.x idle: handler_thread -> Queue.get -> Condition.wait",
            bootstrap(
                vec![
                    f("wait", THREADING27),
                    f("get", QUEUE27),
                    f("handler_thread", TASK),
                ],
                THREADING27,
            ),
            (Worker, Idle),
        ),
        (
            "between tasks: handler_thread innermost",
            bootstrap(vec![f("handler_thread", TASK)], THREADING),
            (Worker, Idle),
        ),
        (
            "busy asleep in a view",
            bootstrap(
                vec![
                    f("hold_sleep", APP),
                    f("app", APP),
                    f("execute", TASK),
                    f("service", TASK),
                    f("handler_thread", TASK),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "busy in Condition.wait called by app code, not by the pool",
            bootstrap(
                vec![
                    f("Condition.wait", THREADING),
                    f("hold_cond", APP),
                    f("service", TASK),
                    f("handler_thread", TASK),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "busy in a full output buffer: waitress's own wait inside service()",
            bootstrap(
                vec![
                    f("Condition.wait", THREADING),
                    f("write", TASK),
                    f("service", TASK),
                    f("handler_thread", TASK),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "main thread in the asyncore loop is a service thread",
            vec![
                f(
                    "poll",
                    "/venv/lib/python3.12/site-packages/waitress/wasyncore.py",
                ),
                f("<module>", APP),
            ],
            (Service, Idle),
        ),
    ];
    for (what, frames, expected) in rows {
        assert_eq!(verdict(&profiles::WAITRESS, frames), expected, "{what}");
    }
}

#[test]
fn zserver_workers() {
    use {Role::*, State::*};
    let rows: Vec<(&str, Vec<Frame>, (Role, State))> = vec![
        (
            "idle in ZRendevous.accept",
            vec![f("accept", RENDEZVOUS), f("__init__", PUBLISHER)],
            (Worker, Idle),
        ),
        (
            "busy publishing",
            vec![
                f("sleep_view", APP),
                f("publish_module", "/z/ZPublisher/WSGIPublisher.py"),
                f("__init__", PUBLISHER),
            ],
            (Worker, Busy),
        ),
        (
            "a lock acquired by app code under accept's caller is busy",
            vec![
                f("acquire", THREADING27),
                f("commit", APP),
                f("__init__", PUBLISHER),
            ],
            (Worker, Busy),
        ),
        (
            "ZEO client thread is service",
            vec![
                f("wait", THREADING27),
                f("run", "/z/ZEO/zrpc/client.py"),
                f("__bootstrap", THREADING27),
            ],
            (Service, Idle),
        ),
    ];
    for (what, frames, expected) in rows {
        assert_eq!(verdict(&profiles::ZSERVER, frames), expected, "{what}");
    }
}

#[test]
fn threadpool_workers() {
    use {Role::*, State::*};
    let idle = bootstrap(vec![f("_worker", FUTURES)], THREADING);
    let busy = bootstrap(
        vec![
            f("handle", APP),
            f("_WorkItem.run", FUTURES),
            f("_worker", FUTURES),
        ],
        THREADING,
    );
    assert_eq!(verdict(&profiles::THREADPOOL, idle), (Worker, Idle));
    assert_eq!(verdict(&profiles::THREADPOOL, busy), (Worker, Busy));
}

/// `thread(frames)` with an activity, as the sampler decides it.
fn acting(frames: Vec<Frame>, activity: Option<Activity>) -> ThreadSample {
    ThreadSample {
        activity,
        activity_detail: activity.map(|_| "waiting on a lock or condition".to_string()),
        ..thread(frames)
    }
}

#[test]
fn generic_calls_only_parked_top_level_threads_idle() {
    use {Activity::*, Role::*, State::*};
    let parked = bootstrap(
        vec![f("Condition.wait", THREADING), f("Event.wait", THREADING)],
        THREADING,
    );
    // A pool loop of the application's own, parked in Queue.get (case 19).
    let own_loop_parked = bootstrap(
        vec![
            f("Condition.wait", THREADING),
            f("Queue.get", "/usr/lib/python3.8/queue.py"),
            f("worker", APP),
        ],
        THREADING,
    );
    // Blocked in C (recv, sleep, a lock) in the thread's only own frame (case 03).
    let own_frame_blocked = bootstrap(vec![f("block_on_recv", APP)], THREADING);
    // Application code that called application code: a request, even blocked.
    let app_wait = bootstrap(
        vec![
            f("Condition.wait", THREADING),
            f("poll_backend", APP),
            f("worker", APP),
        ],
        THREADING,
    );
    let app_spin = bootstrap(vec![f("crunch", APP)], THREADING);
    let rows: Vec<(&str, Vec<Frame>, Option<Activity>, State)> = vec![
        ("stdlib only, waiting", parked.clone(), Some(Waiting), Idle),
        ("stdlib only, activity unknown", parked, None, Idle),
        (
            "own loop in Queue.get",
            own_loop_parked.clone(),
            Some(Waiting),
            Idle,
        ),
        (
            "own loop in Queue.get, stopped process",
            own_loop_parked.clone(),
            Some(Stopped),
            Idle,
        ),
        (
            "own loop, activity unknown: conservative",
            own_loop_parked.clone(),
            None,
            Busy,
        ),
        ("own loop but running", own_loop_parked, Some(Active), Busy),
        (
            "own frame blocked in C",
            own_frame_blocked,
            Some(Waiting),
            Idle,
        ),
        ("request blocked in a wait", app_wait, Some(Waiting), Busy),
        (
            "spinning, or waiting for the GIL",
            app_spin,
            Some(Active),
            Busy,
        ),
        ("no frames", vec![], None, Idle),
    ];
    for (what, frames, activity, state) in rows {
        let v = classify_thread(&profiles::GENERIC, &acting(frames, activity));
        assert_eq!((v.role, v.state), (Worker, state), "{what}: {}", v.reason);
    }
    let reason = classify_thread(
        &profiles::GENERIC,
        &acting(
            bootstrap(vec![f("block_on_lock", APP)], THREADING),
            Some(Waiting),
        ),
    )
    .reason;
    assert_eq!(
        reason,
        "idle: block_on_lock (views.py:1) is the only application frame and the thread is \
         waiting on a lock or condition"
    );
    let mut main = thread(vec![f("<module>", APP)]);
    main.is_main = true;
    assert_eq!(classify_thread(&profiles::GENERIC, &main).role, Service);
}

#[test]
fn service_threads_are_busy_only_while_active() {
    let mut t = thread(vec![f("poll", APP)]);
    // Recordings without activity: the scheduler's R.
    t.on_cpu = Some(true);
    assert_eq!(classify_thread(&profiles::WAITRESS, &t).state, State::Busy);
    t.on_cpu = Some(false);
    assert_eq!(classify_thread(&profiles::WAITRESS, &t).state, State::Idle);
    // A thread waiting for the GIL is parked in a futex (not R) but active.
    t.activity = Some(Activity::Active);
    assert_eq!(classify_thread(&profiles::WAITRESS, &t).state, State::Busy);
    t.on_cpu = Some(true);
    for still in [Activity::Waiting, Activity::Stopped] {
        t.activity = Some(still);
        assert_eq!(classify_thread(&profiles::WAITRESS, &t).state, State::Idle);
    }
}

fn snapshot(threads: Vec<Vec<Frame>>) -> Snapshot {
    Snapshot {
        pid: 1,
        python_version: "3.12.1".into(),
        threads: threads.into_iter().map(thread).collect(),
        process: Default::default(),
        sampling: Default::default(),
        warnings: vec![],
    }
}

#[test]
fn detection_picks_the_profile_that_claims_most_threads() {
    let waitress_idle = bootstrap(
        vec![f("Condition.wait", THREADING), f("handler_thread", TASK)],
        THREADING,
    );
    let pool_idle = bootstrap(vec![f("_worker", FUTURES)], THREADING);
    let snap = snapshot(vec![
        waitress_idle.clone(),
        waitress_idle,
        pool_idle,
        vec![f("<module>", APP)],
    ]);
    let c = classify(&snap, None, &[]);
    assert_eq!(c.profile.name, "waitress");
    assert!(
        c.profile_reason.contains("2 threads run handler_thread"),
        "{}",
        c.profile_reason
    );
    assert_eq!(
        c.threads.iter().filter(|v| v.role == Role::Worker).count(),
        2
    );

    let none = snapshot(vec![vec![f("<module>", APP)]]);
    assert_eq!(classify(&none, None, &[]).profile.name, "generic");
    assert_eq!(
        classify(&snap, Some(&profiles::THREADPOOL), &[])
            .profile
            .name,
        "threadpool"
    );
}

#[test]
fn reasons_name_who_called_the_wait() {
    let busy = bootstrap(
        vec![
            f("Condition.wait", THREADING),
            f("hold_cond", APP),
            f("service", TASK),
            f("handler_thread", TASK),
        ],
        THREADING,
    );
    let v = classify_thread(&profiles::WAITRESS, &thread(busy));
    assert!(
        v.reason
            .starts_with("busy: handler_thread called service (task.py); innermost Condition.wait"),
        "{}",
        v.reason
    );
    let idle = bootstrap(
        vec![f("Condition.wait", THREADING), f("handler_thread", TASK)],
        THREADING,
    );
    let v = classify_thread(&profiles::WAITRESS, &thread(idle));
    assert_eq!(
        v.reason,
        "idle: handler_thread is parked in Condition.wait (threading.py)"
    );
}

#[test]
fn cheroot_workers_old_and_new_loops() {
    use {Role::*, State::*};
    const POOL: &str = "/venv/lib/python3.12/site-packages/cheroot/workers/threadpool.py";
    const QUEUE: &str = "/usr/lib/python3.12/queue.py";
    const SERVER: &str = "/venv/lib/python3.12/site-packages/cheroot/server.py";
    let rows: Vec<(&str, Vec<Frame>, (Role, State))> = vec![
        (
            "10.x idle: run -> _process_connections_until_interrupted -> Queue.get",
            bootstrap(
                vec![
                    f("Condition.wait", THREADING),
                    f("Queue.get", QUEUE),
                    f("WorkerThread._process_connections_until_interrupted", POOL),
                    f("WorkerThread.run", POOL),
                ],
                THREADING,
            ),
            (Worker, Idle),
        ),
        (
            "10.x busy in a request",
            bootstrap(
                vec![
                    f("hold_sleep", APP),
                    f("HTTPConnection.communicate", SERVER),
                    f("WorkerThread._process_connections_until_interrupted", POOL),
                    f("WorkerThread.run", POOL),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "8.x idle: run -> get -> wait (2.7)",
            vec![
                f("wait", THREADING27),
                f("get", QUEUE27),
                f(
                    "run",
                    "/venv/lib/python2.7/site-packages/cheroot/workers/threadpool.py",
                ),
                f("__bootstrap_inner", THREADING27),
            ],
            (Worker, Idle),
        ),
    ];
    for (what, frames, expected) in rows {
        assert_eq!(verdict(&profiles::CHEROOT, frames), expected, "{what}");
    }
}

const GTHREAD: &str = "/venv/lib/python3.12/site-packages/gunicorn/workers/gthread.py";
const CELERY_WORKER: &str = "/venv/lib/python3.12/site-packages/celery/worker/worker.py";
const CELERY_BASE: &str = "/venv/lib/python3.12/site-packages/celery/concurrency/base.py";
const CELERY_TRACE: &str = "/venv/lib/python3.12/site-packages/celery/app/trace.py";

fn pool_idle() -> Vec<Frame> {
    bootstrap(vec![f("_worker", FUTURES)], THREADING)
}

fn main_thread(frames: Vec<Frame>) -> ThreadSample {
    let mut t = thread(frames);
    t.is_main = true;
    t
}

/// gunicorn 27 (3.10+) main thread of a gthread worker process.
fn gunicorn_main() -> Vec<Frame> {
    vec![
        f("select", "/usr/lib/python3.12/selectors.py"),
        f("ThreadWorker.wait_for_and_dispatch_events", GTHREAD),
        f("ThreadWorker.run", GTHREAD),
        f("Worker.init_process", "/venv/gunicorn/workers/base.py"),
        f("ThreadWorker.init_process", GTHREAD),
        f("Arbiter.spawn_worker", "/venv/gunicorn/arbiter.py"),
        f("<module>", APP),
    ]
}

/// celery's main thread: the consumer inside WorkController.start.
fn celery_main() -> Vec<Frame> {
    vec![
        f(
            "Transport.drain_events",
            "/venv/kombu/transport/virtual/base.py",
        ),
        f("synloop", "/venv/celery/worker/loops.py"),
        f("Consumer.start", "/venv/celery/worker/consumer/consumer.py"),
        f("Blueprint.start", "/venv/celery/bootsteps.py"),
        f("WorkController.start", CELERY_WORKER),
        f("<module>", APP),
    ]
}

#[test]
fn gunicorn_and_celery_workers_and_service_threads() {
    use {Role::*, State::*};
    /// (what, profile, stack, expected role and state)
    type Row = (&'static str, &'static Profile, Vec<Frame>, (Role, State));
    let rows: Vec<Row> = vec![
        (
            "gunicorn: pool thread parked in the executor (3.7+, C SimpleQueue)",
            &profiles::GUNICORN,
            pool_idle(),
            (Worker, Idle),
        ),
        (
            "gunicorn 19 on 2.7: the futures backport parks in Queue.get",
            &profiles::GUNICORN,
            vec![
                f("wait", THREADING27),
                f("get", QUEUE27),
                f(
                    "_worker",
                    "/venv/lib/python2.7/site-packages/concurrent/futures/thread.py",
                ),
                f("run", THREADING27),
            ],
            (Worker, Idle),
        ),
        (
            "gunicorn: pool thread in the WSGI app",
            &profiles::GUNICORN,
            bootstrap(
                vec![
                    f("hold_sleep", APP),
                    f("ThreadWorker.handle_request", GTHREAD),
                    f("ThreadWorker.handle", GTHREAD),
                    f("_WorkItem.run", FUTURES),
                    f("_worker", FUTURES),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "gunicorn 27: pool thread waiting for the client's request is busy (it holds a slot)",
            &profiles::GUNICORN,
            bootstrap(
                vec![
                    f("select", "/usr/lib/python3.12/selectors.py"),
                    f("TConn.wait_for_data", GTHREAD),
                    f("ThreadWorker.handle", GTHREAD),
                    f("_WorkItem.run", FUTURES),
                    f("_worker", FUTURES),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "gunicorn: the worker's main loop is a service thread",
            &profiles::GUNICORN,
            gunicorn_main(),
            (Service, Idle),
        ),
        (
            "celery: pool thread parked in the executor",
            &profiles::CELERY,
            pool_idle(),
            (Worker, Idle),
        ),
        (
            "celery: pool thread running a task",
            &profiles::CELERY,
            bootstrap(
                vec![
                    f("hold_lock", APP),
                    f("trace_task", CELERY_TRACE),
                    f("fast_trace_task", CELERY_TRACE),
                    f("apply_target", CELERY_BASE),
                    f("_WorkItem.run", FUTURES),
                    f("_worker", FUTURES),
                ],
                THREADING,
            ),
            (Worker, Busy),
        ),
        (
            "celery: the consumer (main thread) is a service thread",
            &profiles::CELERY,
            celery_main(),
            (Service, Idle),
        ),
        (
            "celery: the timer2 thread (heartbeats) is a service thread",
            &profiles::CELERY,
            bootstrap(
                vec![
                    f("Event.wait", THREADING),
                    f("Timer.run", "/venv/celery/utils/timer2.py"),
                ],
                THREADING,
            ),
            (Service, Idle),
        ),
    ];
    for (what, profile, frames, expected) in rows {
        assert_eq!(verdict(profile, frames), expected, "{what}");
    }
}

#[test]
fn markers_name_the_server_behind_a_threadpool() {
    /// (what, main thread, other threads, profile, reason starts with)
    type Row = (
        &'static str,
        Vec<Frame>,
        Vec<Vec<Frame>>,
        &'static str,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        (
            "gunicorn gthread: beats the plain threadpool on the tie",
            gunicorn_main(),
            vec![pool_idle(), pool_idle(), pool_idle(), pool_idle()],
            "gunicorn",
            "gunicorn: 4 threads run _worker (concurrent/futures/thread.py), \
             and ThreadWorker.run (gunicorn/workers/gthread.py) is on a stack",
        ),
        (
            "celery thread pool: WorkController.start on the main thread",
            celery_main(),
            vec![pool_idle(), pool_idle()],
            "celery",
            "celery: 2 threads run _worker (concurrent/futures/thread.py), \
             and WorkController.start (celery/worker/worker.py) is on a stack",
        ),
        (
            "celery while its main thread is elsewhere: a busy task's apply_target",
            vec![f("<module>", APP)],
            vec![
                pool_idle(),
                bootstrap(
                    vec![
                        f("hold_sleep", APP),
                        f("apply_target", CELERY_BASE),
                        f("_WorkItem.run", FUTURES),
                        f("_worker", FUTURES),
                    ],
                    THREADING,
                ),
            ],
            "celery",
            "celery: 2 threads run _worker",
        ),
        (
            "a plain ThreadPoolExecutor program stays threadpool",
            vec![f("main", APP), f("<module>", APP)],
            vec![pool_idle(), pool_idle()],
            "threadpool",
            "threadpool: 2 threads run _worker (concurrent/futures/thread.py)",
        ),
        (
            "a cold gthread worker: the marker names gunicorn before the pool has a thread",
            gunicorn_main(),
            vec![],
            "gunicorn",
            "gunicorn: 0 threads yet run _worker (concurrent/futures/thread.py), \
             and ThreadWorker.run (gunicorn/workers/gthread.py) is on a stack",
        ),
        (
            "a cold celery worker: its timer thread stays a service thread",
            celery_main(),
            vec![bootstrap(
                vec![
                    f("Event.wait", THREADING),
                    f("Timer.run", "/venv/celery/utils/timer2.py"),
                ],
                THREADING,
            )],
            "celery",
            "celery: 0 threads yet run _worker",
        ),
        (
            "no marker and no pool thread: generic",
            vec![f("main", APP)],
            vec![vec![f("crunch", APP)]],
            "generic",
            "generic: no thread runs",
        ),
        (
            "gunicorn's frames in a module of another package do not count",
            vec![f("run", "/srv/app/notgunicorn/workers/gthread.py")],
            vec![pool_idle()],
            "threadpool",
            "threadpool: 1 thread runs _worker",
        ),
    ];
    for (what, main, others, profile, reason) in rows {
        let mut snap = snapshot(others);
        snap.threads.insert(0, main_thread(main));
        let c = classify(&snap, None, &[]);
        assert_eq!(c.profile.name, profile, "{what}: {}", c.profile_reason);
        assert!(
            c.profile_reason.starts_with(reason),
            "{what}: {}",
            c.profile_reason
        );
        assert_eq!(
            c.threads[0].role,
            Role::Service,
            "{what}: the main thread is never a worker"
        );
        if profile != "generic" {
            for (t, v) in snap.threads.iter().zip(&c.threads) {
                let in_pool = t.frames.iter().any(|frame| frame.function == "_worker");
                assert_eq!(
                    v.role == Role::Worker,
                    in_pool,
                    "{what}: only pool threads are workers: {}",
                    v.reason
                );
            }
        }
    }
}

#[test]
fn a_user_profile_with_markers_only_applies_where_they_are() {
    const LOOP: &[FrameMatcher] = &[FrameMatcher::function(
        "_worker",
        "concurrent/futures/thread.py",
    )];
    static ACME: Profile = Profile {
        name: "acme",
        description: "ACME's executor server",
        rule: WorkerRule::PoolLoop {
            task_loops: LOOP,
            thread_names: &[],
            idle_waits: &[],
            markers: &[FrameMatcher::any_in("acme/server.py")],
        },
        requests: &[],
    };
    let with = {
        let mut s = snapshot(vec![pool_idle()]);
        s.threads
            .insert(0, main_thread(vec![f("serve", "/srv/acme/server.py")]));
        s
    };
    let without = snapshot(vec![pool_idle()]);
    assert_eq!(classify(&with, None, &[&ACME]).profile.name, "acme");
    assert_eq!(
        classify(&without, None, &[&ACME]).profile.name,
        "threadpool"
    );
}

#[test]
fn name_patterns() {
    let rows = [
        ("job-worker-*", "job-worker-3", true),
        ("job-worker-*", "job-worker-", true),
        ("job-worker-*", "job-worke", false),
        ("*-pool", "db-pool", true),
        ("*-pool", "db-pool-2", false),
        ("a*b*c", "a-x-b-y-c", true),
        ("a*b*c", "a-c-b", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("*", "anything", true),
    ];
    for (pattern, name, matches) in rows {
        assert_eq!(
            profiles::NamePattern(pattern).matches(name),
            matches,
            "{pattern} vs {name}"
        );
    }
}

/// A user profile may recognise its workers by thread name alone: the
/// outermost application frame stands for the loop, idle waits as usual.
#[test]
fn workers_recognised_by_thread_name() {
    use {Role::*, State::*};
    static NAMED: Profile = Profile {
        name: "named",
        description: "workers known by name",
        rule: WorkerRule::PoolLoop {
            task_loops: &[],
            thread_names: &[profiles::NamePattern("job-worker-*")],
            idle_waits: &[
                FrameMatcher::function("wait_for_job", "srv/app/views.py"),
                FrameMatcher::any_in("threading.py"),
            ],
            markers: &[],
        },
        requests: &[],
    };
    let named = |name: &str, frames: Vec<Frame>| ThreadSample {
        name: Some(name.to_string()),
        ..thread(frames)
    };
    let idle = bootstrap(
        vec![
            f("Condition.wait", THREADING),
            f("wait_for_job", APP),
            f("worker_loop", APP),
        ],
        THREADING,
    );
    let busy = bootstrap(
        vec![
            f("Condition.wait", THREADING),
            f("render", APP),
            f("worker_loop", APP),
        ],
        THREADING,
    );
    let verdict = |t: &ThreadSample| {
        let v = classify_thread(&NAMED, t);
        (v.role, v.state)
    };
    assert_eq!(
        verdict(&named("job-worker-0", idle.clone())),
        (Worker, Idle)
    );
    assert_eq!(verdict(&named("job-worker-1", busy)), (Worker, Busy));
    assert_eq!(verdict(&named("scheduler", idle.clone())).0, Service);
    assert_eq!(
        verdict(&thread(idle.clone())).0,
        Service,
        "no name, no worker"
    );
    // Detection counts named workers.
    let mut snap = snapshot(vec![]);
    snap.threads = vec![
        named("job-worker-0", idle.clone()),
        named("job-worker-1", idle),
    ];
    let chosen = classify(&snap, None, &[&NAMED]);
    assert_eq!(chosen.profile.name, "named");
    assert!(
        chosen.profile_reason.contains("job-worker-*"),
        "{}",
        chosen.profile_reason
    );
}

# -*- coding: utf-8 -*-
"""A real gunicorn (gthread worker) whose worker threads can be held busy.

Usage: <env>/bin/python gunicorn_app.py --threads N [--cold]

Runs gunicorn's own Arbiter with exactly one worker process of
`--worker-class gthread --threads N`, bound to 127.0.0.1 (ephemeral port).
The WSGI app is holds.wsgi_app. Once the worker has started, and its thread
pool has been warmed to N threads, the worker prints

    READY port=<port> pid=<worker pid> master=<master pid>

so a test inspects the worker process (where the threads are), not the
master. Warming: a ThreadPoolExecutor starts its threads on demand, so a
fresh worker has none; the post_worker_init hook submits N tasks that wait
for each other, as N simultaneous requests would, and waits for them to end.
After that the pool keeps its N threads, parked in the executor's queue.
`--cold` skips the warming: the pool has no thread until requests come.

`/hold/<kind>` (sleep, spin, lock, cond: see holds.py) prints `HOLD <kind>
<thread name>` and keeps one pool thread busy; `/ok` answers at once.
The worker dies with the master (PR_SET_PDEATHSIG), so a test that kills
the master leaves nothing behind; both exit by themselves after 600 s.
Python 2.7 (gunicorn 19.10 + futures) and 3.6+.
"""
from __future__ import print_function

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

from gunicorn.app.base import BaseApplication  # noqa: E402


def die_with_parent():
    """Linux: have the kernel SIGKILL this process when its parent dies."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig, sigkill = 1, 9
        libc.prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)
    except Exception as err:  # not fatal: the safety alarm still ends it
        print("gunicorn_app: prctl failed: %s" % err, file=sys.stderr)


def warm_pool(worker):
    """Make the gthread worker's ThreadPoolExecutor start all its threads."""
    wanted = worker.cfg.threads
    cond = threading.Condition()
    arrived = [0]

    def rendezvous():
        with cond:
            arrived[0] += 1
            cond.notify_all()
            deadline = time.time() + 30
            while arrived[0] < wanted and time.time() < deadline:
                cond.wait(1.0)

    from concurrent import futures
    done = [worker.tpool.submit(rendezvous) for _ in range(wanted)]
    futures.wait(done, timeout=60)


COLD = "--cold" in sys.argv


def post_worker_init(worker):
    die_with_parent()
    if os.getppid() != worker.ppid:  # the master died before prctl
        os._exit(1)
    holds.install_safety_net()
    if not COLD:
        warm_pool(worker)
    port = worker.sockets[0].getsockname()[1]
    holds.emit("READY port=%d pid=%d master=%d" % (port, os.getpid(), worker.ppid))


class HoldsApp(BaseApplication):
    def __init__(self, threads):
        self.threads = threads
        super(HoldsApp, self).__init__()

    def load_config(self):
        settings = {
            "bind": "127.0.0.1:0",
            "workers": 1,
            "worker_class": "gthread",
            "threads": self.threads,
            "loglevel": "warning",
            "post_worker_init": post_worker_init,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        return holds.wsgi_app


def main():
    if COLD:
        sys.argv.remove("--cold")
    args = holds.start(__doc__)
    HoldsApp(args.threads).run()


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""A real celery worker on its thread pool whose pool threads can be held busy.

Usage: <env>/bin/python celery_app.py --threads N [--cold]

Runs `celery worker --pool threads --concurrency N` in this process (celery's
own command line, through app.worker_main), on kombu's in-memory broker
(`memory://`: no broker server; tasks are sent from a thread of this same
process, so the worker receives them through the real consumer). No result
backend. Gossip and mingle are off: they talk to other workers, and no other
worker shares an in-memory broker. Worker heartbeats stay on.

Threads besides the pool: the main thread (the consumer, in
WorkController.start), celery's timer thread `Timer-1` (timer2, which sends
the heartbeats), and `stdin-commands` (this script's, reading commands).

Once the worker is ready and its pool has been warmed to N threads, prints

    READY pid=<pid>

Warming: celery's pool is a ThreadPoolExecutor, which starts threads on
demand; N tasks that wait for each other (as N simultaneous tasks would) make
it start all N, and they stay parked in its queue afterwards. `--cold` skips
the warming: the pool has no thread until tasks come.

stdin, one command a line:
    hold sleep|spin|lock|cond   send one task that runs holds.hold_<kind>
                                (it prints `HOLD <kind> <thread name>`)
Unknown commands are reported on stderr. The process exits at stdin EOF,
on SIGTERM/SIGKILL, or by itself after 600 s. Python 2.7 (celery 4.4) and 3.6+.
"""
from __future__ import print_function

import os
import sys
import threading
import time
import warnings

sys.dont_write_bytecode = True
# Tests run as root; celery's warning about it is noise in their output.
warnings.filterwarnings("ignore", message=".*superuser privileges")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

from celery import Celery  # noqa: E402
from celery.signals import worker_ready  # noqa: E402

app = Celery("zhw_celery_app", broker="memory://")
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
)

WARM = {"wanted": 0, "arrived": 0, "finished": 0}
WARM_COND = threading.Condition()


@app.task(name="zhw.rendezvous")
def rendezvous():
    """Wait until WARM['wanted'] of these run at once (at most 30 s)."""
    with WARM_COND:
        WARM["arrived"] += 1
        WARM_COND.notify_all()
        deadline = time.time() + 30
        while WARM["arrived"] < WARM["wanted"] and time.time() < deadline:
            WARM_COND.wait(1.0)
        WARM["finished"] += 1
        WARM_COND.notify_all()


@app.task(name="zhw.hold")
def hold(kind):
    holds.HOLDS[kind](threading.current_thread().name)


def commands():
    """Warm the pool, say READY, then send one task per stdin command."""
    wanted = WARM["wanted"]
    for _ in range(wanted):
        rendezvous.delay()
    with WARM_COND:
        deadline = time.time() + 60
        while WARM["finished"] < wanted and time.time() < deadline:
            WARM_COND.wait(1.0)
    holds.emit("READY pid=%d" % os.getpid())
    while True:
        line = sys.stdin.readline()
        if not line:
            os._exit(0)
        words = line.split()
        if len(words) == 2 and words[0] == "hold" and words[1] in holds.HOLDS:
            hold.delay(words[1])
        elif words:
            print("celery_app: unknown command %r" % line.strip(), file=sys.stderr)


@worker_ready.connect
def on_worker_ready(**_):
    reader = threading.Thread(target=commands, name="stdin-commands")
    reader.daemon = True
    reader.start()


def main():
    cold = "--cold" in sys.argv
    if cold:
        sys.argv.remove("--cold")
    args = holds.start(__doc__)
    WARM["wanted"] = 0 if cold else args.threads
    app.worker_main(argv=[
        "worker", "--pool=threads", "--concurrency=%d" % args.threads,
        "--loglevel=ERROR", "--without-gossip", "--without-mingle",
    ])


if __name__ == "__main__":
    main()

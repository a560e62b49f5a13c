# -*- coding: utf-8 -*-
"""An in-house job server that no built-in zhw profile knows.

Usage: python inhouse_server.py --threads N

N worker threads loop in `worker_loop`, parked in `wait_for_job` (the
pool's own wait, on a semaphore) between jobs. Commands on stdin, one per
line: `hold <kind>` queues a job that runs holds.hold_<kind> (see holds.py),
which prints `HOLD <kind> <thread name>`. A running job is the local `job`
of `worker_loop`, whose attribute `env` is a WSGI-like environ
(`POST /jobs/<kind>?api_key=s3cr3t&priority=high` from 198.51.100.4). Prints `READY pid=<pid>` once the
workers run. Exits at stdin EOF or after holds.SAFETY_EXIT seconds.
Python 2.7 and 3.x.
"""
from __future__ import print_function

import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

jobs = []
jobs_lock = threading.Lock()
job_ready = threading.Semaphore(0)


def wait_for_job():
    """The pool's own idle wait."""
    job_ready.acquire()
    with jobs_lock:
        return jobs.pop(0)


class Job(object):
    """What a worker runs: the request it came from lives in `env`."""

    def __init__(self, kind):
        self.kind = kind
        self.env = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/jobs/%s" % kind,
            "QUERY_STRING": "api_key=s3cr3t&priority=high",
            "REMOTE_ADDR": "198.51.100.4",
        }


def worker_loop():
    while True:
        kind = wait_for_job()
        job = Job(kind)
        holds.HOLDS[job.kind](threading.current_thread().name)


def main():
    args = holds.start(__doc__)
    for number in range(args.threads):
        worker = threading.Thread(target=worker_loop, name="job-worker-%d" % number)
        worker.daemon = True
        worker.start()
    holds.emit("READY pid=%d" % os.getpid())
    for line in iter(sys.stdin.readline, ""):
        words = line.split()
        if len(words) == 2 and words[0] == "hold" and words[1] in holds.HOLDS:
            with jobs_lock:
                jobs.append(words[1])
            job_ready.release()
        holds.reap()


if __name__ == "__main__":
    main()

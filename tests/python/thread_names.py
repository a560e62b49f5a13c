# -*- coding: utf-8 -*-
"""Named threads, a renamed thread and a raw (thread/_thread module) thread,
as in shared case 11 (thread names on Python 2.7). Python 2.7 and 3.x.

Usage: python thread_names.py
Threads: MainThread, http-worker-0, http-worker-1, one started as
"boot-name" and renamed "scheduler" after start, and one started with
thread.start_new_thread (no threading.Thread object, so no name). All wait on
one Event. Prints "READY pid=<pid>" once they all run; exits after 60 s or
when stdin closes. The stdin command "rename NAME" renames the scheduler
thread again and answers "RENAMED NAME".
"""
from __future__ import print_function

import os
import sys
import threading
import time

try:
    import thread as raw_thread        # Python 2
except ImportError:
    import _thread as raw_thread       # Python 3

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

gate = threading.Event()
started = []


def request_worker():
    started.append(1)
    gate.wait(60)


def raw_helper():
    started.append(1)
    gate.wait(60)


def main():
    holds.install_safety_net(60)
    for i in range(2):
        t = threading.Thread(target=request_worker, name="http-worker-%d" % i)
        t.daemon = True
        t.start()
    late = threading.Thread(target=request_worker, name="boot-name")
    late.daemon = True
    late.start()
    late.name = "scheduler"                      # renamed after start
    raw_thread.start_new_thread(raw_helper, ())  # no threading.Thread object
    while len(started) < 4:
        time.sleep(0.01)
    holds.emit("READY pid=%d" % os.getpid())
    while True:                                  # until the test closes stdin
        line = sys.stdin.readline()
        if not line:
            break
        words = line.split()
        if len(words) == 2 and words[0] == "rename":
            late.name = words[1]
            holds.emit("RENAMED %s" % words[1])
    gate.set()


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""A thread that waits, without ever waking, first on one line, then (after
`move` on stdin) on another: the stack of a thread that did not run may be
reused from an earlier read, and so may the request in its frames, so this
checks zhw notices when it did run.

Prints `READY pid=<pid>`, then `MOVED` once the thread has been released.
Python 2.7 and 3.6+.
"""
from __future__ import print_function

import os
import sys
import threading

FIRST = threading.Event()
SECOND = threading.Event()


def park():
    # A request of each wait, where a WSGI server keeps one: the request of
    # a thread that did not run may be reused too, and must follow it.
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/first"}
    FIRST.wait()  # first wait: PARK_FIRST_LINE
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/second"}
    SECOND.wait()  # second wait: PARK_SECOND_LINE
    return environ


def serve():
    """The thread's loop: park is called code, so the thread is busy."""
    park()


def main():
    thread = threading.Thread(target=serve, name="mover")
    thread.daemon = True
    thread.start()
    print("READY pid=%d" % os.getpid())
    sys.stdout.flush()
    for line in iter(sys.stdin.readline, ""):
        if line.strip() == "move":
            FIRST.set()
            print("MOVED")
            sys.stdout.flush()


if __name__ == "__main__":
    main()

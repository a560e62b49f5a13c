# -*- coding: utf-8 -*-
"""Hold functions shared by waitress_app.py and zserver_app.py.

Runs on Python 2.7 and 3.6+. Each hold_<kind>(tag) first prints
``HOLD <kind> <tag>`` (one flushed line) and then keeps the calling worker
thread busy in app code until the process dies, capped at MAX_HOLD seconds:

  hold_sleep  time.sleep() called from app code
  hold_spin   pure-Python CPU loop
  hold_lock   blocks acquiring HELD_LOCK, which the main program holds forever
  hold_cond   waits on the app's own threading.Condition (APP_COND)

On Python 3 the cap uses native timeouts. Python 2 locks have no acquire
timeout, so there hold_lock / hold_cond block without one (the realistic
stack) and the main program's loop calls reap() about once a second to
release waiters whose MAX_HOLD has passed.
"""
from __future__ import print_function

import os
import signal
import sys
import threading
import time

PY2 = sys.version_info[0] == 2
# no hold lasts longer than this (ZHW_MAX_HOLD overrides, for testing the cap)
MAX_HOLD = min(float(os.environ.get("ZHW_MAX_HOLD", "300")), 300.0)
SAFETY_EXIT = 600     # processes exit on their own after this many seconds

# Module-level lock the main program acquires (hold_main_lock) and never releases.
HELD_LOCK = threading.Lock()
# The app's own condition variable; nobody ever notifies it (except reap() on py2).
APP_COND = threading.Condition()

_out_lock = threading.Lock()
_range = xrange if PY2 else range  # noqa: F821 (py2 only)


def emit(line):
    """Print one line on stdout and flush it, thread-safely."""
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except Exception:  # reader went away: nothing useful to do
            pass


def install_safety_net(seconds=SAFETY_EXIT):
    """Make the process die by itself (SIGALRM, default action) after `seconds`."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(seconds))


def hold_main_lock():
    """Called once by the main program: take HELD_LOCK and never give it back."""
    HELD_LOCK.acquire()


# --- python 2 reaping ------------------------------------------------------

_reg_lock = threading.Lock()
_py2_waiters = []  # [kind, deadline, released] for hold_lock / hold_cond on py2


def _register(kind):
    w = [kind, time.time() + MAX_HOLD, False]
    with _reg_lock:
        _py2_waiters.append(w)
    return w


def reap():
    """Release py2 lock/cond waiters whose MAX_HOLD has passed.

    Must be called from a thread that never holds APP_COND (the main loop).
    A no-op on Python 3 and when nothing has expired.
    """
    if not _py2_waiters:
        return
    now = time.time()
    expired = []
    with _reg_lock:
        for w in list(_py2_waiters):
            if w[1] <= now:
                w[2] = True
                _py2_waiters.remove(w)
                expired.append(w)
    for w in expired:
        if w[0] == "lock":
            # Let one waiter through; it keeps the lock, so the lock stays held.
            try:
                HELD_LOCK.release()
            except Exception:
                pass
        else:
            with APP_COND:
                APP_COND.notify_all()


# --- the holds ---------------------------------------------------------------

def hold_sleep(tag):
    emit("HOLD sleep %s" % tag)
    deadline = time.time() + MAX_HOLD
    while True:
        left = deadline - time.time()
        if left <= 0:
            break
        time.sleep(left)


def hold_spin(tag):
    emit("HOLD spin %s" % tag)
    deadline = time.time() + MAX_HOLD
    x = 0
    while time.time() < deadline:
        for i in _range(20000):
            x = (x * 31 + i) % 1000003
    return x


def hold_lock(tag):
    emit("HOLD lock %s" % tag)
    if PY2:
        _register("lock")
        HELD_LOCK.acquire()  # blocks until reap() lets one waiter through
    else:
        HELD_LOCK.acquire(True, MAX_HOLD)  # never succeeds: main holds it


def hold_cond(tag):
    emit("HOLD cond %s" % tag)
    deadline = time.time() + MAX_HOLD
    with APP_COND:
        if PY2:
            w = _register("cond")
            while not w[2]:
                APP_COND.wait()  # blocks until reap() marks this waiter done
        else:
            while True:
                left = deadline - time.time()
                if left <= 0:
                    break
                APP_COND.wait(left)


HOLDS = {
    "sleep": hold_sleep,
    "spin": hold_spin,
    "lock": hold_lock,
    "cond": hold_cond,
}


def inflate(environ):
    """Make a request's environ hostile to a reader (for /hold/huge): 100,000
    extra keys, a 10 MB PATH_INFO, and a reference to itself."""
    for i in _range(100000):
        environ["zhw.filler.%d" % i] = "x"
    environ["PATH_INFO"] = "/huge/" + "p" * (10 * 1024 * 1024)
    environ["zhw.self"] = environ


def wsgi_app(environ, start_response):
    """The test servers' WSGI application: /hold/<kind> runs hold_<kind>
    (tagged with the worker thread's name), /hold/huge inflates the environ
    (see inflate), makes a local `cycle` that contains itself, prints
    "HOLD huge <thread-name>" and sleeps; /ok answers at once."""
    path = environ.get("PATH_INFO", "")
    # /hold/<kind>/<anything>: the rest of the path is free (tests put
    # hostile text there to see how zhw shows it).
    kind = path[len("/hold/"):].split("/")[0] if path.startswith("/hold/") else None
    if path == "/ok":
        body, status = b"ok", "200 OK"
    elif kind == "huge":
        inflate(environ)
        cycle = {"me": None}
        cycle["me"] = cycle  # a local that contains itself
        emit("HOLD huge %s" % threading.current_thread().name)
        deadline = time.time() + MAX_HOLD
        while time.time() < deadline:
            time.sleep(max(0.0, min(1.0, deadline - time.time())))
        body, status = b"released\n", "200 OK"
    elif kind in HOLDS:
        HOLDS[kind](threading.current_thread().name)
        body, status = b"released\n", "200 OK"
    else:
        body, status = b"not found\n", "404 Not Found"
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]


def start(doc, port=False):
    """Common start of every test server: parse `--threads N` (and `--port P`
    when asked), arm the safety exit, take HELD_LOCK; returns the arguments."""
    import argparse
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    if port:
        parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    install_safety_net()
    hold_main_lock()
    return args

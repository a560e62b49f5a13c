"""Benchmark target for benches/check_vs_pyspy.py (runs on Python 2.7 and 3.x).

    python target.py N

Starts N threads, each parked 9 Python calls deep in threading.Event().wait()
with a WSGI-like request on its stack (the outermost call, level1, holds a
local `environ` dict of 30 keys with REQUEST_METHOD, PATH_INFO, QUERY_STRING,
headers...), and one probe thread that loops time.sleep(0.0005) and records the largest gap
between two of its iterations: any pause of the whole process (a ptrace stop)
shows up as a large gap.

Protocol on stdin/stdout, one line each:
    (startup)  the target prints "ready" once every thread is parked
    reset      forget the largest gap           -> "ok"
    read       largest gap since reset, in ms   -> "<ms> <iterations>"
               (a gap still open now counts too)
    quit       exit                             -> (nothing)
"""

import os
import sys
import threading
import time

try:
    clock = time.perf_counter
except AttributeError:  # Python 2.7: no monotonic clock in the stdlib
    clock = time.time

PROBE_SLEEP = 0.0005
DEPTH = 9


class Probe(object):
    def __init__(self):
        self.last = clock()
        self.max_gap = 0.0
        self.iterations = 0

    def run(self):
        while True:
            time.sleep(PROBE_SLEEP)
            now = clock()
            gap = now - self.last
            self.last = now
            self.iterations += 1
            if gap > self.max_gap:
                self.max_gap = gap

    def reset(self):
        self.last = clock()
        self.max_gap = 0.0
        self.iterations = 0

    def read(self):
        open_gap = clock() - self.last
        return max(self.max_gap, open_gap), self.iterations


parked = [0]
parked_lock = threading.Lock()
forever = threading.Event()


def level9(event):
    with parked_lock:
        parked[0] += 1
    event.wait()


def level8(event):
    level9(event)


def level7(event):
    level8(event)


def level6(event):
    level7(event)


def level5(event):
    level6(event)


def level4(event):
    level5(event)


def level3(event):
    level4(event)


def level2(event):
    level3(event)


def request_environ(i):
    """What a WSGI server hands an application, give or take a header."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/site/folder/document-%d/edit" % i,
        "QUERY_STRING": "form.submitted=1&user=alice&password=hunter2&page=%d" % i,
        "SERVER_NAME": "bench.example",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "bench",
        "REMOTE_ADDR": "192.0.2.%d" % (i % 250 + 1),
        "REMOTE_HOST": "192.0.2.%d" % (i % 250 + 1),
        "REMOTE_PORT": "%d" % (40000 + i),
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "",
        "HTTP_HOST": "bench.example:8080",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml",
        "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.8",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "HTTP_CONNECTION": "keep-alive",
        "HTTP_COOKIE": "__ac=secret-cookie-%d" % i,
        "HTTP_REFERER": "http://bench.example:8080/site/folder",
        "HTTP_CACHE_CONTROL": "max-age=0",
        "HTTP_X_FORWARDED_PROTO": "https",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input": None,
        "wsgi.errors": None,
    }
    return environ


def level1(event, environ=None):
    level2(event)


def main():
    n = int(sys.argv[1])
    for i in range(n):
        t = threading.Thread(target=level1, args=(threading.Event(), request_environ(i)),
                             name="parked-%d" % i)
        t.daemon = True
        t.start()
    while True:
        with parked_lock:
            if parked[0] >= n:
                break
        time.sleep(0.01)
    time.sleep(0.2)  # let the last threads reach the futex wait

    probe = Probe()
    p = threading.Thread(target=probe.run, name="probe")
    p.daemon = True
    p.start()

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        command = line.strip()
        if command == "reset":
            probe.reset()
            out.write("ok\n")
        elif command == "read":
            gap, iterations = probe.read()
            out.write("%.3f %d\n" % (gap * 1000.0, iterations))
        elif command == "quit":
            break
        else:
            out.write("error unknown command %r\n" % command)
        out.flush()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # no interpreter shutdown under the daemon threads (2.7 complains)

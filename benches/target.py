"""Benchmark target for benches/check_vs_pyspy.py (runs on Python 2.7 and 3.x).

    python target.py N

Starts N threads, each parked 9 Python calls deep in threading.Event().wait(),
and one probe thread that loops time.sleep(0.0005) and records the largest gap
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


def level1(event):
    level2(event)


def main():
    n = int(sys.argv[1])
    for i in range(n):
        t = threading.Thread(target=level1, args=(threading.Event(),), name="parked-%d" % i)
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

"""N parked worker threads and one busy thread (shared case 07).

Usage: python many_threads.py N. Threads "parked-0" ... "parked-<N-1>" wait on
one Event in parked_worker, "busy" spins in busy_worker, and the main thread
waits on the same Event: N + 2 Python threads. Prints READY once all run.
Python 2.7 and 3.x; exits by itself after 180 s (SIGALRM).
"""
import signal
import sys
import threading
import time

signal.alarm(180)
N = int(sys.argv[1])
DEADLINE = time.time() + 150
threading.stack_size(256 * 1024)
gate = threading.Event()


def parked_worker():
    # No timeout: Python 2.7 waits with a timeout by polling every 50 ms,
    # which 4200 threads cannot do. SIGALRM ends the process.
    gate.wait()


def busy_worker():
    n = 0
    while time.time() < DEADLINE:
        n += 1


# The busy thread starts last: on 2.7 a spinning thread starves the main
# thread of the GIL, and starting 4200 threads would take minutes.
threads = [threading.Thread(target=parked_worker, name="parked-%d" % i) for i in range(N)]
threads.append(threading.Thread(target=busy_worker, name="busy"))
for t in threads:
    t.daemon = True
    t.start()
sys.stdout.write("READY\n")
sys.stdout.flush()
gate.wait()

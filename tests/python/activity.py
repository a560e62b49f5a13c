"""Threads in every activity zhw tells apart, for tests/shapes.rs (activity).

  spinner-0/1    pure-Python loops: on a CPU or waiting for the GIL
  hog            holds the GIL for long stretches inside one C call (sum),
                 so the spinners spend most of their time waiting for it
  nap            time.sleep()
  lock-waiter    Lock.acquire() on a lock nobody releases
  socket-reader  socket.recv() on a socket nobody writes to
  pool-idle      a pool worker parked in Queue.get(), waiting for work
  pool-io        a pool worker inside a job, waiting for a backend (recv)
  MainThread     Event.wait()
  (native)       a thread started with pthread_create that runs libc's
                 sleep() and never Python: invisible to zhw, which must say so

(shared cases 01, 03 and 19 in one process.) Prints READY once every thread
runs and the hog is past its start signal; the hog starts only after the
others run, so that the GIL is free while they start.
Python 2.7 and 3.x; exits by itself after 120 s.
"""
import ctypes
import ctypes.util
import signal
import socket
import sys
import threading
import time

try:
    import Queue as queue  # Python 2
except ImportError:
    import queue

try:
    numbers = xrange  # Python 2
except NameError:
    numbers = range

signal.alarm(150)
DEADLINE = time.time() + 120
go = threading.Event()
held = threading.Lock()
held.acquire()
left, right = socket.socketpair()
backend, backend_peer = socket.socketpair()
jobs = queue.Queue()
running = []
hogging = []


def spin():
    running.append(1)
    n = 0
    while time.time() < DEADLINE:
        n += 1


def hog():
    running.append(1)
    go.wait()
    hogging.append(1)
    while time.time() < DEADLINE:
        sum(numbers(3 * 10 ** 6))


def nap():
    running.append(1)
    time.sleep(120)


def block_on_lock():
    running.append(1)
    held.acquire()


def block_on_recv():
    running.append(1)
    left.recv(16)


def call_backend():
    backend.recv(16)


def pool_worker():
    running.append(1)
    while True:
        job = jobs.get()
        job()


for fn, name in ((spin, "spinner-0"), (spin, "spinner-1"), (hog, "hog"), (nap, "nap"),
                 (block_on_lock, "lock-waiter"), (block_on_recv, "socket-reader"),
                 (pool_worker, "pool-io"), (pool_worker, "pool-idle")):
    t = threading.Thread(target=fn, name=name)
    t.daemon = True
    t.start()
    if name == "pool-io":
        jobs.put(call_backend)
        while jobs.qsize():
            time.sleep(0.01)
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
native = ctypes.c_ulong()
libc.pthread_create(ctypes.byref(native), None,
                    ctypes.cast(libc.sleep, ctypes.c_void_p), ctypes.c_void_p(150))
while len(running) < 8:
    time.sleep(0.01)
time.sleep(0.2)
# READY only once the hog hogs: a sample taken before would find it still
# waiting for the signal (idle), not active.
go.set()
while not hogging:
    time.sleep(0.01)
sys.stdout.write("READY\n")
sys.stdout.flush()
threading.Event().wait(120)

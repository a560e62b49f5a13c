"""Five threads in five states, for the shape tests (copy of shared case 04's target).

  MainThread      threading.Event().wait()
  nap             time.sleep()
  lock-waiter     Lock.acquire() on a lock nobody releases
  socket-reader   socket.recv() on a socket nobody writes to
  spinner         pure-Python loop (on a CPU, holding the GIL most of the time)

Prints READY once all run. Python 2.7 and 3.x; exits by itself after 120 s.
"""
import signal
import socket
import sys
import threading
import time

signal.alarm(150)
DEADLINE = time.time() + 120
held = threading.Lock()
held.acquire()
left, right = socket.socketpair()


def nap_in_sleep():
    time.sleep(120)


def block_on_lock():
    held.acquire()


def block_on_recv():
    left.recv(16)


def spin_cpu():
    n = 0
    while time.time() < DEADLINE:
        n += 1


for fn, name in ((nap_in_sleep, "nap"), (block_on_lock, "lock-waiter"),
                 (block_on_recv, "socket-reader"), (spin_cpu, "spinner")):
    t = threading.Thread(target=fn, name=name)
    t.daemon = True
    t.start()


def wait_for_shutdown():
    threading.Event().wait(120)


time.sleep(0.2)
sys.stdout.write("READY\n")
sys.stdout.flush()
wait_for_shutdown()

"""One thread parked DEPTH recursive calls deep, one at normal depth (shared case 06).

Usage: python deep_stack.py DEPTH. The thread "deep" runs descend(DEPTH), so
its stack is DEPTH + 5 Python frames: Thread bootstrap (3), descend x
(DEPTH + 1), hold_at_bottom. It runs on a large C stack, so Python 2.7-3.10
(whose Python calls use the C stack) can go as deep as 3.11+. The thread
"shallow" sleeps; the main thread waits. Prints READY from the bottom of the
recursion. Python 2.7 and 3.x; exits by itself after 120 s.
"""
import signal
import sys
import threading
import time

signal.alarm(150)
DEPTH = int(sys.argv[1])
sys.setrecursionlimit(DEPTH + 1000)
threading.stack_size(1024 * 1024 * 1024)


def shallow_worker():
    time.sleep(120)


def hold_at_bottom():
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    time.sleep(120)


def descend(n):
    if n == 0:
        return hold_at_bottom()
    return descend(n - 1)


for target, name, args in ((shallow_worker, "shallow", ()), (descend, "deep", (DEPTH,))):
    t = threading.Thread(target=target, name=name, args=args)
    t.daemon = True
    t.start()
threading.Event().wait(120)

"""Threads for the PID-namespace test: run as pid 1 of its own namespace.

Three sleeping threads and one spinning thread; prints READY when all run.
"""
import sys
import threading
import time


def nap():
    time.sleep(120)


def spin():
    deadline = time.time() + 120
    while time.time() < deadline:
        pass


for target in (nap, nap, nap, spin):
    t = threading.Thread(target=target, name=target.__name__)
    t.daemon = True
    t.start()
sys.stdout.write("READY\n")
sys.stdout.flush()
time.sleep(120)

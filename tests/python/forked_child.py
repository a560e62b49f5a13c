"""A threaded parent forks a child (prefork server, multiprocessing 'fork').

Only the forking thread exists in the child; on Python 2.7 the other
threads' PyThreadStates stay linked in the child's interpreter. Prints
`READY child=<pid>` once the child runs. Python 2.7 and 3.x; everything
exits by itself after about a minute.
"""
import os
import signal
import sys
import threading
import time

signal.alarm(60)
gate = threading.Event()


def background_job():
    gate.wait(55)


for i in range(3):
    t = threading.Thread(target=background_job, name="bg-%d" % i)
    t.daemon = True
    t.start()
time.sleep(0.2)

pid = os.fork()
if pid == 0:
    signal.alarm(60)

    def child_serve():
        time.sleep(55)

    child_serve()
    os._exit(0)

sys.stdout.write("READY child=%d\n" % pid)
sys.stdout.flush()
os.waitpid(pid, 0)

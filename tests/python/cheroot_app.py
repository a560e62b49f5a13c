# -*- coding: utf-8 -*-
"""A cheroot (CherryPy's server) WSGI server whose workers can be held busy.

Usage: <env>/bin/python cheroot_app.py --threads N

Listens on 127.0.0.1 (ephemeral port), then prints `READY port=<port>
pid=<pid>`. `/hold/<kind>` (sleep, spin, lock, cond: see holds.py) prints
`HOLD <kind> <thread name>` and keeps the worker busy until the process dies
(at most holds.MAX_HOLD seconds); `/ok` answers at once. Python 2.7 and 3.6+.
"""
from __future__ import print_function

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

from cheroot import wsgi  # noqa: E402


app = holds.wsgi_app


def main():
    args = holds.start(__doc__)
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=args.threads)
    server.prepare()
    holds.emit("READY port=%d pid=%d" % (server.bind_addr[1], os.getpid()))
    if holds.PY2:
        # Python 2 lock and condition holds have no timeout; a service thread
        # releases expired ones (see holds.reap).
        def reaper():
            while True:
                time.sleep(1)
                holds.reap()

        reaper_thread = threading.Thread(target=reaper, name="hold-reaper")
        reaper_thread.daemon = True
        reaper_thread.start()
    server.serve()


if __name__ == "__main__":
    main()

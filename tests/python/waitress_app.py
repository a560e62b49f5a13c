# -*- coding: utf-8 -*-
"""A waitress WSGI server whose workers can be parked in app code on demand.

Usage: <env>/bin/python waitress_app.py --threads N

Listens on 127.0.0.1, ephemeral port, then prints (flushed)
    READY port=<port> pid=<pid>
Endpoints:
    /hold/sleep /hold/spin /hold/lock /hold/cond
        print "HOLD <kind> <thread-name>" (thread name: waitress-<n>) and keep
        the worker busy in holds.hold_<kind> until the process dies
        (at most 300 s), then answer 200.
    /ok   200 "ok" at once.
    /shrink/<n>
        lower waitress's worker count to n (its set_thread_count: surplus
        worker threads exit), as if workers had died; 200 at once.
    else  404.
Exits on SIGTERM/SIGKILL, or by itself after 600 s. Python 2.7 and 3.6+.
"""
from __future__ import print_function

import os
import sys

sys.dont_write_bytecode = True  # keep tests/python free of .pyc files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

import waitress  # noqa: E402
from waitress import wasyncore  # noqa: E402


SERVER = []  # the one waitress server, once created


def app(environ, start_response):
    """holds.wsgi_app, plus /shrink/<n> to make worker threads exit."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/shrink/") and SERVER:
        SERVER[0].task_dispatcher.set_thread_count(int(path[len("/shrink/"):]))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", "7")])
        return [b"shrunk\n"]
    return holds.wsgi_app(environ, start_response)


class _ReapingAsyncore(object):
    """Python 2 only: waitress's own loop, one poll at a time, calling
    holds.reap() in between so py2 lock/cond holds honour the 300 s cap."""

    def loop(self, timeout=1.0, use_poll=False, map=None, count=None):
        while map:
            wasyncore.loop(timeout=min(timeout, 1.0), use_poll=use_poll,
                           map=map, count=1)
            holds.reap()


def main():
    args = holds.start(__doc__, port=True)

    server = waitress.create_server(app, host="127.0.0.1", port=args.port,
                                    threads=args.threads)
    SERVER.append(server)
    if holds.PY2:
        server.asyncore = _ReapingAsyncore()
    holds.emit("READY port=%d pid=%d" % (int(server.effective_port), os.getpid()))
    server.run()


if __name__ == "__main__":
    main()

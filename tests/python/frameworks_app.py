# -*- coding: utf-8 -*-
"""A Flask, Django or Pyramid app whose views can hold a worker busy, served
by the standard library's wsgiref, which names no request location of its own.

Usage: <env>/bin/python frameworks_app.py --framework flask|django|pyramid
                                          --server pool|threading [--threads N]

Servers (both wsgiref's WSGIServer and WSGIRequestHandler):
    pool       each connection goes to a concurrent.futures.ThreadPoolExecutor
               of N threads (the `futures` backport on 2.7), started before
               READY: zhw's `threadpool` profile, N workers
    threading  socketserver's ThreadingMixIn: one new thread per connection,
               none between requests: zhw's `generic` profile
Neither server keeps the WSGI environ in a local of its own (wsgiref keeps it
as `self.environ` of its handler), so the request zhw reports is read from the
framework's frame: Flask.__call__ / wsgi_app, Django's WSGIHandler.__call__,
Pyramid's Router.__call__, each with a local `environ`.

Listens on 127.0.0.1 (ephemeral port), then prints `READY port=<port>
pid=<pid>`. `/hold/<kind>` (sleep, spin, lock, cond: see holds.py) is routed
by the framework to its view, which prints `HOLD <kind> <thread name>
environ=<id>` (the address of the environ dict of the framework's request
object) and keeps the worker busy until the process dies (at most holds.MAX_HOLD
seconds); `/ok` answers at once. Python 2.7 and 3.6+.
"""
from __future__ import print_function

import os
import sys
import threading
import time
import types
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

from wsgiref.simple_server import WSGIRequestHandler, WSGIServer  # noqa: E402

try:
    from socketserver import ThreadingMixIn
except ImportError:  # Python 2
    from SocketServer import ThreadingMixIn


def answer(kind, environ=None):
    """What every framework's view does: hold the worker, or answer at once.
    The HOLD line names the thread and the address of the environ dict the
    framework's request object holds (`environ=<id>`), which a test compares
    with the identity zhw reports for the request."""
    if kind == "ok":
        return "ok\n"
    tag = "%s environ=%d" % (threading.current_thread().name, id(environ))
    holds.HOLDS[kind](tag)
    return "released\n"


def flask_app():
    import flask

    app = flask.Flask("zhw_frameworks")

    def flask_view(kind):
        if kind not in holds.HOLDS:
            flask.abort(404)
        return answer(kind, flask.request.environ)

    app.add_url_rule("/hold/<kind>", "hold", flask_view)
    app.add_url_rule("/ok", "ok", lambda: answer("ok"))
    return app


def django_app():
    from django.conf import settings
    from django.http import Http404, HttpResponse

    try:
        from django.urls import re_path
    except ImportError:  # Django 1.11
        from django.conf.urls import url as re_path

    def django_view(request, kind):
        if kind not in holds.HOLDS:
            raise Http404(kind)
        return HttpResponse(answer(kind, request.environ), content_type="text/plain")

    urls = types.ModuleType("zhw_django_urls")
    urls.urlpatterns = [
        re_path(r"^hold/(?P<kind>\w+)$", django_view),
        re_path(r"^ok$", lambda request: HttpResponse(answer("ok"))),
    ]
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zhw-test-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def pyramid_app():
    from pyramid.config import Configurator
    from pyramid.httpexceptions import HTTPNotFound
    from pyramid.response import Response

    def pyramid_view(request):
        kind = request.matchdict["kind"]
        if kind not in holds.HOLDS:
            return HTTPNotFound()
        body = answer(kind, request.environ).encode("ascii")
        return Response(body=body, content_type="text/plain")

    config = Configurator()
    config.add_route("hold", "/hold/{kind}")
    config.add_view(pyramid_view, route_name="hold")
    config.add_route("ok", "/ok")
    config.add_view(lambda request: Response(body=b"ok\n"), route_name="ok")
    return config.make_wsgi_app()


APPS = {"flask": flask_app, "django": django_app, "pyramid": pyramid_app}


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per connection (socketserver.ThreadingMixIn)."""

    daemon_threads = True


class PoolWSGIServer(WSGIServer):
    """Each connection served by one of a fixed pool's threads."""

    pool = None

    def start_pool(self, threads):
        from concurrent.futures import ThreadPoolExecutor, wait

        self.pool = ThreadPoolExecutor(max_workers=threads)
        # The executor starts threads on demand: N tasks that wait for each
        # other make it start all N now, so idle workers exist from READY on.
        cond = threading.Condition()
        arrived = [0]

        def rendezvous():
            with cond:
                arrived[0] += 1
                cond.notify_all()
                deadline = time.time() + 30
                while arrived[0] < threads and time.time() < deadline:
                    cond.wait(1.0)

        wait([self.pool.submit(rendezvous) for _ in range(threads)], timeout=60)

    def process_request(self, request, client_address):
        self.pool.submit(self.serve_one, request, client_address)

    def serve_one(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=sorted(APPS), required=True)
    parser.add_argument("--server", choices=["pool", "threading"], required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    holds.install_safety_net()
    holds.hold_main_lock()
    # Pyramid imports pkg_resources, which setuptools 67+ warns about on stderr.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    app = APPS[args.framework]()
    server_class = PoolWSGIServer if args.server == "pool" else ThreadingWSGIServer
    server = server_class(("127.0.0.1", 0), QuietHandler)
    server.set_app(app)
    if args.server == "pool":
        server.start_pool(args.threads)
    server.timeout = 1.0
    holds.emit("READY port=%d pid=%d" % (server.server_address[1], os.getpid()))
    # One request at a time on the main thread, reaping expired Python 2
    # lock/cond holds in between (holds.reap; a no-op on Python 3).
    while True:
        server.handle_request()
        holds.reap()


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""Drive the REAL ZServer 4 worker pool (Python 2.7, zserver-2.7 env).

Usage: <root>/zserver-2.7/bin/python zserver_app.py --threads N

Starts ZServer.PubCore.ZRendezvous.ZRendevous(N): N real worker threads
running ZServer.PubCore.ZServerPublisher.ZServerPublisher.__init__, parked
in the real ZRendevous.accept (l.acquire()). There is no configured Zope
application, so ZPublisher.WSGIPublisher.publish_module -- the function
ZServerPublisher calls for handle('Zope2WSGI', environ, start_response) --
is replaced (before the workers start) by publish_module below, which runs
the shared holds. A busy worker's stack is:
    ZServerPublisher.__init__ -> publish_module (this file) -> hold_<kind>
A request queued with "zope2" takes the classic ZServer path instead: module
"Zope2" with a real ZPublisher.HTTPRequest, through the real
ZServer.ZPublisher.Publish.publish_module and publish_module_standard, whose
inner `publish` (which would traverse a Zope app) is replaced:
    ZServerPublisher.__init__ -> publish_module -> publish_module_standard
    (ZServer/ZPublisher/Publish.py) -> publish (this file) -> hold_<kind>
Every request's environ carries QUERY_STRING=user=alice&password=hunter2&q=x,
REMOTE_ADDR=192.0.2.7, HTTP_HOST=zope.test and HTTP_USER_AGENT=zhw-test/1.

stdout (each line flushed):
    READY pid=<pid>                  once all N workers are parked in accept
    HOLD <kind> <thread-id>          a worker entered hold_<kind>
                                     (thread-id: thread.get_ident(), decimal)
    OK <thread-id>                   an "ok" request was served
stdin, one command per line:
    hold <kind>         queue one request (kind: sleep, spin, lock, cond) via handle()
    hold <kind> zope2   the same through the classic "Zope2" publisher path
    ok                  queue one request that returns at once
Exits when stdin reaches EOF, on SIGTERM/SIGKILL, or by itself after 600 s.
"""
from __future__ import print_function

import errno
import os
import select
import sys
import thread
import time

sys.dont_write_bytecode = True  # keep tests/python free of .pyc files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import holds  # noqa: E402

import ZPublisher.WSGIPublisher  # noqa: E402
from ZPublisher.HTTPRequest import HTTPRequest  # noqa: E402
from ZPublisher.HTTPResponse import HTTPResponse  # noqa: E402
# ZServerPublisher imports this in each worker thread; import it up front.
import ZServer.ZPublisher.Publish  # noqa: E402,F401
from ZServer.PubCore.ZRendezvous import ZRendevous  # noqa: E402

QUERY = 'user=alice&password=hunter2&q=x'


class WSGIOutput(object):
    """What ZServerPublisher's Zope2WSGI branch needs as a['wsgi.output']
    (normally a ZServer.HTTPResponse.ChannelPipe)."""

    def __init__(self):
        self._close = 0
        self.closed = False
        self.data = []

    def write(self, data):
        self.data.append(data)

    def close(self):
        self.closed = True


def start_response(status, headers, exc_info=None):
    return lambda data: None


def publish_module(environ, start_response, _publish=None,
                   _response=None, _response_factory=None,
                   _request=None, _request_factory=None,
                   _module_name='Zope2'):
    """Stands in for ZPublisher.WSGIPublisher.publish_module."""
    kind = environ['zhw.kind']
    tag = str(thread.get_ident())
    if kind == 'ok':
        holds.emit("OK %s" % tag)
    else:
        hold = holds.HOLDS[kind]
        hold(tag)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'done\n']


ZPublisher.WSGIPublisher.publish_module = publish_module


def publish(request, module_name, after_list, debug=0):
    """Stands in for ZServer.ZPublisher.Publish.publish (no Zope app to
    traverse): runs the hold named by the request."""
    kind = request.environ['zhw.kind']
    tag = str(thread.get_ident())
    if kind == 'ok':
        holds.emit("OK %s" % tag)
    else:
        holds.HOLDS[kind](tag)
    return request.response


ZServer.ZPublisher.Publish.publish = publish


class Response(HTTPResponse):
    """ZServerPublisher calls _finish() on the response when done."""

    def _finish(self):
        pass


class Output(object):
    def write(self, data):
        pass

    def flush(self):
        pass


def queue(rendezvous, kind, zope2=False):
    environ = {
        'REQUEST_METHOD': 'GET',
        'PATH_INFO': '/hold/%s' % kind if kind != 'ok' else '/ok',
        'QUERY_STRING': QUERY,
        'SERVER_NAME': '127.0.0.1',
        'SERVER_PORT': '0',
        'HTTP_HOST': 'zope.test',
        'HTTP_USER_AGENT': 'zhw-test/1',
        'HTTP_COOKIE': '__ac=c2VjcmV0Q29va2ll',
        'HTTP_AUTHORIZATION': 'Basic c2VjcmV0Q29va2ll',
        'REMOTE_ADDR': '192.0.2.7',
        'zhw.kind': kind,
    }
    if zope2:
        response = Response(stdout=Output())
        request = HTTPRequest(Output(), environ, response)
        rendezvous.handle('Zope2', request, response)
    else:
        environ['wsgi.output'] = WSGIOutput()
        rendezvous.handle('Zope2WSGI', environ, start_response)


def command(rendezvous, line):
    words = line.split()
    if not words:
        return
    if words[0] == 'hold' and len(words) == 2 and words[1] in holds.HOLDS:
        queue(rendezvous, words[1])
    elif (words[0] == 'hold' and len(words) == 3 and words[1] in holds.HOLDS
          and words[2] == 'zope2'):
        queue(rendezvous, words[1], zope2=True)
    elif words == ['ok']:
        queue(rendezvous, 'ok')
    else:
        sys.stderr.write("zserver_app: unknown command: %r\n" % line)
        sys.stderr.flush()


def main():
    args = holds.start(__doc__)

    rendezvous = ZRendevous(args.threads)
    # READY only once every worker is parked in accept() (the "ready" list).
    deadline = time.time() + 60
    while len(rendezvous._lists[2]) < args.threads:
        if time.time() > deadline:
            sys.stderr.write("zserver_app: workers did not start\n")
            os._exit(1)
        time.sleep(0.01)
    holds.emit("READY pid=%d" % os.getpid())

    buf = b''
    while True:
        try:
            readable = select.select([0], [], [], 1.0)[0]
            chunk = os.read(0, 4096) if readable else None
        except (OSError, IOError, select.error) as e:
            if e.args and e.args[0] == errno.EINTR:
                continue
            raise
        holds.reap()
        if chunk is None:
            continue
        if chunk == b'':
            break
        buf += chunk
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            command(rendezvous, line.decode('ascii', 'replace').strip())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

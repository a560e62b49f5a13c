"""zhw's demo target: a small threaded HTTP server built on the standard library.

Four worker threads from a concurrent.futures.ThreadPoolExecutor serve
requests; `/hold` keeps a worker busy (sleeping inside the request, as a slow
view would) until the server stops. It prints `READY port=N` once listening
and `HOLD <thread name>` when a request starts holding, so a driver (zhw demo,
or a person with curl) knows when to look. Stops by itself after 10 minutes.
"""
import http.server
import socketserver
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

WORKERS = 4
SAFETY_LIMIT_SECONDS = 600
_print_lock = threading.Lock()


def say(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def slow_view():
    """Stands in for a view stuck on a slow backend."""
    say("HOLD " + threading.current_thread().name)
    time.sleep(SAFETY_LIMIT_SECONDS)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/hold"):
            slow_view()
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PooledServer(socketserver.TCPServer):
    """Hands each connection to a fixed pool of worker threads."""

    allow_reuse_address = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="worker")
        # Start every worker now, so idle ones are visible from the first look:
        # the pool only grows while all its threads are busy, so hold each
        # one at a barrier until all have started.
        all_started = threading.Barrier(WORKERS)
        for _ in range(WORKERS):
            self.pool.submit(all_started.wait)

    def process_request(self, request, client_address):
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


def main():
    server = PooledServer(("127.0.0.1", 0), Handler)
    say("READY port=%d" % server.server_address[1])
    threading.Timer(SAFETY_LIMIT_SECONDS, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()

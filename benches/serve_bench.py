#!/usr/bin/env python3
"""Figures for `zhw serve` (docs/performance.md); prints markdown, asserts nothing.

    python3 benches/serve_bench.py                  # all four parts, about 5 minutes
    python3 benches/serve_bench.py --parts cost,soak --soak-samples 2000

Parts:
  cost   zhw CPU time per sample and sidecar RSS for one target with 8, 64 and
         512 parked threads (benches/target.py), sampled every 50 ms for --seconds.
         The parked threads wait in application code, so the generic profile
         calls them all busy and zhw reads a request for each: a worst case
         (--serve-arg=--no-requests shows the cost without that).
  ten    CPU share of a core at the default 1 s interval with 10 targets of
         16 threads each, over --ten-seconds.
  soak   --soak-samples rounds at a 10 ms interval on a 64-thread target:
         RSS after the first 1,000 rounds and at the end (flat memory = no leak).
  load   1,000 concurrent HTTP clients against /metrics while sampling at
         100 ms: all answered?, rounds done meanwhile versus the interval.

CPU time comes from /proc/PID/stat (utime+stime of zhw), rounds from /json's
sidecar.round, RSS from /proc/PID/status (VmRSS, VmHWM). Runs as root (ptrace
rights over the targets); builds target/release/zhw when it is missing. Every
process it starts is killed at the end, also on Ctrl-C.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZHW = os.path.join(REPO, "target", "release", "zhw")
TARGET = os.path.join(REPO, "benches", "target.py")
TICKS = os.sysconf("SC_CLK_TCK")
children = []


def start(cmd, **kw):
    proc = subprocess.Popen(cmd, **kw)
    children.append(proc)
    return proc


def stop_all():
    for proc in children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def target(python, threads):
    proc = start([python, TARGET, str(threads)], stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, universal_newlines=True)
    line = proc.stdout.readline().strip()
    if line != "ready":
        sys.exit("target did not start: %r" % line)
    return proc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


EXTRA = []  # --serve-arg values


def serve(pids, interval):
    port = free_port()
    proc = start([ZHW, "serve"] + [str(p) for p in pids] + EXTRA +
                 ["--interval", str(interval), "--listen", "127.0.0.1:%d" % port],
                 stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            document = get_json(port)
            if document["sidecar"]["round"] >= 1:
                return proc, port
        except Exception:
            time.sleep(0.05)
    sys.exit("zhw serve did not answer")


def get_json(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/json" % port, timeout=30) as r:
        return json.load(r)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def measure(proc, port, seconds):
    """CPU seconds and rounds over `seconds` of steady sampling."""
    round0, cpu0, t0 = get_json(port)["sidecar"]["round"], cpu_seconds(proc.pid), time.time()
    time.sleep(seconds)
    round1, cpu1, t1 = get_json(port)["sidecar"]["round"], cpu_seconds(proc.pid), time.time()
    return cpu1 - cpu0, round1 - round0, t1 - t0


def part_cost(args):
    print("\n### Per-sample cost (one target, 50 ms interval, %d s)\n" % args.seconds)
    print("| threads | rounds | zhw CPU per sample | RSS (VmRSS) | peak RSS (VmHWM) |")
    print("|---:|---:|---:|---:|---:|")
    for threads in [int(n) for n in args.threads.split(",")]:
        t = target(args.python, threads)
        proc, port = serve([t.pid], 0.05)
        time.sleep(1)
        cpu, rounds, _ = measure(proc, port, args.seconds)
        print("| %d | %d | %.2f ms | %.1f MiB | %.1f MiB |" % (
            threads, rounds, 1000 * cpu / max(rounds, 1),
            memory_kib(proc.pid, "VmRSS") / 1024, memory_kib(proc.pid, "VmHWM") / 1024))
        proc.kill(); proc.wait(); t.kill(); t.wait()


def part_ten(args):
    print("\n### Ten targets at the default 1 s interval (%d s)\n" % args.ten_seconds)
    targets = [target(args.python, 16) for _ in range(10)]
    proc, port = serve([t.pid for t in targets], 1.0)
    time.sleep(2)
    cpu, rounds, wall = measure(proc, port, args.ten_seconds)
    print("| targets | threads each | rounds | zhw CPU | share of one core | RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    print("| 10 | 16 | %d | %.3f s | %.2f %% | %.1f MiB |" % (
        rounds, cpu, 100 * cpu / wall, memory_kib(proc.pid, "VmRSS") / 1024))
    proc.kill(); proc.wait()
    for t in targets:
        t.kill(); t.wait()


def part_soak(args):
    print("\n### Soak: %d rounds at 10 ms on a 64-thread target\n" % args.soak_samples)
    t = target(args.python, 64)
    proc, port = serve([t.pid], 0.01)
    marks = []
    for goal in sorted({1000, args.soak_samples // 2, args.soak_samples}):
        while get_json(port)["sidecar"]["round"] < goal:
            time.sleep(0.5)
        marks.append((goal, memory_kib(proc.pid, "VmRSS")))
    print("| after round | RSS |")
    print("|---:|---:|")
    for goal, kib in marks:
        print("| %d | %.1f MiB |" % (goal, kib / 1024))
    proc.kill(); proc.wait(); t.kill(); t.wait()


def part_load(args):
    print("\n### 1,000 concurrent HTTP clients, sampling every 100 ms\n")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    t = target(args.python, 64)
    proc, port = serve([t.pid], 0.1)
    round0, t0 = get_json(port)["sidecar"]["round"], time.time()
    sockets = []
    for _ in range(1000):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        sockets.append(s)
    answered = 0
    for s in sockets:
        s.settimeout(60)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        s.close()
        if b" 200 OK" in b"".join(chunks)[:64]:
            answered += 1
    wall = time.time() - t0
    rounds = get_json(port)["sidecar"]["round"] - round0
    print("| clients | answered | wall | rounds during | rounds expected at 100 ms |")
    print("|---:|---:|---:|---:|---:|")
    print("| 1000 | %d | %.2f s | %d | %.0f |" % (answered, wall, rounds, wall / 0.1))
    proc.kill(); proc.wait(); t.kill(); t.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python"))
    parser.add_argument("--parts", default="cost,ten,soak,load")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--threads", default="8,64,512",
                        help="thread counts of the cost part's targets, comma-separated")
    parser.add_argument("--ten-seconds", type=int, default=60)
    parser.add_argument("--soak-samples", type=int, default=10000)
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument for zhw serve (repeat), e.g. --serve-arg=--no-requests")
    args = parser.parse_args()
    EXTRA.extend(args.serve_arg)
    if not os.path.exists(ZHW):
        subprocess.check_call(["cargo", "build", "--release", "--locked"], cwd=REPO)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print("zhw serve benchmark: target %s, %d cores, extra serve arguments: %s"
          % (args.python, os.cpu_count(), " ".join(EXTRA) or "none"))
    try:
        for part in args.parts.split(","):
            {"cost": part_cost, "ten": part_ten, "soak": part_soak, "load": part_load}[part](args)
    finally:
        stop_all()


if __name__ == "__main__":
    main()

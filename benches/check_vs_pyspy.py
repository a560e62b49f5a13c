#!/usr/bin/env python3
"""Compare `zhw check` with `py-spy dump` on a Python process with many threads.

    python3 benches/check_vs_pyspy.py [--python PATH ...] [--threads 8,64,512]

Prints figures (markdown, pasteable into docs/performance.md); asserts nothing.
Self-contained: builds target/release/zhw with `cargo build --release` if it is
missing, and installs py-spy from PyPI into the venv target/bench-env if that
venv has no py-spy yet.

For each target interpreter and each thread count N it starts benches/target.py
(N threads parked 9 Python calls deep in threading.Event().wait(), plus a probe
thread that loops time.sleep(0.0005) and tracks the largest gap between two
iterations), then, round-robin so that machine noise hits every tool alike:

  * runs `zhw check --no-requests PID` (stacks only), `zhw check PID` (the
    default: also reads each busy worker's request), `zhw check --blocking
    PID` and `py-spy dump --pid PID`
    (2 warm-up runs each, then --runs timed runs) and records each run's wall
    time (spawn to exit) and the largest probe gap seen while it ran (reset
    before, read after);
  * after each round, runs `zhw check` on a second, identical target (the
    control: the same CPU and kernel work, done to another process, so it can
    only stall the probed target by competing for the CPUs), then leaves the
    target alone for as long as the slowest tool of that round took (the
    baseline: what this box's scheduler does to the probe with no tool).

Peak RSS of every tool comes from `/usr/bin/time -v` (--rss-runs extra runs
each, the largest kept) when that program exists. Without it the figure is the
ru_maxrss that wait4 reports for the child, marked "<=": it is only an upper
bound, because Linux folds the RSS high-water mark of the forked driver (this
Python process, ~15 MiB) into the child's at exec. RUSAGE_CHILDREN deltas have
the same flaw.

The zhw binary is copied to a temporary directory first, so that a rebuild
meanwhile cannot change it halfway. Every process the script starts is killed on exit, also on Ctrl-C / SIGTERM.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGET_SCRIPT = os.path.join(HERE, "target.py")
DEFAULT_PYTHON = os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python")
DEFAULT_ZHW = os.path.join(REPO, "target", "release", "zhw")
BENCH_ENV = os.path.join(REPO, "target", "bench-env")
# The PyPI release matching the py-spy crate zhw links (Cargo.lock), so both
# sides read the target with the same code.
DEFAULT_PYSPY_SPEC = "py-spy==0.4.3"
TOOL_TIMEOUT = 120.0

# Every process started here; killed on the way out, whatever happens.
_children = []
_children_lock = threading.Lock()


def log(message):
    sys.stderr.write("bench: %s\n" % message)
    sys.stderr.flush()


def spawn(argv, **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    with _children_lock:
        _children.append(proc)
    return proc


def forget(proc):
    with _children_lock:
        if proc in _children:
            _children.remove(proc)


def kill_all():
    with _children_lock:
        procs = list(_children)
        del _children[:]
    for proc in procs:
        if proc.returncode is None:
            try:
                proc.kill()
            except OSError:
                pass
    for proc in procs:
        if proc.returncode is None:
            try:
                proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, ChildProcessError, OSError):
                pass


def _on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


# --------------------------------------------------------------------------
# setup


def ensure_zhw(path):
    if os.path.exists(path):
        return path
    if path != DEFAULT_ZHW:
        sys.exit("bench: %s does not exist" % path)
    log("target/release/zhw missing: cargo build --release")
    subprocess.check_call(["cargo", "build", "--release"], cwd=REPO)
    return path


def venv_python_candidates():
    yield sys.executable
    for version in ("3.11.7", "3.12.1", "3.10.13", "3.9.18", "3.8.18"):
        yield os.path.expanduser("~/.pyenv/versions/%s/bin/python" % version)
    yield "/usr/bin/python3"


def ensure_pyspy(explicit, spec):
    if explicit:
        return explicit
    pyspy = os.path.join(BENCH_ENV, "bin", "py-spy")
    if os.path.exists(pyspy):
        return pyspy
    venv_python = os.path.join(BENCH_ENV, "bin", "python")
    if not os.path.exists(venv_python):
        for base in venv_python_candidates():
            if not os.path.exists(base):
                continue
            log("creating venv %s with %s" % (BENCH_ENV, base))
            shutil.rmtree(BENCH_ENV, ignore_errors=True)
            if subprocess.call([base, "-m", "venv", BENCH_ENV]) == 0 and os.path.exists(venv_python):
                break
        else:
            sys.exit("bench: could not create a venv (Debian: apt-get install python3-venv)")
    log("installing %s into %s" % (spec, BENCH_ENV))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    subprocess.check_call([venv_python, "-m", "pip", "install", "-q", spec], env=env)
    if not os.path.exists(pyspy):
        sys.exit("bench: pip installed %s but %s is missing" % (spec, pyspy))
    return pyspy


def first_line(argv):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return "unknown (%s)" % err
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def machine_info(pythons, zhw, pyspy):
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "driver_python": platform.python_version(),
        "targets": {p: first_line([p, "--version"]) for p in pythons},
        "pyspy": first_line([pyspy, "--version"]),
        "zhw": first_line([zhw, "--version"]),
        "zhw_built": datetime.datetime.fromtimestamp(os.path.getmtime(zhw)).strftime("%Y-%m-%d %H:%M"),
        "git_head": first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


# --------------------------------------------------------------------------
# the target


class Target(object):
    def __init__(self, python, threads):
        self.proc = spawn([python, TARGET_SCRIPT, str(threads)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
        self.pid = self.proc.pid
        line = self._readline(timeout=60 + threads * 0.1)
        if line.strip() != "ready":
            raise RuntimeError("target did not start: %r" % line)

    def _readline(self, timeout=10.0):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("target %d did not answer within %.0fs" % (self.pid, timeout))
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("target %d exited (code %s)" % (self.pid, self.proc.poll()))
        return line

    def command(self, word):
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return self._readline().strip()

    def reset(self):
        if self.command("reset") != "ok":
            raise RuntimeError("target: bad answer to reset")

    def read_gap_ms(self):
        gap, _iterations = self.command("read").split()
        return float(gap)

    def stop(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        forget(self.proc)


# --------------------------------------------------------------------------
# measuring one run


def run_tool(argv, capture=False):
    """Run argv to completion; (wall seconds, exit code, peak RSS KiB, output)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    started = time.perf_counter()
    proc = spawn(argv, stdout=out, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
                 universal_newlines=True)
    if capture:
        try:
            output, _ = proc.communicate(timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        wall = time.perf_counter() - started
        forget(proc)
        return wall, proc.returncode, None, output
    timer = threading.Timer(TOOL_TIMEOUT, proc.kill)
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
        else (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
    forget(proc)
    return wall, proc.returncode, usage.ru_maxrss, None


def gnu_time_rss_kib(argv, runs):
    """Peak RSS (KiB) over `runs` runs according to /usr/bin/time -v, or None."""
    if not os.access("/usr/bin/time", os.X_OK):
        return None
    peaks = []
    for _ in range(runs):
        proc = spawn(["/usr/bin/time", "-v"] + argv, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, universal_newlines=True)
        try:
            _, err = proc.communicate(timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        forget(proc)
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err or "")
        if match:
            peaks.append(int(match.group(1)))
    return max(peaks) if peaks else None


def percentile(values, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def summarize(values):
    return {"median": statistics.median(values), "p90": percentile(values, 0.9),
            "max": max(values), "min": min(values)}


# --------------------------------------------------------------------------
# one (interpreter, N) case


def tools_for(zhw, pyspy, pid):
    pid = str(pid)
    return [
        (PLAIN, [zhw, "check", "--no-requests", pid]),
        (WITH_REQUESTS, [zhw, "check", pid]),
        ("zhw check --blocking", [zhw, "check", "--blocking", pid]),
        ("py-spy dump", [pyspy, "dump", "--pid", pid]),
    ]


# A plain check, and the default one, which also reads every busy worker's
# request (here: every parked thread's, the target's worst case).
PLAIN = "zhw check --no-requests"
WITH_REQUESTS = "zhw check"


CONTROL = "control: `zhw check` of an identical second target"


def sanity(tools, threads):
    """One captured run of each tool: what it answered (shows it read every thread)."""
    notes = {}
    for name, argv in tools:
        _wall, code, _rss, output = run_tool(argv, capture=True)
        lines = (output or "").splitlines()
        if name.startswith("zhw"):
            match = re.search(r"workers=(\d+)", output or "")
            seen = int(match.group(1)) + 1 if match else None  # + the main thread
            summary = lines[0][:100] if lines else ""
        else:
            seen = sum(1 for line in lines if line.startswith("Thread "))
            summary = lines[0][:100] if lines else ""
        notes[name] = {"exit": code, "threads_seen": seen, "first_line": summary}
        if seen is not None and seen != threads + 2:
            log("warning: %s saw %s threads, expected %d" % (name, seen, threads + 2))
    return notes


def read_phase(argv, runs=3):
    """zhw's own account of its read phase (JSON `sampling`): reads, median ms."""
    reads, durations, details = set(), [], []
    for _ in range(runs):
        _wall, _code, _rss, output = run_tool(argv[:-1] + ["--format", "json", argv[-1]], capture=True)
        try:
            sampling = json.loads(output[output.index("{"):])["targets"][0]["sampling"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        reads.add(sampling["reads"])
        durations.append(sampling["duration_seconds"] * 1000.0)
        details.append(sampling.get("details_seconds", 0.0) * 1000.0)
    if not durations:
        return None
    return {"reads": sorted(reads), "duration_ms": statistics.median(durations),
            "details_ms": statistics.median(details)}


def bench_case(python, threads, zhw, pyspy, runs, warmups, rss_runs):
    target = Target(python, threads)
    twin = None
    try:
        twin = Target(python, threads)
        tools = tools_for(zhw, pyspy, target.pid)
        notes = sanity(tools, threads)
        for _ in range(warmups):
            for _name, argv in tools:
                run_tool(argv)
        samples = {name: {"wall_ms": [], "stall_ms": [], "rss_kib": [], "exit": []}
                   for name, _ in tools}
        baseline = []
        control = []
        for i in range(runs):
            longest = 0.0
            for name, argv in tools:
                target.reset()
                wall, code, rss, _ = run_tool(argv)
                stall = target.read_gap_ms()
                longest = max(longest, wall)
                s = samples[name]
                s["wall_ms"].append(wall * 1000.0)
                s["stall_ms"].append(stall)
                s["rss_kib"].append(rss)
                s["exit"].append(code)
            # the same work as `zhw check`, done to another process
            target.reset()
            run_tool([zhw, "check", str(twin.pid)])
            control.append(target.read_gap_ms())
            target.reset()
            time.sleep(longest)
            baseline.append(target.read_gap_ms())
            log("python %s N=%d run %d/%d done" % (os.path.basename(os.path.dirname(os.path.dirname(python))),
                                                  threads, i + 1, runs))
        gnu_rss = {name: gnu_time_rss_kib(argv, rss_runs) for name, argv in tools}
        phases = {name: read_phase(argv) for name, argv in tools if name.startswith("zhw")}
        result = {"threads": threads, "notes": notes, "tools": {}, "baseline_ms": summarize(baseline),
                  "baseline_raw_ms": baseline, "control_ms": summarize(control), "control_raw_ms": control}
        for name, _ in tools:
            s = samples[name]
            result["tools"][name] = {
                "wall_ms": summarize(s["wall_ms"]),
                "stall_ms": summarize(s["stall_ms"]),
                "rss_kib_wait4": max(s["rss_kib"]),
                "rss_kib_gnu_time": gnu_rss[name],
                "read_phase": phases.get(name),
                "exit_codes": sorted(set(s["exit"])),
                "raw_wall_ms": s["wall_ms"],
                "raw_stall_ms": s["stall_ms"],
            }
        return result
    finally:
        target.stop()
        if twin is not None:
            twin.stop()


# --------------------------------------------------------------------------
# report


def mib(kib):
    return "%.1f" % (kib / 1024.0) if kib else "n/a"


def rss_cell(tool):
    if tool.get("rss_kib_gnu_time"):
        return mib(tool["rss_kib_gnu_time"])
    return "<= " + mib(tool["rss_kib_wait4"])


def render(info, results, runs, warmups):
    out = []
    w = out.append
    w("Machine: %s CPUs (`nproc`), %s, kernel %s; load average at start %s." % (
        info["nproc"], info["cpu"], info["kernel"], " ".join(info["loadavg_start"])))
    w("Tools: %s (binary built %s; repository HEAD %s); %s (PyPI binary). Driver: Python %s. Date: %s." % (
        info["zhw"], info["zhw_built"], info["git_head"], info["pyspy"], info["driver_python"], info["date"]))
    w("Each figure: %d timed runs per tool after %d warm-ups, tools interleaved round-robin." % (runs, warmups))
    w("")
    for python, cases in results:
        w("#### Target %s (`%s`)" % (info["targets"].get(python, python), python))
        w("")
        w("| N threads | tool | wall median (ms) | wall p90 (ms) | ÷ py-spy dump (median) "
          "| max stall (ms) | median per-run stall (ms) | peak RSS (MiB) | exit |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for case in cases:
            n = case["threads"]
            ref = case["tools"]["py-spy dump"]["wall_ms"]["median"]
            for name, t in case["tools"].items():
                ratio = t["wall_ms"]["median"] / ref
                w("| %d | %s | %.1f | %.1f | %.2f | %.2f | %.2f | %s | %s |" % (
                    n, "`%s`" % name, t["wall_ms"]["median"], t["wall_ms"]["p90"], ratio,
                    t["stall_ms"]["max"], t["stall_ms"]["median"], rss_cell(t),
                    ",".join(str(c) for c in t["exit_codes"])))
            b = case["baseline_ms"]
            w("| %d | baseline (no tool) | | | | %.2f | %.2f | | |" % (n, b["max"], b["median"]))
            c = case["control_ms"]
            w("| %d | %s | | | | %.2f | %.2f | | |" % (n, CONTROL, c["max"], c["median"]))
        w("")
        w("Where `zhw check`'s time goes (its JSON `sampling` section, median of 3 runs; "
          "the rest is process start, attaching (finding the interpreter in the binary), "
          "matching threads to kernel tids and printing):")
        w("")
        w("| N threads | mode | reads of the thread list | reading stacks (ms) "
          "| reading requests (ms) | rest of the wall time (ms) |")
        w("|---:|---|---:|---:|---:|---:|")
        for case in cases:
            for name, t in case["tools"].items():
                phase = t.get("read_phase")
                if not phase:
                    continue
                w("| %d | `%s` | %s | %.1f | %.1f | %.1f |" % (
                    case["threads"], name, "/".join(str(r) for r in phase["reads"]),
                    phase["duration_ms"], phase["details_ms"],
                    t["wall_ms"]["median"] - phase["duration_ms"] - phase["details_ms"]))
        w("")
        w("Request info overhead (every one of the N threads is a busy worker with a request "
          "on its stack): `%s` against `%s`, medians of the wall time:" % (WITH_REQUESTS, PLAIN))
        w("")
        w("| N threads | plain (ms) | with request info (ms) | overhead |")
        w("|---:|---:|---:|---:|")
        for case in cases:
            plain = case["tools"][PLAIN]["wall_ms"]["median"]
            full = case["tools"][WITH_REQUESTS]["wall_ms"]["median"]
            w("| %d | %.1f | %.1f | %+.1f%% |" % (case["threads"], plain, full, 100.0 * (full / plain - 1.0)))
        w("")
        w("Threads read in the first run of each tool (expected N + 2: parked threads, probe, main):")
        w("")
        for case in cases:
            seen = ", ".join("%s %s" % (name, note["threads_seen"]) for name, note in case["notes"].items())
            w("- N=%d: %s; `zhw check` said: `%s`" % (
                case["threads"], seen, case["notes"][WITH_REQUESTS]["first_line"]))
        w("")
    return "\n".join(out)


# --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", metavar="PATH",
                        help="target interpreter (repeatable; default %s)" % DEFAULT_PYTHON)
    parser.add_argument("--threads", default="8,64,512", help="comma-separated thread counts")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per tool and case")
    parser.add_argument("--warmups", type=int, default=2, help="untimed runs per tool first")
    parser.add_argument("--rss-runs", type=int, default=3, help="extra /usr/bin/time -v runs per tool for peak RSS")
    parser.add_argument("--zhw", default=DEFAULT_ZHW, help="zhw binary")
    parser.add_argument("--py-spy", dest="pyspy", help="py-spy binary (default: the bench venv's)")
    parser.add_argument("--py-spy-spec", default=DEFAULT_PYSPY_SPEC, help="pip requirement for py-spy")
    parser.add_argument("--json", help="also write raw figures to this file")
    args = parser.parse_args()

    pythons = args.python or [DEFAULT_PYTHON]
    thread_counts = [int(x) for x in args.threads.split(",") if x.strip()]
    if os.geteuid() != 0:
        log("not root: reading another process needs ptrace rights (ptrace_scope, CAP_SYS_PTRACE)")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    scratch = tempfile.mkdtemp(prefix="zhw-bench-")
    try:
        built = ensure_zhw(args.zhw)
        pyspy = ensure_pyspy(args.pyspy, args.py_spy_spec)
        info = machine_info(pythons, built, pyspy)
        # Measure a private copy, so a `cargo build` running meanwhile cannot
        # swap the binary halfway through the run.
        zhw = os.path.join(scratch, "zhw")
        shutil.copy2(built, zhw)
        results = []
        for python in pythons:
            cases = []
            for n in thread_counts:
                log("target %s, N=%d" % (python, n))
                cases.append(bench_case(python, n, zhw, pyspy, args.runs, args.warmups, args.rss_runs))
            results.append((python, cases))
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        print(render(info, results, args.runs, args.warmups))
        print("Load average at end: %s." % " ".join(info["loadavg_end"]))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "results": results}, f, indent=1)
    except KeyboardInterrupt:
        log("interrupted; stopping every process started")
        return 130
    finally:
        kill_all()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

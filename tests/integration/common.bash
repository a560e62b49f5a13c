# Shared helpers for tests/integration/*.sh (sourced, not run; named .bash so
# that a glob over *.sh does not pick it up).
#
# Each script prints one result line per check, `PASS <name>: ...`,
# `FAIL <name>: ...` or `SKIP <name>: ...`, and exits non-zero if any FAILed.
# scripts/test collects those lines (grep '^\(PASS\|FAIL\|SKIP\) ').

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive
# Cargo's bin directory, for a shell that has not sourced ~/.cargo/env.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in *":$cargo_bin:"*) ;; *) [ -d "$cargo_bin" ] && PATH=$cargo_bin:$PATH ;; esac
PATH=$PATH:/usr/sbin:/sbin
export PATH

# Cargo's target directory (CARGO_TARGET_DIR or build.target-dir may move it).
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) ||
  target_dir=
[ -n "$target_dir" ] || target_dir=$repo/target

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
skip() { echo "SKIP $*"; }
note() { echo "  $*" >&2; }

require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP $1: needs root (installs system packages)"
    exit 0
  fi
}

# Every apt-get of these scripts waits (up to 5 min) for another package
# manager to finish instead of failing on the dpkg lock.
apt-get() { command apt-get -o DPkg::Lock::Timeout=300 "$@"; }

# apt-get update once per script run (the package lists may be missing or
# stale on a fresh machine).
apt_updated=
apt_update() {
  [ -n "$apt_updated" ] && return 0
  apt-get update -q >/dev/null 2>&1 || apt-get update -q >&2 || return 1
  apt_updated=1
}

# Install packages without starting their services: where the machine has no
# /usr/sbin/policy-rc.d (Debian's way to forbid invoke-rc.d to start
# anything), one that says "no" is put there for the install and removed
# after. A policy already there is left alone.
apt_install() {
  apt_update || return 1
  local own_policy= rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, from zhw tests/integration\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2 || rc=$?
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on, from $1 upwards.
free_port() {
  python3 - "$1" <<'EOF'
import socket, sys
for port in range(int(sys.argv[1]), int(sys.argv[1]) + 200):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    sys.exit("no free port")
EOF
}

# Waits up to $2 seconds until file $1 contains $3 lines matching regex $4.
wait_lines() {
  local file=$1 timeout=$2 want=$3 regex=$4 i
  for ((i = 0; i < timeout * 10; i++)); do
    [ "$(grep -c -E "$regex" "$file" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

# Starts a 4-thread waitress server with $python for test $1, named $2:
# sets port_$2 and pid_$2, writes the pid into pidfile $3 (mode 644), and
# records the process in pids (killed by finish). Needs $tmp.
start_waitress() {
  local test=$1 name=$2 pidfile=$3 log=$tmp/$2.log line
  ZHW_MAX_HOLD=240 "$python" tests/python/waitress_app.py --threads 4 >"$log" 2>&1 &
  pids+=($!)
  if ! wait_lines "$log" 30 1 '^READY port=[0-9]+ pid=[0-9]+'; then
    fail "$test: waitress server $name did not start: $(tail -n 3 "$log" | tr '\n' ' ')"
    finish "$test"
  fi
  line=$(grep -m1 '^READY' "$log")
  printf -v "port_$name" '%s' "$(sed 's/.*port=\([0-9]*\).*/\1/' <<<"$line")"
  printf -v "pid_$name" '%s' "$(sed 's/.*pid=\([0-9]*\).*/\1/' <<<"$line")"
  sed 's/.*pid=\([0-9]*\).*/\1/' <<<"$line" >"$pidfile"
  chmod 644 "$pidfile"
}

# Kills pid $1 (TERM, then KILL after 3 s) if it still runs.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$1: $failures check(s) FAILED" >&2
    exit 1
  fi
  exit 0
}

#!/usr/bin/env bash
# examples/icinga2/zhw.conf in a real Icinga 2:
#   1. `icinga2 daemon -C` accepts it (with the ITL and a test host whose
#      variables trigger both apply rules) and creates the expected services;
#   2. a private Icinga 2 daemon runs those checks, plus one service that sets
#      every remaining option, against real waitress servers (one with 4 of 4
#      workers busy, one idle): each check's command line holds the options
#      expected, and its exit status and output equal the same command's
#      run directly.
#
#   bash tests/integration/icinga2.sh      # as root; non-interactive
#
# Installs Debian's icinga2-bin (without starting its service); if that
# cannot be installed, prints `SKIP icinga2: <reason>` and exits 0. The
# private daemon (own config, data, cache, log and run directories under a
# temporary directory, user root) is stopped before the script ends.
# Prints PASS/FAIL/SKIP lines; exits non-zero if any check failed.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.bash"
cd "$repo"
require_root icinga2

start=$SECONDS
python=${ZHW_ICINGA_PYTHON:-$repo/target/test-envs/pyenv-3.12.1/bin/python}

tmp=$(mktemp -d /tmp/zhw-icinga2.XXXXXX)
pids=()
hold_fds=()
icinga_pid=
stop_icinga() {
  [ -n "$icinga_pid" ] || return 0
  stop_pid "$icinga_pid"
  # Its helper processes carry the private config's path on their command line.
  local p
  for p in $(pgrep -f "$tmp/icinga2.conf" 2>/dev/null); do stop_pid "$p"; done
  icinga_pid=
}
cleanup() {
  local fd pid
  stop_icinga
  for fd in "${hold_fds[@]}"; do exec {fd}>&- 2>/dev/null; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Icinga 2 -----------------------------------------------------------------
if ! icinga2 --version >/dev/null 2>&1; then
  if ! apt_update; then
    echo "SKIP icinga2: apt-get update failed, cannot install icinga2-bin  <<<<<<<<<<"
    exit 0
  fi
  if ! apt_install icinga2-bin; then
    echo "SKIP icinga2: apt-get install icinga2-bin failed (not in this machine's package lists?)  <<<<<<<<<<"
    exit 0
  fi
  if ! icinga2 --version >/dev/null 2>&1; then
    fail "icinga2: icinga2-bin is installed but 'icinga2 --version' does not run"
    finish icinga2
  fi
fi
icinga_version=$(icinga2 --version 2>/dev/null | sed -n 's/.*(version: \(.*\)).*/\1/p' | head -n 1)

mkdir -p "$tmp"/{data,cache,log,run,spool,state}
# Everything Icinga writes goes below $tmp; it runs as root, like this script.
defines=(
  -DDataDir="$tmp/data" -DCacheDir="$tmp/cache" -DLogDir="$tmp/log"
  -DInitRunDir="$tmp/run" -DSpoolDir="$tmp/spool" -DStateDir="$tmp/state"
  -DRunAsUser=root -DRunAsGroup=root
)

# The example, with this repo's binary for /usr/bin/zhw.
sed "s|/usr/bin/zhw|$target_dir/release/zhw|g" examples/icinga2/zhw.conf >"$tmp/zhw.conf"

# The test host: client1 through the per-client rule with defaults, client2
# with every per-client setting, and both pidfiles for the all-in-one rule.
write_host() {
  cat <<EOF
object Host "zope1" {
  check_command = "dummy"
  address = "127.0.0.1"
  vars.zope_clients["client1"] = { pidfile = "$tmp/client1.pid" }
  vars.zope_clients["client2"] = {
    pidfile = "$tmp/client2.pid"
    warning = "2"
    critical = "3"
    profile = "waitress"
    expect_workers = 4
    state_file = "$tmp/client2.state"
  }
  vars.zope_pidfiles = [ "$tmp/client1.pid", "$tmp/client2.pid" ]
}
EOF
}

# 1. Validation of the example alone (plus the ITL and the host).
{
  echo 'include <itl>'
  echo "include \"$tmp/zhw.conf\""
  write_host
} >"$tmp/validate.conf"
out=$(icinga2 daemon -C -c "$tmp/validate.conf" "${defines[@]}" 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q 'Instantiated 3 Services' <<<"$out" &&
   grep -q 'Finished validating the configuration' <<<"$out"; then
  pass "icinga2: icinga2 daemon -C (Icinga $icinga_version) accepts examples/icinga2/zhw.conf: CheckCommand zhw, 3 services from the apply rules"
else
  fail "icinga2: icinga2 daemon -C failed (exit $rc): $(grep -E 'critical|warning|Instantiated .* Services|rror' <<<"$out" | head -n 8 | tr '\n' ' ')"
  finish icinga2
fi
if grep -q 'warning/' <<<"$out"; then
  fail "icinga2: icinga2 daemon -C warns: $(grep 'warning/' <<<"$out" | head -n 3 | tr '\n' ' ')"
fi

# --- real checks ----------------------------------------------------------------
cargo build --release --locked >&2 || { fail "icinga2: cargo build --release failed"; finish icinga2; }
if [ ! -x "$python" ]; then
  note "no $python yet: building the test envs (tests/python/setup-envs.sh, a few minutes once)"
  ZHW_SKIP_ZSERVER=${ZHW_SKIP_ZSERVER:-1} bash tests/python/setup-envs.sh >&2 || true
fi
if [ ! -x "$python" ]; then
  fail "icinga2: no Python with waitress at $python (tests/python/setup-envs.sh)"
  finish icinga2
fi

start_waitress icinga2 client1 "$tmp/client1.pid"
start_waitress icinga2 client2 "$tmp/client2.pid"
# All 4 workers of client1 busy.
for n in 1 2 3 4; do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port_client1" || { fail "icinga2: cannot connect to client1"; finish icinga2; }
  hold_fds+=("$fd")
  printf 'GET /hold/sleep HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
  wait_lines "$tmp/client1.log" 20 "$n" '^HOLD sleep ' || { fail "icinga2: client1 did not hold worker $n"; finish icinga2; }
done

# 2. The daemon: checker, the external command pipe to force the checks now,
# a notice-level log (it names every command run), and a service that sets
# the options no apply rule sets.
cat >"$tmp/icinga2.conf" <<EOF
include <itl>
include "$tmp/zhw.conf"
$(write_host)
object Service "all-options" {
  host_name = "zope1"
  check_command = "zhw"
  vars.zhw_targets = [ "$tmp/client2.pid" ]
  vars.zhw_names = [ "second" ]
  vars.zhw_optional = [ "$tmp/absent.pid" ]
  vars.zhw_exit_codes = "original"
  vars.zhw_layout = "classic"
  vars.zhw_verbose = true
  vars.zhw_format = "json"
  vars.zhw_blocking = true
  vars.zhw_timeout = "8:UNKNOWN"
}
object CheckerComponent "checker" { }
object ExternalCommandListener "command" { command_path = "$tmp/run/icinga2.cmd" }
object FileLogger "notice" { path = "$tmp/log/notice.log", severity = "notice" }
EOF
services=(zope-client1 zope-client2 zope-workers all-options)

icinga2 daemon -c "$tmp/icinga2.conf" "${defines[@]}" >"$tmp/daemon.out" 2>&1 &
icinga_pid=$!
for ((i = 0; i < 300; i++)); do
  [ -p "$tmp/run/icinga2.cmd" ] && grep -q 'Activated all objects' "$tmp/daemon.out" && break
  kill -0 "$icinga_pid" 2>/dev/null || break
  sleep 0.1
done
if ! [ -p "$tmp/run/icinga2.cmd" ]; then
  fail "icinga2: the private daemon did not start: $(tail -n 5 "$tmp/daemon.out" | tr '\n' ' ')"
  finish icinga2
fi
now=$(date +%s)
for s in "${services[@]}"; do
  echo "[$now] SCHEDULE_FORCED_SVC_CHECK;zope1;$s;$now" >"$tmp/run/icinga2.cmd"
done
if ! wait_lines "$tmp/log/notice.log" 60 ${#services[@]} "notice/Process: PID [0-9]+ \('$target_dir/release/zhw'.*terminated with exit code"; then
  fail "icinga2: the daemon did not run the ${#services[@]} checks within 60 s: $(grep -c 'Running command' "$tmp/log/notice.log" 2>/dev/null) started"
fi
stop_icinga   # writes the state file, with each service's last check result
if [ ! -s "$tmp/data/icinga2.state" ]; then
  fail "icinga2: no state file after the daemon stopped: $(tail -n 5 "$tmp/daemon.out" | tr '\n' ' ')"
  finish icinga2
fi
pass "icinga2: private daemon ran the checks of ${#services[@]} services and stopped"

# Each service's last check result: command argv, exit status, output, perfdata.
python3 - "$tmp/data/icinga2.state" >"$tmp/results.tsv" <<'EOF'
import json, sys
data = open(sys.argv[1], "rb").read()
i = 0
while i < len(data):  # netstrings: <length>:<json>,
    j = data.index(b":", i)
    n = int(data[i:j])
    obj = json.loads(data[j + 1:j + 1 + n])
    i = j + 1 + n + 1
    if obj.get("type") != "Service":
        continue
    r = obj["update"].get("last_check_result")
    if not r:
        continue
    print("\t".join([
        obj["name"].split("!", 1)[1],
        json.dumps(r["command"]),
        str(int(r["exit_status"])),
        json.dumps(r["output"]),
        json.dumps(r.get("performance_data") or []),
    ]))
EOF

# Expected options (besides the binary, "check" and the target) and status.
expect_args() {
  case $1 in
    zope-client1) echo "--exit-codes nagios --name client1 -t 8" ;;
    zope-client2) echo "--exit-codes nagios --expect-workers 4 --name client2 --profile waitress --state-file $tmp/client2.state -c 3 -t 8 -w 2" ;;
    zope-workers) echo "--exit-codes nagios -t 8" ;;
    all-options) echo "--blocking --exit-codes original --format json --layout classic --name second --optional $tmp/absent.pid -t 8:UNKNOWN -v" ;;
  esac
}
expect_status() {
  case $1 in
    zope-client1 | zope-workers) echo "CRITICAL 2" ;;
    zope-client2) echo "OK 0" ;;
    all-options) echo "OK 0" ;;
  esac
}

for s in "${services[@]}"; do
  row=$(awk -F'\t' -v s="$s" '$1 == s' "$tmp/results.tsv")
  if [ -z "$row" ]; then
    fail "icinga2: $s: no check result in the state file"
    continue
  fi
  cmd_json=$(cut -f2 <<<"$row")
  exit_status=$(cut -f3 <<<"$row")
  # The options as Icinga rendered them, in order, without binary/check/targets.
  args=$(python3 -c '
import json, sys
argv = json.loads(sys.argv[1])
targets = [a for a in argv[2:] if a.endswith(".pid") and not a.endswith("absent.pid")]
print(" ".join(a for a in argv[2:] if a not in targets))' "$cmd_json")
  want_args=$(expect_args "$s")
  if [ "$args" != "$want_args" ]; then
    fail "icinga2: $s: Icinga ran zhw check $args; expected $want_args"
    continue
  fi
  # The same argv, run directly.
  mapfile -t argv < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$cmd_json")
  direct=$("${argv[@]}" 2>/dev/null </dev/null)
  direct_rc=$?
  if [ "$s" = all-options ]; then
    # JSON output: Icinga keeps it whole as the output (no perfdata in it).
    got=$(python3 -c '
import json, sys
icinga = json.loads(json.loads(sys.argv[1]))
direct = json.loads(sys.argv[2])
print(icinga["status"], direct["status"], icinga["exit_code"], direct["exit_code"])' "$(cut -f4 <<<"$row")" "$direct" 2>&1)
    if [ "$got" = "OK OK 0 0" ] && [ "$exit_status" = 0 ] && [ "$direct_rc" = 0 ]; then
      pass "icinga2: all-options: every other option reaches zhw (JSON status OK through Icinga and directly)"
    else
      fail "icinga2: all-options: Icinga exit $exit_status, direct exit $direct_rc, JSON: $got"
    fi
    continue
  fi
  # Icinga splits the first line at '|' into output and performance data.
  icinga_line=$(python3 -c '
import json, sys
out = json.loads(sys.argv[1]).split("\n")[0].strip()
print(out + " | " + " ".join(json.loads(sys.argv[2])))' "$(cut -f4 <<<"$row")" "$(cut -f5 <<<"$row")")
  direct_line=$(head -n 1 <<<"$direct")
  want=$(expect_status "$s")
  if [ "$icinga_line" != "$direct_line" ] || [ "$exit_status" != "$direct_rc" ]; then
    fail "icinga2: $s: through Icinga exit $exit_status '$icinga_line'; directly exit $direct_rc '$direct_line'"
  elif [ "${direct_line%% *} $direct_rc" != "$want" ]; then
    fail "icinga2: $s: expected $want, got exit $direct_rc '$direct_line'"
  else
    pass "icinga2: $s: zhw check $args: Icinga = direct, exit $exit_status ${direct_line:0:60}"
  fi
done

if pgrep -f "$tmp/icinga2.conf" >/dev/null 2>&1; then
  fail "icinga2: an icinga2 process of this test is still running"
fi
note "icinga2: $((SECONDS - start)) s"
finish icinga2

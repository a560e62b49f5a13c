#!/usr/bin/env bash
# zhw through a real NRPE: the commands of examples/nagios/nrpe.cfg, run by a
# private nrpe daemon and asked for with the check_nrpe command line of
# examples/nagios/zope.cfg, must give the same status line and exit code as
# the same zhw command run directly, for real waitress servers with 0, 3 and 4
# of 4 workers busy and after a server stopped (stale pidfile). Also
# validates examples/nagios/zope.cfg with `nagios4 -v`.
#
#   bash tests/integration/nrpe.sh      # as root; non-interactive
#
# Installs Debian's nagios-nrpe-server and nagios-nrpe-plugin (without
# starting their services). Nagios itself is not installed (nagios4-common
# would bring a mail server along): nagios4-core and nagios4-common are
# downloaded with `apt-get download` and unpacked under the temporary
# directory, for `nagios4 -v` only. Runs its own nrpe (-f, loopback, a free
# port from 5667, own pid file) as user nagios, as on a real server: NRPE
# refuses to run commands as root, so zhw gets CAP_SYS_PTRACE from setcap on
# a private copy of target/release/zhw (plus cap_dac_read_search when user
# nagios cannot read the server's interpreter, as with pyenv's under /root;
# see below). Stops everything it started on exit.
# Prints PASS/FAIL lines; exits non-zero if any check failed.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.bash"
cd "$repo"
require_root nrpe

start=$SECONDS
python=${ZHW_NRPE_PYTHON:-$repo/target/test-envs/pyenv-3.12.1/bin/python}
check_nrpe=/usr/lib/nagios/plugins/check_nrpe

tmp=$(mktemp -d /tmp/zhw-nrpe.XXXXXX)
chmod 755 "$tmp"   # user nagios reads the binary, pidfiles and states below
mkdir -p "$tmp/bin" "$tmp/var" "$tmp/state-nrpe" "$tmp/state-direct" "$tmp/nagios"
pids=()        # servers, nrpe
hold_fds=()    # open connections holding workers
cleanup() {
  local fd pid
  for fd in "${hold_fds[@]}"; do exec {fd}>&- 2>/dev/null; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- packages, binary, interpreter ----------------------------------------
need=()
[ -x /usr/sbin/nrpe ] || need+=(nagios-nrpe-server)
[ -x "$check_nrpe" ] || need+=(nagios-nrpe-plugin)
command -v setcap >/dev/null 2>&1 || need+=(libcap2-bin)
if [ ${#need[@]} -gt 0 ] && ! apt_install "${need[@]}"; then
  fail "nrpe: apt-get install ${need[*]} failed"
  finish nrpe
fi
if ! id nagios >/dev/null 2>&1; then
  fail "nrpe: no user nagios after installing nagios-nrpe-server"
  finish nrpe
fi

cargo build --release --locked >&2 || { fail "nrpe: cargo build --release failed"; finish nrpe; }
if [ ! -x "$python" ]; then
  note "no $python yet: building the test envs (tests/python/setup-envs.sh, a few minutes once)"
  ZHW_SKIP_ZSERVER=${ZHW_SKIP_ZSERVER:-1} bash tests/python/setup-envs.sh >&2 || true
fi
if [ ! -x "$python" ]; then
  fail "nrpe: no Python with waitress at $python (tests/python/setup-envs.sh)"
  finish nrpe
fi

chown nagios: "$tmp/state-nrpe" "$tmp/nagios"

# --- two waitress servers, client1 and client2 -----------------------------
start_waitress nrpe client1 "$tmp/var/client1.pid"
start_waitress nrpe client2 "$tmp/var/client2.pid"

# zhw as user nagios: a private copy of the binary with CAP_SYS_PTRACE, as
# docs/how-to/nrpe.md says. zhw also opens the server's interpreter and
# libpython (through /proc/PID/root), with nagios's file permissions: pyenv's
# interpreters live under /root (mode 0700), so for them the copy also gets
# cap_dac_read_search. A server whose Python nagios can read (Debian's
# /usr/bin/python3, or ZHW_NRPE_PYTHON=target/test-envs/debian-3.11/bin/python
# here) needs CAP_SYS_PTRACE only.
zhw=$tmp/bin/zhw
install -m 755 "$target_dir/release/zhw" "$zhw"
caps=cap_sys_ptrace
unreadable=
for f in "$(readlink "/proc/$pid_client1/exe")" $(grep -o '/[^ ]*libpython[^ ]*' "/proc/$pid_client1/maps" | sort -u); do
  runuser -u nagios -- test -r "$f" || unreadable="$unreadable $f"
done
[ -n "$unreadable" ] && caps=cap_sys_ptrace,cap_dac_read_search
if ! setcap "$caps+ep" "$zhw" >&2 || ! getcap "$zhw" | grep -q cap_sys_ptrace; then
  fail "nrpe: setcap $caps+ep on $zhw failed (a filesystem without extended attributes?)"
  finish nrpe
fi
if [ -n "$unreadable" ]; then
  note "user nagios cannot read$unreadable: the zhw copy gets $caps"
fi

# Holds one more worker of client1 busy on /hold/sleep and waits until it is
# (the server prints HOLD sleep <thread> first).
held=0
hold_one() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$port_client1" || return 1
  hold_fds+=("$fd")
  printf 'GET /hold/sleep HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
  held=$((held + 1))
  wait_lines "$tmp/client1.log" 20 "$held" '^HOLD sleep '
}

# --- private NRPE with the example's commands -------------------------------
port=$(free_port 5667) || { fail "nrpe: no free port from 5667"; finish nrpe; }
# Commands of the example, paths made this test's; the same command lines,
# but with a state directory of their own, are run directly for comparison.
grep '^command\[' examples/nagios/nrpe.cfg |
  sed -e "s|/usr/bin/zhw|$zhw|g" -e "s|/srv/zope/var/|$tmp/var/|g" >"$tmp/commands.cfg"
if ! [ -s "$tmp/commands.cfg" ]; then
  fail "nrpe: no command[...] lines in examples/nagios/nrpe.cfg"
  finish nrpe
fi
cat >"$tmp/nrpe.cfg" <<EOF
# private NRPE for tests/integration/nrpe.sh
log_facility=daemon
pid_file=$tmp/nrpe.pid
server_address=127.0.0.1
server_port=$port
allowed_hosts=127.0.0.1
nrpe_user=nagios
nrpe_group=nagios
dont_blame_nrpe=0
allow_bash_command_substitution=0
debug=0
command_timeout=60
connection_timeout=300
$(sed -e "s|/var/lib/zhw/|$tmp/state-nrpe/|g" "$tmp/commands.cfg")
EOF
/usr/sbin/nrpe -c "$tmp/nrpe.cfg" -f >"$tmp/nrpe.log" 2>&1 &
nrpe_pid=$!
pids+=("$nrpe_pid")
for ((i = 0; i < 50; i++)); do
  "$check_nrpe" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 && break
  kill -0 "$nrpe_pid" 2>/dev/null || break
  sleep 0.1
done
if ! version=$("$check_nrpe" -H 127.0.0.1 -p "$port" 2>&1); then
  fail "nrpe: private nrpe on 127.0.0.1:$port does not answer: $version $(cat "$tmp/nrpe.log")"
  finish nrpe
fi
pass "nrpe: private nrpe ($version) on 127.0.0.1:$port as user nagios (zhw with $caps), $(wc -l <"$tmp/commands.cfg") commands from examples/nagios/nrpe.cfg"

# The Nagios side: examples/nagios/zope.cfg's check_nrpe_zhw command line.
nagios_cmd=$(awk '/command_name[ \t]+check_nrpe_zhw/ {found=1} found && /command_line/ {sub(/^[ \t]*command_line[ \t]+/, ""); print; exit}' examples/nagios/zope.cfg)
if [ -z "$nagios_cmd" ]; then
  fail "nrpe: no check_nrpe_zhw command_line in examples/nagios/zope.cfg"
  finish nrpe
fi
nagios_cmd=${nagios_cmd//\$HOSTADDRESS\$/127.0.0.1}

# --- compare ----------------------------------------------------------------
# Expected "STATUS exit" of a command in a situation; empty: compare only.
expected() {
  local situation=$1 cmd=$2
  case "$situation:$cmd" in
    idle:*) echo "OK 0" ;;
    busy3:check_zope_client1_thresholds) echo "WARNING 1" ;;  # -w 2
    busy3:*) echo "OK 0" ;;
    busy4:check_zope_client1) echo "CRITICAL 3" ;;             # original codes
    busy4:*) echo "CRITICAL 2" ;;
    stopped:check_zope_client1) echo "FAILURE 2" ;;
    stopped:*) echo "CRITICAL 2" ;;                           # not running
  esac
}

compare_all() {
  local situation=$1 name cmdline nrpe_out nrpe_rc direct_out direct_rc want first ok=0 bad=0
  while IFS= read -r def; do
    name=$(sed 's/^command\[\([^]]*\)\]=.*/\1/' <<<"$def")
    cmdline=$(sed 's/^command\[[^]]*\]=//' <<<"$def")
    cmdline=${cmdline//\/var\/lib\/zhw\//$tmp/state-direct/}
    local nagios_line=${nagios_cmd//\$ARG1\$/$name}
    nrpe_out=$(sh -c "$nagios_line -p $port" 2>&1 </dev/null)
    nrpe_rc=$?
    direct_out=$(sh -c "$cmdline" 2>/dev/null </dev/null)
    direct_rc=$?
    want=$(expected "$situation" "$name")
    first=$(head -n 1 <<<"$nrpe_out")
    if [ "$first" != "$(head -n 1 <<<"$direct_out")" ] || [ "$nrpe_rc" != "$direct_rc" ]; then
      fail "nrpe: $situation $name: through NRPE exit $nrpe_rc '$first'; directly exit $direct_rc '$(head -n 1 <<<"$direct_out")'"
      bad=$((bad + 1))
    elif [ -n "$want" ] && [ "${first%% *} $nrpe_rc" != "$want" ]; then
      fail "nrpe: $situation $name: expected $want, got exit $nrpe_rc '$first'"
      bad=$((bad + 1))
    else
      note "$situation $name: exit $nrpe_rc ${first:0:90}"
      ok=$((ok + 1))
    fi
  done <"$tmp/commands.cfg"
  [ "$bad" = 0 ] && pass "nrpe: $situation: $ok commands, NRPE = direct ($2)"
}

compare_all idle "0 of 4 busy: OK 0"
# The --state-file command: NRPE's zhw (user nagios, with capabilities)
# created its state file in the nagios-owned directory, as the example says.
states=$(find "$tmp/state-nrpe" -maxdepth 1 -type f ! -name '*.lock' -printf '%f:%u:%m ' 2>/dev/null)
if grep -q 'check_zope_client1_pool' "$tmp/commands.cfg"; then
  if [ "$states" = "client1.state:nagios:600 " ]; then
    pass "nrpe: --state-file under capabilities: client1.state created, owner nagios, mode 600"
  else
    fail "nrpe: --state-file under capabilities: state directory holds '$states', expected client1.state:nagios:600"
  fi
fi
for _ in 1 2 3; do hold_one || { fail "nrpe: could not hold a worker of client1"; finish nrpe; }; done
compare_all busy3 "3 of 4 busy: OK 0, -w 2 WARNING 1"
hold_one || { fail "nrpe: could not hold the 4th worker of client1"; finish nrpe; }
compare_all busy4 "4 of 4 busy: CRITICAL, exit 3 original / 2 nagios"
stop_pid "$pid_client1"
compare_all stopped "client1 stopped, stale pidfile: FAILURE 2 / CRITICAL 2"

# The CRITICAL details travel through NRPE too (multi-line output).
lines=$(sh -c "${nagios_cmd//\$ARG1\$/check_zope_client1_nagios} -p $port" 2>&1 | wc -l)
if [ "$lines" -gt 3 ]; then
  pass "nrpe: multi-line details reach check_nrpe ($lines lines)"
else
  fail "nrpe: check_nrpe got $lines lines, expected the details after the status line"
fi

# --- Nagios: examples/nagios/zope.cfg is valid -------------------------------
# nagios4 (only libc) and its stock object templates, unpacked, not installed.
n4=$tmp/nagios4
mkdir -p "$n4/debs"
chown _apt: "$n4/debs" 2>/dev/null || true   # apt's download sandbox user
if ! apt_update || ! (cd "$n4/debs" && apt-get download -q nagios4-core nagios4-common >&2); then
  fail "nrpe: apt-get download nagios4-core nagios4-common failed"
  finish nrpe
fi
for deb in "$n4"/debs/*.deb; do dpkg-deb -x "$deb" "$n4/root"; done
nagios4=$n4/root/usr/sbin/nagios4
objects=$n4/root/etc/nagios4/objects
services=$(grep -c '^[[:space:]]*define service' examples/nagios/zope.cfg)
cat >"$tmp/nagios/host.cfg" <<EOF
define command {
    command_name    zhw-test-host-alive
    command_line    /bin/true
}
define host {
    use             linux-server
    host_name       zope1
    address         127.0.0.1
    hostgroups      zope-servers
    check_command   zhw-test-host-alive
}
EOF
cat >"$tmp/nagios/nagios.cfg" <<EOF
log_file=$tmp/nagios/nagios.log
cfg_file=$objects/commands.cfg
cfg_file=$objects/contacts.cfg
cfg_file=$objects/timeperiods.cfg
cfg_file=$objects/templates.cfg
cfg_file=$tmp/nagios/host.cfg
cfg_file=$repo/examples/nagios/zope.cfg
check_result_path=$tmp/nagios
lock_file=$tmp/nagios/nagios.lock
temp_file=$tmp/nagios/nagios.tmp
temp_path=$tmp/nagios
status_file=$tmp/nagios/status.dat
nagios_user=nagios
nagios_group=nagios
illegal_macro_output_chars=\`~\$&|'"<>
EOF
out=$("$nagios4" -v "$tmp/nagios/nagios.cfg" 2>&1)
if grep -q 'Total Errors:[[:space:]]*0' <<<"$out" && grep -q 'Total Warnings:[[:space:]]*0' <<<"$out" &&
   grep -q "Checked $services services" <<<"$out"; then
  pass "nrpe: nagios4 -v accepts examples/nagios/zope.cfg ($services services, 0 warnings, 0 errors)"
else
  fail "nrpe: nagios4 -v on examples/nagios/zope.cfg: $(grep -E 'Error|Warning|Checked [0-9]+ services' <<<"$out" | tr '\n' ' ')"
fi

note "nrpe: $((SECONDS - start)) s"
finish nrpe

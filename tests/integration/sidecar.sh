#!/usr/bin/env bash
# The sidecar's integration artefacts with the real tools:
#   1. examples/systemd/zhw.service passes `systemd-analyze verify`, and
#      `systemd-analyze security` rates its exposure at most 3.0 ("OK");
#   2. examples/prometheus/zhw.yml and zhw-alerts.yml pass `promtool check`,
#      and the alerts fire on made-up series (`promtool test rules`);
#   3. `zhw serve`'s /metrics, with 2 of 4 workers of a real waitress busy,
#      passes `promtool check metrics`;
#   4. a private Prometheus server, configured from the example (scrape
#      target pointed at this test's sidecar, 1 s interval), scrapes zhw and
#      answers `zhw_busy_workers` = 2 through its query API.
#
#   bash tests/integration/sidecar.sh      # as root; non-interactive
#
# Installs Debian's prometheus package (for promtool and the server) without
# starting its service; where it cannot, the Prometheus checks print SKIP.
# Everything started here is stopped before the script ends.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.bash"
cd "$repo"
require_root sidecar

python=${ZHW_SIDECAR_PYTHON:-$repo/target/test-envs/pyenv-3.12.1/bin/python}
zhw=$target_dir/release/zhw
tmp=$(mktemp -d /tmp/zhw-sidecar.XXXXXX)
pids=()
hold_fds=()
cleanup() {
  local fd pid
  for fd in "${hold_fds[@]}"; do exec {fd}>&- 2>/dev/null; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$zhw" ] || cargo build --release --locked >&2 || { fail "sidecar: release build failed"; finish sidecar; }

# --- 1. systemd unit ----------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  sed "s|/usr/bin/zhw|$zhw|g" examples/systemd/zhw.service >"$tmp/zhw.service"
  if out=$(systemd-analyze verify --man=no "$tmp/zhw.service" 2>&1); then
    pass "systemd unit: systemd-analyze verify accepts examples/systemd/zhw.service"
  else
    fail "systemd unit: systemd-analyze verify: $out"
  fi
  score=$(systemd-analyze security --offline=true "$tmp/zhw.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for zhw.service: \([0-9.]*\).*/\1/p')
  if [ -n "$score" ] && python3 -c "import sys; sys.exit(0 if float('$score') <= 3.0 else 1)"; then
    pass "systemd unit: exposure level $score (systemd-analyze security, at most 3.0)"
  else
    fail "systemd unit: exposure level '${score:-?}' (want at most 3.0)"
  fi
else
  skip "systemd unit: systemd-analyze not found  <<<<<<<<<<"
fi

# --- 2.-4. Prometheus ---------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus || true
fi
if ! command -v promtool >/dev/null 2>&1; then
  skip "prometheus: Debian's prometheus package could not be installed  <<<<<<<<<<"
  finish sidecar
fi
cp examples/prometheus/zhw.yml examples/prometheus/zhw-alerts.yml "$tmp/"
if out=$(cd "$tmp" && promtool check config zhw.yml 2>&1); then
  pass "prometheus: promtool check config accepts examples/prometheus/zhw.yml (and its rules)"
else
  fail "prometheus: promtool check config: $out"
fi

cp tests/integration/prometheus/alerts-test.yml "$tmp/"
if out=$(cd "$tmp" && promtool test rules alerts-test.yml 2>&1); then
  pass "prometheus: the example alert rules fire as intended (promtool test rules)"
else
  fail "prometheus: promtool test rules: $out"
fi

start_waitress prometheus client1 "$tmp/client1.pid"
for kind in sleep cond; do
  exec {fd}<>/dev/tcp/127.0.0.1/"$port_client1"
  printf 'GET /hold/%s HTTP/1.0\r\nHost: t\r\n\r\n' "$kind" >&"$fd"
  hold_fds+=("$fd")
done
wait_lines "$tmp/client1.log" 30 2 '^HOLD ' || fail "prometheus: requests were not held"

zhw_port=$(free_port 19713)
"$zhw" serve "$tmp/client1.pid" --interval 0.5 --listen "127.0.0.1:$zhw_port" 2>"$tmp/serve.log" &
pids+=($!)
metrics=
for ((i = 0; i < 100; i++)); do
  metrics=$(curl -sf "http://127.0.0.1:$zhw_port/metrics" 2>/dev/null) &&
    grep -q 'zhw_busy_workers{target="client1"} 2' <<<"$metrics" && break
  sleep 0.2
done
if grep -q 'zhw_busy_workers{target="client1"} 2' <<<"$metrics"; then
  if out=$(promtool check metrics <<<"$metrics" 2>&1); then
    pass "prometheus: promtool check metrics accepts zhw's /metrics"
  else
    fail "prometheus: promtool check metrics: $out"
  fi
else
  fail "prometheus: zhw serve never showed 2 busy workers: $(tail -n 3 "$tmp/serve.log" | tr '\n' ' ')"
  finish sidecar
fi

prom_port=$(free_port 19090)
python3 - "$tmp/zhw.yml" "$zhw_port" >"$tmp/prometheus.yml" <<'PY'
import sys
text = open(sys.argv[1]).read()
text = text.replace("127.0.0.1:9713", "127.0.0.1:" + sys.argv[2])
text = text.replace("scrape_interval: 10s", "scrape_interval: 1s")
text = text.replace("scrape_timeout: 5s", "scrape_timeout: 1s")
print(text)
PY
cp "$tmp/zhw-alerts.yml" "$tmp/zhw-alerts.yml.bak" 2>/dev/null
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
answer=
for ((i = 0; i < 150; i++)); do
  answer=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=zhw_busy_workers" 2>/dev/null) &&
    grep -q '"target":"client1"' <<<"$answer" && break
  sleep 0.2
done
if python3 - "$answer" <<'PY'
import json, sys
data = json.loads(sys.argv[1] or "{}")
result = data.get("data", {}).get("result", [])
ok = any(r["metric"].get("target") == "client1" and r["metric"].get("job") == "zhw"
         and r["value"][1] == "2" for r in result)
sys.exit(0 if ok else 1)
PY
then
  pass "prometheus: a real Prometheus scraped zhw serve: zhw_busy_workers{target=\"client1\"} = 2"
else
  fail "prometheus: query zhw_busy_workers gave '${answer:-nothing}'; log: $(tail -n 3 "$tmp/prometheus.log" | tr '\n' ' ')"
fi
finish sidecar

#!/usr/bin/env bash
# Build the Python virtual envs used by zhw's integration tests.
#
#   tests/python/setup-envs.sh
#
# Env root: ${ZHW_TEST_ENVS:-<repo>/target/test-envs}
#   <root>/pyenv-<version>/   one per ~/.pyenv/versions/<version> interpreter, with waitress
#   <root>/debian-3.11/       Debian's /usr/bin/python3.11, with waitress
#   <root>/pools-<label>/     per interpreter again, with gunicorn (gthread worker) and
#                             celery (thread pool), pinned per interpreter below
#                             (skipped when ZHW_SKIP_POOLS is set, e.g. =1)
#   <root>/frameworks-<label>/ per interpreter again, with Flask, Django and Pyramid
#                             (and the futures backport on 2.7), pinned per interpreter
#                             below (skipped when ZHW_SKIP_FRAMEWORKS is set, e.g. =1)
#   <root>/zserver-2.7/       pyenv 2.7.18 with the real ZServer 4.0.2 + Zope 4.8.11
#                             (skipped when ZHW_SKIP_ZSERVER is set, e.g. =1)
#   <root>/sid-3.14/          Debian sid's python3.14 with Debian's waitress, cheroot,
#                             gunicorn, celery, Flask, Django and Pyramid, in a chroot (<root>/sid-root): built by
#                             setup-sid.sh, which says more (skipped when not root or
#                             when ZHW_SKIP_SID is set, e.g. =1)
# A finished env holds <env>/zhw-ready with two or three lines:
#   1. absolute path of the env's python
#   2. installed waitress version (ZServer version for zserver-2.7,
#      gunicorn version for pools-*, Flask version for frameworks-*)
#   3. installed cheroot version (waitress/cheroot envs), celery version (pools-*),
#      "Django <version> Pyramid <version>" (frameworks-*)
#
# Idempotent (an env with zhw-ready is left alone, an env without it is
# rebuilt from scratch), safe to run concurrently (flock), non-interactive.
# Exits non-zero if any env could not be built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${ZHW_TEST_ENVS:-$repo/target/test-envs}
mkdir -p "$root"
root=$(cd "$root" && pwd)
pyenv_root=${PYENV_ROOT:-${HOME:-/root}/.pyenv}

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_WARN_SCRIPT_LOCATION=1
export DEBIAN_FRONTEND=noninteractive

VIRTUALENV_VERSION=20.21.1   # last line that can still create 2.7 / 3.6 envs
ZSERVER_VERSION=4.0.2
ZOPE_VERSION=4.8.11
constraints=$here/zope-4.8-constraints.txt
frameworks_27_constraints=$here/frameworks-2.7-constraints.txt

# label  interpreter
interpreters=(
  "pyenv-2.7.18 $pyenv_root/versions/2.7.18/bin/python"
  "pyenv-3.6.15 $pyenv_root/versions/3.6.15/bin/python"
  "pyenv-3.7.16 $pyenv_root/versions/3.7.16/bin/python"
  "pyenv-3.8.18 $pyenv_root/versions/3.8.18/bin/python"
  "pyenv-3.9.18 $pyenv_root/versions/3.9.18/bin/python"
  "pyenv-3.10.13 $pyenv_root/versions/3.10.13/bin/python"
  "pyenv-3.11.7 $pyenv_root/versions/3.11.7/bin/python"
  "pyenv-3.12.1 $pyenv_root/versions/3.12.1/bin/python"
  "pyenv-3.13.0 $pyenv_root/versions/3.13.0/bin/python"
  "debian-3.11 /usr/bin/python3.11"
)

log() { echo "setup-envs: $*" >&2; }
die() { echo "setup-envs: ERROR: $*" >&2; exit 1; }

exec 9>"$root/.setup-envs.lock"
flock 9

failures=()

# Prints the version of distribution $2 installed in python $1.
dist_version() {
  "$1" - "$2" <<'EOF'
import sys
try:
    from importlib.metadata import version
except ImportError:
    from pkg_resources import get_distribution
    def version(name):
        return get_distribution(name).version
print(version(sys.argv[1]))
EOF
}

# Is env $1 complete and built from spec $2? (zhw-ready present, its python
# still runs, and <env>/zhw-spec, when present, records the same requirements;
# an env whose spec changed is rebuilt)
env_ready() {
  local ready=$1/zhw-ready py
  [ -f "$ready" ] || return 1
  py=$(sed -n 1p "$ready")
  [ -n "$py" ] && [ -x "$py" ] || return 1
  if [ -f "$1/zhw-spec" ]; then
    [ "$(cat "$1/zhw-spec")" = "$2" ]
  else
    printf '%s\n' "$2" > "$1/zhw-spec"   # env from before spec stamps
  fi
}

# Mark env $1 (python $2, version $3, spec $4) ready.
mark_ready() {
  printf '%s\n' "$4" > "$1/zhw-spec"
  printf '%s\n%s\n' "$2" "$3" > "$1/zhw-ready.tmp"
  [ -z "${5:-}" ] || printf '%s\n' "$5" >> "$1/zhw-ready.tmp"
  mv "$1/zhw-ready.tmp" "$1/zhw-ready"
}

# Helper venv holding virtualenv, built from the first usable Python 3.7-3.11.
virtualenv_bin=
ensure_virtualenv() {
  [ -n "$virtualenv_bin" ] && return 0
  local tools=$root/.tools base cand
  if [ -x "$tools/bin/virtualenv" ] && [ -f "$tools/zhw-ready" ]; then
    virtualenv_bin=$tools/bin/virtualenv
    return 0
  fi
  base=
  for cand in "$pyenv_root/versions/3.11.7/bin/python" "$pyenv_root/versions/3.10.13/bin/python" \
              "$pyenv_root/versions/3.9.18/bin/python" "$pyenv_root/versions/3.8.18/bin/python" \
              /usr/bin/python3.11 "$pyenv_root/versions/3.7.16/bin/python" python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv, ensurepip; sys.exit(not ((3, 7) <= sys.version_info[:2] <= (3, 11)))' 2>/dev/null; then
      base=$cand; break
    fi
  done
  [ -n "$base" ] || { log "no Python 3.7-3.11 with venv found to host virtualenv"; return 1; }
  log "building helper venv $tools (virtualenv $VIRTUALENV_VERSION, from $base)"
  rm -rf "$tools"
  "$base" -m venv "$tools" || return 1
  "$tools/bin/python" -m pip install -q "virtualenv==$VIRTUALENV_VERSION" || return 1
  echo "$tools/bin/virtualenv" > "$tools/zhw-ready"
  virtualenv_bin=$tools/bin/virtualenv
}

# make_virtualenv <interpreter> <dir> <pip-version|bundle>
make_virtualenv() {
  ensure_virtualenv || return 1
  "$virtualenv_bin" -q --no-periodic-update --app-data "$root/.tools/app-data" \
    -p "$1" --pip "$3" --setuptools bundle --wheel bundle "$2"
}

# Can Debian's python create a venv with pip? If not, try to install python3.X-venv.
debian_venv_ok() {
  local interp=$1 pkg
  "$interp" -c 'import venv, ensurepip' 2>/dev/null && return 0
  pkg=python$("$interp" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "$interp lacks ensurepip/venv: installing Debian package $pkg"
    { apt-get update -qq && apt-get install -y -qq "$pkg"; } >&2 || log "apt-get install $pkg failed"
  fi
  "$interp" -c 'import venv, ensurepip' 2>/dev/null
}

# create_env <label> <interpreter> <dir>
create_env() {
  local label=$1 interp=$2 dir=$3
  case "$label" in
    pyenv-2.7.*) make_virtualenv "$interp" "$dir" 20.3.4 ;;
    pyenv-3.6.*) make_virtualenv "$interp" "$dir" bundle ;;   # pip 21.3.1
    debian-*)
      if debian_venv_ok "$interp" && "$interp" -m venv "$dir"; then
        return 0
      fi
      log "$label: venv unusable, falling back to virtualenv"
      rm -rf "$dir"
      make_virtualenv "$interp" "$dir" bundle
      ;;
    *) "$interp" -m venv "$dir" ;;
  esac
}

# build_waitress_env <label> <interpreter>
build_waitress_env() {
  local label=$1 interp=$2 dir=$root/$1 spec="waitress cheroot" ver cheroot_ver
  # pip resolves the newest waitress and cheroot allowed by Requires-Python;
  # 2.7 is pinned to the last releases that support it, to be explicit.
  case "$label" in pyenv-2.7.*) spec="waitress==1.4.4 cheroot<9" ;; esac
  if env_ready "$dir" "$spec"; then
    echo "ok    $label: $(sed -n 1p "$dir/zhw-ready") waitress $(sed -n 2p "$dir/zhw-ready") (cached)"
    return 0
  fi
  log "$label: creating env from $interp"
  rm -rf "$dir"
  if ! create_env "$label" "$interp" "$dir"; then
    log "$label: creating the virtual env failed"; return 1
  fi
  # shellcheck disable=SC2086 # $spec is a list of requirements
  if ! "$dir/bin/python" -m pip install -q $spec; then
    log "$label: pip install $spec failed"; return 1
  fi
  if ! ver=$(dist_version "$dir/bin/python" waitress) || [ -z "$ver" ] \
     || ! "$dir/bin/python" -c 'import waitress' ; then
    log "$label: waitress not importable after install"; return 1
  fi
  if ! cheroot_ver=$(dist_version "$dir/bin/python" cheroot) || [ -z "$cheroot_ver" ] \
     || ! "$dir/bin/python" -c 'import cheroot.wsgi' ; then
    log "$label: cheroot not importable after install"; return 1
  fi
  mark_ready "$dir" "$dir/bin/python" "$ver" "$spec" "$cheroot_ver"
  echo "built $label: $dir/bin/python waitress $ver cheroot $cheroot_ver"
}

# gunicorn and celery pins, per interpreter: the newest release whose
# Requires-Python admits it (at the time of writing), so every interpreter runs
# the code its users would get, and a rerun builds the same env. They live in
# envs of their own (pools-<label>) so adding them did not rebuild the
# waitress envs, and celery's dependencies never move waitress's.
#   2.7   gunicorn 19.10.0 (last with 2.7) + futures 3.4.0, the backport its
#         gthread worker imports as concurrent.futures; celery 4.4.7 (last
#         with 2.7; the `threads` pool appeared in 4.4.0 and runs on futures)
#   3.6   gunicorn 21.2.0 (last with 3.5/3.6); celery 5.1.2 (last with 3.6)
#   3.7   gunicorn 23.0.0 (3.7+); celery 5.2.7 (last with 3.7), with
#         importlib-metadata<5: kombu 5.2 calls entry_points().get(), which
#         importlib-metadata 5.0 removed (celery fails at import otherwise)
#   3.8/3.9  gunicorn 23.0.0; celery 5.5.3 (3.8+)
#   3.10+ gunicorn 27.0.1 (3.10+, gthread rewritten around a pollable method
#         queue); celery 5.7.0 (3.10+)
# celery's own dependencies (kombu, billiard, vine, click) are left to pip
# within the ranges celery pins.
pools_spec() {
  case "$1" in
    pyenv-2.7.*) echo "gunicorn==19.10.0 futures==3.4.0 celery==4.4.7" ;;
    pyenv-3.6.*) echo "gunicorn==21.2.0 celery==5.1.2" ;;
    pyenv-3.7.*) echo "gunicorn==23.0.0 celery==5.2.7 importlib-metadata<5" ;;
    pyenv-3.8.*|pyenv-3.9.*) echo "gunicorn==23.0.0 celery==5.5.3" ;;
    *) echo "gunicorn==27.0.1 celery==5.7.0" ;;
  esac
}

# build_pools_env <label> <interpreter>
build_pools_env() {
  local label=$1 interp=$2 dir=$root/pools-$1 spec ver celery_ver
  spec=$(pools_spec "$label")
  if env_ready "$dir" "$spec"; then
    echo "ok    pools-$label: $(sed -n 1p "$dir/zhw-ready") gunicorn $(sed -n 2p "$dir/zhw-ready") celery $(sed -n 3p "$dir/zhw-ready") (cached)"
    return 0
  fi
  log "pools-$label: creating env from $interp ($spec)"
  rm -rf "$dir"
  if ! create_env "$label" "$interp" "$dir"; then
    log "pools-$label: creating the virtual env failed"; return 1
  fi
  # shellcheck disable=SC2086 # $spec is a list of requirements
  if ! "$dir/bin/python" -m pip install -q $spec; then
    log "pools-$label: pip install $spec failed"; return 1
  fi
  if ! "$dir/bin/python" -c 'import gunicorn.workers.gthread, celery.concurrency.thread, kombu.transport.memory'; then
    log "pools-$label: gunicorn's gthread worker or celery's thread pool is not importable"; return 1
  fi
  ver=$(dist_version "$dir/bin/python" gunicorn) || return 1
  celery_ver=$(dist_version "$dir/bin/python" celery) || return 1
  mark_ready "$dir" "$dir/bin/python" "$ver" "$spec" "$celery_ver"
  echo "built pools-$label: $dir/bin/python gunicorn $ver celery $celery_ver"
}

# Flask, Django and Pyramid pins, per interpreter: the newest release whose
# Requires-Python admits it (at the time of writing), as for pools-* above;
# their dependencies are left to pip, except on 2.7, where
# frameworks-2.7-constraints.txt pins every distribution (what pip resolved
# there, frozen), since packages that dropped 2.7 without saying so in
# Requires-Python would otherwise break a later rebuild.
#   2.7   Flask 1.1.4, Django 1.11.29, Pyramid 1.10.8 (the last lines with
#         2.7) + futures 3.4.0, the concurrent.futures backport the test's
#         pool server needs
#   3.6   Flask 2.0.3, Django 3.2.25, Pyramid 2.0.2
#   3.7   Flask 2.2.5, Django 3.2.25, Pyramid 2.0.2
#   3.8   Flask 3.0.3, Django 4.2.30, Pyramid 2.0.2
#   3.9   Flask 3.1.3, Django 4.2.30, Pyramid 2.0.2
#   3.10, 3.11  Flask 3.1.3, Django 5.2.19, Pyramid 2.1
#   3.12+ Flask 3.1.3, Django 6.1.3, Pyramid 2.1
frameworks_spec() {
  case "$1" in
    pyenv-2.7.*) echo "Flask==1.1.4 Django==1.11.29 pyramid==1.10.8 futures==3.4.0" ;;
    pyenv-3.6.*) echo "Flask==2.0.3 Django==3.2.25 pyramid==2.0.2" ;;
    pyenv-3.7.*) echo "Flask==2.2.5 Django==3.2.25 pyramid==2.0.2" ;;
    pyenv-3.8.*) echo "Flask==3.0.3 Django==4.2.30 pyramid==2.0.2" ;;
    pyenv-3.9.*) echo "Flask==3.1.3 Django==4.2.30 pyramid==2.0.2" ;;
    pyenv-3.10.*|pyenv-3.11.*|debian-3.11) echo "Flask==3.1.3 Django==5.2.19 pyramid==2.1" ;;
    *) echo "Flask==3.1.3 Django==6.1.3 pyramid==2.1" ;;
  esac
}

# build_frameworks_env <label> <interpreter>
build_frameworks_env() {
  local label=$1 interp=$2 dir=$root/frameworks-$1 spec ver django_ver pyramid_ver
  local pip_args=()
  spec=$(frameworks_spec "$label")
  case "$label" in
    pyenv-2.7.*)
      [ -f "$frameworks_27_constraints" ] || { log "frameworks-$label: missing $frameworks_27_constraints"; return 1; }
      pip_args=(-c "$frameworks_27_constraints")
      spec="$spec constraints:$(cksum < "$frameworks_27_constraints" | cut -d' ' -f1)"
      ;;
  esac
  if env_ready "$dir" "$spec"; then
    echo "ok    frameworks-$label: $(sed -n 1p "$dir/zhw-ready") Flask $(sed -n 2p "$dir/zhw-ready") $(sed -n 3p "$dir/zhw-ready") (cached)"
    return 0
  fi
  log "frameworks-$label: creating env from $interp ($spec)"
  rm -rf "$dir"
  if ! create_env "$label" "$interp" "$dir"; then
    log "frameworks-$label: creating the virtual env failed"; return 1
  fi
  # shellcheck disable=SC2046 # the requirements, without the constraints stamp
  if ! "$dir/bin/python" -m pip install -q "${pip_args[@]}" $(frameworks_spec "$label"); then
    log "frameworks-$label: pip install $spec failed"; return 1
  fi
  if ! "$dir/bin/python" -c '
import concurrent.futures, flask, django.core.wsgi, pyramid.config, pyramid.router'; then
    log "frameworks-$label: Flask, Django or Pyramid is not importable"; return 1
  fi
  ver=$(dist_version "$dir/bin/python" Flask) || return 1
  django_ver=$(dist_version "$dir/bin/python" Django) || return 1
  pyramid_ver=$(dist_version "$dir/bin/python" pyramid) || return 1
  mark_ready "$dir" "$dir/bin/python" "$ver" "$spec" "Django $django_ver Pyramid $pyramid_ver"
  echo "built frameworks-$label: $dir/bin/python Flask $ver Django $django_ver Pyramid $pyramid_ver"
}

build_zserver_env() {
  local interp=$pyenv_root/versions/2.7.18/bin/python label=zserver-2.7 dir=$root/zserver-2.7 ver spec
  if [ -n "${ZHW_SKIP_ZSERVER:-}" ] && [ "$ZHW_SKIP_ZSERVER" != 0 ]; then
    echo "SKIP $label: ZHW_SKIP_ZSERVER is set" >&2; return 0
  fi
  if [ ! -x "$interp" ]; then
    echo "SKIP $label: interpreter not found" >&2; return 0
  fi
  [ -f "$constraints" ] || { log "$label: missing $constraints"; return 1; }
  spec="Zope==$ZOPE_VERSION ZServer==$ZSERVER_VERSION constraints:$(cksum < "$constraints" | cut -d' ' -f1)"
  if env_ready "$dir" "$spec"; then
    echo "ok    $label: $(sed -n 1p "$dir/zhw-ready") ZServer $(sed -n 2p "$dir/zhw-ready") (cached)"
    return 0
  fi
  log "$label: creating env from $interp (ZServer $ZSERVER_VERSION + Zope $ZOPE_VERSION; takes a few minutes)"
  rm -rf "$dir"
  if ! make_virtualenv "$interp" "$dir" 20.3.4; then
    log "$label: creating the virtual env failed"; return 1
  fi
  if ! "$dir/bin/python" -m pip install -q -c "$constraints" \
        "Zope==$ZOPE_VERSION" "ZServer==$ZSERVER_VERSION"; then
    log "$label: pip install Zope==$ZOPE_VERSION ZServer==$ZSERVER_VERSION failed"; return 1
  fi
  if ! "$dir/bin/python" -c '
import zope.deferredimport, ZPublisher.WSGIPublisher
from ZServer.PubCore.ZRendezvous import ZRendevous
from ZServer.PubCore.ZServerPublisher import ZServerPublisher
from ZServer.ZPublisher.Publish import publish_module
'; then
    log "$label: importing the ZServer modules failed"; return 1
  fi
  ver=$(dist_version "$dir/bin/python" ZServer) || return 1
  mark_ready "$dir" "$dir/bin/python" "$ver" "$spec"
  echo "built $label: $dir/bin/python ZServer $ver"
}

for entry in "${interpreters[@]}"; do
  label=${entry%% *}
  interp=${entry#* }
  if [ ! -x "$interp" ]; then
    echo "SKIP $label: interpreter not found" >&2
    continue
  fi
  if ! build_waitress_env "$label" "$interp"; then
    echo "FAIL  $label: see messages above" >&2
    failures+=("$label")
  fi
  if [ -n "${ZHW_SKIP_POOLS:-}" ] && [ "$ZHW_SKIP_POOLS" != 0 ]; then
    echo "SKIP pools-$label: ZHW_SKIP_POOLS is set" >&2
  elif ! build_pools_env "$label" "$interp"; then
    echo "FAIL  pools-$label: see messages above" >&2
    failures+=("pools-$label")
  fi
  if [ -n "${ZHW_SKIP_FRAMEWORKS:-}" ] && [ "$ZHW_SKIP_FRAMEWORKS" != 0 ]; then
    echo "SKIP frameworks-$label: ZHW_SKIP_FRAMEWORKS is set" >&2
  elif ! build_frameworks_env "$label" "$interp"; then
    echo "FAIL  frameworks-$label: see messages above" >&2
    failures+=("frameworks-$label")
  fi
done

if ! build_zserver_env; then
  echo "FAIL  zserver-2.7: see messages above" >&2
  failures+=(zserver-2.7)
fi

# Debian sid's Python 3.14 in a chroot (needs root; skipped, not failed,
# when it cannot be built: the sid-3.14 tests then SKIP loudly).
if ! bash "$here/setup-sid.sh"; then
  echo "FAIL  sid-3.14: see messages above" >&2
  failures+=(sid-3.14)
fi

if [ ${#failures[@]} -gt 0 ]; then
  die "failed to build: ${failures[*]}"
fi

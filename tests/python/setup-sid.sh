#!/usr/bin/env bash
# Debian sid's Python 3.14 for zhw's live tests, in a chroot.
#
#   tests/python/setup-sid.sh     (setup-envs.sh runs it; needs root)
#
# The host (Debian bookworm) has no Python 3.14; sid has it, with Debian's
# own builds of the servers zhw knows. debootstrap installs sid's userland
# into a directory, and a wrapper runs its python3.14 there: the same
# process shape as a server in a container (another root, another mount
# namespace), which zhw must read from outside.
#
# Env root: ${ZHW_TEST_ENVS:-<repo>/target/test-envs}
#   <root>/sid-root/                 debootstrap --variant=minbase sid, with Debian's
#                                    python3.14, python3-waitress, python3-cheroot,
#                                    gunicorn, python3-celery, python3-flask,
#                                    python3-django and python3-pyramid (and their
#                                    dependencies)
#   <root>/sid-3.14/bin/python       the wrapper (below)
#   <root>/sid-3.14/zhw-ready        1. the wrapper's path  2. waitress version
#                                    3. cheroot version  4. the Python version
#   <root>/pools-sid-3.14/zhw-ready  1. the wrapper's path  2. gunicorn version
#                                    3. celery version (the layout of setup-envs.sh's
#                                    pools-<label> envs, so the pool tests find it alike)
#   <root>/frameworks-sid-3.14/zhw-ready  1. the wrapper's path  2. Flask version
#                                    3. "Django <version> Pyramid <version>" (as
#                                    setup-envs.sh's frameworks-<label> envs)
#   <root>/sid-3.14.skipped          why the env is absent, when this script skipped it
#
# The wrapper runs `/usr/bin/python3.14 ARGS` inside <root>/sid-root, in a
# mount namespace of its own where the caller's working directory (cargo
# test runs in the repo, so tests/python/*.py) is bind-mounted at the same
# path, and /proc is mounted; both mounts go away with the process. Every
# step execs, so the PID the caller spawned is python's (the tests signal,
# reap and inspect that PID), and the environment and stdio pass through.
#
# Skipped with a SKIP line, no env and exit 0 (the tests then SKIP loudly,
# with the reason this script wrote to sid-3.14.skipped): when not root,
# with ZHW_SKIP_SID set (not 0; an env built before is kept), when
# debootstrap cannot be installed, when the Debian archive (the mirror the
# host's apt uses for its own suite, or ZHW_SID_MIRROR) cannot be reached, or
# when the build fails. Exits non-zero only when a failed build left
# something behind that it could not remove.
# Idempotent (a built env is checked in well under a second and kept; one
# whose spec changed is rebuilt), safe to run concurrently (flock),
# non-interactive. A cold build takes about 40 s (112 packages, about 45 MB
# downloaded, 264 MB on disk).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${ZHW_TEST_ENVS:-$repo/target/test-envs}
label=sid-3.14
packages="python3.14 python3-waitress python3-cheroot gunicorn python3-celery python3-flask python3-django python3-pyramid"
# Bump when the wrapper or the layout changes: a built env is then rebuilt.
wrapper_version=1
spec="debootstrap minbase sid: $packages; wrapper $wrapper_version"

log() { echo "setup-sid: $*" >&2; }

# Say why the env is absent, here and where the tests read it; exit 0.
skip() {
  echo "SKIP $label: $*" >&2
  printf '%s\n' "$*" > "$root/$label.skipped" 2>/dev/null || true
  exit 0
}

if [ "$(id -u)" != 0 ]; then
  # The tests skip sid-3.14 for non-root users themselves.
  echo "SKIP $label: needs root (debootstrap, chroot and mount namespaces); the sid-3.14 tests will SKIP" >&2
  exit 0
fi
mkdir -p "$root"
root=$(cd "$root" && pwd)
sid_root=$root/sid-root
env_dir=$root/$label
pools_dir=$root/pools-$label
frameworks_dir=$root/frameworks-$label
python=$env_dir/bin/python
if [ -n "${ZHW_SKIP_SID:-}" ] && [ "$ZHW_SKIP_SID" != 0 ]; then
  [ -f "$env_dir/zhw-ready" ] || skip "ZHW_SKIP_SID is set"
  echo "SKIP $label: ZHW_SKIP_SID is set (the env built before is kept, and used)" >&2
  exit 0
fi

exec 8>"$root/.setup-sid.lock"
flock 8

# Mounts at or below directory $1, deepest first (a killed debootstrap can
# leave its /proc and /sys mounted in the target).
mounts_under() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# Remove directory $1 without ever descending into a mounted file system.
remove_tree() {
  local dir=$1 mount
  [ -e "$dir" ] || return 0
  for mount in $(mounts_under "$dir"); do
    umount -l "$mount" || true
  done
  if [ -n "$(mounts_under "$dir")" ]; then
    log "cannot unmount what is mounted under $dir"; return 1
  fi
  rm -rf --one-file-system "$dir"
}

# Leave nothing half built: remove every part; fail if that is impossible.
remove_env() {
  local ok=0
  rm -f "$env_dir/zhw-ready" "$pools_dir/zhw-ready" "$frameworks_dir/zhw-ready"
  remove_tree "$env_dir" || ok=1
  remove_tree "$pools_dir" || ok=1
  remove_tree "$frameworks_dir" || ok=1
  remove_tree "$sid_root.tmp" || ok=1
  remove_tree "$sid_root" || ok=1
  return $ok
}

fail_build() {
  log "$*"
  if ! remove_env; then
    echo "FAIL  $label: a half-built env is left under $root (see above)" >&2
    exit 1
  fi
  skip "$*"
}

# Is the env built, from this spec, and does its python run?
ready() {
  [ -f "$env_dir/zhw-ready" ] && [ -f "$pools_dir/zhw-ready" ] && [ -f "$frameworks_dir/zhw-ready" ] || return 1
  [ "$(cat "$env_dir/zhw-spec" 2>/dev/null)" = "$spec" ] || return 1
  [ -x "$python" ] && [ -x "$sid_root/usr/bin/python3.14" ] || return 1
  "$python" -c 'import waitress, cheroot.wsgi' >/dev/null 2>&1
}

if ready; then
  rm -f "$root/$label.skipped"
  echo "ok    $label: $python waitress $(sed -n 2p "$env_dir/zhw-ready") Python $(sed -n 4p "$env_dir/zhw-ready") (cached)"
  exit 0
fi

# The archive the host's apt uses: the URI of its own suite's main
# component, as `apt-cache policy` reads it from the sources.
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
mirror=${ZHW_SID_MIRROR:-}
if [ -z "$mirror" ] && command -v apt-cache >/dev/null 2>&1 && [ -n "$codename" ]; then
  mirror=$(apt-cache policy 2>/dev/null | awk -v s="$codename/main" '$3 == s { print $2; exit }')
fi
[ -n "$mirror" ] || skip "no Debian archive found in the host's apt sources (set ZHW_SID_MIRROR)"

if ! command -v debootstrap >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || skip "debootstrap is missing and there is no apt-get to install it"
  log "installing debootstrap"
  install_debootstrap() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends debootstrap </dev/null >&2
  }
  install_debootstrap || { apt-get -o DPkg::Lock::Timeout=300 update -qq </dev/null >&2 && install_debootstrap; } ||
    skip "debootstrap could not be installed"
fi
[ -f /usr/share/debootstrap/scripts/sid ] || skip "this debootstrap does not know sid"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || skip "$keyring is missing (package debian-archive-keyring)"

# Reachability first, with apt's own downloader (and its proxy settings).
probe=$(mktemp)
if ! /usr/lib/apt/apt-helper download-file "$mirror/dists/sid/InRelease" "$probe" >/dev/null 2>&1; then
  rm -f "$probe"
  skip "the Debian archive $mirror cannot be reached"
fi
rm -f "$probe"

started=$(date +%s)
log "building $sid_root: debootstrap --variant=minbase sid from $mirror, with $packages (about a minute)"
remove_env || { echo "FAIL  $label: cannot remove the old env under $root" >&2; exit 1; }
# debootstrap resolves the Depends of --include itself and downloads on the
# host side, so the chroot needs neither network nor resolver configuration.
if ! debootstrap --variant=minbase --components=main --keyring="$keyring" \
      --include="${packages// /,}" sid "$sid_root.tmp" "$mirror" </dev/null >"$root/$label.debootstrap.log" 2>&1; then
  tail -n 20 "$root/$label.debootstrap.log" >&2
  fail_build "debootstrap failed (log: $root/$label.debootstrap.log)"
fi
# apt's downloaded packages are not needed again.
rm -f "$sid_root.tmp"/var/cache/apt/archives/*.deb
mv "$sid_root.tmp" "$sid_root"

mkdir -p "$env_dir/bin"
cat > "$python.tmp" <<EOF
#!/bin/sh
# zhw test env $label, made by tests/python/setup-sid.sh: Debian sid's
# python3.14, run in the chroot $sid_root. In a mount namespace of its own,
# the working directory is bind-mounted at the same path inside, and /proc
# is mounted; both go with the process. Every step execs: the PID the
# caller spawned is python's.
exec unshare --mount --propagation private -- /bin/sh -c '
  root=\$1; shift
  dir=\$(pwd -P)
  mount -t proc proc "\$root/proc" || exit 125
  if [ "\$dir" != / ]; then
    mkdir -p "\$root\$dir" && mount --bind "\$dir" "\$root\$dir" || exit 125
  fi
  exec unshare --root="\$root" --wd="\$dir" -- /usr/bin/python3.14 "\$@"
' sh '$sid_root' "\$@"
EOF
chmod 755 "$python.tmp"
mv "$python.tmp" "$python"

# Versions as Python sees them (and proof that each server imports).
versions=$("$python" - <<'EOF'
import sys
from importlib.metadata import version
import waitress, cheroot.wsgi, gunicorn.workers.gthread, celery.concurrency.thread, kombu.transport.memory
import flask, django, pyramid.router
print(version("waitress"), version("cheroot"), version("gunicorn"), version("celery"),
      sys.version.split()[0], version("flask"), version("django"), version("pyramid"))
EOF
) || fail_build "sid's python3.14 cannot import waitress, cheroot, gunicorn's gthread worker, celery's thread pool, Flask, Django or Pyramid"
read -r waitress_ver cheroot_ver gunicorn_ver celery_ver python_ver flask_ver django_ver pyramid_ver <<<"$versions"
case "$python_ver" in 3.14.*) ;; *) fail_build "sid's python3.14 says it is Python $python_ver" ;; esac

mkdir -p "$frameworks_dir"
printf '%s\n' "$spec" > "$frameworks_dir/zhw-spec"
printf '%s\n%s\n%s\n' "$python" "$flask_ver" "Django $django_ver Pyramid $pyramid_ver" > "$frameworks_dir/zhw-ready.tmp"
mv "$frameworks_dir/zhw-ready.tmp" "$frameworks_dir/zhw-ready"
mkdir -p "$pools_dir"
printf '%s\n' "$spec" > "$pools_dir/zhw-spec"
printf '%s\n%s\n%s\n' "$python" "$gunicorn_ver" "$celery_ver" > "$pools_dir/zhw-ready.tmp"
mv "$pools_dir/zhw-ready.tmp" "$pools_dir/zhw-ready"
printf '%s\n' "$spec" > "$env_dir/zhw-spec"
printf '%s\n%s\n%s\n%s\n' "$python" "$waitress_ver" "$cheroot_ver" "$python_ver" > "$env_dir/zhw-ready.tmp"
mv "$env_dir/zhw-ready.tmp" "$env_dir/zhw-ready"
rm -f "$root/$label.skipped"
echo "built $label: $python Python $python_ver waitress $waitress_ver cheroot $cheroot_ver gunicorn $gunicorn_ver celery $celery_ver flask $flask_ver django $django_ver pyramid $pyramid_ver ($(( $(date +%s) - started )) s)"

#!/usr/bin/env bash
# Build zhw's .deb (packaging/build-deb.sh), install it with apt-get, check
# what it put on the machine, purge it again and check that it is all gone.
#
#   bash tests/integration/deb.sh          # as root; non-interactive
#
# Leaves zhw uninstalled (even when zhw was installed before: that install is
# replaced by the built package and purged). Prints PASS/FAIL lines; exits
# non-zero if any check failed.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.bash"
cd "$repo"
require_root deb

installed_files=(
  /usr/bin/zhw
  /usr/share/man/man1/zhw.1.gz
  /usr/share/bash-completion/completions/zhw
  /usr/share/zsh/vendor-completions/_zhw
  /usr/share/fish/vendor_completions.d/zhw.fish
  /usr/share/doc/zhw/README.md
  /usr/share/doc/zhw/copyright
  /usr/share/doc/zhw/changelog.Debian.gz
  /usr/share/doc/zhw/docs/how-to/nrpe.md
  /usr/share/doc/zhw/docs/how-to/packaging.md
  /usr/share/doc/zhw/examples/demo_server.py
  /usr/share/doc/zhw/examples/nagios/nrpe.cfg
  /usr/share/doc/zhw/examples/nagios/zope.cfg
  /usr/share/doc/zhw/examples/icinga2/zhw.conf
  /usr/share/doc/zhw/examples/systemd/zhw.service
  /usr/share/doc/zhw/examples/systemd/zhw.default
  /usr/share/doc/zhw/examples/prometheus/zhw.yml
  /usr/share/doc/zhw/examples/prometheus/zhw-alerts.yml
  /usr/lib/systemd/system/zhw.service
)

purge() {
  if dpkg-query -W -f='${Status}' zhw 2>/dev/null | grep -q 'ok installed\|config-files'; then
    apt-get remove -y -q --purge zhw >&2
  fi
}
trap 'purge >/dev/null 2>&1 || true' EXIT

start=$SECONDS
if dpkg-query -W -f='${Status}' zhw 2>/dev/null | grep -q 'ok installed'; then
  note "zhw was installed before this test ($(dpkg-query -W -f='${Version}' zhw)); it will be purged"
fi

# --- build ---------------------------------------------------------------
deb=$(bash packaging/build-deb.sh | tail -n 1)
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
  fail "deb: packaging/build-deb.sh built no .deb"
  finish deb
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
pkg_version=$(dpkg-deb -f "$deb" Version)
if [ "$(dpkg-deb -f "$deb" Package)" = zhw ] && [ "$pkg_version" = "$version-1" ] &&
   [ "$(dpkg-deb -f "$deb" Section)" = admin ] && dpkg-deb -f "$deb" Depends | grep -q libc6; then
  pass "deb: built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB; Depends: $(dpkg-deb -f "$deb" Depends))"
else
  fail "deb: control fields of $deb: $(dpkg-deb -f "$deb" Package Version Section Depends | tr '\n' ' ')"
fi

# --- install -------------------------------------------------------------
# man-db for `man -w`; apt-get resolves the package's own Depends.
if ! command -v man >/dev/null 2>&1; then
  apt_install man-db || note "could not install man-db; checking the man file only"
fi
apt_update || note "apt-get update failed; installing from the cached lists"
if ! apt-get install -y -q "$deb" >&2; then
  fail "deb: apt-get install $deb failed"
  finish deb
fi
if [ "$(dpkg-query -W -f='${Status} ${Version}' zhw 2>/dev/null)" = "install ok installed $version-1" ]; then
  pass "deb: apt-get install $(basename "$deb")"
else
  fail "deb: dpkg does not list zhw $version-1 as installed"
fi

got=$(/usr/bin/zhw --version 2>&1)
if [ "$got" = "zhw $version" ]; then
  pass "deb: /usr/bin/zhw --version: $got"
else
  fail "deb: /usr/bin/zhw --version printed '$got', expected 'zhw $version'"
fi

# A check on a process that is no Python server must still answer with a
# status line: the installed binary runs and finds what it needs.
line=$(/usr/bin/zhw check --exit-codes nagios -t 5 $$ 2>&1 | head -n 1)
case $line in
  OK\ -* | WARNING\ -* | CRITICAL\ -* | UNKNOWN\ -*) pass "deb: /usr/bin/zhw check on a non-Python pid answers: ${line:0:70}" ;;
  *) fail "deb: /usr/bin/zhw check printed '$line'" ;;
esac

missing=()
for f in "${installed_files[@]}"; do
  [ -s "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -eq 0 ]; then
  pass "deb: ${#installed_files[@]} files in place (binary, man page, bash/zsh/fish completions, systemd unit, docs, examples)"
else
  fail "deb: missing after install: ${missing[*]}"
fi

if command -v man >/dev/null 2>&1; then
  manpath=$(man -w zhw 2>&1)
  if [ "$manpath" = /usr/share/man/man1/zhw.1.gz ] && man -P cat zhw 2>/dev/null | grep -q 'zhw'; then
    pass "deb: man -w zhw: $manpath (renders)"
  else
    fail "deb: man -w zhw printed '$manpath'"
  fi
else
  skip "deb: man -w: no man command here (the file check above covers the page)"
fi

# The completion scripts are valid for their shells (where the shell is here).
if bash -n /usr/share/bash-completion/completions/zhw &&
   (. /usr/share/bash-completion/completions/zhw && complete -p zhw >/dev/null); then
  pass "deb: bash completion loads and registers 'complete ... zhw'"
else
  fail "deb: bash completion does not load"
fi
for sh in zsh fish; do
  f=/usr/share/zsh/vendor-completions/_zhw
  [ $sh = fish ] && f=/usr/share/fish/vendor_completions.d/zhw.fish
  if command -v $sh >/dev/null 2>&1; then
    if $sh -n "$f" 2>/dev/null; then pass "deb: $sh -n $f"; else fail "deb: $sh -n $f"; fi
  fi
done

if [ "$(stat -c %a /usr/bin/zhw)" = 755 ] && [ "$(stat -c %U /usr/bin/zhw)" = root ]; then
  pass "deb: /usr/bin/zhw is root-owned, mode 755"
else
  fail "deb: /usr/bin/zhw is $(stat -c '%U %a' /usr/bin/zhw)"
fi

# --- remove --------------------------------------------------------------
if ! apt-get remove -y -q --purge zhw >&2; then
  fail "deb: apt-get remove --purge zhw failed"
fi
left=()
for f in "${installed_files[@]}" /usr/share/doc/zhw; do
  [ -e "$f" ] && left+=("$f")
done
if dpkg-query -W -f='${Status}' zhw 2>/dev/null | grep -q 'installed\|config-files'; then
  left+=("(dpkg still lists zhw: $(dpkg-query -W -f='${Status}' zhw))")
fi
if [ ${#left[@]} -eq 0 ]; then
  pass "deb: apt-get remove --purge zhw removed every file (total $((SECONDS - start)) s)"
else
  fail "deb: left after purge: ${left[*]}"
fi
finish deb

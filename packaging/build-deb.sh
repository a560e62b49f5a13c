#!/usr/bin/env bash
# Build the Debian package of zhw with cargo-deb.
#
#   bash packaging/build-deb.sh        # prints the .deb's path on the last line of stdout
#
# 1. installs cargo-deb (pinned, --locked) unless that version is already there;
# 2. builds the release binary (cargo build --release --locked);
# 3. generates the man page and shell completions with that binary into
#    target/assets/ (zhw.1.gz, zhw.bash, _zhw, zhw.fish);
# 4. runs `cargo deb --no-build`, which packs the assets listed in
#    Cargo.toml's [package.metadata.deb] into target/debian/zhw_<version>-1_<arch>.deb.
#
# Non-interactive; progress goes to stderr, only the .deb path to stdout.
# CARGO_DEB_VERSION overrides the pinned cargo-deb version.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}   # needs rustc >= 1.85

log() { echo "build-deb: $*" >&2; }

# Where `cargo install` puts binaries, so a fresh shell without it on PATH works.
cargo_bin=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin
case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH=$cargo_bin:$PATH ;; esac
export PATH

have_version=$(cargo deb --version 2>/dev/null | awk '{print $NF}' || true)
have_version=${have_version#v}
if [ "$have_version" != "$CARGO_DEB_VERSION" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION (found: ${have_version:-none}); takes a few minutes once"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi

log "building the release binary"
cargo build --release --locked >&2

target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
  echo target)
zhw=$target_dir/release/zhw
assets=target/assets   # the path Cargo.toml's assets name
rm -rf "$assets"
mkdir -p "$assets"

log "generating the man page and completions into $assets/"
"$zhw" generate man >"$assets/zhw.1"
gzip -9n -f "$assets/zhw.1"
"$zhw" generate bash >"$assets/zhw.bash"
"$zhw" generate zsh >"$assets/_zhw"
"$zhw" generate fish >"$assets/zhw.fish"
# A Debian changelog entry for this build (cargo-deb installs it as
# /usr/share/doc/zhw/changelog.Debian.gz).
version=$("$zhw" --version | awk '{print $2}')
maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if commit=$(git log -1 --format=%h 2>/dev/null) && [ -n "$commit" ]; then
  entry="Built from commit $commit"
  [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || entry="$entry (with uncommitted changes)"
  date=$(git log -1 --format=%aD)
else
  entry="Built from a source tree without git history"
  date=$(date -R)
fi
{
  echo "zhw ($version-1) unstable; urgency=medium"
  echo
  echo "  * $entry."
  echo
  echo " -- $maintainer  $date"
} >"$assets/changelog"

for f in zhw.1.gz zhw.bash _zhw zhw.fish changelog; do
  [ -s "$assets/$f" ] || { log "ERROR: $assets/$f is empty"; exit 1; }
done

log "packing with cargo deb --no-build"
rm -f "$target_dir"/debian/zhw_*.deb
# cargo deb prints the .deb's path on stdout.
deb=$(cargo deb --no-build | tail -n 1)
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
  log "ERROR: cargo deb produced no .deb (printed: '$deb')"
  exit 1
fi
# Absolute path, so callers may cd elsewhere.
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
log "built $deb"
echo "$deb"

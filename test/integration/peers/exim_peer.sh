#!/bin/sh
# Unpacks Debian's Exim 4.96 (exim4-daemon-light) into $MAILROOM_EXIM_DIR (default
# /tmp/mailroom-exim) without installing it, for test/integration/bounce_test.py. Installed,
# Exim would remove Postfix (both packages conflict on mail-transport-agent) and Postfix's
# smtp-sink is a test peer too; unpacked, no mail system is set up and no daemon starts. Its
# libraries must be installed (.ci/run: libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0
# libnsl2 libpcre2-8-0) and so is the Debian-exim user (made here). The tests run the binary
# with a configuration of their own (-C).
# Usage: exim_peer.sh [--check]   (--check: unpack nothing, exit 0 if unpacked, 1 if not)
# Exit status 0 when $MAILROOM_EXIM_DIR/usr/sbin/exim4 runs, 1 when it doesn't.
set -eu
dir=${MAILROOM_EXIM_DIR:-/tmp/mailroom-exim}
runs() {
  "$dir/usr/sbin/exim4" -C /dev/null -bV >/dev/null 2>&1
}
if runs; then
  exit 0
fi
if [ "${1:-}" = --check ]; then
  exit 1
fi
# The binary looks up the user it was built for (Debian-exim) before it reads any
# configuration: the package's scripts would make it, so this does, as a system account
# without a home or a shell.
if ! getent passwd Debian-exim >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "exim_peer.sh: the Debian-exim user is missing (needs root)" >&2; exit 1; }
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin Debian-exim
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt-get download needs the package lists: fetched once more if they are missing.
(cd "$tmp" && { apt-get download exim4-daemon-light >&2 ||
  { apt-get update -qq >&2 && apt-get download exim4-daemon-light >&2; }; })
mkdir -p "$dir"
dpkg-deb -x "$tmp"/exim4-daemon-light_*.deb "$dir"
runs || {
  echo "exim_peer.sh: $dir/usr/sbin/exim4 doesn't run (its libraries?)" >&2
  exit 1
}

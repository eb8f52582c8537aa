#!/bin/sh
# Installs what the Node.js peers need (oauth2-mock-server 8.x, for oauth2_server.mjs) into
# $MAILROOM_NODE_DIR (default /tmp/mailroom-node), never into the repository, if it is not
# there yet. 9.x needs Node >= 22; Debian 12 has Node 18, CI may have 20.
# Usage: node_peers.sh [--check]   (--check: install nothing, exit 0 if installed, 1 if not)
# Exit status 0 when installed, 1 when it isn't and couldn't be (no node or npm, no registry).
set -eu
dir=${MAILROOM_NODE_DIR:-/tmp/mailroom-node}
installed() {
  [ -f "$dir/node_modules/oauth2-mock-server/package.json" ] &&
    grep -q '"version": "8\.' "$dir/node_modules/oauth2-mock-server/package.json"
}
if installed; then
  exit 0
fi
if [ "${1:-}" = --check ]; then
  exit 1
fi
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node_peers.sh: node and npm are needed" >&2
  exit 1
}
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "mailroom-test-peers", "private": true}' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error oauth2-mock-server@8 >&2
installed

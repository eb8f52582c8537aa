#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time (MAILROOM_FUZZ_SECONDS, default 45) from its
# committed seed corpus, and prints "NAME: 1 passed, 0 failed" (or "0 passed, 1 failed") for
# .ci/run's count. New inputs go to a temporary directory that is removed afterwards (libFuzzer
# writes to the first corpus directory it is given), so the committed corpus never grows; the
# input of a crash or broken invariant is kept in ARTIFACTS.
# Usage: run.sh NAME FUZZER CORPUS ARTIFACTS
set -u
name=$1 fuzzer=$2 corpus=$3 artifacts=$4
seconds=${MAILROOM_FUZZ_SECONDS:-45}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work" "$corpus"
rc=$?
if [ "$rc" = 0 ]; then
  echo "$name: 1 passed, 0 failed"
else
  echo "$name: 0 passed, 1 failed (exit $rc; the input is in $artifacts)"
fi
exit "$rc"

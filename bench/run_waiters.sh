#!/bin/bash
# What thousands of waiting sends cost: starts Postfix's smtp-sink on 127.0.0.1 with `-w 5` (it
# waits 5 s before each final reply, so sends pile up), runs bench/waiters_bench with 10 000
# sends into a pool of 50 connections, once with coroutine callers and once with plain
# completion handlers, and stops the sink by its PID. See waiters_bench.cpp for what is counted.
#
# Usage: bench/run_waiters.sh [BUILD_DIR]   (default build; `ninja -C BUILD_DIR bench/waiters_bench`)
# Environment: SENDS (10000), CONNECTIONS (50).
set -euo pipefail

build=${1:-build}
sends=${SENDS:-10000}
connections=${CONNECTIONS:-50}
bench=$build/bench/waiters_bench
[[ -x $bench ]] || { echo "run_waiters.sh: no '$bench'; ninja -C $build bench/waiters_bench" >&2; exit 1; }
[[ -x /usr/sbin/smtp-sink ]] || { echo "run_waiters.sh: no smtp-sink: apt-get install postfix" >&2; exit 1; }

# A free port on 127.0.0.1 (the kernel picks one; smtp-sink then binds it).
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -4 -w 5 -m $((sends + 100)) -u nobody "127.0.0.1:$port" $((sends + 100)) &
sink=$!
trap 'kill "$sink" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
for caller in coroutine callback; do
    "$bench" --port "$port" --sends "$sends" --connections "$connections" --caller "$caller"
done

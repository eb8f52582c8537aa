#!/bin/bash
# What a waiting send costs the command-line tool: starts Postfix's smtp-sink on 127.0.0.1 with
# `-w 5` (it waits 5 s before answering each DATA, so sends pile up), runs
# `mailroom bulk --count 10000 --connections 50` against it once with --concurrency 50 and once
# with --concurrency 10000, reads each run's peak RSS (VmHWM in /proc/PID/status) after SETTLE
# seconds, stops the tool by its PID, and prints what each send beyond the 50 costs:
#
#   mailroom bulk waiters count=N connections=K peak_kib_50=A peak_kib_N=B kib_per_waiting_send=X
#
# At 50 connections and 5 s a message the whole run would take 1 000 s; the peak comes within
# the first second (every send is started at once), so the tool is stopped after SETTLE seconds
# (12: two rounds of replies, so reports and the next messages of the 50 are in the figure).
# The message bodies are shared by the tool's template builder: the figure is the bookkeeping
# of a send (its message's headers, the mailer's state, the tool's own), not its body.
#
# Usage: bench/run_bulk_waiters.sh [BUILD_DIR]   (default build; `ninja -C BUILD_DIR
#        examples/mailroom`)
# Environment: COUNT (10000), CONNECTIONS (50), LOW (50), SETTLE (12), ROUNDS (1: the smallest
# peak of each is kept).
set -euo pipefail

build=${1:-build}
count=${COUNT:-10000}
connections=${CONNECTIONS:-50}
low=${LOW:-50}
settle=${SETTLE:-12}
rounds=${ROUNDS:-1}
tool=$build/examples/mailroom
sink_bin=/usr/sbin/smtp-sink
die() {
    echo "run_bulk_waiters.sh: $*" >&2
    exit 1
}
[[ -x $tool ]] || die "no '$tool'; ninja -C $build examples/mailroom"
[[ -x $sink_bin ]] || die "no smtp-sink: apt-get install postfix"
((low < count)) || die "LOW ($low) must be below COUNT ($count)"

# A free port on 127.0.0.1 (the kernel picks one; smtp-sink then binds it). smtp-sink insists
# on -u when run as root.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=()
if [[ $(id -u) == 0 ]]; then user=(-u nobody); fi
"$sink_bin" -4 -w 5 -m $((connections + 100)) "${user[@]}" "127.0.0.1:$port" 1024 </dev/null \
    >/dev/null 2>&1 &
sink=$!
tool_pid=
cleanup() {
    [[ -z $tool_pid ]] || kill "$tool_pid" 2>/dev/null || true
    kill "$sink" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
kill -0 "$sink" 2>/dev/null || die "smtp-sink did not start"

# peak_kib CONCURRENCY: the tool's VmHWM after $settle seconds, in KiB.
peak_kib() {
    local peak
    "$tool" bulk --server "smtp://127.0.0.1:$port" --tls none --count "$count" \
        --connections "$connections" --concurrency "$1" --progress never >/dev/null 2>&1 &
    tool_pid=$!
    sleep "$settle"
    kill -0 "$tool_pid" 2>/dev/null || die "mailroom bulk --concurrency $1 ended early"
    peak=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$tool_pid/status")
    kill "$tool_pid"
    wait "$tool_pid" 2>/dev/null || true
    tool_pid=
    echo "$peak"
}

best_low=
best_high=
for ((r = 0; r < rounds; r++)); do
    a=$(peak_kib "$low")
    b=$(peak_kib "$count")
    [[ -n $best_low ]] && ((best_low <= a)) || best_low=$a
    [[ -n $best_high ]] && ((best_high <= b)) || best_high=$b
done
awk -v n="$count" -v k="$connections" -v lo="$low" -v a="$best_low" -v b="$best_high" 'BEGIN {
    printf "mailroom bulk waiters count=%d connections=%d peak_kib_%d=%d peak_kib_%d=%d kib_per_waiting_send=%.2f\n",
           n, k, lo, a, n, b, (b - a) / (n - lo) }'

#!/bin/bash
# Leak soak: COUNT messages (1 000 000 by default) through `mailroom bulk` to Postfix's
# smtp-sink on 127.0.0.1, with the tool's resident memory (VmRSS in /proc/PID/status) sampled
# every second. A leak of even a few bytes a message shows as a climb of megabytes; a flat
# line after warm-up is the pass. Prints the samples' summary and the tool's own summary:
#
#   mailroom soak count=N seconds=S msgs_per_s=R rss_kib_warm=A rss_kib_max_after=B
#       rss_kib_end=C growth_after_warm_kib=D bytes_per_msg_after_warm=E
#
# "warm" is the first sample after WARM seconds (default 10): by then every connection, buffer
# and pool is at its working size. The growth is the largest sample after warm-up minus the
# warm sample, spread over the messages sent after warm-up.
#
# Usage: bench/run_soak.sh [BUILD_DIR]   (default build; `ninja -C BUILD_DIR examples/mailroom`)
# Environment: COUNT (1000000), CONNECTIONS (8), CONCURRENCY (256), WARM (10), SAMPLES (a file
# to keep the per-second samples in: seconds rss_kib).
set -euo pipefail

build=${1:-build}
count=${COUNT:-1000000}
connections=${CONNECTIONS:-8}
concurrency=${CONCURRENCY:-256}
warm=${WARM:-10}
samples=${SAMPLES:-$(mktemp)}
tool=$build/examples/mailroom
sink_bin=/usr/sbin/smtp-sink
die() {
    echo "run_soak.sh: $*" >&2
    exit 1
}
[[ -x $tool ]] || die "no '$tool'; ninja -C $build examples/mailroom"
[[ -x $sink_bin ]] || die "no smtp-sink: apt-get install postfix"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=()
if [[ $(id -u) == 0 ]]; then user=(-u nobody); fi
"$sink_bin" -4 -m $((connections + 100)) "${user[@]}" "127.0.0.1:$port" 1024 </dev/null \
    >/dev/null 2>&1 &
sink=$!
tool_pid=
out=$(mktemp)
cleanup() {
    [[ -z $tool_pid ]] || kill "$tool_pid" 2>/dev/null || true
    kill "$sink" 2>/dev/null || true
    rm -f "$out"
}
trap cleanup EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
kill -0 "$sink" 2>/dev/null || die "smtp-sink did not start"

start=$(date +%s.%N)
"$tool" bulk --server "smtp://127.0.0.1:$port" --tls none --count "$count" \
    --connections "$connections" --concurrency "$concurrency" --progress never >"$out" 2>&1 &
tool_pid=$!
: >"$samples"
t=0
while kill -0 "$tool_pid" 2>/dev/null; do
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$tool_pid/status" 2>/dev/null || true)
    [[ -z $rss ]] || echo "$t $rss" >>"$samples"
    sleep 1
    t=$((t + 1))
done
status=0
wait "$tool_pid" || status=$?
tool_pid=
end=$(date +%s.%N)
cat "$out"
((status == 0)) || die "mailroom bulk exited $status"
awk -v n="$count" -v warm="$warm" -v s0="$start" -v s1="$end" '
    { t[NR] = $1; r[NR] = $2 }
    END {
        if (NR == 0) { print "run_soak.sh: no samples" > "/dev/stderr"; exit 1 }
        secs = s1 - s0
        w = 0
        for (i = 1; i <= NR; i++) if (t[i] >= warm) { w = i; break }
        if (w == 0) { print "run_soak.sh: the run ended before warm-up; raise COUNT" > "/dev/stderr"; exit 1 }
        max = r[w]
        for (i = w; i <= NR; i++) if (r[i] > max) max = r[i]
        after = n * (secs - t[w]) / secs
        printf "mailroom soak count=%d seconds=%.1f msgs_per_s=%.0f rss_kib_warm=%d rss_kib_max_after=%d rss_kib_end=%d growth_after_warm_kib=%d bytes_per_msg_after_warm=%.4f\n",
               n, secs, n / secs, r[w], max, r[NR], max - r[w], (max - r[w]) * 1024 / after
    }' "$samples"

#!/bin/bash
# Compares mailroom's compose speed with Python's email package on the same machine, in the same
# run: compose_bench and compose_python.py take turns (mailroom, python, mailroom, python, ...)
# so that load from elsewhere falls on both alike, and the table shows the median of the rounds.
#
# Usage: bench/run_compose.sh [COMPOSE_BENCH [SECONDS [ROUNDS]]]
#   COMPOSE_BENCH  the built benchmark (default build/bench/compose_bench); this script builds
#                  nothing: `ninja -C build bench/compose_bench` first
#   SECONDS        timed seconds per workload per program (default 2)
#   ROUNDS         rounds (default 3)
# Environment: PYTHON (default /usr/bin/python3, Debian's, not whatever is first on PATH).
set -euo pipefail

bench=${1:-build/bench/compose_bench}
seconds=${2:-2}
rounds=${3:-3}
python=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ! -x $bench ]]; then
    echo "run_compose.sh: no benchmark at '$bench'; build it first, e.g." >&2
    echo "  meson setup build --buildtype=release && ninja -C build bench/compose_bench" >&2
    exit 1
fi
if [[ ! -x $python ]]; then
    echo "run_compose.sh: no Python at '$python' (set PYTHON)" >&2
    exit 1
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT

for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds: mailroom..." >&2
    "$bench" --seconds "$seconds" | tee -a "$results" | sed 's/^/  /' >&2
    echo "round $r/$rounds: python..." >&2
    "$python" "$here/compose_python.py" --seconds "$seconds" | tee -a "$results" | sed 's/^/  /' >&2
done

cpu=$(grep -m1 -E '^(model name|Hardware|cpu model)' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
[[ -n $cpu ]] || cpu=unknown
echo
echo "compose benchmark: $rounds rounds, ${seconds} s per workload, medians"
echo "cpu:    $cpu ($(nproc) CPUs available)"
echo "kernel: $(uname -srm)"
echo "python: $("$python" --version 2>&1) ($python), email package, policy.default"
echo

# Lines look like `<impl> <workload> key=value key=value ...`.
awk '
function median(impl, key,    n, i, j, t, v) {
    n = count[impl, key]
    if (n == 0)
        return ""
    for (i = 1; i <= n; i++)
        v[i] = vals[impl, key, i]
    for (i = 2; i <= n; i++)  # insertion sort: n is small
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function num(x, decimals) { return x == "" ? "-" : sprintf("%." decimals "f", x) }
function row(label, unit, key, decimals, goal,    m, p, ratio, verdict) {
    m = median("mailroom", key); p = median("python", key)
    ratio = (m != "" && p != "" && p > 0) ? sprintf("%.1fx", m / p) : "-"
    verdict = ""
    if (goal != "" && ratio != "-")
        verdict = (m / p >= goal + 0) ? "met" : "MISSED"
    printf "%-10s %-8s %14s %14s %10s   %s\n", label, unit, num(m, decimals), num(p, decimals),
           ratio, goal == "" ? "-" : ">= " goal "x " verdict
}
{
    for (i = 3; i <= NF; i++) {
        split($i, kv, "=")
        key = $2 "." kv[1]
        vals[$1, key, ++count[$1, key]] = kv[2] + 0
    }
}
END {
    printf "%-10s %-8s %14s %14s %10s   %s\n", "workload", "unit", "mailroom", "python", "ratio", "goal"
    row("small", "msg/s", "small.msgs_per_s", 0, "20")
    row("attach10m", "msg/s", "attach10m.msgs_per_s", 2, "")
    row("attach10m", "MiB/s", "attach10m.mib_per_s", 1, "")
    g = median("mailroom", "base64.gib_per_s")
    printf "%-10s %-8s %14s %14s %10s   %s\n", "base64", "GiB/s", num(g, 3), "-", "-",
           g == "" ? "-" : ">= 1 GiB/s " (g >= 1 ? "met" : "MISSED")
    printf "\n(attach10m MiB/s counts output octets; base64 GiB/s counts input octets.)\n"
}' "$results"

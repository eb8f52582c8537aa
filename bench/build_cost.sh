#!/usr/bin/env bash
# What taking mailroom in costs a consumer's build: the compile time of a translation unit
# that includes <mailroom/mailer/mailer.hpp> and sends a message, beside one that uses Asio
# alone (bench/build_cost/), with GCC and clang, -O2, the median of ROUNDS runs each; and the
# size of the smallest program (examples/one_message.cpp) linked static and shared, stripped,
# beside the Asio-only program.
#
# usage: bench/build_cost.sh BUILD_DIR [ROUNDS]   (BUILD_DIR configured with
#        -Ddefault_library=both and built: ninja -C BUILD_DIR lib/libmailroom.a lib/libmailroom.so)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
rounds=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inc=(-I"$top/include" -I"$build/include")
flags=(-std=c++20 -O2)

median_seconds() { # COMMAND...: runs it ROUNDS times, prints the median wall time
  local times=()
  for _ in $(seq "$rounds"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    times+=("$(awk "BEGIN { print $t1 - $t0 }")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p"
}

echo "compile time of one translation unit (-O2, median of $rounds):"
printf '%-10s %12s %14s %8s\n' compiler "Asio alone" "with mailroom" ratio
for cxx in g++ clang++; do
  a=$(median_seconds "$cxx" "${flags[@]}" "${inc[@]}" -c "$top/bench/build_cost/asio_only.cpp" -o "$work/a.o")
  m=$(median_seconds "$cxx" "${flags[@]}" "${inc[@]}" -c "$top/bench/build_cost/with_mailer.cpp" -o "$work/m.o")
  printf '%-10s %11.2fs %13.2fs %7.2fx\n' "$cxx" "$a" "$m" "$(awk "BEGIN { print $m / $a }")"
done

echo "program size, stripped (g++ -O2):"
libs=(-lssl -lcrypto -lidn2 -lcares -pthread)
g++ "${flags[@]}" "${inc[@]}" "$top/bench/build_cost/asio_only.cpp" -o "$work/asio_only" -pthread
g++ "${flags[@]}" "${inc[@]}" "$top/examples/one_message.cpp" "$build/lib/libmailroom.a" \
  "${libs[@]}" -o "$work/one_static"
g++ "${flags[@]}" "${inc[@]}" "$top/examples/one_message.cpp" -L"$build/lib" -lmailroom \
  -o "$work/one_shared"
strip "$work/asio_only" "$work/one_static" "$work/one_shared"
cp "$build/lib/libmailroom.so" "$work/libmailroom.so" && strip "$work/libmailroom.so"
kib() { echo $(($(stat -c %s "$1") / 1024)); }
echo "  Asio-only program:                      $(kib "$work/asio_only") KiB"
echo "  one_message, static libmailroom.a:      $(kib "$work/one_static") KiB"
echo "  one_message, shared (program only):     $(kib "$work/one_shared") KiB"
echo "  libmailroom.so:                         $(kib "$work/libmailroom.so") KiB"

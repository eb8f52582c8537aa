#!/usr/bin/env bash
# Takes mailroom in as services do, and checks each way end to end: the library is built and
# installed (static and shared, from one build), then programs are built against it with GCC
# and clang, through pkg-config, CMake's find_package and as a Meson subproject, with Asio
# header-only, compiled once in the program (src.hpp), and with handler tracking; each one
# sends to a local `mailroom sink` and what arrived is read back with Python's email parser.
#
# usage: test/consumers/run.sh SOURCE_DIR     prints `consumers: N passed, M failed`
set -uo pipefail
src=$(realpath "$1")
here=$src/test/consumers
work=$(mktemp -d)
sink_pid=
cleanup() {
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
jobs=${CONSUMER_JOBS:-2}

# check NAME COMMAND...: one counted case; its output is shown only when it fails.
check() {
  local name=$1
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    tail -n 40 "$work/$name.log" | sed 's/^/     /'
    failed=$((failed + 1))
  fi
}

finish() {
  echo "consumers: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}

# ---- the library, built once and installed as a packager would ----
prefix=$work/prefix
echo "== building and installing mailroom (static and shared) into $prefix"
if ! { meson setup "$work/lib" "$src" --prefix="$prefix" --buildtype=release \
    -Ddefault_library=both -Dcli=enabled -Dinstall=enabled -Dtests=disabled -Dbench=disabled \
    -Dexamples=disabled -Ddocs=disabled --werror &&
  ninja -C "$work/lib" -j "$jobs" && meson install -C "$work/lib" --no-rebuild; } \
  >"$work/lib.log" 2>&1; then
  tail -n 40 "$work/lib.log"
  failed=$((failed + 1))
  finish
fi
libdir=$(dirname "$(find "$prefix" -name mailroom.pc)")
libdir=${libdir%/pkgconfig}
tool=$prefix/bin/mailroom
# A static-only installation (as a -dev package without the .so would be).
cp -a "$prefix" "$work/prefix-static"
rm -f "$work/prefix-static/${libdir#"$prefix"/}"/libmailroom.so*

# run_against_sink NAME EXPECTED COMMAND...: starts a sink with a fresh Maildir, runs the
# program with the sink's host and port appended, and checks that EXPECTED messages arrived,
# each a well-formed message with a From, a To and a Subject.
run_against_sink() {
  local name=$1 expected=$2
  shift 2
  local dir=$work/maildir-$name
  "$tool" sink --listen 127.0.0.1:0 --maildir "$dir" --max-seconds 300 >"$work/sink-$name.out" &
  sink_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/sink-$name.out" 2>/dev/null && break; sleep 0.05; done
  local port
  port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sink-$name.out")
  "$@" 127.0.0.1 "$port"
  local status=$?
  kill "$sink_pid" 2>/dev/null
  wait "$sink_pid" 2>/dev/null
  sink_pid=
  [ "$status" = 0 ] || { echo "program exited $status"; return 1; }
  /usr/bin/python3 - "$dir" "$expected" <<'PY'
import email, email.policy, os, sys
d, expected = sys.argv[1], int(sys.argv[2])
files = sorted(os.listdir(os.path.join(d, "new"))) if os.path.isdir(os.path.join(d, "new")) else []
for f in files:
    m = email.message_from_bytes(open(os.path.join(d, "new", f), "rb").read(), policy=email.policy.default)
    assert m["From"] and m["To"] and m["Subject"], f"incomplete message {f}"
print(f"{len(files)} message(s) arrived, {expected} expected")
sys.exit(0 if len(files) == expected else 1)
PY
}

# The static copy has moved: its .pc file is told where its prefix is now.
pc() { PKG_CONFIG_PATH=$1/${libdir#"$prefix"/}/pkgconfig pkg-config --define-variable=prefix="$1" "${@:2}"; }
strict=(-std=c++20 -O2 -Wall -Wextra -Wshadow -Wpedantic -Werror)

# build_pc NAME CXX PREFIX LINK OUTPUT SOURCES... [-- EXTRA FLAGS]: builds through pkg-config.
build_pc() {
  local cxx=$1 pfx=$2 kind=$3 out=$4
  shift 4
  local libs
  if [ "$kind" = static ]; then libs=$(pc "$pfx" --static --libs mailroom); else
    libs="$(pc "$pfx" --libs mailroom) -Wl,-rpath,$pfx/${libdir#"$prefix"/}"; fi
  # shellcheck disable=SC2046,SC2086
  # GCC 12 misreads Asio's coroutine frame allocator (-Wmismatched-new-delete, fixed in 13).
  local quirks=()
  [ "$cxx" = g++ ] && quirks=(-Wno-mismatched-new-delete)
  "$cxx" "${strict[@]}" "${quirks[@]}" $(pc "$pfx" --cflags mailroom) "$@" -o "$out" $libs
}

ex=$src/examples
bin=$work/bin
mkdir -p "$bin"

check installed-tool-runs "$tool" --version
# 0.x: the SONAME carries the minor version (README, "Compatibility").
version=$(sed -n "s/^  version: '\([0-9.]*\)',/\1/p" "$src/meson.build")
soname=libmailroom.so.$(echo "$version" | cut -d. -f1-2)
check shared-soname bash -c "readelf -d '$libdir/libmailroom.so' | grep -F '[$soname]'"
# No code but mailroom's API is exported by the shared library, or global in the static one
# (what stays global there is data Asio keeps once per program, README).
global_functions() { # ELF-FILE [--dyn-syms]: defined global/weak functions, demangled
  readelf -W "${2:---syms}" "$1" | awk '$4 == "FUNC" && $5 != "LOCAL" && $7 != "UND" { print $8 }' |
    c++filt | sort -u
}
exports() {
  local so=$libdir/libmailroom.so a=$work/prefix-static/${libdir#"$prefix"/}/libmailroom.a
  local n_so n_so_other n_a n_a_other
  n_so=$(global_functions "$so" --dyn-syms | wc -l)
  n_so_other=$(global_functions "$so" --dyn-syms | grep -vc '^mailroom::' || true)
  n_a=$(global_functions "$a" | wc -l)
  n_a_other=$(global_functions "$a" | grep -vc '^mailroom::' || true)
  echo "shared: $n_so functions exported, $n_so_other not mailroom's;" \
    "static: $n_a global functions, $n_a_other not mailroom's"
  global_functions "$so" --dyn-syms | grep -v '^mailroom::' | head
  [ "$n_so_other" = 0 ] && [ "$n_a_other" = 0 ]
}
check no-asio-exported exports
head -n 1 "$work/no-asio-exported.log" | sed 's/^/     /'

check pkgconfig-gcc-shared build_pc g++ "$prefix" shared "$bin/one_gcc_shared" "$ex/one_message.cpp"
check pkgconfig-gcc-shared-run run_against_sink one-gcc-shared 1 "$bin/one_gcc_shared"
check pkgconfig-clang-static build_pc clang++ "$work/prefix-static" static "$bin/svc_clang_static" \
  "$ex/service_mailer.cpp"
check pkgconfig-clang-static-run run_against_sink svc-clang-static 20 "$bin/svc_clang_static" 
check pkgconfig-clang-shared build_pc clang++ "$prefix" shared "$bin/cb_clang_shared" "$ex/callbacks.cpp"
check pkgconfig-clang-shared-run run_against_sink cb-clang-shared 20 "$bin/cb_clang_shared"

# Asio compiled once by the program itself (BOOST_ASIO_SEPARATE_COMPILATION + src.hpp).
check asio-src-gcc-static build_pc g++ "$work/prefix-static" static "$bin/src_gcc_static" \
  -DBOOST_ASIO_SEPARATE_COMPILATION "$here/asio_impl.cpp" "$ex/one_message.cpp"
check asio-src-gcc-static-run run_against_sink src-gcc-static 1 "$bin/src_gcc_static"
check asio-src-clang-shared build_pc clang++ "$prefix" shared "$bin/src_clang_shared" \
  -DBOOST_ASIO_SEPARATE_COMPILATION "$here/asio_impl.cpp" "$ex/template_batch.cpp"
check asio-src-clang-shared-run run_against_sink src-clang-shared 5 "$bin/src_clang_shared"

# Header-only Asio, the program's own io_context and coroutines, Beast's HTTP parser.
check beast-gcc-static build_pc g++ "$work/prefix-static" static "$bin/beast_gcc_static" \
  "$here/beast_app.cpp"
check beast-gcc-static-run run_against_sink beast-gcc-static 1 "$bin/beast_gcc_static"
check beast-clang-shared build_pc clang++ "$prefix" shared "$bin/beast_clang_shared" \
  "$here/beast_app.cpp"
check beast-clang-shared-run run_against_sink beast-clang-shared 1 "$bin/beast_clang_shared"

# CMake: find_package(mailroom CONFIG), static and shared, GCC and clang.
cmake_consumer() {
  local name=$1 cxx=$2 source=$3
  shift 3
  cmake -S "$here/cmake" -B "$work/cmake-$name" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCONSUMER_SOURCE="$source" "$@" &&
    cmake --build "$work/cmake-$name" -j "$jobs"
}
check cmake-gcc-static cmake_consumer gcc-static g++ "$ex/service_mailer.cpp" \
  -DMAILROOM_USE_STATIC_LIBS=ON
check cmake-gcc-static-run run_against_sink cmake-gcc-static 20 "$work/cmake-gcc-static/consumer"
check cmake-clang-shared cmake_consumer clang-shared clang++ "$ex/template_batch.cpp"
check cmake-clang-shared-run run_against_sink cmake-clang-shared 5 "$work/cmake-clang-shared/consumer"

# A translation unit whose Asio configuration differs from the library's is stopped at
# compile time with the macro's name.
mismatch() {
  ! g++ -std=c++20 -fsyntax-only -DBOOST_ASIO_ENABLE_HANDLER_TRACKING \
    $(pc "$prefix" --cflags mailroom) "$ex/one_message.cpp" 2>"$work/mismatch.err" &&
    grep -q 'BOOST_ASIO_ENABLE_HANDLER_TRACKING' "$work/mismatch.err"
}
check asio-config-mismatch-rejected mismatch

# Meson subproject, with handler tracking for the whole program (library included).
meson_consumer() {
  local d=$work/meson-consumer
  mkdir -p "$d/subprojects/mailroom"
  cp "$here/meson/meson.build" "$d/"
  cp "$ex/one_message.cpp" "$d/consumer.cpp"
  tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$d/subprojects/mailroom" -xf -
  meson setup "$d/build" "$d" --buildtype=release && ninja -C "$d/build" -j "$jobs" &&
    # A quiet subproject: nothing but the library was built.
    ! ls "$d/build/subprojects/mailroom/examples/mailroom" 2>/dev/null
}
check meson-subproject-handler-tracking meson_consumer
tracked() {
  run_against_sink meson-tracking 1 "$work/meson-consumer/build/consumer" 2>"$work/tracking.err" &&
    grep -c '^@asio|' "$work/tracking.err"
}
check meson-subproject-handler-tracking-run tracked

finish

#!/usr/bin/env bash
# Postfix's smtp-sink as a test SMTP server on 127.0.0.1, started and stopped by PID.
#
#   smtp_sink.sh start [PORT]     start a sink on 127.0.0.1:PORT (default: a free ephemeral
#                                 port); prints the port number alone on stdout once the sink
#                                 answers. Fails if that port's sink is already running.
#   smtp_sink.sh stop [PORT]      stop that port's sink (default: every sink in the state
#                                 directory), by the PID in its pid file
#   smtp_sink.sh dump-file [PORT] print the path of that port's dump file (PORT may be left
#                                 out while exactly one sink's files are in the directory)
#
# State lives in $MAILROOM_PEERS_DIR (default ${TMPDIR:-/tmp}/mailroom-peers-$UID), one set
# of files per port: smtp-sink-PORT.pid, .log (its -c counters and errors) and .dump. Stopping
# keeps .dump and .log for the test to read; starting on a port again clears them.
# $MAILROOM_PEERS_MAX_SECONDS (default 600) bounds a sink's life in case nobody stops it.
#
# The sink: `timeout 600 /usr/sbin/smtp-sink -4 -c [-u root] -S MARK -D DUMP 127.0.0.1:PORT
# 256` (the pid file holds timeout's PID; it passes SIGTERM on). It answers every command
# with success and advertises PIPELINING, 8BITMIME, AUTH PLAIN LOGIN, XCLIENT, XFORWARD,
# ENHANCEDSTATUSCODES and DSN (no SIZE, STARTTLS or SMTPUTF8, though it takes MAIL ...
# SMTPUTF8 and 8-bit addresses); its EHLO reply ends with an empty `250 ` line. AUTH gets
# `250 2.0.0 Ok`, not 235 (smtplib's login calls that a failure): test AUTH against
# aiosmtpd_server.py instead.
#
# Dump file format (smtp-sink's -D: created with the first message, appended per message,
# written before the reply to the final "."):
#   === smtp-sink message ===                 (our -S marker line, starts each message)
#   X-Client-Addr: 127.0.0.1
#   X-Client-Proto: ESMTP
#   X-Helo-Args: <EHLO argument>
#   X-Mail-Args: <MAIL FROM argument, with its parameters>
#   X-Rcpt-Args: <RCPT TO argument>            (one line per RCPT, in order)
#   Received: from ... ([127.0.0.1])
#   <TAB>by smtp-sink (smtp-sink) with ESMTP id ...;
#   <TAB><date>
#   <the message as received, dot-unstuffed, one line per line: every CR is dropped and each
#    line ends in LF, so CRLF becomes LF and a bare CR disappears>
#   <an empty line>
# So a message a client sends with CRLF line ends compares byte for byte with the lines after
# the Received header's two continuation lines once CRLF is turned into LF.
set -euo pipefail

DIR=${MAILROOM_PEERS_DIR:-${TMPDIR:-/tmp}/mailroom-peers-$(id -u)}
MAX_SECONDS=${MAILROOM_PEERS_MAX_SECONDS:-600}
MARK='=== smtp-sink message ==='

usage() {
  echo "usage: smtp_sink.sh start [PORT] | stop [PORT] | dump-file [PORT]" >&2
  exit 2
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Does anything accept connections on 127.0.0.1:$1?
listening() {
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  exec 3<&-
}

# Does 127.0.0.1:$1 greet like smtp-sink? (bash's /dev/tcp: no client program needed)
greets() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&-
  [[ $line == "220 smtp-sink "* ]]
}

# Start on port $1 and wait (up to 5 s) until it greets. On failure, say why on stderr, leave
# no files for that port behind and return 1.
start_on() {
  local port=$1 base="$DIR/smtp-sink-$1" pid i user
  if [ -s "$base.pid" ] && kill -0 "$(cat "$base.pid")" 2>/dev/null; then
    echo "smtp_sink.sh: a sink on port $port is already running (PID $(cat "$base.pid"))" >&2
    exit 1
  fi
  # smtp-sink binds with SO_REUSEPORT, so a second sink on a taken port would start and
  # share the connections: refuse a port that already answers.
  if listening "$port"; then
    echo "smtp_sink.sh: something already listens on 127.0.0.1:$port" >&2
    return 1
  fi
  rm -f "$base.dump" "$base.pid"
  # smtp-sink insists on -u when run as root. It opens the dump file after switching to that
  # user, so a user other than root could not write into a mode-700 test directory (mktemp
  # -d): stay root then; it only ever listens on 127.0.0.1.
  user=()
  if [ "$(id -u)" = 0 ]; then user=(-u root); fi
  # -D expands strftime(3) escapes in the path: double any % in it.
  # timeout(1) bounds the sink's life and passes our SIGTERM on to it.
  timeout "$MAX_SECONDS" /usr/sbin/smtp-sink -4 -c "${user[@]}" -S "$MARK\n" \
    -D "${base//%/%%}.dump" "127.0.0.1:$port" 256 </dev/null >"$base.log" 2>&1 &
  pid=$!
  echo "$pid" >"$base.pid"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    if greets "$port" && kill -0 "$pid" 2>/dev/null; then
      echo "$port"
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  echo "smtp_sink.sh: smtp-sink on 127.0.0.1:$port did not come up:" >&2
  cat "$base.log" >&2
  rm -f "$base.pid" "$base.log"
  return 1
}

stop_pidfile() {
  local pidfile=$1 pid i
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  rm -f "$pidfile"
  # Only our sink (timeout running smtp-sink): never a process that reused a stale PID.
  grep -qa smtp-sink "/proc/$pid/cmdline" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  # timeout(1) leads its own process group: take the sink down with it.
  kill -KILL -- "-$pid" 2>/dev/null || true
}

cmd=${1:-}
port=${2:-}
[ $# -le 2 ] || usage
[[ -z $port || $port =~ ^[0-9]+$ ]] || usage

case $cmd in
start)
  mkdir -p "$DIR"
  if [ -n "$port" ]; then
    start_on "$port" || exit 1
  else
    # The port is free when picked but could be taken before the sink binds it: try again.
    for _ in 1 2 3; do
      port=$(free_port)
      start_on "$port" && exit 0
    done
    exit 1
  fi
  ;;
stop)
  if [ -n "$port" ]; then
    stop_pidfile "$DIR/smtp-sink-$port.pid"
  else
    shopt -s nullglob
    for f in "$DIR"/smtp-sink-*.pid; do
      stop_pidfile "$f"
    done
  fi
  ;;
dump-file)
  if [ -z "$port" ]; then
    shopt -s nullglob
    logs=("$DIR"/smtp-sink-*.log)
    if [ ${#logs[@]} -ne 1 ]; then
      echo "smtp_sink.sh: ${#logs[@]} sinks' files in $DIR: give the PORT" >&2
      exit 1
    fi
    port=${logs[0]##*/smtp-sink-}
    port=${port%.log}
  fi
  echo "$DIR/smtp-sink-$port.dump"
  ;;
*)
  usage
  ;;
esac

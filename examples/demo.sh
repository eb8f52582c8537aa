#!/usr/bin/env bash
# The README's demo: installs what mailroom needs (Debian 12), builds it, composes a message
# with the `mailroom` tool, shows how an independent parser (Python's email package) reads it
# back, submits it over SMTP to a local `mailroom sink` (127.0.0.1, a free port) that stores
# it in a Maildir, and then sends a batch of generated messages to a sink with `mailroom bulk`:
# through a mailer's connection pool and rate limiter, with a progress bar and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/deps
install_packages

if [ ! -f build-demo/build.ninja ]; then
  meson setup build-demo --buildtype=release >/dev/null
fi
ninja -C build-demo examples/mailroom >/dev/null
tool=build-demo/examples/mailroom

work=$(mktemp -d)
sink_pid=
sink2_pid=
cleanup() {
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  [ -z "$sink2_pid" ] || kill "$sink2_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
printf 'Quarterly figures\n' >"$work/Prüfbericht Q3.pdf"
head -c 40000 /dev/urandom >"$work/chart.png"

echo "== mailroom compose (headers of the wire form)"
"$tool" compose \
  --from 'Jörg Müller <joerg@example.com>' \
  --to '"Doe, Jane" <jane@bücher.de>' --cc ops@example.org --bcc audit@example.net \
  --subject 'Grüße aus Köln — Q3 report' \
  --text $'Hello Jane,\n\nthe report is attached.\n' \
  --html '<p>Hello Jane,</p><p><img src="cid:chart"></p>' \
  --inline "chart=$work/chart.png" --attach "$work/Prüfbericht Q3.pdf" \
  --header 'X-Campaign: demo' >"$work/demo.eml"
sed -n '1,/^\r$/p' "$work/demo.eml"

echo "== read back by Python's email package (policy.default)"
/usr/bin/python3 - "$work/demo.eml" <<'PY'
import email, email.policy, sys
raw = open(sys.argv[1], "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
print("From:   ", msg["From"].addresses[0].display_name, "<%s>" % msg["From"].addresses[0].addr_spec)
print("To:     ", [a.display_name for a in msg["To"].addresses])
print("Subject:", msg["Subject"])
for part in msg.walk():
    name = part.get_filename()
    size = len(part.get_payload(decode=True) or b"") if not part.is_multipart() else ""
    print("  part:", part.get_content_type(), name or "", size)
print("Bcc in the message:", b"audit@" in raw, "| size:", len(raw), "octets")
PY

echo "== mailroom send to a local mailroom sink"
"$tool" sink --listen 127.0.0.1:0 --maildir "$work/Maildir" --max-seconds 60 >"$work/sink.out" &
sink_pid=$!
for _ in $(seq 50); do grep -q listening "$work/sink.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sink.out")
"$tool" send --server "smtp://127.0.0.1:$port" --tls none --eml "$work/demo.eml" --json -v \
  2> >(sed 's/^/  /' >&2)
echo "stored in the sink's Maildir: $(ls "$work/Maildir/new" | wc -l) message(s)"
cmp -s "$work/demo.eml" "$work/Maildir/new/$(ls "$work/Maildir/new")" &&
  echo "the stored bytes equal the composed message"

echo
echo "== mailroom bulk: 20000 messages, each composed with its own Message-ID, through a pool of"
echo "   8 connections and a rate limit of 5000/s (burst 500), to a local mailroom sink"
"$tool" sink --listen 127.0.0.1:0 --max-seconds 120 >"$work/sink2.out" &
sink2_pid=$!
for _ in $(seq 50); do grep -q listening "$work/sink2.out" 2>/dev/null && break; sleep 0.1; done
port2=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sink2.out")
"$tool" bulk --server "smtp://127.0.0.1:$port2" --tls none --count 20000 --connections 8 \
  --rate 5000/s --burst 500 --size 2048 --from 'demo@example.com' --to 'inbox@example.net'

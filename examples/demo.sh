#!/usr/bin/env bash
# The README's demo: installs what mailroom needs (Debian 12), builds it, composes a message
# with the `mailroom` tool and shows how an independent parser (Python's email package) reads
# it back. Until the SMTP pieces land, composing is what there is to show.
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
trap 'rm -rf "$work"' EXIT
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

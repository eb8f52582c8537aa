#!/usr/bin/python3
"""The example programs (examples/*.cpp) against `mailroom sink`, checked by what arrives.

Usage: examples_test.py MAILROOM EXAMPLE...
  MAILROOM  the built `mailroom` tool (its `sink` is the server)
  EXAMPLE   the built example programs, named example_<name> (example_one_message, ...)

Each case starts its own sink on 127.0.0.1 (port 0) with a fresh Maildir, runs one example
against it, stops the sink by PID, and reads the stored messages back with Python's email
package (policy.default): how many, their To, Subject and body. The timeout example also runs
against a listener that accepts and never speaks. Prints "ok NAME" or "FAIL NAME: WHY" per
case and finally "examples: N passed, M failed"; exits 1 if any case failed.
Debian's /usr/bin/python3, standard library only.
"""

import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import peerlib  # noqa: E402  (the peers' shared helpers)
from peerlib import describe  # noqa: E402

LOOPBACK = "127.0.0.1"
RUN_TIMEOUT = 60  # seconds per example run
MAILROOM = None
EXAMPLES = {}  # name -> path
TMP = None
results = []


class CaseFailed(Exception):
    pass


def check(ok, why):
    if not ok:
        raise CaseFailed(why)


def eq(what, got, want):
    check(got == want, f"{what}: {describe(got, want)}")


def case(name, fn):
    try:
        fn()
        results.append((name, None))
        print("ok", name, flush=True)
    except Exception as e:  # a failed check or anything unexpected fails the case
        results.append((name, e))
        print(f"FAIL {name}: {e}", flush=True)


class Sink:
    """`mailroom sink` on 127.0.0.1 (an ephemeral port) storing into a fresh Maildir."""

    def __init__(self, name):
        self.maildir = os.path.join(TMP, name + ".Maildir")
        self.proc = subprocess.Popen(
            [MAILROOM, "sink", "--listen", f"{LOOPBACK}:0", "--maildir", self.maildir,
             "--max-seconds", "240"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        first = peerlib.read_line(self.proc.stdout, 10).decode(errors="replace")
        if not first.startswith(f"listening on {LOOPBACK}:"):
            self.stop()
            raise CaseFailed(f"sink said {first!r}")
        self.port = int(first.rsplit(":", 1)[1])

    def stop(self):
        """SIGTERM; returns the sink's remaining output (its summary). Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace") if out else ""

    def messages(self):
        """The stored messages, parsed, in no particular order."""
        new = os.path.join(self.maildir, "new")
        out = []
        for n in sorted(os.listdir(new)):
            with open(os.path.join(new, n), "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out


def run(name, *args, want_rc=0):
    """Runs example `name`; checks its exit status; returns (stdout, stderr, seconds)."""
    check(name in EXAMPLES, f"no example_{name} among the programs given")
    start = time.monotonic()
    p = subprocess.run([EXAMPLES[name], *map(str, args)], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    took = time.monotonic() - start
    check(p.returncode == want_rc,
          f"exit status {p.returncode}, want {want_rc}; stdout {p.stdout[-800:]!r}, "
          f"stderr {p.stderr[-800:]!r}")
    return p.stdout, p.stderr, took


def against_sink(name, *args, want_rc=0):
    """Runs example `name` with HOST PORT of a fresh sink and then `args`; stops the sink.
    Returns (the stored messages, the example's stdout, the sink's summary)."""
    sink = Sink(name)
    try:
        out, _, _ = run(name, LOOPBACK, sink.port, *args, want_rc=want_rc)
    finally:
        summary = sink.stop()
    return sink.messages(), out, summary


def to_addresses(msg):
    return [(a.display_name, a.addr_spec) for a in msg["To"].addresses]


def body_text(msg):
    # The Maildir holds the wire form (CRLF); the text as written had bare line feeds.
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def check_numbered(msgs, count, subject, address, body):
    """`count` messages, message i (1-based) to address(i) with subject(i) and body(i)."""
    eq("messages stored", len(msgs), count)
    by_subject = {str(m["Subject"]): m for m in msgs}
    eq("distinct subjects", len(by_subject), count)
    for i in range(1, count + 1):
        m = by_subject.get(subject(i))
        check(m is not None, f"no message with Subject {subject(i)!r}")
        eq(f"message {i} To", [a for _, a in to_addresses(m)], [address(i)])
        eq(f"message {i} From", m["From"].addresses[0].addr_spec, "noreply@example.com")
        check(body(i) in body_text(m), f"message {i} body: {body_text(m)!r}")


# ---- the cases --------------------------------------------------------------------------------

def one_message():
    msgs, out, summary = against_sink("one_message")
    eq("messages stored", len(msgs), 1)
    m = msgs[0]
    eq("Subject", str(m["Subject"]), "Grüße from one_message")
    eq("To", to_addresses(m), [("Jane Doe", "jane@example.org")])
    eq("From", m["From"].addresses[0].addr_spec, "sender@example.com")
    eq("body", body_text(m), "Hello Jane,\n\nthis message came over one SMTP connection.\n")
    check(": delivered" in out, f"report: {out!r}")
    check(f"message {m['Message-ID']}" in out, f"report lacks the Message-ID: {out!r}")
    check("RCPT jane@example.org: 250" in out, f"report lacks the RCPT reply: {out!r}")
    check("received 1 messages" in summary, f"sink summary {summary!r}")


def mailer_case(name, count, subject, body):
    def fn():
        msgs, out, _ = against_sink(name, count)
        check_numbered(msgs, count, subject, lambda i: f"user{i}@example.org", body)
        check(f"sent {count} of {count} messages" in out, f"output {out!r}")
        check(f"delivered {count}, partial 0, failed 0, unknown 0" in out,
              f"snapshot counts: {out!r}")
    return fn


def template_batch():
    count = 7
    msgs, out, _ = against_sink("template_batch", count)
    eq("messages stored", len(msgs), count)
    by_subject = {str(m["Subject"]): m for m in msgs}
    bodies = set()
    ids = set()
    for i in range(1, count + 1):
        m = by_subject.get(f"Weekly report for Reader {i}")
        check(m is not None, f"no message for Reader {i}: {sorted(by_subject)}")
        eq(f"message {i} To", to_addresses(m), [(f"Reader {i}", f"reader{i}@example.org")])
        eq(f"message {i} X-Campaign", m["X-Campaign"], "template-batch")
        eq(f"message {i} List-Unsubscribe", m["List-Unsubscribe"],
           "<https://example.com/unsubscribe>")
        bodies.add(body_text(m))
        ids.add(m["Message-ID"])
    eq("bodies", bodies,
       {"Hello,\n\nhere is this week's report. Every reader gets this same body.\n"})
    eq("distinct Message-IDs", len(ids), count)
    check(f"{count} of {count} delivered" in out, f"output {out!r}")


def timeout_in_time():
    msgs, out, _ = against_sink("timeout", "--timeout-ms", 20000)
    eq("messages stored", len(msgs), 1)
    eq("Subject", str(msgs[0]["Subject"]), "timeout example")
    check("the send finished first" in out, f"output {out!r}")


def silent_listener():
    """A socket that accepts connections (in the kernel's backlog) and never says a word."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    s.listen(16)
    return s


def timeout_expected():
    with silent_listener() as s:
        port = s.getsockname()[1]
        o, _, took = run("timeout", LOOPBACK, port, "--timeout-ms", 500, "--expect-timeout")
        check("timed out after" in o and "timed out as expected" in o, f"output {o!r}")
        check("Operation canceled" in o, f"the send's code is not operation_aborted: {o!r}")
        check(took < 15, f"took {took:.1f} s for a 0.5 s limit")
        # Without --expect-timeout, the same run is a failure.
        o, _, _ = run("timeout", LOOPBACK, port, "--timeout-ms", 500, want_rc=1)
        check("timed out after" in o, f"output {o!r}")


def timeout_not_expected():
    # --expect-timeout against a server that answers: the send is delivered, which fails.
    _, out, _ = against_sink("timeout", "--timeout-ms", 20000, "--expect-timeout", want_rc=1)
    check("delivered, but a timeout was expected" in out, f"output {out!r}")


def refused():
    # Nothing listens on the port: every example fails, and says so with a non-zero status.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    for name, extra in (("one_message", []), ("service_mailer", [2]), ("callbacks", [2]),
                        ("template_batch", [2]), ("timeout", ["--timeout-ms", 20000])):
        run(name, LOOPBACK, port, *extra, want_rc=1)


def main():
    global MAILROOM, TMP
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    MAILROOM = sys.argv[1]
    for path in sys.argv[2:]:
        base = os.path.basename(path)
        if base.startswith("example_"):
            EXAMPLES[base[len("example_"):]] = path
    TMP = tempfile.mkdtemp(prefix="mailroom-examples-test-")
    try:
        case("one_message", one_message)
        case("service_mailer", mailer_case(
            "service_mailer", 40, lambda i: f"service_mailer {i} of 40",
            lambda i: f"Hello user {i},\n\nsent by a coroutine on a thread pool.\n"))
        case("callbacks", mailer_case(
            "callbacks", 25, lambda i: f"callbacks {i} of 25",
            lambda i: f"Hello user {i},\n\nsent with a completion handler.\n"))
        case("template_batch", template_batch)
        case("timeout-in-time", timeout_in_time)
        case("timeout-expected", timeout_expected)
        case("timeout-expected-but-delivered", timeout_not_expected)
        case("connection-refused-fails", refused)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)

    failed = sum(1 for _, e in results if e)
    print(f"examples: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

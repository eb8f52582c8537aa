#!/usr/bin/python3
"""Exit statuses of `mailroom send` for what servers answer (issue 12).

Usage: exit_status_test.py MAILROOM   (the built `mailroom` tool; Debian's /usr/bin/python3,
                                       standard library only)

The contract (sysexits.h): a reply is judged by its first digit, codes the client doesn't know
included (RFC 5321 §4.2.1, §4.3.2): 4yz is 75 (EX_TEMPFAIL), 5yz 69 (EX_UNAVAILABLE), or 77
(EX_NOPERM) when it refuses AUTH; a 454 to AUTH (RFC 4954 §6, temporary authentication
failure) is 75; credentials kept back for want of TLS (STARTTLS stripped, or --tls none
without --allow-plaintext-auth) are a transport security failure, 76 (EX_PROTOCOL), as is a
reply that can't answer its command.

The servers: a scripted one in this process (replies no real server gives on demand) and
aiosmtpd (peers/aiosmtpd_server.py) where a real peer can play the part; all on 127.0.0.1 with
ephemeral ports, stopped here. Prints "ok NAME" or "FAIL NAME: WHY" per case and finally
"exit-status: N passed, M failed"; exits 1 if any case failed.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import peerlib  # noqa: E402

LOOPBACK = "127.0.0.1"
USER = "alice"
PASSWORD = "Pw-exit-status-" + os.urandom(6).hex()
PASSWORD_VAR = "MAILROOM_EXIT_STATUS_PASSWORD"
EX_OK, EX_UNAVAILABLE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 0, 69, 75, 76, 77

MAILROOM = None
TMP = None
passed = failed = 0


class Scripted:
    """One connection on 127.0.0.1:0: the greeting, then for each command line the reply of
    the first (prefix, reply) not yet used whose prefix it starts with ("500 unexpected"
    otherwise). A 3yz to DATA is followed by reading the data to its final dot, answered with the
    entry whose prefix is ".". Records every
    line received."""

    def __init__(self, greeting, script):
        self.greeting = greeting
        self.script = list(script)
        self.lines = []
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            f = conn.makefile("rb")
            conn.sendall(self.greeting.encode() + b"\r\n")
            try:
                for raw in f:
                    line = raw.rstrip(b"\r\n").decode("latin-1")
                    self.lines.append(line)
                    reply = "500 unexpected"
                    for i, (prefix, r) in enumerate(self.script):
                        if line.upper().startswith(prefix):
                            reply = r
                            del self.script[i]
                            break
                    conn.sendall(reply.encode() + b"\r\n")
                    if line.upper() == "DATA" and reply.startswith("3"):
                        for d in f:
                            if d == b".\r\n":
                                break
                        # The reply to the final dot: the entry whose prefix is ".".
                        final = next((r for p, r in self.script if p == "."), "250 ok")
                        conn.sendall(final.encode() + b"\r\n")
                    if line.upper() == "QUIT":
                        return
            except OSError:
                return

    def saw(self, prefix):
        return any(x.upper().startswith(prefix) for x in self.lines)

    def stop(self):
        self.sock.close()
        self.thread.join(5)


def send(port, *extra, auth=True):
    env = dict(os.environ)
    env[PASSWORD_VAR] = PASSWORD
    argv = [MAILROOM, "send", "--server", f"smtp://{LOOPBACK}:{port}", "--timeout", "10",
            "--from", "ann@example.org", "--to", "bob@example.net", "--subject", "exit",
            "--text", "body", *extra]
    if auth:
        argv += ["--user", USER, "--password-env", PASSWORD_VAR]
    p = subprocess.run(argv, env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return p


def check(problems, ok, why):
    if not ok:
        problems.append(why)


def expect(problems, p, status):
    check(problems, p.returncode == status,
          f"exit {p.returncode}, want {status}; stderr {p.stderr[-400:]!r}")
    check(problems, PASSWORD.encode() not in p.stderr + p.stdout, "the password was printed")


EHLO_AUTH = "250-fake.test\r\n250 AUTH PLAIN LOGIN"
PLAIN = ["--tls", "none", "--allow-plaintext-auth"]


def case_auth_refusals(problems):
    for reply, status in [("454 4.7.0 Temporary authentication failure", EX_TEMPFAIL),
                          ("471 4.7.1 later", EX_TEMPFAIL),
                          ("535 5.7.8 Authentication credentials invalid", EX_NOPERM),
                          ("534 5.7.9 Authentication mechanism is too weak", EX_NOPERM),
                          ("538 5.7.11 Encryption required", EX_NOPERM)]:
        srv = Scripted("220 fake.test", [("EHLO", EHLO_AUTH), ("AUTH", reply),
                                         ("QUIT", "221 bye")])
        try:
            p = send(srv.port, *PLAIN)
            before = len(problems)
            expect(problems, p, status)
            check(problems, srv.saw("AUTH"), "the client sent no AUTH")
            if len(problems) > before:
                problems.append(f"(AUTH answered {reply!r})")
        finally:
            srv.stop()


def case_unknown_codes(problems):
    """Codes outside RFC 5321's list, and outside its grammar's second digit, by first digit."""
    rows = [
        ([("MAIL", "471 4.7.1 slow down")], EX_TEMPFAIL),
        ([("MAIL", "559 5.9.9 no")], EX_UNAVAILABLE),
        ([("MAIL", "250 ok"), ("RCPT", "471 later"), ("RSET", "250 ok")], EX_TEMPFAIL),
        ([("MAIL", "250 ok"), ("RCPT", "250 ok"), ("DATA", "354 go"),
          (".", "471 4.7.1 not now")], EX_TEMPFAIL),
        ([("MAIL", "250 ok"), ("RCPT", "250 ok"), ("DATA", "354 go"),
          (".", "554 5.7.1 refused")], EX_UNAVAILABLE),
        ([("MAIL", "299 fine"), ("RCPT", "251 forwarded"), ("DATA", "355 send it"),
          (".", "250 queued")], EX_OK),
    ]
    for script, status in rows:
        srv = Scripted("220 fake.test", [("EHLO", "250 fake.test")] + script +
                       [("QUIT", "221 bye")])
        try:
            p = send(srv.port, "--tls", "none", auth=False)
            before = len(problems)
            expect(problems, p, status)
            if len(problems) > before:
                problems.append(f"(script {script!r})")
        finally:
            srv.stop()
    # A greeting with an unknown 4yz; one with a 3yz, which answers nothing: out of step.
    for greeting, status in [("471 busy", EX_TEMPFAIL), ("354 what", EX_PROTOCOL)]:
        srv = Scripted(greeting, [("QUIT", "221 bye")])
        try:
            p = send(srv.port, "--tls", "none", auth=False)
            before = len(problems)
            expect(problems, p, status)
            if len(problems) > before:
                problems.append(f"(greeting {greeting!r})")
        finally:
            srv.stop()


def case_stripped_starttls(problems):
    """--tls opportunistic with credentials and no STARTTLS offered: nothing sent, 76."""
    srv = Scripted("220 fake.test", [("EHLO", EHLO_AUTH), ("QUIT", "221 bye")])
    try:
        p = send(srv.port, "--tls", "opportunistic")
        expect(problems, p, EX_PROTOCOL)
        check(problems, not srv.saw("AUTH"), f"credentials went out without TLS: {srv.lines}")
        check(problems, p.stderr.count(b"\n") == 1, f"want one line on stderr: {p.stderr!r}")
    finally:
        srv.stop()
    # STARTTLS offered but refused: the same.
    srv = Scripted("220 fake.test", [("EHLO", "250-fake.test\r\n250-STARTTLS\r\n250 AUTH PLAIN"),
                                     ("STARTTLS", "454 4.7.0 TLS not available"),
                                     ("QUIT", "221 bye")])
    try:
        p = send(srv.port, "--tls", "opportunistic")
        expect(problems, p, EX_PROTOCOL)
        check(problems, not srv.saw("AUTH"), f"credentials went out without TLS: {srv.lines}")
    finally:
        srv.stop()


def case_stripped_starttls_aiosmtpd(problems):
    """The same against a real server that offers AUTH in the clear and no STARTTLS."""
    srv = peerlib.Aiosmtpd(TMP, "plain", "--auth", f"{USER}:{PASSWORD}", "--record",
                           os.path.join(TMP, "rec"))
    try:
        p = send(srv.port, "--tls", "opportunistic")
        expect(problems, p, EX_PROTOCOL)
        rec = os.path.join(TMP, "rec")
        check(problems, not os.path.isdir(rec) or not os.listdir(rec),
              "a message was delivered")
        # With --allow-plaintext-auth the same server takes it: the refusal was mailroom's.
        p = send(srv.port, "--tls", "opportunistic", "--allow-plaintext-auth")
        expect(problems, p, EX_OK)
    finally:
        srv.stop()


def case_tls_none_without_plaintext_auth(problems):
    srv = Scripted("220 fake.test", [("EHLO", EHLO_AUTH), ("QUIT", "221 bye")])
    try:
        p = send(srv.port, "--tls", "none")
        expect(problems, p, EX_PROTOCOL)
        check(problems, not srv.saw("AUTH"), f"credentials went out without TLS: {srv.lines}")
    finally:
        srv.stop()


CASES = [
    ("auth-refusals", case_auth_refusals),
    ("unknown-codes", case_unknown_codes),
    ("stripped-starttls", case_stripped_starttls),
    ("stripped-starttls-aiosmtpd", case_stripped_starttls_aiosmtpd),
    ("tls-none-without-plaintext-auth", case_tls_none_without_plaintext_auth),
]


def main(argv):
    global MAILROOM, TMP, passed, failed
    if len(argv) != 1:
        sys.stderr.write("usage: exit_status_test.py MAILROOM\n")
        return 2
    MAILROOM = os.path.abspath(argv[0])
    with tempfile.TemporaryDirectory(prefix="mailroom-exit-status-") as tmp:
        TMP = tmp
        for name, fn in CASES:
            problems = []
            try:
                fn(problems)
            except Exception:
                problems.append("exception: " + " | ".join(
                    x.strip() for x in traceback.format_exc().strip().splitlines()[-3:]))
            if problems:
                failed += 1
                print(f"FAIL {name}: " + "; ".join(problems), flush=True)
            else:
                passed += 1
                print(f"ok {name}", flush=True)
    print(f"exit-status: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Self-test of the integration-test peers, with Python's own smtplib and ssl as the client.

Usage: selftest.py   (no arguments; run with Debian's /usr/bin/python3)

Needs the openssl command, python3-aiosmtpd and Postfix's smtp-sink (.ci/run installs them).
Everything listens on 127.0.0.1 only, in a temporary directory removed at the end; every
server started here is stopped here, by PID. Prints "ok NAME" or "FAIL NAME: WHY" per check
and a final "peers-selftest: N passed, M failed"; exits 1 on any failure.
"""

import os
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

import peerlib
from peerlib import describe, recorded

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
CLIENT_NAME = "selftest.localhost"  # smtplib would otherwise ask getfqdn(), i.e. maybe DNS
TIMEOUT = 10

passed = failed = 0


def check(name, ok, why=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def expect_eq(name, got, want):
    check(name, got == want, describe(got, want))


class Server(peerlib.Aiosmtpd):
    """aiosmtpd_server.py as a context manager whose exit checks that SIGTERM stops it cleanly."""

    def __init__(self, tmp, name, *args):
        super().__init__(tmp, name, *args, timeout=TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        clean = self.stop()
        check(f"{self.name}: exits cleanly on SIGTERM", clean,
              f"status {self.proc.returncode}, stderr: {self.stderr()}")
        self.err.close()


def client_context(pki, cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, f"{cert}.pem"), os.path.join(pki, f"{cert}.key"))
    return ctx


def tls_verify_error(port, ctx, server_hostname):
    """Connect with TLS; None if verified, else the ssl.SSLCertVerificationError."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=server_hostname):
                return None
        except ssl.SSLCertVerificationError as e:
            return e


# A message meant to show any change on the way: a leading dot (dot-stuffing), a line that is
# only a dot, 8-bit UTF-8, a 998-octet line, and CRLF line ends throughout.
MESSAGE = (b"From: Ann <ann@example.org>\r\nTo: Bob <bob@example.net>\r\n"
           b"Subject: selftest\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b".leading dot\r\n.\r\n..two dots\r\nCaf\xc3\xa9 \xe2\x82\xac\r\n" + b"x" * 998 +
           b"\r\n\r\nend\r\n")


def test_pki(tmp):
    pki = os.path.join(tmp, "pki")
    tool = os.path.join(HERE, "make_test_pki.py")
    start = time.monotonic()
    r = subprocess.run([PYTHON, tool, pki], capture_output=True, text=True)
    took = time.monotonic() - start
    check("pki: make_test_pki.py succeeds", r.returncode == 0, r.stderr)
    check("pki: takes under 2 s", took < 2, f"{took:.2f} s")
    names = [f"{s}.{e}" for s in ("ca", "localhost", "wrong-name", "expired", "self-signed",
                                  "client") for e in ("pem", "key")]
    missing = [n for n in names if not os.path.exists(os.path.join(pki, n))]
    check("pki: all files written", not missing, f"missing {missing}")
    with open(os.path.join(pki, "ca.pem"), "rb") as f:
        ca = f.read()
    r = subprocess.run([PYTHON, tool, pki], capture_output=True, text=True)
    with open(os.path.join(pki, "ca.pem"), "rb") as f:
        check("pki: a second run keeps the whole set", r.returncode == 0 and f.read() == ca,
              r.stderr)
    return pki


def test_starttls_auth(tmp, pki):
    rec = os.path.join(tmp, "rec-starttls")
    with Server(tmp, "starttls", "--starttls", os.path.join(pki, "localhost.pem"),
                os.path.join(pki, "localhost.key"), "--require-starttls",
                "--auth", "alice:s3cret", "--record", rec,
                "--reject-rcpt", "nobody@example.net", "--size", "100000") as srv:
        with smtplib.SMTP("127.0.0.1", srv.port, CLIENT_NAME, TIMEOUT) as s:
            s.ehlo()
            check("starttls: EHLO offers STARTTLS, SIZE, 8BITMIME, SMTPUTF8, not AUTH",
                  s.has_extn("starttls") and s.esmtp_features.get("size") == "100000"
                  and s.has_extn("8bitmime") and s.has_extn("smtputf8")
                  and not s.has_extn("auth"), repr(s.esmtp_features))
            expect_eq("starttls: MAIL before TLS refused", s.docmd("MAIL FROM:<a@b.example>")[0],
                      530)
            # server_hostname is 127.0.0.1 here: verified against the IP SAN.
            code, _ = s.starttls(context=client_context(pki))
            expect_eq("starttls: STARTTLS, cert verified against the test CA", code, 220)
            s.ehlo()
            check("starttls: EHLO after TLS offers AUTH PLAIN LOGIN, not STARTTLS",
                  set(s.esmtp_features.get("auth", "").split()) == {"PLAIN", "LOGIN"}
                  and not s.has_extn("starttls"), repr(s.esmtp_features))
            expect_eq("starttls: MAIL before AUTH refused", s.docmd("MAIL FROM:<a@b.example>")[0],
                      530)
            try:
                s.login("alice", "wrong")
                check("starttls: wrong password refused", False, "login succeeded")
            except smtplib.SMTPAuthenticationError as e:
                expect_eq("starttls: wrong password refused", e.smtp_code, 535)
            s.login("alice", "s3cret")  # smtplib picks PLAIN
            expect_eq("starttls: SIZE over the limit refused",
                      s.docmd("MAIL FROM:<a@b.example> SIZE=200000")[0], 552)
            refused = s.sendmail("ann\u00e9@example.org", ["bob@example.net",
                                                           "nobody@example.net"],
                                 MESSAGE, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            expect_eq("starttls: --reject-rcpt gets 550 5.1.1", refused,
                      {"nobody@example.net": (550, b"5.1.1 no such user")})
        eml, meta = recorded(rec, 1)
        expect_eq("starttls: recorded .eml is exactly the message sent", eml, MESSAGE)
        expect_eq("starttls: recorded envelope",
                  (meta["mail_from"], meta["rcpt_tos"], meta["smtputf8"], meta["helo"]),
                  ("ann\u00e9@example.org", ["bob@example.net"], True, CLIENT_NAME))
        check("starttls: recorded MAIL parameters",
              {"SMTPUTF8", "BODY=8BITMIME", f"SIZE={len(MESSAGE)}"} <= set(meta["mail_options"]),
              repr(meta["mail_options"]))
        expect_eq("starttls: recorded TLS and AUTH user",
                  (meta["tls"], meta["auth_user"]), (True, "alice"))

        # The other mechanism, asked for by name.
        with smtplib.SMTP("127.0.0.1", srv.port, CLIENT_NAME, TIMEOUT) as s:
            s.starttls(context=client_context(pki))
            s.ehlo()
            s.user, s.password = "alice", "s3cret"
            expect_eq("starttls: AUTH LOGIN", s.auth("LOGIN", s.auth_login)[0], 235)
            s.sendmail("ann@example.org", ["bob@example.net"], b"Subject: 2\r\n\r\nsecond\r\n")
        eml, meta = recorded(rec, 2)
        expect_eq("starttls: second message recorded as 0002", (eml, meta["auth_user"]),
                  (b"Subject: 2\r\n\r\nsecond\r\n", "alice"))

        # SIGTERM while a client is still connected (checked when the server is stopped).
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
        idle.recv(100)
    idle.close()


def test_implicit_tls(tmp, pki):
    rec = os.path.join(tmp, "rec-implicit")
    with Server(tmp, "implicit-tls", "--implicit-tls", os.path.join(pki, "localhost.pem"),
                os.path.join(pki, "localhost.key"), "--auth", "alice:s3cret",
                "--record", rec) as srv:
        ctx = client_context(pki)
        with smtplib.SMTP_SSL("127.0.0.1", srv.port, CLIENT_NAME, timeout=TIMEOUT,
                              context=ctx) as s:
            s.ehlo()
            check("implicit-tls: EHLO offers AUTH, not STARTTLS",
                  s.has_extn("auth") and not s.has_extn("starttls"), repr(s.esmtp_features))
            s.login("alice", "s3cret")
            s.sendmail("ann@example.org", ["bob@example.net"], MESSAGE)
        eml, meta = recorded(rec, 1)
        expect_eq("implicit-tls: recorded .eml is exactly the message sent", eml, MESSAGE)
        expect_eq("implicit-tls: recorded TLS and AUTH user", (meta["tls"], meta["auth_user"]),
                  (True, "alice"))
        expect_eq("implicit-tls: localhost.pem verifies for DNS name localhost",
                  tls_verify_error(srv.port, ctx, "localhost"), None)


def test_plain_auth(tmp):
    rec = os.path.join(tmp, "rec-plain")
    with Server(tmp, "plain", "--auth", "alice:s3cret", "--record", rec) as srv:
        with smtplib.SMTP("127.0.0.1", srv.port, CLIENT_NAME, TIMEOUT) as s:
            s.ehlo()
            check("plain: no TLS, AUTH offered in the clear",
                  s.has_extn("auth") and not s.has_extn("starttls"), repr(s.esmtp_features))
            s.login("alice", "s3cret")
            s.sendmail("ann@example.org", ["bob@example.net"], MESSAGE)
        eml, meta = recorded(rec, 1)
        expect_eq("plain: recorded .eml is exactly the message sent", eml, MESSAGE)
        expect_eq("plain: recorded without TLS, with the AUTH user",
                  (meta["tls"], meta["auth_user"]), (False, "alice"))


def test_client_cert(tmp, pki):
    rec = os.path.join(tmp, "rec-client-cert")
    with Server(tmp, "client-cert", "--implicit-tls", os.path.join(pki, "localhost.pem"),
                os.path.join(pki, "localhost.key"), "--client-ca",
                os.path.join(pki, "ca.pem"), "--record", rec) as srv:
        with smtplib.SMTP_SSL("127.0.0.1", srv.port, CLIENT_NAME, timeout=TIMEOUT,
                              context=client_context(pki, "client")) as s:
            s.ehlo()
            check("client-cert: no --auth, no AUTH offered", not s.has_extn("auth"),
                  repr(s.esmtp_features))
            expect_eq("client-cert: AUTH without --auth gets 504",
                      s.docmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==")[0], 504)
            s.sendmail("ann@example.org", ["bob@example.net"], MESSAGE)
        eml, meta = recorded(rec, 1)
        expect_eq("client-cert: recorded the client certificate's CN and no AUTH user",
                  (meta["client_cert_cn"], meta["auth_user"]), ("mailroom-test-client", None))


def test_bad_certs(tmp, pki):
    # OpenSSL's verify codes: 10 certificate has expired, 62 hostname mismatch, 18 self-signed.
    for stem, code in (("expired", 10), ("wrong-name", 62), ("self-signed", 18)):
        with Server(tmp, f"bad-cert-{stem}", "--implicit-tls",
                    os.path.join(pki, f"{stem}.pem"), os.path.join(pki, f"{stem}.key")) as srv:
            err = tls_verify_error(srv.port, client_context(pki), "localhost")
            check(f"bad-cert: {stem}.pem rejected by Python's ssl (verify code {code})",
                  err is not None and err.verify_code == code, repr(err))
            try:
                smtplib.SMTP_SSL("127.0.0.1", srv.port, CLIENT_NAME, timeout=TIMEOUT,
                                 context=client_context(pki)).close()
                check(f"bad-cert: smtplib refuses {stem}.pem", False, "connected")
            except ssl.SSLCertVerificationError:
                check(f"bad-cert: smtplib refuses {stem}.pem", True)
            if stem == "wrong-name":
                expect_eq("bad-cert: wrong-name.pem verifies for wrong.example (only the name"
                          " is wrong)",
                          tls_verify_error(srv.port, client_context(pki), "wrong.example"), None)


def test_server_lifetime(tmp):
    r = subprocess.run([PYTHON, peerlib.AIOSMTPD, "--host", "0.0.0.0"], capture_output=True)
    expect_eq("server: --host other than 127.0.0.1 refused", r.returncode, 2)
    srv = Server(tmp, "max-seconds", "--max-seconds", "1")
    try:
        status = srv.proc.wait(6)
    except subprocess.TimeoutExpired:
        status = None
    srv.stop()
    expect_eq("server: --max-seconds 1 exits by itself with status 0", status, 0)


def test_smtp_sink(tmp):
    env = dict(os.environ, MAILROOM_PEERS_DIR=os.path.join(tmp, "sink"))
    tool = os.path.join(HERE, "smtp_sink.sh")
    r = subprocess.run(["bash", tool, "start"], env=env, capture_output=True, text=True,
                       timeout=30)
    check("sink: smtp_sink.sh start prints a port", r.returncode == 0 and r.stdout.strip()
          .isdigit(), f"status {r.returncode}, out {r.stdout!r}, err {r.stderr!r}")
    if r.returncode != 0:
        return
    port = int(r.stdout)
    pidfile = os.path.join(tmp, "sink", f"smtp-sink-{port}.pid")
    with open(pidfile) as f:
        pid = int(f.read())
    try:
        dump = subprocess.run(["bash", tool, "dump-file"], env=env, capture_output=True,
                              text=True).stdout.strip()
        with smtplib.SMTP("127.0.0.1", port, CLIENT_NAME, TIMEOUT) as s:
            refused = s.sendmail("ann@example.org", ["bob@example.net", "cy@example.net"],
                                 MESSAGE, mail_options=["BODY=8BITMIME"])
            expect_eq("sink: message accepted", refused, {})
            # Read before QUIT: smtp-sink has written the dump when it answers the final dot.
            with open(dump, "rb") as f:
                messages = peerlib.parse_sink_dump(f.read())
        expect_eq("sink: one message in the dump file", len(messages), 1)
        if messages:
            headers, body, blank = messages[0]
            check("sink: a blank line follows the message in the dump", blank)
            expect_eq("sink: dump holds the message sent, CRLF as LF", body,
                      MESSAGE.replace(b"\r\n", b"\n"))
            check("sink: dump holds the envelope",
                  b"X-Mail-Args: <ann@example.org> BODY=8BITMIME" in headers
                  and b"X-Rcpt-Args: <bob@example.net>" in headers
                  and b"X-Rcpt-Args: <cy@example.net>" in headers, repr(headers))
    finally:
        r = subprocess.run(["bash", tool, "stop"], env=env, capture_output=True, text=True,
                           timeout=30)
    expect_eq("sink: smtp_sink.sh stop succeeds", r.returncode, 0)
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    check("sink: stopped by PID", not alive and not os.path.exists(pidfile), f"PID {pid} alive")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        check("sink: port closed after stop", False, "still accepts connections")
    except OSError:
        check("sink: port closed after stop", True)


def main():
    with tempfile.TemporaryDirectory(prefix="mailroom-peers-selftest-") as tmp:
        pki = None
        tests = [
            ("pki", lambda: test_pki(tmp)),
            ("starttls", lambda: test_starttls_auth(tmp, pki)),
            ("implicit-tls", lambda: test_implicit_tls(tmp, pki)),
            ("plain", lambda: test_plain_auth(tmp)),
            ("client-cert", lambda: test_client_cert(tmp, pki)),
            ("bad-cert", lambda: test_bad_certs(tmp, pki)),
            ("server", lambda: test_server_lifetime(tmp)),
            ("sink", lambda: test_smtp_sink(tmp)),
        ]
        for name, run in tests:
            try:
                result = run()
                if name == "pki":
                    pki = result
            except Exception:
                check(f"{name}: ran to the end", False, traceback.format_exc())
    print(f"peers-selftest: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Integration test of `mailroom send` and `mailroom bulk` against real SMTP servers.

Usage: send_test.py MAILROOM   (the path to the built `mailroom` tool; run with Debian's
                                /usr/bin/python3, standard library only)

Every server is started here, on 127.0.0.1 with an ephemeral port, and stopped here by PID
(also when a check fails): aiosmtpd (peers/aiosmtpd_server.py), Postfix's smtp-sink
(peers/smtp_sink.sh), and two tiny listeners in this process (one that accepts and never
speaks, one relay that records what the client sends). The test PKI is made at test time in a
temporary directory (peers/make_test_pki.py). Nothing else is ever contacted: URLs name
127.0.0.1, or `localhost` only where it resolves to 127.0.0.1 alone. mailroom gets its
password from an environment variable (--password-env) or a file (--password-file), never
from its command line.

What is expected is derived from what was sent: the bytes `mailroom compose` wrote, the
addresses given, the server's configuration. Prints "ok NAME" or "FAIL NAME: WHY" per case
and finally "send-integration: N passed, M failed"; exits 1 if any case failed.
"""

import base64
import email.utils
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402  (the peers' shared helpers)
PYTHON = "/usr/bin/python3"
SMTP_SINK = os.path.join(PEERS, "smtp_sink.sh")
MAKE_PKI = os.path.join(PEERS, "make_test_pki.py")

LOOPBACK = "127.0.0.1"
USER = "alice"
# A fresh password per run, so finding it (or its base64) in a transcript can't be chance.
PASSWORD = "Pw-" + secrets.token_hex(12)
PASSWORD_VAR = "MAILROOM_SEND_TEST_PASSWORD"
WRONG_PASSWORD_VAR = "MAILROOM_SEND_TEST_WRONG_PASSWORD"
SERVER_START_TIMEOUT = 10
RUN_TIMEOUT = 30  # per mailroom run; --timeout keeps the tool itself well under this

# sysexits.h, as `mailroom send` documents them.
EX_OK, EX_USAGE, EX_UNAVAILABLE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 0, 64, 69, 75, 76, 77

MAILROOM = None  # set in main()
TMP = None
PKI = None


# ---- reporting --------------------------------------------------------------------------------

CaseFailed = peerlib.CaseFailed
Case = peerlib.Case
TALLY = peerlib.Tally()
run_case = TALLY.run


# ---- running mailroom -------------------------------------------------------------------------

class Run:
    def __init__(self, args, rc, out, err, seconds):
        self.args, self.rc, self.out, self.err, self.seconds = args, rc, out, err, seconds

    def why(self):
        return f"exit {self.rc}, stdout {self.out[:400]!r}, stderr {self.err[-600:]!r}"

    def json(self, c):
        """The --json report: exactly one line on stdout holding one JSON object."""
        lines = self.out.splitlines()
        c.require(len(lines) == 1 and self.out.endswith(b"\n"),
                  f"--json: want one line on stdout; {self.why()}")
        try:
            return json.loads(lines[0])
        except ValueError as e:
            c.require(False, f"--json: stdout is not JSON ({e}): {self.out!r}")

    def stderr_lines(self):
        return self.err.decode("utf-8", "replace").splitlines()

    def transcript(self):
        """The -v transcript's protocol lines, "C: ..." and "S: ...", without the
        "smtp[host#n] " prefix each log line starts with."""
        return [m.group(1) for line in self.stderr_lines()
                if (m := re.match(r"(?:\S+\] )?([CS]: .*)$", line))]

    def advertised(self, keyword):
        """Whether the last EHLO reply in the -v transcript lists `keyword`."""
        lines = self.transcript()
        ehlo = max((i for i, x in enumerate(lines) if x.upper().startswith("C: EHLO")),
                   default=None)
        if ehlo is None:
            return None
        for x in lines[ehlo + 1:]:
            if not x.startswith("S: 250"):
                break
            if x[7:].split()[:1] == [keyword]:
                return True
        return False


def mailroom(*args, env=None, timeout=RUN_TIMEOUT, stdin=None):
    """Runs mailroom; `stdin` is bytes to pipe in, an open file to read from, or None (empty)."""
    full_env = dict(os.environ)
    full_env.pop(PASSWORD_VAR, None)
    full_env.update(env or {})
    argv = [MAILROOM, *args]
    start = time.monotonic()
    piped = isinstance(stdin, bytes)
    try:
        p = subprocess.run(argv, env=full_env, capture_output=True, timeout=timeout,
                           input=stdin if piped else None,
                           stdin=None if piped else (stdin or subprocess.DEVNULL))
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]"
    return Run(argv, rc, out, err, time.monotonic() - start)


def secret_env(password=PASSWORD):
    return {PASSWORD_VAR: password}


def auth_args(mech=None):
    """--user with the password from the environment (never on the command line)."""
    a = ["--user", USER, "--password-env", PASSWORD_VAR]
    return a + (["--auth", mech] if mech else [])


def tls_args():
    return ["--ca-file", os.path.join(PKI, "ca.pem")]


def url(port, scheme="smtp", host=LOOPBACK):
    return f"{scheme}://{host}:{port}"


def compose(c, name, *args):
    """Runs `mailroom compose`; returns (path of the file it wrote, its bytes)."""
    r = mailroom("compose", *args)
    c.require(r.rc == 0 and r.out, f"compose {name}: {r.why()}")
    path = os.path.join(TMP, f"{name}.eml")
    with open(path, "wb") as f:
        f.write(r.out)
    return path, r.out


def addr_spec(mailbox):
    return email.utils.parseaddr(mailbox)[1]


def header_value(msg, name):
    """An (unfolded) header field's value from message bytes, or None."""
    head = msg.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\n[ \t].*)*)", head)
    return None if m is None else re.sub(rb"\n[ \t]", b" ", m.group(1)).decode()


def one_line(r):
    return r.err.endswith(b"\n") and r.err.count(b"\n") == 1


# ---- servers ----------------------------------------------------------------------------------

STOPPERS = []  # every server and listener started, stopped in main()'s finally


class Aiosmtpd(peerlib.Aiosmtpd):
    """aiosmtpd_server.py on 127.0.0.1, recording what it accepts; stopped in main()'s finally."""

    def __init__(self, name, *args, record=True):
        self.record = os.path.join(TMP, f"rec-{name}") if record else None
        extra = ["--record", self.record] if record else []
        super().__init__(TMP, name, "--max-seconds", "300", *extra, *args,
                         timeout=SERVER_START_TIMEOUT)
        STOPPERS.append(self.stop)

    def records(self):
        """Numbers of the whole recorded messages (their .json is written last)."""
        if not self.record or not os.path.isdir(self.record):
            return []
        return sorted(int(m.group(1)) for n in os.listdir(self.record)
                      if (m := re.fullmatch(r"(\d+)\.json", n)))

    def emls(self):
        if not self.record or not os.path.isdir(self.record):
            return []
        return sorted(n for n in os.listdir(self.record) if n.endswith(".eml"))

    def recorded(self, n):
        return peerlib.recorded(self.record, n)

    def one_new(self, c, before):
        """The one message recorded since `before` (a records() list)."""
        new = [n for n in self.records() if n not in before]
        c.require(len(new) == 1, f"want one new recorded message on {self.name}, got {new}")
        return self.recorded(new[0])


class SmtpSink:
    """Postfix's smtp-sink through smtp_sink.sh, with its own state directory."""

    def __init__(self):
        self.env = dict(os.environ, MAILROOM_PEERS_DIR=os.path.join(TMP, "sink"),
                        MAILROOM_PEERS_MAX_SECONDS="300")
        r = subprocess.run(["bash", SMTP_SINK, "start"], env=self.env, capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            raise RuntimeError(f"smtp_sink.sh start: status {r.returncode}, {r.stderr!r}")
        self.port = int(r.stdout)
        STOPPERS.append(self.stop)
        self.dump = subprocess.run(["bash", SMTP_SINK, "dump-file", str(self.port)],
                                   env=self.env, capture_output=True, text=True,
                                   timeout=30).stdout.strip()

    def stop(self):
        # Stops the sink by the PID in its pid file.
        subprocess.run(["bash", SMTP_SINK, "stop", str(self.port)], env=self.env,
                       capture_output=True, timeout=30)

    def messages(self):
        """The dump file as [(smtp-sink's header lines, message bytes)] (see smtp_sink.sh)."""
        try:
            with open(self.dump, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return [(headers, body) for headers, body, _ in peerlib.parse_sink_dump(data)]


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        STOPPERS.append(self.stop)

    def serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)  # held open, unread, until stop()
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.done.set()
        self.thread.join(2)
        for s in self.conns + [self.sock]:
            s.close()


class RecordingRelay:
    """A TCP relay on 127.0.0.1 in front of a server; keeps every byte the client sent."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.client_bytes = bytearray()
        self.done = threading.Event()
        self.socks = []
        self.threads = [threading.Thread(target=self.serve, daemon=True)]
        self.threads[0].start()
        STOPPERS.append(self.stop)

    def sent(self):
        with self.lock:
            return bytes(self.client_bytes)

    def serve(self):
        while not self.done.is_set():
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.before_upstream()
            server = socket.create_connection((LOOPBACK, self.upstream), timeout=10)
            client.settimeout(None)
            server.settimeout(None)
            self.socks += [client, server]
            for src, dst, keep in ((client, server, True), (server, client, False)):
                t = threading.Thread(target=self.pump, args=(src, dst, keep), daemon=True)
                t.start()
                self.threads.append(t)

    def before_upstream(self):
        """Called between accepting a client and connecting upstream (a hook for faults)."""

    def pump(self, src, dst, keep):
        try:
            while data := src.recv(65536):
                if keep:
                    with self.lock:
                        self.client_bytes += data
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self.done.set()
        for s in self.socks + [self.sock]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self.threads:
            t.join(2)


class Servers:
    """Servers shared between cases, started on first use."""

    def __init__(self):
        self.cache = {}

    def get(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def cert(self, stem):
        return [os.path.join(PKI, f"{stem}.pem"), os.path.join(PKI, f"{stem}.key")]

    # STARTTLS (required before anything else) with AUTH, recording; refuses REJECTED.
    def main(self):
        return self.get("main", lambda: Aiosmtpd(
            "main", "--starttls", *self.cert("localhost"), "--require-starttls",
            "--auth", f"{USER}:{PASSWORD}",
            *[a for r in REJECTED for a in ("--reject-rcpt", r)]))

    def implicit(self):
        return self.get("implicit", lambda: Aiosmtpd(
            "implicit", "--implicit-tls", *self.cert("localhost"),
            "--auth", f"{USER}:{PASSWORD}"))

    def bad_cert(self, stem, how):
        return self.get(f"cert-{stem}", lambda: Aiosmtpd(
            f"cert-{stem}", how, *self.cert(stem)))

    def sink(self):
        return self.get("sink", SmtpSink)


REJECTED = ["nobody@example.net", "nobody2@example.net"]
SERVERS = None


# ---- the message of case 1 --------------------------------------------------------------------

FROM = "Jörg Müller <joerg@example.org>"
TO = "Zoë Ünal <zoe@example.net>"
CC = "carl@example.net"
SUBJECT = "Grüße — Bericht über Q3 (ünd mehr)"
# ASCII, so it stays 7bit and the dots stay at the starts of lines on the wire.
BODY = "Hello Zoë,\n.leading dot\n.\n..two dots\n\nend\n".replace("ë", "e")
ATTACHMENT = bytes(range(256)) * 7 + b"\x00\r\n.\r\n"


def compose_rich(c, name):
    """The rich message (case 1) from `mailroom compose`; returns (path, bytes, options)."""
    text = os.path.join(TMP, f"{name}-body.txt")
    with open(text, "w") as f:
        f.write(BODY)
    attach = os.path.join(TMP, "Prüfbericht Q3.bin")
    with open(attach, "wb") as f:
        f.write(ATTACHMENT)
    path, data = compose(c, name, "--from", FROM, "--to", TO, "--cc", CC, "--subject", SUBJECT,
                         "--text-file", text, "--html", "<p>Grüße, Zoë</p>", "--attach",
                         attach)
    # The test is only as good as its message: dots must lead lines on the wire.
    c.require(b"\r\n.leading dot\r\n" in data and b"\r\n.\r\n" in data and
              b"\r\n..two dots\r\n" in data,
              "compose output lacks the lines starting with '.' this test needs")
    c.require(b"\n" not in data.replace(b"\r\n", b""), "compose output is not CRLF-only")
    return path, data


# ---- cases ------------------------------------------------------------------------------------

def case_starttls_auth_plain(c):
    srv = SERVERS.main()
    path, data = compose_rich(c, "rich")
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), "--tls", "required",
                 *auth_args(), "--timeout", "10", "--json", "--eml", path, env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    rep = r.json(c)
    rcpts = [addr_spec(TO), addr_spec(CC)]
    c.eq("JSON outcome", rep.get("outcome"), "delivered")
    c.eq("JSON accepted", rep.get("accepted"), rcpts)
    c.eq("JSON rejected", rep.get("rejected"), [])
    c.eq("JSON message_id", rep.get("message_id"), header_value(data, "Message-ID"))
    c.eq("stderr", r.err, b"")
    eml, meta = srv.one_new(c, before)
    c.eq("recorded bytes == compose output", eml, data)
    c.eq("recorded tls", meta["tls"], True)
    c.eq("recorded auth_user", meta["auth_user"], USER)
    c.eq("recorded MAIL FROM", meta["mail_from"], addr_spec(FROM))
    c.eq("recorded RCPT TOs", meta["rcpt_tos"], rcpts)
    c.check(f"SIZE={len(data)}" in meta["mail_options"],
            f"MAIL parameters {meta['mail_options']} lack SIZE={len(data)}")


def transcript_leaks(r, mech_blobs):
    """Secrets (the password, its base64, the SASL blobs' base64) found in stdout/stderr."""
    forms = {PASSWORD.encode()}
    for blob in [PASSWORD.encode(), *mech_blobs]:
        b64 = base64.b64encode(blob)
        forms |= {b64, b64.rstrip(b"=")}
    return [f for f in forms if f in r.err or f in r.out]


def case_auth_login(c):
    srv = SERVERS.main()
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args("login"),
                 "--timeout", "10", "-v", "--from", "ann@example.org", "--to",
                 "bob@example.net", "--subject", "AUTH LOGIN", "--text", "hi", env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    _, meta = srv.one_new(c, before)
    c.eq("recorded auth_user", meta["auth_user"], USER)
    lines = r.transcript()
    auth = [x for x in lines if x.upper().startswith("C: AUTH")]
    c.check(len(auth) == 1 and auth[0].split()[:3] == ["C:", "AUTH", "LOGIN"],
            f"want one 'C: AUTH LOGIN' line in the -v transcript, got {auth}")
    leaks = transcript_leaks(r, [])
    c.check(not leaks, f"-v transcript shows the password: {leaks}")


def case_wrong_password(c):
    srv = SERVERS.main()
    before = srv.emls()
    msg = ["--from", "ann@example.org", "--to", "bob@example.net", "--subject", "x",
           "--text", "x"]
    wrong = PASSWORD + "-wrong"
    r = mailroom("send", "--server", url(srv.port), *tls_args(), "--user", USER,
                 "--password-env", WRONG_PASSWORD_VAR, "--timeout", "10", *msg,
                 env={WRONG_PASSWORD_VAR: wrong})
    c.eq("exit status", r.rc, EX_NOPERM)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    c.eq("stdout without --json", r.out, b"")
    c.check(wrong.encode() not in r.err, "stderr shows the password")
    c.eq("recorded messages", srv.emls(), before)


def case_wrong_password_json(c):
    srv = SERVERS.main()
    before = srv.emls()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), "--user", USER,
                 "--password-env", WRONG_PASSWORD_VAR, "--timeout", "10", "--json",
                 "--from", "ann@example.org", "--to", "bob@example.net", "--text", "x",
                 env={WRONG_PASSWORD_VAR: "not-" + PASSWORD})
    c.eq("exit status", r.rc, EX_NOPERM)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    rep = r.json(c)
    c.eq("JSON outcome", rep.get("outcome"), "failed")
    c.eq("JSON accepted", rep.get("accepted"), [])
    c.eq("recorded messages", srv.emls(), before)


def localhost_is_loopback_only():
    try:
        infos = socket.getaddrinfo("localhost", 25, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return {i[4][0] for i in infos} == {LOOPBACK}


def case_implicit_tls(c):
    srv = SERVERS.implicit()
    # The URL's host is the name verified: localhost where it can only mean 127.0.0.1, else
    # the address with the name given separately (never contacting ::1 or anything else).
    if localhost_is_loopback_only():
        where = [url(srv.port, "smtps", "localhost")]
    else:
        where = [url(srv.port, "smtps"), "--tls-name", "localhost"]
    pwfile = os.path.join(TMP, "password.txt")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pwfile, 0o600)
    before = srv.records()
    r = mailroom("send", "--server", *where, *tls_args(), "--user", USER, "--password-file",
                 pwfile, "--timeout", "10", "--json", "--from", "ann@example.org", "--to",
                 "bob@example.net", "--subject", "implicit", "--text", "over TLS")
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    c.eq("JSON outcome", r.json(c).get("outcome"), "delivered")
    _, meta = srv.one_new(c, before)
    c.eq("recorded tls", meta["tls"], True)
    c.eq("recorded auth_user", meta["auth_user"], USER)


def simple_message(subject):
    return ["--from", "ann@example.org", "--to", "bob@example.net", "--subject", subject,
            "--text", "body"]


def expect_cert_refused(c, srv, *extra):
    before = srv.emls()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), "--timeout", "10", *extra,
                 *simple_message("must not arrive"))
    c.eq("exit status", r.rc, EX_PROTOCOL)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    c.eq("recorded messages", srv.emls(), before)


def case_cert_wrong_name_matching(c):
    srv = SERVERS.bad_cert("wrong-name", "--starttls")
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), "--tls-name", "wrong.example",
                 "--timeout", "10", *simple_message("right name"))
    c.require(r.rc == EX_OK, f"--tls-name wrong.example: {r.why()}")
    _, meta = srv.one_new(c, before)
    c.eq("recorded tls", meta["tls"], True)


def case_cert_wrong_name_default(c):
    expect_cert_refused(c, SERVERS.bad_cert("wrong-name", "--starttls"))


def case_cert_wrong_name_other(c):
    expect_cert_refused(c, SERVERS.bad_cert("wrong-name", "--starttls"), "--tls-name",
                        "localhost")


def case_cert_self_signed(c):
    srv = SERVERS.bad_cert("self-signed", "--implicit-tls")
    before = srv.emls()
    r = mailroom("send", "--server", url(srv.port, "smtps"), *tls_args(), "--timeout", "10",
                 *simple_message("must not arrive"))
    c.eq("exit status", r.rc, EX_PROTOCOL)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    c.eq("recorded messages", srv.emls(), before)


def case_cert_expired(c):
    expect_cert_refused(c, SERVERS.bad_cert("expired", "--starttls"))


def case_sink_tls_required(c):
    sink = SERVERS.sink()
    before = len(sink.messages())
    r = mailroom("send", "--server", url(sink.port), *tls_args(), "--tls", "required",
                 "--timeout", "10", *simple_message("needs TLS"))
    c.eq("exit status", r.rc, EX_PROTOCOL)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    c.eq("messages in the sink's dump", len(sink.messages()), before)


def case_sink_tls_none(c):
    sink = SERVERS.sink()
    path, data = compose_rich(c, "rich-sink")
    before = len(sink.messages())
    r = mailroom("send", "--server", url(sink.port), "--tls", "none", "--timeout", "10",
                 "--json", "--eml", path)
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    c.eq("JSON outcome", r.json(c).get("outcome"), "delivered")
    msgs = sink.messages()
    c.require(len(msgs) == before + 1, f"want one new message in the dump, have {len(msgs)}")
    headers, body = msgs[-1]
    c.eq("dump == compose output with CRLF as LF", body, data.replace(b"\r\n", b"\n"))
    want = [f"X-Rcpt-Args: <{addr_spec(a)}>".encode() for a in (TO, CC)]
    c.eq("RCPT TOs", [h for h in headers if h.startswith(b"X-Rcpt-Args:")], want)
    mail = [h for h in headers if h.startswith(b"X-Mail-Args:")]
    c.check(len(mail) == 1 and mail[0].startswith(f"X-Mail-Args: <{addr_spec(FROM)}>".encode()),
            f"MAIL FROM: {mail}")


# aiosmtpd_server.py refuses each --reject-rcpt address with exactly this reply.
REJECT_REPLY = (550, "5.1.1", "5.1.1 no such user")


def expected_rejection(c, r, address):
    """The JSON "rejected" entry for a refused address (address, code, enhanced, text).

    reply.hpp's contract: a reply's enhanced status code is recognised only where the server
    advertised ENHANCEDSTATUSCODES (RFC 2034); the text keeps it either way. aiosmtpd 1.4.3
    does not advertise it, so "enhanced" is null there; the -v transcript says which applies.
    """
    code, enhanced, text = REJECT_REPLY
    esc = r.advertised("ENHANCEDSTATUSCODES")
    c.require(esc is not None, f"no EHLO in the -v transcript: {r.err[:300]!r}")
    return (address, code, enhanced if esc else None, text)


def rejected_entries(rep):
    return [(x.get("address"), x.get("code"), x.get("enhanced"), x.get("text"))
            for x in rep.get("rejected") or []]


def case_reject_one_rcpt(c):
    srv = SERVERS.main()
    good, bad = "good@example.net", REJECTED[0]
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args(), "--timeout",
                 "10", "--json", "-v", "--from", "ann@example.org", "--to", good, "--to", bad,
                 "--subject", "partial", "--text", "one of two", env=secret_env())
    c.eq("exit status", r.rc, EX_UNAVAILABLE)
    rep = r.json(c)
    c.eq("JSON outcome", rep.get("outcome"), "partial")
    c.eq("JSON accepted", rep.get("accepted"), [good])
    c.eq("JSON rejected", rejected_entries(rep), [expected_rejection(c, r, bad)])
    _, meta = srv.one_new(c, before)
    c.eq("recorded RCPT TOs", meta["rcpt_tos"], [good])


def case_reject_all_rcpts(c):
    srv = SERVERS.main()
    before = srv.emls()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args(), "--timeout",
                 "10", "--json", "-v", "--from", "ann@example.org", "--to", REJECTED[0], "--cc",
                 REJECTED[1], "--subject", "nobody", "--text", "none of two", env=secret_env())
    c.eq("exit status", r.rc, EX_UNAVAILABLE)
    rep = r.json(c)
    c.eq("JSON outcome", rep.get("outcome"), "failed")
    c.eq("JSON accepted", rep.get("accepted"), [])
    c.eq("JSON rejected", rejected_entries(rep),
         [expected_rejection(c, r, a) for a in REJECTED])
    c.eq("recorded messages", srv.emls(), before)


def case_size_exceeded(c):
    limit = 1000
    srv = SERVERS.get("size", lambda: Aiosmtpd("size", "--size", str(limit)))
    small_path, small = compose(c, "small", *simple_message("small"))
    big_path, big = compose(c, "big", *simple_message("big")[:-1], ("y" * 70 + "\n") * 30)
    c.require(len(small) < limit < len(big),
              f"want messages either side of {limit} octets, have {len(small)} and {len(big)}")
    # The server takes a message under the limit (so the refusal below is about size).
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), "--tls", "none", "--timeout", "10",
                 "--eml", small_path)
    c.require(r.rc == EX_OK, f"small message: {r.why()}")
    srv.one_new(c, before)
    before = srv.emls()
    r = mailroom("send", "--server", url(srv.port), "--tls", "none", "--timeout", "10",
                 "--json", "--eml", big_path)
    c.eq("exit status", r.rc, EX_UNAVAILABLE)
    c.eq("JSON outcome", r.json(c).get("outcome"), "failed")
    c.eq("recorded messages", srv.emls(), before)


def case_closed_port(c):
    # Bound but not listening: connections are refused, and no one else can take the port.
    s = socket.socket()
    try:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        r = mailroom("send", "--server", url(port), "--tls", "none", "--timeout", "5",
                     *simple_message("nobody home"))
    finally:
        s.close()
    c.eq("exit status", r.rc, EX_TEMPFAIL)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")


def case_silent_server(c):
    srv = SERVERS.get("silent", SilentServer)
    r = mailroom("send", "--server", url(srv.port), "--tls", "none", "--timeout", "2",
                 *simple_message("no greeting"))
    c.eq("exit status", r.rc, EX_TEMPFAIL)
    c.check(r.seconds < 5, f"took {r.seconds:.1f} s with --timeout 2")
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")


def plain_server_and_relay():
    srv = SERVERS.get("plain", lambda: Aiosmtpd("plain", "--auth", f"{USER}:{PASSWORD}"))
    return srv, SERVERS.get("relay", lambda: RecordingRelay(srv.port))


def case_plaintext_auth_refused(c):
    srv, relay = plain_server_and_relay()
    before_bytes = len(relay.sent())
    before = srv.emls()
    r = mailroom("send", "--server", url(relay.port), "--tls", "none", *auth_args(),
                 "--timeout", "10", *simple_message("in the clear?"), env=secret_env())
    # Credentials kept back for want of TLS: a transport security failure (issue 12).
    c.eq("exit status", r.rc, EX_PROTOCOL)
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    sent = relay.sent()[before_bytes:]
    c.check(b"EHLO" in sent.upper(), f"the relay saw no EHLO (relay broken?): {sent!r}")
    c.check(b"AUTH" not in sent.upper(), f"credentials went out in the clear: {sent!r}")
    c.check(PASSWORD.encode() not in sent and base64.b64encode(PASSWORD.encode()) not in sent,
            "the password went out in the clear")
    c.eq("recorded messages", srv.emls(), before)


def case_plaintext_auth_allowed(c):
    srv, relay = plain_server_and_relay()
    before_bytes = len(relay.sent())
    before = srv.records()
    r = mailroom("send", "--server", url(relay.port), "--tls", "none", *auth_args(),
                 "--allow-plaintext-auth", "--timeout", "10",
                 *simple_message("in the clear, allowed"), env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    c.check(b"AUTH " in relay.sent()[before_bytes:].upper(), "the relay saw no AUTH")
    _, meta = srv.one_new(c, before)
    c.eq("recorded (tls, auth_user)", (meta["tls"], meta["auth_user"]), (False, USER))


def case_verbose_redacts(c):
    srv = SERVERS.main()
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args("plain"),
                 "--timeout", "10", "-v", "--json", *simple_message("transcript"),
                 env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    srv.one_new(c, before)
    lines = r.transcript()
    c.check(any(x.startswith("C: EHLO") for x in lines) and
            any(x.startswith("S: 220") for x in lines),
            f"no transcript on stderr with -v: {r.err[:300]!r}")
    auth = [i for i, x in enumerate(lines) if x.upper().startswith("C: AUTH")]
    ok = len(auth) == 1 and (
        lines[auth[0]] == "C: AUTH PLAIN [redacted]" or
        (lines[auth[0]] == "C: AUTH PLAIN" and auth[0] + 2 < len(lines) and
         lines[auth[0] + 1].startswith("S: 334") and lines[auth[0] + 2] == "C: [redacted]"))
    c.check(ok, "want 'C: AUTH PLAIN [redacted]' (or AUTH PLAIN then 'C: [redacted]'), got " +
            repr([lines[i] for i in auth]))
    c.check(any(x.startswith("S: 235") for x in lines), "no 235 reply in the transcript")
    leaks = transcript_leaks(r, [f"\0{USER}\0{PASSWORD}".encode(),
                                 f"{USER}\0{USER}\0{PASSWORD}".encode()])
    c.check(not leaks, f"the transcript shows secrets: {leaks}")


def case_eml_lf_only(c):
    srv = SERVERS.main()
    frm, to, cc = "Ann <ann@example.org>", "Bob <bob@example.net>", "cy@example.net"
    bcc = ["hidden1@example.net", "Hidden Two <hidden2@example.net>"]
    text = (f"From: {frm}\nTo: {to}\nCc: {cc}\nBcc: {bcc[0]},\n {bcc[1]}\n"
            "Subject: LF-only file\nMessage-ID: <lf-only.1@example.org>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
            ".dot first\n.\nlast line\n")
    path = os.path.join(TMP, "lf-only.eml")
    with open(path, "w") as f:
        f.write(text)
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args(), "--timeout",
                 "10", "--json", "--eml", path, env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    rep = r.json(c)
    c.eq("JSON outcome", rep.get("outcome"), "delivered")
    eml, meta = srv.one_new(c, before)
    want_rcpts = [addr_spec(a) for a in (to, cc, *bcc)]
    c.eq("MAIL FROM", meta["mail_from"], addr_spec(frm))
    c.eq("RCPT TOs (sorted)", sorted(meta["rcpt_tos"]), sorted(want_rcpts))
    c.check(not re.search(rb"(?im)^bcc:", eml), f"recorded message has a Bcc header: {eml!r}")
    c.check(b"\n" not in eml.replace(b"\r\n", b"") and b"\r" not in eml.replace(b"\r\n", b""),
            f"recorded message is not CRLF-only: {eml!r}")
    no_bcc = re.sub(r"(?m)^Bcc:.*\n(?:[ \t].*\n)*", "", text)
    c.eq("recorded bytes", eml, no_bcc.replace("\n", "\r\n").encode())


def case_smtputf8(c):
    srv = SERVERS.main()
    rcpt = "jörg.müller@example.net"
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *auth_args(), "--timeout",
                 "10", "--json", "--from", "ann@example.org", "--to", rcpt, "--subject",
                 "SMTPUTF8", "--text", "UTF-8 local part", env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    rep = r.json(c)
    c.eq("JSON outcome", rep.get("outcome"), "delivered")
    c.eq("JSON accepted", rep.get("accepted"), [rcpt])
    _, meta = srv.one_new(c, before)
    c.eq("recorded RCPT TOs", meta["rcpt_tos"], [rcpt])
    c.check("SMTPUTF8" in meta["mail_options"],
            f"MAIL parameters {meta['mail_options']} lack SMTPUTF8")
    c.eq("recorded smtputf8", meta["smtputf8"], True)


# ---- mailroom bulk ----------------------------------------------------------------------------

def bulk(*args, env=None):
    return mailroom("bulk", "--timeout", "10", "--progress", "never", *args, env=env)


def message_ids(blobs):
    ids = []
    for b in blobs:
        m = re.search(rb"^Message-ID: (<[^>]+>)", b, re.M | re.I)
        ids.append(m.group(1) if m else None)
    return ids


def case_bulk_smtp_sink(c):
    sink = SERVERS.sink()
    before = len(sink.messages())
    r = bulk("--server", url(sink.port), "--tls", "none", "--count", "300", "--connections", "4",
             "--size", "3000", "--json")
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    j = r.json(c)
    c.eq("sent", j.get("sent"), 300)
    c.eq("failed, unknown", (j.get("failed"), j.get("unknown")), (0, 0))
    c.check(1 <= j.get("connections_opened", 0) <= 4, f"connections: {j}")
    msgs = sink.messages()[before:]
    c.eq("messages at the sink", len(msgs), 300)
    ids = message_ids(body for _, body in msgs)
    c.check(None not in ids and len(set(ids)) == 300, "every message has its own Message-ID")
    subjects = sorted(int(m.group(1)) for _, b in msgs
                      if (m := re.search(rb"^Subject: mailroom bulk (\d+) of 300", b, re.M)))
    c.eq("subjects 1..300, each once", subjects, list(range(1, 301)))
    sizes = [len(b) for _, b in msgs]
    c.check(all(2500 <= n <= 3500 for n in sizes), f"sizes about 3000: {min(sizes)}..{max(sizes)}")
    for key in ("seconds", "messages_per_second", "cpu_seconds", "peak_rss_kib"):
        c.check(isinstance(j.get(key), (int, float)) and j[key] > 0, f"{key}: {j.get(key)!r}")
    lat = j.get("latency_ms", {})
    c.check(0 < lat.get("p50", 0) <= lat.get("p99", 0) <= lat.get("max", 0),
            f"latency p50 <= p99 <= max: {lat}")


def case_bulk_starttls_auth(c):
    srv = SERVERS.main()
    before = srv.records()
    r = bulk("--server", url(srv.port, host="localhost"), *tls_args(), *auth_args(),
             "--count", "30", "--connections", "3", "--recipients", "2",
             "--from", "bulk@example.org", "--to", "zoe@example.net", "--json",
             env=secret_env())
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    c.eq("sent", r.json(c).get("sent"), 30)
    new = [n for n in srv.records() if n not in before]
    c.eq("recorded", len(new), 30)
    got = [srv.recorded(n) for n in new]
    c.check(all(meta["mail_from"] == "bulk@example.org" for _, meta in got), "MAIL FROM")
    c.check(all(meta["rcpt_tos"] == ["zoe@example.net", "zoe+1@example.net"] for _, meta in got),
            f"RCPT TOs: {got[0][1]['rcpt_tos']}")
    ids = message_ids(eml for eml, _ in got)
    c.check(None not in ids and len(set(ids)) == 30, "unique Message-IDs")
    c.check(PASSWORD.encode() not in r.out + r.err, "the password never reaches the output")


def case_bulk_eml(c):
    srv = SERVERS.main()
    path, data = compose_rich(c, "rich-bulk")
    before = srv.records()
    r = bulk("--server", url(srv.port, host="localhost"), *tls_args(), *auth_args(),
             "--count", "5", "--connections", "2", "--eml", path, "--to", "carl@example.net",
             env=secret_env())
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    new = [n for n in srv.records() if n not in before]
    c.eq("recorded", len(new), 5)
    # Bcc never reaches the recipients: the file's bytes are sent as they are, less Bcc.
    for n in new:
        eml, meta = srv.recorded(n)
        c.eq("the message as composed", eml, data)
        c.eq("envelope from --to", meta["rcpt_tos"], ["carl@example.net"])


def case_bulk_rate_limit(c):
    sink = SERVERS.sink()
    r = bulk("--server", url(sink.port), "--tls", "none", "--count", "25", "--rate", "20/s",
             "--burst", "5", "--json")
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    j = r.json(c)
    c.eq("sent", j.get("sent"), 25)
    # 5 at once, then 20 more at 20/s: at least a second (a lower bound only).
    c.check(j.get("seconds", 0) >= 0.9, f"25 at 20/s burst 5 took {j.get('seconds')} s")


def case_bulk_rejected(c):
    srv = SERVERS.main()
    r = bulk("--server", url(srv.port, host="localhost"), *tls_args(), *auth_args(),
             "--count", "4", "--to", REJECTED[0], "--json", env=secret_env())
    c.eq("exit status", r.rc, EX_UNAVAILABLE)
    j = r.json(c)
    c.eq("sent, failed", (j.get("sent"), j.get("failed")), (0, 4))
    c.eq("retries (a 5xx is never retried)", j.get("retries"), 0)


def case_bulk_closed_port(c):
    s = socket.socket()
    try:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        r = bulk("--server", url(port), "--tls", "none", "--count", "2", "--connections", "1",
                 "--json")
    finally:
        s.close()
    c.eq("exit status", r.rc, EX_TEMPFAIL)
    j = r.json(c)
    c.eq("failed", j.get("failed"), 2)
    c.check(j.get("retries", 0) >= 2, f"connection refused is retried: {j}")


def case_bulk_progress(c):
    sink = SERVERS.sink()
    r = mailroom("bulk", "--server", url(sink.port), "--tls", "none", "--count", "50",
                 "--progress", "always")
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    err = r.err.decode()
    c.check("[" in err and "100%" in err and "50/50" in err, f"progress bar: {err[-300:]!r}")
    c.check(re.search(r"^sent 50, failed 0, unknown 0 of 50 in [0-9.]+ s", r.out.decode(), re.M),
            f"summary: {r.out!r}")
    quiet = bulk("--server", url(sink.port), "--tls", "none", "--count", "5")
    c.eq("--progress never: nothing on stderr", quiet.err, b"")


def case_bulk_usage(c):
    for args in (["--server", "smtp://127.0.0.1:1"],                      # no --count
                 ["--server", "smtp://127.0.0.1:1", "--count", "0"],
                 ["--server", "smtp://127.0.0.1:1", "--count", "1", "--rate", "5/x"],
                 ["--server", "smtp://127.0.0.1:1", "--count", "1", "--burst", "3"],
                 ["--count", "1"]):                                       # no --server
        r = mailroom("bulk", *args)
        c.eq(f"exit status for {args}", r.rc, EX_USAGE)
        c.check(one_line(r), f"one line on stderr for {args}: {r.err!r}")


# ---- the CLI items of issue 13 ----------------------------------------------------------------

def project_version():
    """The version in the top-level meson.build's project(), which --version must print."""
    with open(os.path.join(HERE, "..", "..", "meson.build")) as f:
        m = re.search(r"project\([^)]*?version\s*:\s*'([0-9]+\.[0-9]+\.[0-9]+)'", f.read(), re.S)
    return m.group(1)


def case_version(c):
    want = f"mailroom {project_version()}\n".encode()
    for args in (["--version"], ["send", "--version"], ["bulk", "--version"],
                 ["compose", "--version"], ["sink", "--version"],
                 ["send", "--server", "smtp://127.0.0.1:1", "--version"]):
        r = mailroom(*args)
        c.eq(f"exit status of {args}", r.rc, EX_OK)
        c.eq(f"stdout of {args}", r.out, want)
        c.eq(f"stderr of {args}", r.err, b"")


def wire_of_eml(raw):
    """What `send --eml` sends for a file's bytes, from the README's contract: every line
    break made CRLF (and one added at the end if missing), Bcc fields (with their continuation
    lines) removed from the header section, nothing else changed."""
    t = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    if not t.endswith(b"\r\n"):
        t += b"\r\n"
    end = 0 if t.startswith(b"\r\n") else t.find(b"\r\n\r\n") + 2
    if end == 1:  # no empty line: all header
        end = len(t)
    head = re.sub(rb"(?im)^bcc:.*\r\n(?:[ \t].*\r\n)*", b"", t[:end])
    return head + t[end:]


def mixed_eml(body_octets, seed):
    """A message file with LF, CRLF and bare-CR line breaks (one split across every
    possible 64 KiB boundary sooner or later), lines starting with dots, a Bcc field and a body
    of about `body_octets`. Returns its bytes."""
    rnd = random.Random(seed)
    head = (b"From: Ann <ann@example.org>\nTo: bob@example.net\r\nBcc: hidden@example.net,\n"
            b" Hidden Two <hidden2@example.net>\nSubject: streamed " + str(seed).encode() +
            b"\nMessage-ID: <streamed." + str(seed).encode() + b"@example.org>\n\n")
    breaks = [b"\n"] * 6 + [b"\r\n"] * 3 + [b"\r"]
    lines = []
    for i in range(997):
        n = rnd.randrange(0, 300)
        text = bytes(rnd.choice(b"abcdefghij .-") for _ in range(n))
        if i % 50 == 0:
            text = b"." + text
        lines.append(text + rnd.choice(breaks))
    block = b"".join(lines)  # not a multiple of 64 KiB: the breaks fall everywhere over time
    reps = body_octets // len(block) + 1
    return head + block * reps + b".last line without a break"


def write_file(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def vm_hwm_kib(pid):
    """The process's peak resident set (VmHWM, KiB) so far, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_measured(*args):
    """Runs mailroom; returns (Run, its peak RSS in KiB).

    The peak is VmHWM from /proc, read every few milliseconds until the process exits (it only
    grows, so the last reading is the peak but for the last moments). Not wait4's ru_maxrss:
    the child of a fork or vfork starts with this (large) Python process's pages and keeps
    their high-water mark across exec."""
    full_env = dict(os.environ)
    full_env.pop(PASSWORD_VAR, None)
    out_f = tempfile.TemporaryFile(dir=TMP)
    err_f = tempfile.TemporaryFile(dir=TMP)
    start = time.monotonic()
    p = subprocess.Popen([MAILROOM, *args], env=full_env, stdin=subprocess.DEVNULL,
                         stdout=out_f, stderr=err_f)
    peak = 0
    while p.poll() is None:
        hwm = vm_hwm_kib(p.pid)
        peak = max(peak, hwm or 0)
        if time.monotonic() - start > 120:
            p.kill()
        time.sleep(0.005)
    out_f.seek(0)
    err_f.seek(0)
    r = Run([MAILROOM, *args], p.returncode, out_f.read(), err_f.read(),
            time.monotonic() - start)
    return r, peak


def case_eml_streamed_large(c):
    # A 64 MiB file to Postfix's smtp-sink: the tool's peak memory stays far below the file's
    # size (it read the whole file before: 218 MiB resident for 68 MiB), and what arrives is
    # the file less Bcc with CRLF line breaks (smtp-sink's dump shows each as LF).
    # The peak is compared with the same send of a 4 MiB file (also streamed): what the
    # process costs anyway (much more under AddressSanitizer) is not the file's.
    base_sink = SmtpSink()
    try:
        small = write_file("small.eml", mixed_eml(4 << 20, 1))
        r, base_kib = run_measured("send", "--server", url(base_sink.port), "--tls", "none",
                                   "--timeout", "60", "--json", "--eml", small)
        c.require(r.rc == EX_OK, f"send (4 MiB): {r.why()}")
    finally:
        base_sink.stop()
    sink = SmtpSink()  # its own, so its dump holds this message alone
    try:
        raw = mixed_eml(64 << 20, 1)
        path = write_file("large.eml", raw)
        del raw
        # Just over 64 MiB, the default --max-size (issue 12).
        r, rss_kib = run_measured("send", "--server", url(sink.port), "--tls", "none",
                                  "--timeout", "60", "--json", "--eml", path,
                                  "--max-size", "128M")
        c.require(r.rc == EX_OK, f"send: {r.why()}")
        size = os.path.getsize(path)
        grown = rss_kib - base_kib
        print(f"  large .eml: {size / 2**20:.1f} MiB file, mailroom peak RSS "
              f"{rss_kib / 1024:.1f} MiB ({base_kib / 1024:.1f} MiB for 4 MiB)", flush=True)
        c.check(grown * 1024 < (size - os.path.getsize(small)) // 8,
                f"peak RSS {rss_kib} KiB for a {size >> 20} MiB file, {base_kib} KiB for "
                f"4 MiB: grows with the file, not streamed")
        msgs = sink.messages()
        c.require(len(msgs) == 1, f"want one message in the dump, have {len(msgs)}")
        headers, body = msgs[0]
        with open(path, "rb") as f:
            want = wire_of_eml(f.read()).replace(b"\r\n", b"\n")
        c.check(body == want, f"received {len(body)} octets, want {len(want)}; first "
                f"difference at {next((i for i, (a, b) in enumerate(zip(body, want)) if a != b), min(len(body), len(want)))}")
        c.check(b"hidden" not in body[:4096], "Bcc reached the recipients")
        rcpts = [h for h in headers if h.startswith(b"X-Rcpt-Args:")]
        c.eq("RCPT TOs", rcpts, [f"X-Rcpt-Args: <{a}>".encode() for a in
                                 ("bob@example.net", "hidden@example.net", "hidden2@example.net")])
    finally:
        sink.stop()


def case_eml_streamed_exact(c):
    # Exact bytes, from aiosmtpd's recording: a 3 MiB file (over the 1 MiB the tool keeps in
    # memory) sent from the file, from standard input redirected from the file, and through a
    # pipe (read whole, as every --eml was before): all three the same, and as the README says.
    srv = SERVERS.get("plain-sized", lambda: Aiosmtpd("plain-sized"))  # SIZE 32 MiB
    raw = mixed_eml(3 << 20, 2)
    path = write_file("exact.eml", raw)
    want = wire_of_eml(raw)
    got = []
    for how in ("file", "stdin-file", "pipe"):
        before = srv.records()
        args = ["send", "--server", url(srv.port), "--tls", "none", "--timeout", "20", "--eml"]
        if how == "file":
            r = mailroom(*args, path)
        elif how == "stdin-file":
            with open(path, "rb") as f:
                r = mailroom(*args, "-", stdin=f)
        else:
            r = mailroom(*args, "-", stdin=raw)
        c.require(r.rc == EX_OK, f"send ({how}): {r.why()}")
        eml, meta = srv.one_new(c, before)
        c.check(eml == want, f"{how}: recorded {len(eml)} octets, want {len(want)}")
        c.check(f"SIZE={len(want)}" in meta["mail_options"],
                f"{how}: SIZE= is not the size sent ({len(want)}): {meta['mail_options']}")
        c.eq(f"{how}: RCPT TOs", meta["rcpt_tos"],
             ["bob@example.net", "hidden@example.net", "hidden2@example.net"])
        got.append(eml)
    c.check(len(set(got)) == 1, "file, redirected stdin and pipe sent different bytes")


def case_eml_file_changed(c):
    # The body is read while it is sent: a file cut short after its headers were read is an
    # error, and the server never gets a message (no final dot after a partial body).
    srv = SERVERS.get("plain-sized", lambda: Aiosmtpd("plain-sized"))
    path = write_file("shrinking.eml", mixed_eml(2 << 20, 3))
    before = srv.emls()
    # mailroom reads and checks the whole file before it connects; the file is cut when the
    # relay takes mailroom's connection, before it connects upstream (so the greeting comes
    # 1.5 s later), so always after the first read and before the body is sent. A fixed timer
    # raced the first read under ASan.
    relay = SlowGreeter(srv.port, 1.5, on_accept=lambda: os.truncate(path, 1 << 20))
    r = mailroom("send", "--server", url(relay.port), "--tls", "none", "--timeout", "20",
                 "--eml", path)
    c.check(r.rc not in (EX_OK, None), f"a file cut while sending: {r.why()}")
    c.check(one_line(r), f"want one line on stderr, got {r.err!r}")
    c.check(b"changed" in r.err, f"stderr: {r.err!r}")
    time.sleep(0.3)
    c.eq("recorded messages", srv.emls(), before)
    c.check(b"\r\n.\r\n" not in relay.sent()[-5:], "the relay saw a final dot")


class SlowGreeter(RecordingRelay):
    """A RecordingRelay that connects upstream only after `delay` seconds, calling
    `on_accept` (if given) first."""

    def __init__(self, upstream_port, delay, on_accept=None):
        self.delay = delay
        self.on_accept = on_accept
        super().__init__(upstream_port)

    def before_upstream(self):
        if self.on_accept:
            self.on_accept()
        time.sleep(self.delay)


def case_stdin_text_and_html(c):
    # `--text-file -` and `--html-file -` read standard input; the message arrives with it.
    sink = SERVERS.sink()
    text = "line one\nline two from stdin\n"
    for flag, mime_type in (("--text-file", "text/plain"), ("--html-file", "text/html")):
        before = len(sink.messages())
        r = mailroom("send", "--server", url(sink.port), "--tls", "none", "--timeout", "10",
                     "--from", "ann@example.org", "--to", "bob@example.net", "--subject",
                     f"stdin {flag}", flag, "-", stdin=text.encode())
        c.require(r.rc == EX_OK, f"send {flag} -: {r.why()}")
        msgs = sink.messages()
        c.require(len(msgs) == before + 1, f"{flag}: want one new message in the dump")
        body = msgs[-1][1]
        c.check(f"Content-Type: {mime_type}".encode() in body, f"{flag}: {body[:600]!r}")
        c.check(text.encode() in body, f"{flag}: the text from stdin is not in {body!r}")
    # compose too
    r = mailroom("compose", "--from", "ann@example.org", "--to", "bob@example.net",
                 "--text-file", "-", stdin=b"composed from stdin\n")
    c.require(r.rc == EX_OK, f"compose --text-file -: {r.why()}")
    c.check(r.out.endswith(b"\r\n\r\ncomposed from stdin\r\n"), f"compose: {r.out[-200:]!r}")


def case_stdin_twice(c):
    # Standard input can be read by one option only: two '-' are a usage error, and nothing
    # is sent.
    sink = SERVERS.sink()
    before = len(sink.messages())
    for args in (["--text-file", "-", "--html-file", "-"],
                 ["--html-file", "-", "--text-file", "-"],
                 ["--eml", "-", "--text-file", "-"],
                 ["--text-file", "-", "--eml", "-"]):
        full = ["send", "--server", url(sink.port), "--tls", "none", "--timeout", "10"]
        if "--eml" not in args:
            full += ["--from", "ann@example.org", "--to", "bob@example.net"]
        r = mailroom(*full, *args, stdin=b"From: a@example.org\nTo: b@example.net\n\nx\n")
        c.eq(f"exit status for {args}", r.rc, EX_USAGE)
        c.check(one_line(r) and b"standard input" in r.err, f"stderr for {args}: {r.err!r}")
    c.eq("messages in the sink's dump", len(sink.messages()), before)


def password_cmd_args(cmd):
    return ["--user", USER, "--password-cmd", cmd]


# Prints the password from the environment: it never appears on any command line.
PRINT_PASSWORD = f'printf "%s\\n" "${PASSWORD_VAR}"'


def case_password_cmd(c):
    srv = SERVERS.main()
    before = srv.records()
    r = mailroom("send", "--server", url(srv.port), *tls_args(), *password_cmd_args(
        PRINT_PASSWORD), "--timeout", "10", "-v", *simple_message("password from a command"),
        env=secret_env())
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    _, meta = srv.one_new(c, before)
    c.eq("AUTH user", meta.get("auth_user"), USER)
    c.check(not transcript_leaks(r, [f"\0{USER}\0{PASSWORD}".encode()]),
            "the -v transcript shows the password")
    c.check(PASSWORD.encode() not in r.out + r.err, "the password reaches the output")
    # bulk takes it too (and runs the command once)
    before = srv.records()
    counter = os.path.join(TMP, "password-cmd-runs")
    r = bulk("--server", url(srv.port), *tls_args(), *password_cmd_args(
        f'echo run >> {counter}; {PRINT_PASSWORD}'), "--count", "3", env=secret_env())
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    c.eq("bulk: recorded", len([n for n in srv.records() if n not in before]), 3)
    with open(counter) as f:
        c.eq("times the command ran", f.read(), "run\n")
    c.check(PASSWORD.encode() not in r.out + r.err, "bulk: the password reaches the output")


def case_password_cmd_fails(c):
    # A command that fails or prints nothing: exit 77 (the password couldn't be had), one
    # line that says why without what it printed, and no connection at all.
    srv = SERVERS.main()
    before = srv.emls()
    for cmd, why in ((f'{PRINT_PASSWORD}; exit 3', b"exit status 3"),
                     ("true", b"no password"),
                     ('printf "\\n"', b"no password"),
                     ("kill -9 $$", b"signal 9"),
                     ("/nonexistent/password-helper", b"exit status 127")):
        r = mailroom("send", "--server", url(srv.port), *tls_args(), *password_cmd_args(cmd),
                     "--timeout", "10", *simple_message("must not arrive"), env=secret_env())
        c.eq(f"exit status for {cmd!r}", r.rc, EX_NOPERM)
        last = r.err.splitlines()[-1:] or [b""]
        c.check(last[0].startswith(b"mailroom: --password-cmd: ") and why in last[0],
                f"{cmd!r}: stderr {r.err!r}")
        c.check(PASSWORD.encode() not in r.out + r.err, f"{cmd!r}: the password is shown")
    c.eq("recorded messages", srv.emls(), before)


def case_password_cmd_exclusive(c):
    for other in (["--password-env", PASSWORD_VAR], ["--password-file", "/dev/null"]):
        for args in (other + ["--password-cmd", "true"], ["--password-cmd", "true"] + other):
            r = mailroom("send", "--server", "smtp://127.0.0.1:1", "--user", USER, *args,
                         *simple_message("x"), env=secret_env())
            c.eq(f"exit status for {args}", r.rc, EX_USAGE)
            c.check(one_line(r) and b"--password-cmd" in r.err, f"stderr for {args}: {r.err!r}")
    r = mailroom("send", "--server", "smtp://127.0.0.1:1", "--password-cmd", "true",
                 *simple_message("x"))
    c.eq("--password-cmd without --user", r.rc, EX_USAGE)


TLS_NONE_HINT = b"(use --tls none for a server without TLS"


def case_starttls_hint(c):
    # smtp-sink offers no STARTTLS: under the default --tls required the one error line says
    # what to try; the status stays 76. Not under --tls opportunistic (which sends).
    sink = SERVERS.sink()
    before = len(sink.messages())
    r = mailroom("send", "--server", url(sink.port), "--timeout", "10",
                 *simple_message("needs TLS"))
    c.eq("send: exit status", r.rc, EX_PROTOCOL)
    c.check(one_line(r) and TLS_NONE_HINT in r.err and b"STARTTLS" in r.err,
            f"send: stderr {r.err!r}")
    r = bulk("--server", url(sink.port), "--count", "2")
    c.eq("bulk: exit status", r.rc, EX_PROTOCOL)
    c.check(TLS_NONE_HINT in r.err, f"bulk: stderr {r.err!r}")
    c.eq("messages in the sink's dump", len(sink.messages()), before)
    # A certificate problem is not a missing STARTTLS: no hint there.
    r = mailroom("send", "--server", url(SERVERS.bad_cert("self-signed", "--implicit-tls").port,
                                         "smtps"), *tls_args(), "--timeout", "10",
                 *simple_message("x"))
    c.check(TLS_NONE_HINT not in r.err, f"hint on a certificate error: {r.err!r}")


def says_twice(text):
    """A run of three words that the line says twice, or None."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    seen = set()
    for i in range(len(words) - 2):
        tri = tuple(words[i:i + 3])
        if tri in seen:
            return " ".join(tri)
        seen.add(tri)
    return None


def case_errors_said_once(c):
    bad_from = write_file("no-from.eml", b"To: bob@example.net\n\nx\n")
    no_rcpt = write_file("no-rcpt.eml", b"From: ann@example.org\n\nx\n")
    long_line = write_file("long-line.eml", b"From: a@example.org\nTo: b@example.net\n\n" +
                           b"x" * 1200 + b"\n")
    base = ["--from", "ann@example.org", "--to", "bob@example.net"]
    for args, status, mention in (
            (["compose", *base, "--subject", b"caf\xe9"], 65, b"--subject"),
            (["compose", *base, "--text", b"caf\xe9"], 65, b"--text"),
            (["compose", *base, "--html", b"caf\xe9"], 65, b"--html"),
            (["compose", *base, "--subject", "a\x01b"], 65, b"--subject"),
            (["compose", *base, "--reply-to", "a\x01b@example.org"], 65, b"--reply-to"),
            (["compose", *base, "--attach", "/nonexistent/x.pdf"], 66, b"/nonexistent/x.pdf"),
            (["send", "--server", "smtp://127.0.0.1:1", "--eml", bad_from], 65, b"--eml"),
            (["send", "--server", "smtp://127.0.0.1:1", "--eml", no_rcpt], 65, b"--eml"),
            (["send", "--server", "smtp://127.0.0.1:1", "--eml", long_line], 65, b"--eml")):
        r = mailroom(*args)
        c.eq(f"exit status for {args}", r.rc, status)
        text = r.err.decode("utf-8", "replace")
        c.check(one_line(r) and mention in r.err, f"stderr for {args}: {r.err!r}")
        twice = says_twice(text)
        c.check(twice is None, f"{args}: says {twice!r} twice: {text!r}")
    # bulk's first failure: the reason and its detail once.
    s = socket.socket()
    try:
        s.bind((LOOPBACK, 0))
        r = bulk("--server", url(s.getsockname()[1]), "--tls", "none", "--count", "1")
    finally:
        s.close()
    c.eq("bulk: exit status", r.rc, EX_TEMPFAIL)
    line = [x for x in r.stderr_lines() if "first failure" in x]
    c.check(len(line) == 1 and says_twice(line[0]) is None, f"bulk: stderr {r.err!r}")


def case_reserved_header_blame(c):
    # --header 'From: x' is refused as a --header mistake, not a --from one.
    for name, option in (("From", "--from"), ("To", "--to"), ("Cc", "--cc"),
                         ("Subject", "--subject"), ("Reply-To", "--reply-to")):
        r = mailroom("compose", "--from", "ann@example.org", "--to", "bob@example.net",
                     "--header", f"{name}: x")
        c.eq(f"{name}: exit status", r.rc, 65)
        c.check(one_line(r) and r.err.startswith(f"mailroom: --header {name}:".encode()) and
                f"use {option}".encode() in r.err, f"{name}: stderr {r.err!r}")


CASES = [
    ("starttls-auth-plain", case_starttls_auth_plain),
    ("auth-login", case_auth_login),
    ("wrong-password", case_wrong_password),
    ("wrong-password-json", case_wrong_password_json),
    ("implicit-tls", case_implicit_tls),
    ("cert-wrong-name-tls-name-matches", case_cert_wrong_name_matching),
    ("cert-wrong-name-default-name", case_cert_wrong_name_default),
    ("cert-wrong-name-other-tls-name", case_cert_wrong_name_other),
    ("cert-self-signed", case_cert_self_signed),
    ("cert-expired", case_cert_expired),
    ("sink-tls-required", case_sink_tls_required),
    ("sink-tls-none", case_sink_tls_none),
    ("reject-one-rcpt", case_reject_one_rcpt),
    ("reject-all-rcpts", case_reject_all_rcpts),
    ("size-exceeded", case_size_exceeded),
    ("closed-port", case_closed_port),
    ("silent-server-timeout", case_silent_server),
    ("plaintext-auth-refused", case_plaintext_auth_refused),
    ("plaintext-auth-allowed", case_plaintext_auth_allowed),
    ("verbose-redacts-secrets", case_verbose_redacts),
    ("eml-lf-only", case_eml_lf_only),
    ("smtputf8", case_smtputf8),
    ("bulk-smtp-sink", case_bulk_smtp_sink),
    ("bulk-starttls-auth", case_bulk_starttls_auth),
    ("bulk-eml", case_bulk_eml),
    ("bulk-rate-limit", case_bulk_rate_limit),
    ("bulk-rejected", case_bulk_rejected),
    ("bulk-closed-port", case_bulk_closed_port),
    ("bulk-progress", case_bulk_progress),
    ("bulk-usage", case_bulk_usage),
    ("version", case_version),
    ("eml-streamed-large", case_eml_streamed_large),
    ("eml-streamed-exact", case_eml_streamed_exact),
    ("eml-file-changed", case_eml_file_changed),
    ("stdin-text-and-html", case_stdin_text_and_html),
    ("stdin-twice", case_stdin_twice),
    ("password-cmd", case_password_cmd),
    ("password-cmd-fails", case_password_cmd_fails),
    ("password-cmd-exclusive", case_password_cmd_exclusive),
    ("starttls-hint", case_starttls_hint),
    ("errors-said-once", case_errors_said_once),
    ("reserved-header-blame", case_reserved_header_blame),
]


def main(argv):
    global MAILROOM, TMP, PKI, SERVERS
    if len(argv) != 1:
        sys.stderr.write("usage: send_test.py MAILROOM\n")
        return 2
    MAILROOM = os.path.abspath(argv[0])
    if not os.access(MAILROOM, os.X_OK):
        sys.stderr.write(f"send_test.py: {MAILROOM} is not an executable\n")
        return 2
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mailroom-send-test-") as tmp:
        TMP = tmp
        SERVERS = Servers()
        try:
            PKI = os.path.join(tmp, "pki")
            r = subprocess.run([PYTHON, MAKE_PKI, PKI], capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                print(f"FAIL pki: make_test_pki.py: status {r.returncode}: {r.stderr}")
                print("send-integration: 0 passed, 1 failed")
                return 1
            for name, fn in CASES:
                run_case(name, fn)
        finally:
            for stop in reversed(STOPPERS):
                try:
                    stop()
                except Exception as e:  # keep stopping the others
                    print(f"send_test.py: stopping a server: {e!r}", file=sys.stderr)
    sys.stdout.flush()
    print(f"send_test.py: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
    print(f"send-integration: {TALLY.passed} passed, {TALLY.failed} failed")
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""OAuth2 against real peers (issue 10): `mailroom send` and `bulk` get their access tokens from
a real token server over HTTPS and present them to an SMTP server that checks them for real.

Usage: oauth_test.py MAILROOM [CASE...]   (run with Debian's /usr/bin/python3; needs
                                           python3-aiosmtpd, python3-jwt, python3-cryptography,
                                           node and oauth2-mock-server 8 in $MAILROOM_NODE_DIR)

Peers, all on 127.0.0.1, started per case and stopped by PID here, also when a check fails:
  peers/oauth2_server.mjs     oauth2-mock-server 8 over HTTPS with the test PKI's localhost
                              certificate: refresh_token, client_credentials and jwt-bearer
                              (the assertion verified against the test service account's key),
                              access tokens RS256 JWTs with a short lifetime, faults injected
                              and token requests counted through its /__control endpoint
  peers/oauth_smtp_server.py  aiosmtpd offering XOAUTH2 and OAUTHBEARER after STARTTLS; each
                              token's signature is checked against the token server's JWKS,
                              its issuer, expiry and user; a refused token gets the 334 JSON
                              error, then 535; it can close connections after N messages and
                              refuse the first N valid tokens; it writes its counts to a file
The test PKI and the service account's RSA key are made in a temporary directory. Secrets are
passed in the environment, never on mailroom's command line, and every mailroom output of
every case (stdout, stderr, -v transcripts, --json reports) is searched for them at the end:
the client secret, the refresh tokens, every access token issued, every assertion (also inside
base64, as a SASL response would carry them).

Prints "ok NAME" or "FAIL NAME: WHY" per case, then "oauth: N passed, M failed"; exits 1 if any
case failed, 77 (meson's "skipped") when node, oauth2-mock-server or PyJWT is missing.
"""

import base64
import binascii
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402

PYTHON = "/usr/bin/python3"
LOOPBACK = "127.0.0.1"
NODE_DIR = os.environ.get("MAILROOM_NODE_DIR", "/tmp/mailroom-node")
TOKEN_SERVER = os.path.join(PEERS, "oauth2_server.mjs")
SMTP_SERVER = os.path.join(PEERS, "oauth_smtp_server.py")
RUN_TIMEOUT = 90
EX_OK, EX_TEMPFAIL, EX_NOPERM = 0, 75, 77

CLIENT_ID = "mailroom-test-client"
CLIENT_SECRET = "cs-" + binascii.hexlify(os.urandom(12)).decode()
REFRESH_TOKEN = "rt-" + binascii.hexlify(os.urandom(16)).decode()
USER = "me@example.com"
SA_EMAIL = "mailer@mailroom-test.iam.gserviceaccount.com"
MAILBOX = "mailbox@example.com"
SECRET_ENV = "MAILROOM_TEST_CLIENT_SECRET"
REFRESH_ENV = "MAILROOM_TEST_REFRESH_TOKEN"

MAILROOM = None
TMP = None
PKI = None
SA_FILE = None
SA_KEY = None
OUTPUTS = []   # every (case, what, bytes) mailroom printed, searched for secrets at the end
SECRETS = {}   # name -> secret text, added to as token servers hand out tokens
STOPPERS = []

CaseFailed = peerlib.CaseFailed
TALLY = peerlib.Tally()


# ---- peers ------------------------------------------------------------------------------------

class Proc:
    """A peer in a child process: reads its `PORT n` line, stops it by PID."""

    def __init__(self, name, argv, timeout=20):
        self.name = name
        self.err = open(os.path.join(TMP, f"{name}.stderr"), "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, MAILROOM_NODE_DIR=NODE_DIR))
        STOPPERS.append(self.stop)
        line = peerlib.read_line(self.proc.stdout, timeout)
        if not line.startswith(b"PORT "):
            self.stop()
            raise RuntimeError(f"{name}: first line {line!r}, stderr: {self.stderr()[-500:]}")
        self.port = int(line.split()[1])

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


class TokenServer(Proc):
    def __init__(self, name, lifetime=3600, refresh_tokens=(REFRESH_TOKEN,), extra=()):
        argv = ["node", TOKEN_SERVER, "--cert", pem("localhost"), "--key", key("localhost"),
                "--lifetime", str(lifetime), "--client", f"{CLIENT_ID}:{CLIENT_SECRET}",
                "--subject", USER, "--service-account", SA_FILE, "--max-seconds", "300",
                *extra]
        for t in refresh_tokens:
            argv += ["--refresh-token", t]
        super().__init__(name + "-token", argv)
        self.issuer = f"https://{LOOPBACK}:{self.port}"
        self.url = self.issuer + "/token"
        self.ctx = ssl.create_default_context(cafile=pem("ca"))

    def control(self, path="", body=None):
        req = urllib.request.Request(self.issuer + "/__control" + path,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return json.load(r)

    def inject(self, kind, count=1, delay_ms=0):
        self.control("/inject", {"kind": kind, "count": count, "delay_ms": delay_ms})

    def state(self):
        """The counts; every token and assertion it handed out or got joins SECRETS."""
        s = self.control()
        for t in s["access_tokens"] + s["refresh_tokens"]:
            SECRETS[f"access token ...{t[-8:]}"] = t
        for a in s["assertions"]:
            SECRETS[f"assertion ...{a[-8:]}"] = a
        return s

    def stop(self):
        try:
            if self.proc.poll() is None:
                self.state()
        except Exception:
            pass
        super().stop()


class SmtpServer(Proc):
    def __init__(self, name, tokens, *extra):
        self.stats_file = os.path.join(TMP, f"{name}-smtp.json")
        argv = [PYTHON, SMTP_SERVER, "--jwks", tokens.issuer + "/jwks", "--issuer",
                tokens.issuer, "--ca-file", pem("ca"), "--starttls", pem("localhost"),
                key("localhost"), "--stats", self.stats_file, "--max-seconds", "300", *extra]
        super().__init__(name + "-smtp", argv)

    def stats(self):
        with open(self.stats_file) as f:
            return json.load(f)


def pem(stem):
    return os.path.join(PKI, f"{stem}.pem")


def key(stem):
    return os.path.join(PKI, f"{stem}.key")


def make_service_account(path, token_uri):
    with open(path, "w") as f:
        json.dump({"type": "service_account", "project_id": "mailroom-test",
                   "private_key_id": "test-key-1", "private_key": SA_KEY,
                   "client_email": SA_EMAIL, "client_id": "100000000000000000001",
                   "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                   "token_uri": token_uri}, f)


# ---- mailroom runs ----------------------------------------------------------------------------

class Run:
    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    def why(self):
        return (f"exit {self.rc}, stdout {self.out[-1500:]!r}, "
                f"stderr {self.err[-600:]!r}")

    def json(self, c):
        try:
            return json.loads(self.out)
        except ValueError:
            c.require(False, f"stdout is not JSON: {self.why()}")


def mailroom(case, *args, env=None, timeout=RUN_TIMEOUT):
    full_env = {k: v for k, v in os.environ.items() if k not in (SECRET_ENV, REFRESH_ENV)}
    full_env.update(env or {})
    start = time.monotonic()
    try:
        p = subprocess.run([MAILROOM, *args], env=full_env, capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]"
    OUTPUTS.append((case, "stdout", out))
    OUTPUTS.append((case, "stderr", err))
    return Run(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
               time.monotonic() - start)


def secrets_env(refresh=REFRESH_TOKEN):
    return {SECRET_ENV: CLIENT_SECRET, REFRESH_ENV: refresh}


def server_args(smtp, mech="xoauth2", user=USER):
    return ["--server", f"smtp://{LOOPBACK}:{smtp.port}", "--ca-file", pem("ca"),
            "--user", user, "--auth", mech, "--timeout", "20"]


def refresh_args(tokens):
    return ["--oauth-token-url", tokens.url, "--oauth-client-id", CLIENT_ID,
            "--oauth-client-secret-env", SECRET_ENV, "--oauth-refresh-token-env", REFRESH_ENV]


def client_credentials_args(tokens):
    return ["--oauth-token-url", tokens.url, "--oauth-client-id", CLIENT_ID,
            "--oauth-client-secret-env", SECRET_ENV,
            "--oauth-scope", "https://outlook.office365.com/.default"]


def service_account_args(tokens):
    return ["--oauth-token-url", tokens.url, "--oauth-service-account", SA_FILE,
            "--oauth-scope", "https://mail.google.com/"]


def message_args(n=0):
    return ["--from", USER, "--to", "rcpt@example.net", "--subject", f"oauth test {n}",
            "--text", "hello over OAuth2\n"]


def send(case, smtp, auth_args, mech="xoauth2", user=USER, extra=(), env=None):
    return mailroom(case, "send", *server_args(smtp, mech, user), *auth_args, *message_args(),
                    *extra, env=secrets_env() if env is None else env)


def peers(name, lifetime=3600, smtp_extra=(), token_extra=(), refresh_tokens=(REFRESH_TOKEN,)):
    # The token server reads the key file at start (the public key); the file's token_uri, the
    # assertion's aud, is its URL, known once it listens (it takes its own URL as aud anyway).
    make_service_account(SA_FILE, "https://127.0.0.1/token")
    tokens = TokenServer(name, lifetime, refresh_tokens, token_extra)
    make_service_account(SA_FILE, tokens.url)
    smtp = SmtpServer(name, tokens, *smtp_extra)
    return tokens, smtp


def stop_all():
    while STOPPERS:
        STOPPERS.pop()()


def counts(table, grant):
    return table.get(grant, 0)


# ---- cases ------------------------------------------------------------------------------------

def case_grant(grant, mech):
    """One message with each grant (and mechanism): delivered, one token request, one AUTH."""
    def run(c):
        tokens, smtp = peers(f"grant-{grant}-{mech}")
        if grant == "refresh_token":
            args, user = refresh_args(tokens), USER
        elif grant == "client_credentials":
            args, user = client_credentials_args(tokens), "shared-mailbox@example.com"
        else:
            args, user = service_account_args(tokens), MAILBOX
        r = send(c.name, smtp, args, mech, user)
        c.require(r.rc == EX_OK, f"send: {r.why()}")
        ts, ss = tokens.state(), smtp.stats()
        counted = {"jwt_bearer": "jwt-bearer"}.get(grant, grant)  # the server's name for it
        c.eq("token requests", ts["requests"], {counted: 1})
        c.eq("tokens issued", sum(ts["issued"].values()), 1)
        c.eq("SMTP auths ok/failed", (ss["auth_ok"], ss["auth_failed"]), (1, 0))
        c.eq("mechanism", ss["mechanisms"], {mech.upper(): 1})
        c.eq("messages", ss["messages"], 1)
        c.eq("AUTH user", ss["auth_log"][0]["user"], user)
    return run


def case_bulk_lifetimes(c):
    """A bulk run over several token lifetimes (4-s tokens, about 15 s of sending, connections
    closed every 5 messages): everything delivered, about one refresh per lifetime, far fewer
    refreshes than connections, no token refused as expired. One connection, one send at a
    time: the server drops a connection right after its 5th message and the pool, which probes
    only connections idle for 5 s, learns it at the next MAIL, which costs that send one of its
    3 attempts; with 4 connections a send can meet three dropped ones in a row (seen: 1 or 2
    of 150 failed "connection lost", with 4 or 16 sends in flight). Concurrent connects are
    single-flight's."""
    lifetime, count, rate = 4, 150, 10
    tokens, smtp = peers("bulk", lifetime, smtp_extra=["--close-after", "5", "--close-mode", "drop"])
    r = mailroom(c.name, "bulk", *server_args(smtp), *refresh_args(tokens), "--count",
                 str(count), "--rate", f"{rate}/s", "--burst", "1", "--connections", "1",
                 "--concurrency", "1",
                 "--json", "--progress", "never", "--from", USER, "--to", "rcpt@example.net",
                 env=secrets_env(), timeout=120)
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    j = r.json(c)
    c.eq("delivered", j.get("delivered"), count)
    c.eq("errors", j.get("errors"), {})
    ts, ss = tokens.state(), smtp.stats()
    c.eq("messages at the server", ss["messages"], count)
    refreshes = counts(ts["requests"], "refresh_token")
    wall = j.get("seconds", r.seconds)
    bound = wall / lifetime * 1.5 + 2
    c.check(wall >= 3 * lifetime, f"the run took {wall:.1f} s, want several lifetimes")
    c.check(refreshes <= bound,
            f"{refreshes} refreshes in {wall:.1f} s of {lifetime}-s tokens, want <= {bound:.1f}")
    c.check(refreshes >= wall / lifetime - 1,
            f"{refreshes} refreshes in {wall:.1f} s of {lifetime}-s tokens: too few to be fresh")
    c.check(ss["connections"] >= count // 5,
            f"{ss['connections']} SMTP connections for {count} messages closed every 5")
    c.check(refreshes * 3 <= ss["connections"],
            f"{refreshes} refreshes for {ss['connections']} connections: not shared")
    c.eq("tokens refused", ss["failures"], {})
    c.eq("concurrent token requests", ts["max_in_flight"], 1)
    print(f"  bulk: {count} messages in {wall:.1f} s, {ss['connections']} connections, "
          f"{refreshes} refreshes ({lifetime}-s tokens), {ss['jti_seen']} tokens used",
          flush=True)


def case_single_flight(c):
    """100 connections opened at once with a slow token endpoint: one token request."""
    tokens, smtp = peers("single-flight")
    tokens.inject("delay", 1, delay_ms=1500)
    r = mailroom(c.name, "bulk", *server_args(smtp), *refresh_args(tokens), "--count", "100",
                 "--connections", "100", "--concurrency", "100", "--json", "--progress",
                 "never", "--from", USER, "--to", "rcpt@example.net", env=secrets_env())
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    c.eq("delivered", r.json(c).get("delivered"), 100)
    ts, ss = tokens.state(), smtp.stats()
    c.eq("token requests", ts["requests"], {"refresh_token": 1})
    c.eq("concurrent token requests", ts["max_in_flight"], 1)
    c.check(ss["max_concurrent"] >= 20,
            f"at most {ss['max_concurrent']} SMTP connections at once: not a concurrent test")
    c.eq("auths failed", ss["auth_failed"], 0)


def case_refused_then_retry(mech):
    """The server refuses a valid token once (as a revoked one): 334 + JSON error, the
    client's empty response (XOAUTH2) or %x01 (OAUTHBEARER), 535; the client refreshes and
    retries once, and the message goes."""
    def run(c):
        tokens, smtp = peers(f"retry-{mech}", smtp_extra=["--reject-first", "1"])
        r = send(c.name, smtp, refresh_args(tokens), mech)
        c.require(r.rc == EX_OK, f"send: {r.why()}")
        ts, ss = tokens.state(), smtp.stats()
        c.eq("auths ok/failed", (ss["auth_ok"], ss["auth_failed"]), (1, 1))
        c.eq("failure reasons", ss["failures"], {"forced": 1})
        c.eq("answers to the error challenge", ss["error_acks"], {"ok": 1, "bad": 0})
        c.eq("refreshes", counts(ts["issued"], "refresh_token"), 2)
        c.eq("messages", ss["messages"], 1)
        log = ss["auth_log"]
        c.check(len(log) == 2 and log[0]["jti"] is None and log[1]["jti"] is not None,
                f"auth log {log}")
    return run


def case_expired_token(c):
    """The server's clock runs 3.5 s ahead (1 s of leeway): a 4-s token the client still
    trusts (it refreshes at 80 % of the lifetime) is refused as expired after 1.5 s; with a new
    connection for every message, 2 a second, the cached token is refused, and the
    refresh-and-retry path delivers every message. One send at a time: the pool finds a
    connection the server closed after its message only when it sends the next MAIL, and that
    costs the send an attempt (mailer retry_options: 3 attempts); several sends queued on one
    connection closed after every message could use up theirs, which is not what this tests."""
    tokens, smtp = peers("expired", lifetime=4,
                         smtp_extra=["--clock-offset", "3.5", "--close-after", "1",
                                     "--close-mode", "drop"])
    r = mailroom(c.name, "bulk", *server_args(smtp), *refresh_args(tokens), "--count", "8",
                 "--rate", "2/s", "--burst", "1", "--connections", "1", "--concurrency", "1",
                 "--json",
                 "--progress", "never", "--from", USER, "--to", "rcpt@example.net",
                 env=secrets_env())
    c.require(r.rc == EX_OK, f"bulk: {r.why()}; server: {smtp.stats()}")
    c.eq("delivered", r.json(c).get("delivered"), 8)
    ss = smtp.stats()
    c.eq("messages", ss["messages"], 8)
    c.check(ss["failures"].get("expired", 0) >= 1, f"no token refused as expired: {ss['failures']}")
    c.eq("other refusals", {k: v for k, v in ss["failures"].items() if k != "expired"}, {})
    c.eq("answers to the error challenge", ss["error_acks"]["bad"], 0)


def case_invalid_grant(c):
    """A revoked refresh token: exit 77 with the endpoint's error text, no retry storm."""
    tokens, smtp = peers("invalid-grant")
    revoked = "rt-revoked-" + binascii.hexlify(os.urandom(8)).decode()
    SECRETS["the revoked refresh token"] = revoked
    r = send(c.name, smtp, refresh_args(tokens), env=secrets_env(revoked))
    c.eq("exit status", r.rc, EX_NOPERM)
    c.check("invalid_grant" in r.err, f"stderr lacks invalid_grant: {r.err[-400:]!r}")
    c.check("unknown or revoked refresh token" in r.err,
            f"stderr lacks the endpoint's error_description: {r.err[-400:]!r}")
    ts, ss = tokens.state(), smtp.stats()
    c.eq("token requests", ts["requests"], {"refresh_token": 1})
    c.eq("SMTP auths", ss["auth_ok"] + ss["auth_failed"], 0)


def case_injected_invalid_grant(c):
    """invalid_grant injected by the endpoint (Google's text): 77 with it on stderr."""
    tokens, smtp = peers("injected-invalid-grant")
    tokens.inject("invalid_grant", 5)
    r = send(c.name, smtp, refresh_args(tokens))
    c.eq("exit status", r.rc, EX_NOPERM)
    c.check("Token has been expired or revoked" in r.err, f"stderr: {r.err[-400:]!r}")
    c.eq("token requests", tokens.state()["requests"], {"refresh_token": 1})


def case_wrong_secret(c):
    """A wrong client secret: 401 invalid_client, exit 77, the secret nowhere."""
    tokens, smtp = peers("wrong-secret")
    env = secrets_env()
    env[SECRET_ENV] = "wrong-" + CLIENT_SECRET
    SECRETS["the wrong client secret"] = env[SECRET_ENV]
    r = send(c.name, smtp, refresh_args(tokens), env=env)
    c.eq("exit status", r.rc, EX_NOPERM)
    c.check("invalid_client" in r.err, f"stderr lacks invalid_client: {r.err[-400:]!r}")


def case_500_then_ok(c):
    """Two 500s, then a token: retried with backoff, delivered."""
    tokens, smtp = peers("500-then-ok")
    tokens.inject("500", 2)
    r = send(c.name, smtp, refresh_args(tokens))
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    ts = tokens.state()
    c.eq("token requests", ts["requests"], {"refresh_token": 3})
    c.eq("injected answers", ts["injected"], {"refresh_token": 2})
    t = [e["t"] for e in ts["log"]]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # retried after a wait that grows (doubling, with jitter)
    c.check(len(gaps) == 2 and gaps[0] >= 0.2 and gaps[1] >= gaps[0] * 0.75,
            f"no backoff between tries: request times {t}")
    c.eq("messages", smtp.stats()["messages"], 1)


def case_slow_then_ok(c):
    """A 2-s token response: waited for, delivered."""
    tokens, smtp = peers("slow")
    tokens.inject("delay", 1, delay_ms=2000)
    r = send(c.name, smtp, refresh_args(tokens))
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    c.check(r.seconds >= 2, f"took {r.seconds:.2f} s")
    c.eq("messages", smtp.stats()["messages"], 1)


def case_always_500(c):
    """An endpoint that keeps failing: a temporary failure with its text, after a few tries."""
    tokens, smtp = peers("always-500")
    tokens.inject("500", 100)
    r = send(c.name, smtp, refresh_args(tokens))
    c.check(r.rc in (EX_TEMPFAIL, EX_NOPERM), f"exit status: {r.why()}")
    c.check("server_error" in r.err, f"stderr lacks the endpoint's error: {r.err[-400:]!r}")
    n = counts(tokens.state()["requests"], "refresh_token")
    c.check(2 <= n <= 10, f"{n} token requests: want a few retries, not one, not a storm")
    c.eq("messages", smtp.stats()["messages"], 0)


def case_malformed(kind, words):
    """A 200 that is not a token: a clear error naming what was wrong."""
    def run(c):
        tokens, smtp = peers(f"bad-{kind}")
        tokens.inject(kind, 100)
        r = send(c.name, smtp, refresh_args(tokens))
        c.check(r.rc not in (EX_OK, None), f"exit status: {r.why()}")
        c.check(any(w in r.err for w in words), f"stderr lacks any of {words}: {r.err[-400:]!r}")
        c.eq("messages", smtp.stats()["messages"], 0)
    return run


def case_verbose_json(c):
    """-v and --json with the forced-refusal path: transcript and report, searched for secrets
    at the end like every other output."""
    tokens, smtp = peers("verbose", smtp_extra=["--reject-first", "1"])
    r = send(c.name, smtp, refresh_args(tokens), extra=["-v", "--json"])
    c.require(r.rc == EX_OK, f"send -v --json: {r.why()}")
    c.check("AUTH" in r.err, f"-v shows no transcript: {r.err[-300:]!r}")
    r.json(c)
    r = mailroom(c.name, "bulk", *server_args(smtp), *service_account_args(tokens), "--count",
                 "3", "--json", "--progress", "never", "--from", USER, "--to",
                 "rcpt@example.net", "-v", env=secrets_env())
    # bulk here acts for USER through the service account: the peer checks user == sub.
    c.require(r.rc == EX_OK, f"bulk -v --json: {r.why()}")


def case_secrets(c):
    """No secret in any output of any case: as text, or inside base64."""
    tokens = [(name, s.encode()) for name, s in SECRETS.items() if s]
    # a JWT's signature part alone is enough to be a leak
    for name, s in list(tokens):
        if s.count(b".") == 2:
            tokens.append((name + " (signature)", s.rsplit(b".", 1)[1]))
    b64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")
    found = []
    for case, what, data in OUTPUTS:
        blobs = [data]
        for m in b64.finditer(data):
            try:
                blobs.append(base64.b64decode(m.group(0) + b"=" * (-len(m.group(0)) % 4)))
            except (binascii.Error, ValueError):
                pass
        for name, s in tokens:
            if any(s in b for b in blobs):
                found.append(f"{name} in {case} {what}")
    c.check(len(SECRETS) >= 5, f"only {len(SECRETS)} secrets collected: {sorted(SECRETS)}")
    c.check(not found, "; ".join(sorted(set(found))[:10]))
    print(f"  secrets: {len(tokens)} searched for in {len(OUTPUTS)} outputs", flush=True)


CASES = [
    ("grant-refresh-token-xoauth2", case_grant("refresh_token", "xoauth2")),
    ("grant-refresh-token-oauthbearer", case_grant("refresh_token", "oauthbearer")),
    ("grant-client-credentials", case_grant("client_credentials", "xoauth2")),
    ("grant-jwt-bearer", case_grant("jwt_bearer", "xoauth2")),
    ("refused-then-retry-xoauth2", case_refused_then_retry("xoauth2")),
    ("refused-then-retry-oauthbearer", case_refused_then_retry("oauthbearer")),
    ("expired-token", case_expired_token),
    ("invalid-grant", case_invalid_grant),
    ("injected-invalid-grant", case_injected_invalid_grant),
    ("wrong-client-secret", case_wrong_secret),
    ("500-then-ok", case_500_then_ok),
    ("slow-then-ok", case_slow_then_ok),
    ("always-500", case_always_500),
    ("malformed-json", case_malformed("malformed", ["isn't JSON", "JSON", "json"])),
    ("no-access-token", case_malformed("no_token", ["access_token"])),
    ("single-flight", case_single_flight),
    ("bulk-over-lifetimes", case_bulk_lifetimes),
    ("verbose-and-json", case_verbose_json),
    ("no-secrets-in-output", case_secrets),
]


def missing_prerequisite():
    if shutil.which("node") is None:
        return "no node"
    v = subprocess.run(["node", "-p", "process.versions.node"], capture_output=True, text=True)
    major, minor = (list(map(int, v.stdout.strip().split(".")[:2])) + [0, 0])[:2] \
        if v.returncode == 0 and v.stdout.strip() else (0, 0)
    if (major, minor) < (20, 19):
        return f"node {v.stdout.strip() or '?'}: oauth2-mock-server 8 needs 20.19 or later"
    r = subprocess.run(["sh", os.path.join(PEERS, "node_peers.sh"), "--check"],
                       env=dict(os.environ, MAILROOM_NODE_DIR=NODE_DIR))
    if r.returncode != 0:
        return f"no oauth2-mock-server 8 in {NODE_DIR} (peers/node_peers.sh installs it)"
    try:
        import jwt  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError as e:
        return f"{e} (python3-jwt, python3-cryptography)"
    return None


def main(argv):
    global MAILROOM, TMP, PKI, SA_FILE, SA_KEY
    if len(argv) < 2:
        print("usage: oauth_test.py MAILROOM [CASE...]", file=sys.stderr)
        return 2
    MAILROOM = os.path.abspath(argv[1])
    why = missing_prerequisite()
    if why:
        print(f"oauth: skipped: {why}", flush=True)
        return 77
    wanted = set(argv[2:])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    with tempfile.TemporaryDirectory(prefix="mailroom-oauth-") as tmp:
        TMP = tmp
        PKI = os.path.join(tmp, "pki")
        r = subprocess.run([PYTHON, os.path.join(PEERS, "make_test_pki.py"), PKI],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL pki: make_test_pki.py: status {r.returncode}: {r.stderr}")
            print("oauth: 0 passed, 1 failed")
            return 1
        SA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        SA_FILE = os.path.join(tmp, "service-account.json")
        SECRETS.update({"client secret": CLIENT_SECRET, "refresh token": REFRESH_TOKEN,
                        "service account key": SA_KEY.splitlines()[5]})
        for name, fn in CASES:
            if wanted and name not in wanted and name != "no-secrets-in-output":
                continue
            try:
                TALLY.run(name, fn)
            finally:
                stop_all()
    print(f"oauth: {TALLY.passed} passed, {TALLY.failed} failed", flush=True)
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

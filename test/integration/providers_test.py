#!/usr/bin/python3
"""The provider presets in the tool: `mailroom providers` (text and --json), and --provider for
send and bulk, with each of its settings overridden by its own option in either order.

Usage: providers_test.py MAILROOM   (the built `mailroom` tool; Debian's /usr/bin/python3,
                                     standard library only)

Nothing but 127.0.0.1 is ever contacted: a preset's own server is only ever shown (bulk
--dry-run), and every run that connects names a server on 127.0.0.1 with --server, started
here (aiosmtpd, peers/aiosmtpd_server.py, or a scripted listener in this process that records
the AUTH command) and stopped here. Prints "ok NAME" or "FAIL NAME: WHY" per case and finally
"providers: N passed, M failed"; exits 1 if any case failed.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import peerlib  # noqa: E402

LOOPBACK = "127.0.0.1"
EX_OK, EX_USAGE = 0, 64
TOKEN_VAR = "MAILROOM_PROVIDERS_TEST_TOKEN"
PASSWORD_VAR = "MAILROOM_PROVIDERS_TEST_PASSWORD"
TOKEN = "tok-" + os.urandom(8).hex()
PASSWORD = "Pw-" + os.urandom(8).hex()
MESSAGE = ["--from", "alice@example.com", "--to", "bob@example.net", "--subject", "presets",
           "--text", "hi"]

MAILROOM = None
TMP = None
TALLY = peerlib.Tally()
STOPPERS = []


class Run:
    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    def why(self):
        return f"exit {self.rc}, stdout {self.out[:300]!r}, stderr {self.err[-400:]!r}"

    def json(self, c):
        lines = self.out.splitlines()
        c.require(len(lines) == 1, f"want one line of JSON; {self.why()}")
        try:
            return json.loads(lines[0])
        except ValueError as e:
            c.require(False, f"not JSON ({e}): {self.out[:300]!r}")


def mailroom(*args, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if k not in (TOKEN_VAR, PASSWORD_VAR)}
    full_env.update(env or {})
    start = time.monotonic()
    try:
        p = subprocess.run([MAILROOM, *args], env=full_env, capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]"
    return Run(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
               time.monotonic() - start)


class Scripted:
    """A submission server on 127.0.0.1 for any number of connections, one at a time: offers
    AUTH PLAIN XOAUTH2 OAUTHBEARER, accepts any AUTH, and records every line it gets."""

    def __init__(self):
        self.lines = []
        self.messages = 0
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        STOPPERS.append(self.stop)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    self.session(conn)
                except OSError:
                    pass

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 localhost ESMTP scripted\r\n")
        in_data = False
        for raw in f:
            line = raw.rstrip(b"\r\n").decode("latin-1")
            if in_data:
                if line == ".":
                    in_data = False
                    self.messages += 1
                    conn.sendall(b"250 2.0.0 queued\r\n")
                continue
            self.lines.append(line)
            cmd = line.upper()
            if cmd.startswith(("EHLO", "HELO")):
                conn.sendall(b"250-localhost\r\n250-AUTH PLAIN XOAUTH2 OAUTHBEARER\r\n"
                             b"250 8BITMIME\r\n")
            elif cmd.startswith("AUTH"):
                conn.sendall(b"235 2.7.0 accepted\r\n")
            elif cmd.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif cmd.startswith("DATA"):
                in_data = True
                conn.sendall(b"354 go on\r\n")
            elif cmd.startswith("QUIT"):
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                conn.sendall(b"500 5.5.1 unexpected\r\n")

    def auth_lines(self):
        return [x for x in self.lines if x.upper().startswith("AUTH ")]


def aiosmtpd(name, *args):
    s = peerlib.Aiosmtpd(TMP, name, "--max-seconds", "300", *args)
    STOPPERS.append(s.stop)
    return s


def local(port):
    return f"smtp://{LOOPBACK}:{port}"


# ---- mailroom providers ------------------------------------------------------------------------

def text_rows(out):
    """The table: [(name, server, tls, auth, limits)], checked to have its header."""
    lines = out.splitlines()
    rows = []
    for line in lines[1:]:
        m = re.match(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*\S)\s*$", line)
        rows.append(m.groups() if m else ("?", line))
    return lines[0].split() if lines else [], rows


def case_list_text_and_json(c):
    t = mailroom("providers")
    c.require(t.rc == EX_OK, f"providers: {t.why()}")
    header, rows = text_rows(t.out)
    c.eq("header", header, ["NAME", "SERVER", "TLS", "AUTH", "LIMITS"])
    j = mailroom("providers", "--json")
    c.require(j.rc == EX_OK, f"providers --json: {j.why()}")
    doc = j.json(c)
    presets = doc.get("providers")
    c.require(isinstance(presets, list) and len(presets) >= 25, f"providers: {doc!r:.300}")
    c.eq("rows", len(rows), len(presets))
    names = [p["name"] for p in presets]
    c.eq("names unique", len(set(names)), len(names))
    c.eq("sorted", names, sorted(names))
    for want in ("gmail", "google-workspace", "outlook", "microsoft365", "ses-us-east-1",
                 "ses-eu-west-1", "sendgrid", "mailgun", "mailgun-eu", "postmark", "brevo",
                 "fastmail", "zoho", "icloud", "yahoo"):
        c.check(want in names, f"{want} missing")
    for row, p in zip(rows, presets):
        c.eq(f"{p['name']}: text row", row,
             (p["name"], f"{p['host']}:{p['port']}", p["tls"], p["auth"], p["limits_text"]))
        c.check(p["name"] == p["name"].lower(), f"{p['name']}: not lower case")
        c.check(p["source"].startswith("https://"), f"{p['name']}: source {p['source']!r}")
        c.check(p["limits"]["buckets"], f"{p['name']}: no buckets")
        # limits_text is made of the buckets' own texts.
        for b in p["limits"]["buckets"]:
            c.check(b["text"] in p["limits_text"], f"{p['name']}: {b} not in limits_text")
            c.check(b["rate"] > 0 and b["per_seconds"] > 0, f"{p['name']}: bucket {b}")
        if p["auth"] in ("XOAUTH2", "OAUTHBEARER"):
            c.check(p["token_url"] and p["token_url"].startswith("https://") and p["scope"],
                    f"{p['name']}: OAuth2 without a token URL or scope")
    by = {p["name"]: p for p in presets}
    g = by["gmail"]
    c.eq("gmail", (g["host"], g["port"], g["tls"], g["auth"], g["token_url"], g["scope"]),
         ("smtp.gmail.com", 587, "required", "XOAUTH2", "https://oauth2.googleapis.com/token",
          "https://mail.google.com/"))
    c.eq("gmail limits", g["limits"]["buckets"],
         [{"rate": 500, "per_seconds": 86400, "burst": 500, "text": "500/d"}])
    m = by["microsoft365"]
    c.eq("microsoft365 app-only", (m["app_token_url"], m["app_scope"]),
         ("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
          "https://outlook.office365.com/.default"))
    c.eq("microsoft365 limits", [b["text"] for b in m["limits"]["buckets"]], ["30/m", "10000/d"])
    s = by["ses-eu-west-1"]
    c.eq("ses", (s["host"], s["limits"]["charge"], [b["text"] for b in s["limits"]["buckets"]]),
         ("email-smtp.eu-west-1.amazonaws.com", "recipient", ["1/s", "200/d"]))
    c.check("sandbox" in s["notes"], f"ses notes: {s['notes']!r}")


def case_list_usage(c):
    r = mailroom("providers", "--bogus")
    c.eq("exit status", r.rc, EX_USAGE)
    c.check("--bogus" in r.err, f"stderr: {r.err!r}")
    r = mailroom("providers", "extra")
    c.eq("positional: exit status", r.rc, EX_USAGE)
    r = mailroom("providers", "--help")
    c.eq("--help", r.rc, EX_OK)
    c.check("--json" in r.out, f"--help: {r.out!r}")
    r = mailroom("--help")
    c.check("providers" in r.out, f"top usage: {r.out!r}")


# ---- --provider ---------------------------------------------------------------------------------

def dry(c, *args):
    r = mailroom("bulk", "--dry-run", "--json", *args)
    c.require(r.rc == EX_OK, f"bulk --dry-run {args}: {r.why()}")
    return r.json(c)


def case_provider_fills(c):
    # --provider alone: the preset's server, TLS mode and buckets (nothing is connected to).
    d = dry(c, "--provider", "gmail")
    c.eq("gmail", (d["provider"], d["server"]["host"], d["server"]["port"], d["server"]["tls"]),
         ("gmail", "smtp.gmail.com", 587, "required"))
    c.eq("gmail buckets", [b["text"] for b in d["limits"]["buckets"]], ["500/d"])
    c.eq("no credentials, no mechanism", d["server"]["auth"], None)
    d = dry(c, "--provider", "MICROSOFT365")
    c.eq("microsoft365", (d["provider"], d["server"]["host"], d["server"]["port"]),
         ("microsoft365", "smtp.office365.com", 587))
    c.eq("microsoft365 limits", ([b["text"] for b in d["limits"]["buckets"]],
                                 d["limits"]["max_in_flight"], d["limits"]["charge"]),
         (["30/m", "10000/d"], 3, "message"))
    d = dry(c, "--provider", "ses-eu-west-1")
    c.eq("ses", (d["server"]["host"], d["limits"]["charge"],
                 [b["text"] for b in d["limits"]["buckets"]]),
         ("email-smtp.eu-west-1.amazonaws.com", "recipient", ["1/s", "200/d"]))
    # The AUTH mechanism: the preset's where it suits the credentials.
    r = mailroom("bulk", "--dry-run", "--json", "--provider", "gmail", "--user", "alice",
                 "--oauth-token-env", TOKEN_VAR, env={TOKEN_VAR: TOKEN})
    c.require(r.rc == EX_OK, r.why())
    c.eq("gmail with a token", r.json(c)["server"]["auth"], "XOAUTH2")
    c.check(TOKEN not in r.out + r.err, "the token was printed")
    r = mailroom("bulk", "--dry-run", "--json", "--provider", "gmail", "--user", "alice",
                 "--password-env", PASSWORD_VAR, env={PASSWORD_VAR: PASSWORD})
    c.require(r.rc == EX_OK, r.why())
    c.eq("gmail with an app password: negotiated", r.json(c)["server"]["auth"], None)
    r = mailroom("bulk", "--dry-run", "--json", "--provider", "sendgrid", "--user", "apikey",
                 "--password-env", PASSWORD_VAR, env={PASSWORD_VAR: PASSWORD})
    c.require(r.rc == EX_OK, r.why())
    c.eq("sendgrid with a password", r.json(c)["server"]["auth"], "PLAIN")
    # The text form.
    r = mailroom("bulk", "--dry-run", "--provider", "microsoft365")
    c.eq("text dry run", r.rc, EX_OK)
    c.check("smtp.office365.com:587" in r.out and "30/m, 10000/d" in r.out,
            f"text dry run: {r.out!r}")


def case_provider_overrides(c):
    # Each option overrides the preset's setting, before or after --provider.
    over = ["--server", local(2525), "--tls", "none", "--rate", "5/s", "--rate", "100/h",
            "--charge", "message", "--auth", "plain", "--user", "apikey", "--password-env",
            PASSWORD_VAR]
    for order in ("after", "before"):
        args = ["--provider", "ses-eu-west-1", *over] if order == "after" else \
            [*over, "--provider", "ses-eu-west-1"]
        r = mailroom("bulk", "--dry-run", "--json", *args, env={PASSWORD_VAR: PASSWORD})
        c.require(r.rc == EX_OK, f"{order}: {r.why()}")
        d = r.json(c)
        c.eq(f"{order}: server", d["server"],
             {"host": LOOPBACK, "port": 2525, "tls": "none", "auth": "PLAIN"})
        c.eq(f"{order}: limits", (d["provider"], d["limits"]["charge"],
                                  [b["text"] for b in d["limits"]["buckets"]]),
             ("ses-eu-west-1", "message", ["5/s", "100/h"]))
    # Only --tls: the preset's server stays.
    d = dry(c, "--provider", "gmail", "--tls", "opportunistic")
    c.eq("--tls alone", (d["server"]["host"], d["server"]["tls"]),
         ("smtp.gmail.com", "opportunistic"))
    # smtps:// overrides the preset's STARTTLS.
    d = dry(c, "--server", f"smtps://{LOOPBACK}:4650", "--provider", "gmail")
    c.eq("smtps", (d["server"]["host"], d["server"]["port"], d["server"]["tls"]),
         (LOOPBACK, 4650, "implicit"))
    # Only --charge: the preset's buckets, charged as asked.
    d = dry(c, "--charge", "message", "--provider", "ses-us-east-1")
    c.eq("--charge alone", (d["limits"]["charge"], [b["text"] for b in d["limits"]["buckets"]]),
         ("message", ["1/s", "200/d"]))
    # --burst with the preset's buckets: a usage error, as without a preset.
    r = mailroom("bulk", "--dry-run", "--provider", "gmail", "--burst", "5")
    c.eq("--burst without --rate", r.rc, EX_USAGE)
    # Without --provider nothing changes: --server is still required.
    r = mailroom("bulk", "--dry-run")
    c.eq("no server", r.rc, EX_USAGE)
    c.check("--server is required" in r.err, f"stderr: {r.err!r}")


def case_unknown_provider(c):
    for cmd in ("send", "bulk"):
        r = mailroom(cmd, "--provider", "gmial", *(MESSAGE if cmd == "send" else ["--count", "1"]))
        c.eq(f"{cmd}: exit status", r.rc, EX_USAGE)
        c.check("gmial" in r.err and "gmail" in r.err, f"{cmd}: stderr {r.err!r}")
        c.eq(f"{cmd}: one line", r.err.count("\n"), 1)
    r = mailroom("bulk", "--provider", "ses", "--count", "1")
    c.eq("ses: exit status", r.rc, EX_USAGE)
    c.check("ses-eu-west-1" in r.err and "ses-us-east-1" in r.err, f"ses: stderr {r.err!r}")
    r = mailroom("bulk", "--provider", "zzzzzzzzzzzz", "--count", "1")
    c.eq("far: exit status", r.rc, EX_USAGE)
    c.check("mailroom providers" in r.err, f"far: stderr {r.err!r}")


def case_send_gmail_local(c):
    # send --provider gmail against a local server: the preset's XOAUTH2 is used although
    # the server offers OAUTHBEARER too (the client's own first choice); --auth overrides it.
    srv = Scripted()
    base = ["send", "--provider", "gmail", "--server", local(srv.port), "--tls", "none",
            "--allow-plaintext-auth", "--user", "alice@example.com", "--oauth-token-env",
            TOKEN_VAR, "--timeout", "20", *MESSAGE]
    r = mailroom(*base, env={TOKEN_VAR: TOKEN})
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    auth = srv.auth_lines()
    c.require(len(auth) == 1, f"AUTH lines: {auth!r}")
    c.check(auth[0].upper().startswith("AUTH XOAUTH2"), f"AUTH: {auth[0][:40]!r}")
    c.eq("messages", srv.messages, 1)
    r = mailroom(*base, "--auth", "oauthbearer", env={TOKEN_VAR: TOKEN})
    c.require(r.rc == EX_OK, f"send --auth oauthbearer: {r.why()}")
    auth = srv.auth_lines()
    c.require(len(auth) == 2, f"AUTH lines: {auth!r}")
    c.check(auth[1].upper().startswith("AUTH OAUTHBEARER"), f"AUTH: {auth[1][:40]!r}")
    c.eq("messages", srv.messages, 2)


def case_send_password_provider_local(c):
    # A password service's preset (PLAIN) against aiosmtpd with real credentials.
    srv = aiosmtpd("plain", "--auth", f"apikey:{PASSWORD}", "--record",
                   os.path.join(TMP, "rec-plain"))
    r = mailroom("send", "--provider", "sendgrid", "--server", local(srv.port), "--tls", "none",
                 "--allow-plaintext-auth", "--user", "apikey", "--password-env", PASSWORD_VAR,
                 "--timeout", "20", "--json", *MESSAGE, env={PASSWORD_VAR: PASSWORD})
    c.require(r.rc == EX_OK, f"send: {r.why()}")
    rep = r.json(c)
    c.eq("accepted", rep.get("accepted"), ["bob@example.net"])
    _, meta = peerlib.recorded(os.path.join(TMP, "rec-plain"), 1)
    c.eq("auth user", meta["auth_user"], "apikey")


def case_bulk_provider_local(c):
    srv = aiosmtpd("bulk")
    # The preset's buckets apply (SES sandbox: 1 message/s): 3 messages take 2 s at least,
    # and the summary says which buckets were used.
    r = mailroom("bulk", "--provider", "ses-eu-west-1", "--server", local(srv.port), "--tls",
                 "none", "--count", "3", "--connections", "1", "--json", "--progress", "never",
                 "--timeout", "20")
    c.require(r.rc == EX_OK, f"bulk: {r.why()}")
    d = r.json(c)
    c.eq("sent", d["sent"], 3)
    c.eq("provider", d["provider"], "ses-eu-west-1")
    c.eq("server", (d["server"]["host"], d["server"]["port"], d["server"]["tls"]),
         (LOOPBACK, srv.port, "none"))
    c.eq("buckets", ([b["text"] for b in d["limits"]["buckets"]], d["limits"]["charge"]),
         (["1/s", "200/d"], "recipient"))
    c.check(d["seconds"] >= 1.8, f"3 messages at 1/s took {d['seconds']} s")
    # --rate overrides the buckets: 5 messages at 100/s go at once.
    r = mailroom("bulk", "--rate", "100/s", "--provider", "ses-eu-west-1", "--server",
                 local(srv.port), "--tls", "none", "--count", "5", "--json", "--progress",
                 "never", "--timeout", "20")
    c.require(r.rc == EX_OK, f"bulk --rate: {r.why()}")
    d = r.json(c)
    c.eq("sent", d["sent"], 5)
    c.eq("overridden buckets", ([b["text"] for b in d["limits"]["buckets"]],
                                d["limits"]["charge"]), (["100/s"], "recipient"))
    c.check(d["seconds"] < 1.8, f"5 messages at 100/s took {d['seconds']} s")


def main():
    global MAILROOM, TMP
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    MAILROOM = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="mailroom-providers-") as tmp:
        TMP = tmp
        try:
            TALLY.run("providers: table and JSON agree", case_list_text_and_json)
            TALLY.run("providers: usage", case_list_usage)
            TALLY.run("--provider fills server, TLS, AUTH, buckets", case_provider_fills)
            TALLY.run("--provider: each option overrides, in either order",
                      case_provider_overrides)
            TALLY.run("--provider: unknown names, close ones listed", case_unknown_provider)
            TALLY.run("send --provider gmail: XOAUTH2 to a local server", case_send_gmail_local)
            TALLY.run("send --provider sendgrid: PLAIN to aiosmtpd",
                      case_send_password_provider_local)
            TALLY.run("bulk --provider ses: the preset's buckets, then --rate's",
                      case_bulk_provider_local)
        finally:
            for stop in STOPPERS:
                try:
                    stop()
                except Exception:  # noqa: BLE001 - stopping the rest matters more
                    pass
    print(f"providers: {TALLY.passed} passed, {TALLY.failed} failed", flush=True)
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""An SMTP server that checks OAuth2 bearer tokens for real, for mailroom's OAuth2 tests:
aiosmtpd (Debian's python3-aiosmtpd 1.4.3) with AUTH XOAUTH2 (Google's form) and OAUTHBEARER
(RFC 7628), tokens verified with PyJWT (python3-jwt 2.6, python3-cryptography).

Usage:
  oauth_smtp_server.py --jwks URL --issuer URL [--ca-file CAFILE]
                       [--starttls CERT KEY | --implicit-tls CERT KEY] [--port N]
                       [--close-after N] [--close-mode 421|drop] [--reject-first N]
                       [--clock-offset S] [--leeway S] [--stats FILE] [--max-seconds N]

  --jwks URL           the token server's key set (oauth2_server.mjs: ISSUER/jwks), fetched
                       over HTTPS at start and again when a token names a key id not in it
  --issuer URL         every token's iss must be this
  --ca-file CAFILE     trust anchors for fetching the JWKS (the test CA)
  --starttls CERT KEY  offer STARTTLS; AUTH only after it. --implicit-tls: TLS from the first
                       byte. Neither: AUTH on plaintext (for a client told to allow that)
  --port N             default 0 (ephemeral); the first line on stdout is `PORT <n>`
  --close-after N      after N messages on a connection, close it: with --close-mode 421 (the
                       default) the next command but QUIT gets `421 4.7.0 ...` and the
                       connection is closed; with drop, it is closed right after the 250 to
                       the Nth message's DATA
  --reject-first N     the first N AUTHs whose token is valid are refused all the same (as a
                       revoked token is): the 334 error challenge, then 535
  --clock-offset S     this server's clock runs S seconds ahead when checking exp: a token
                       the client still believes valid for S seconds is refused as expired
  --leeway S           a token is expired once exp + S has passed (default 1: the issuer's
                       iat and exp are whole seconds, its expires_in counts from the
                       response, so a client may rightly believe a token good up to a second
                       past its exp; real servers allow minutes of clock skew)
  --stats FILE         rewritten (atomically) after every AUTH, message and connection:
                       {"connections", "max_concurrent", "auth_ok", "auth_failed",
                        "failures": {reason: n}, "mechanisms": {mech: n}, "messages",
                        "error_acks": {"ok": n, "bad": n}, "jti_seen": n,
                        "auth_log": [{"t", "mech", "ok", "reason", "user", "jti"}]}
                       (t: seconds since start). error_acks counts the client's answers to the
                       error challenge: ok = an empty response (XOAUTH2) or %x01 (OAUTHBEARER)
  --max-seconds N      exit by itself after N seconds (default 600)

Tokens: RS256 JWS verified against the JWKS, iss = --issuer, exp + --leeway in the future.
The user (XOAUTH2 user=, OAUTHBEARER a=) must be the token's sub, unless the token carries the
app-only role SMTP.SendAsApp (Microsoft's client-credentials tokens: any mailbox). A refused
token gets the 334 challenge with base64 of the JSON error, XOAUTH2:
{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}, OAUTHBEARER:
{"status":"invalid_token","scope":"https://mail.google.com/","openid-configuration":"..."};
then, whatever the client answers (but `*`, which gets 501), 535 5.7.8. Messages are accepted
only after a successful AUTH (530 5.7.0 otherwise) and not stored. The token itself is never
logged or written anywhere.

SIGTERM or SIGINT closes the listener and every connection and exits with status 0. Errors go
to stderr. Run with Debian's /usr/bin/python3.
"""

import argparse
import asyncio
import base64
import collections
import json
import logging
import os
import signal
import ssl
import sys
import time
import urllib.request

import jwt
from aiosmtpd.smtp import SMTP, AuthResult, MISSING

HOSTNAME = "localhost"
SCOPE = "https://mail.google.com/"


class Stats:
    def __init__(self, path):
        self.path = path
        self.start = time.monotonic()
        self.d = {"connections": 0, "concurrent": 0, "max_concurrent": 0, "auth_ok": 0,
                  "auth_failed": 0, "failures": {}, "mechanisms": {}, "messages": 0,
                  "error_acks": {"ok": 0, "bad": 0}, "jti_seen": 0, "auth_log": []}
        self.jtis = set()
        self.write()

    def bump(self, key, sub=None):
        if sub is None:
            self.d[key] += 1
        else:
            self.d[key][sub] = self.d[key].get(sub, 0) + 1

    def write(self):
        if not self.path:
            return
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.d, f)
        os.replace(self.path + ".tmp", self.path)


class Keys:
    """The JWKS, fetched over HTTPS with the test CA; refetched for an unknown kid (at most
    once a second)."""

    def __init__(self, url, cafile):
        self.url = url
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.keys = {}
        self.fetched = 0.0
        self.fetch()

    def fetch(self):
        with urllib.request.urlopen(self.url, context=self.ctx, timeout=10) as r:
            data = json.load(r)
        self.keys = {k.key_id: k.key for k in jwt.PyJWKSet.from_dict(data).keys}
        self.fetched = time.monotonic()

    async def get(self, kid):
        if kid not in self.keys and time.monotonic() - self.fetched > 1.0:
            await asyncio.get_running_loop().run_in_executor(None, self.fetch)
        return self.keys.get(kid)


class Handler:
    def __init__(self, args, stats, keys):
        self.args = args
        self.stats = stats
        self.keys = keys
        self.reject_left = args.reject_first

    async def check_token(self, token, user):
        """(claims, None) or (None, reason)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None, "malformed"
        if header.get("alg") != "RS256":
            return None, "bad_alg"
        key = await self.keys.get(header.get("kid"))
        if key is None:
            return None, "unknown_kid"
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], issuer=self.args.issuer,
                                options={"verify_aud": False, "verify_exp": False,
                                         "require": ["exp", "iss"]})
        except jwt.InvalidIssuerError:
            return None, "bad_issuer"
        except jwt.InvalidSignatureError:
            return None, "bad_signature"
        except jwt.PyJWTError:
            return None, "invalid"
        if claims["exp"] + self.args.leeway <= time.time() + self.args.clock_offset:
            return None, "expired"
        app_only = "SMTP.SendAsApp" in (claims.get("roles") or [])
        if not app_only and (user is None or user != claims.get("sub")):
            return None, "user_mismatch"
        if self.reject_left > 0:
            self.reject_left -= 1
            return None, "forced"
        return claims, None

    async def authenticate(self, server, mech, blob):
        """The common part of both mechanisms: blob is the decoded initial response."""
        start = time.monotonic()
        user, token = parse_xoauth2(blob) if mech == "XOAUTH2" else parse_oauthbearer(blob)
        if token is None:
            claims, reason = None, "malformed"
        else:
            claims, reason = await self.check_token(token, user)
        entry = {"t": round(start - self.stats.start, 3), "mech": mech, "ok": claims is not None,
                 "reason": reason, "user": user,
                 "jti": claims.get("jti") if claims else None}
        self.stats.d["auth_log"].append(entry)
        self.stats.bump("mechanisms", mech)
        if claims is not None:
            if claims.get("jti") not in self.stats.jtis:
                self.stats.jtis.add(claims.get("jti"))
                self.stats.d["jti_seen"] = len(self.stats.jtis)
            self.stats.bump("auth_ok")
            self.stats.write()
            return AuthResult(success=True, auth_data=user or claims.get("sub"))
        self.stats.bump("auth_failed")
        self.stats.bump("failures", reason)
        self.stats.write()
        if reason == "malformed" and token is None:
            await server.push("501 5.5.2 malformed initial response")
            return AuthResult(success=False, handled=True)
        if mech == "XOAUTH2":
            err = {"status": "401", "schemes": "bearer", "scope": SCOPE}
            ack = b""
            final = "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 (token refused)"
        else:
            err = {"status": "invalid_token", "scope": SCOPE,
                   "openid-configuration": self.args.issuer + "/.well-known/openid-configuration"}
            ack = b"\x01"
            final = "535 5.7.8 Authentication credentials invalid"
        answer = await server.challenge_auth(json.dumps(err, separators=(",", ":")))
        if answer is MISSING:  # `*` (501 already sent) or bad base64 (501 already sent)
            self.stats.bump("error_acks", "bad")
            self.stats.write()
            return AuthResult(success=False, handled=True)
        self.stats.bump("error_acks", "ok" if answer == ack else "bad")
        self.stats.write()
        return AuthResult(success=False, handled=False, message=final)

    async def auth_XOAUTH2(self, server, args):
        return await self._auth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        return await self._auth(server, args, "OAUTHBEARER")

    async def _auth(self, server, args, mech):
        if len(args) > 1 and args[1] != "=":
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth(b"", encode_to_b64=False)
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        return await self.authenticate(server, mech, blob)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if server.closing:
            return server.close_421()
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        if server.closing:
            return server.close_421()
        return "250 OK"

    async def handle_NOOP(self, server, session, envelope, arg):
        if server.closing:
            return server.close_421()
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.stats.bump("messages")
        self.stats.write()
        server.messages += 1
        if self.args.close_after and server.messages >= self.args.close_after:
            if self.args.close_mode == "drop":
                # The 250 is written before this runs; close() sends it first.
                asyncio.get_running_loop().call_soon(server.transport.close)
            else:
                server.closing = True
        return "250 2.0.0 OK"


def parse_xoauth2(blob):
    """user=USER^Aauth=Bearer TOKEN^A^A -> (user, token) or (None, None)."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    if not text.endswith("\x01\x01"):
        return None, None
    fields = dict(f.split("=", 1) for f in text[:-2].split("\x01") if "=" in f)
    auth = fields.get("auth", "")
    if "user" not in fields or not auth.startswith("Bearer "):
        return None, None
    return fields["user"], auth[7:]


def parse_oauthbearer(blob):
    """RFC 7628: gs2-header ^A kvpairs ^A, gs2-header = n,a=USER, (or n,,)."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    if not text.endswith("\x01\x01"):
        return None, None
    parts = text[:-2].split("\x01")
    gs2 = parts[0].split(",")
    if len(gs2) < 3 or gs2[0] not in ("n", "y"):
        return None, None
    user = None
    if gs2[1].startswith("a="):
        user = gs2[1][2:].replace("=2C", ",").replace("=3D", "=")
    fields = dict(f.split("=", 1) for f in parts[1:] if "=" in f)
    auth = fields.get("auth", "")
    if not auth.lower().startswith("bearer "):
        return None, None
    return user, auth[7:]


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description="OAuth2-checking SMTP test server on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--jwks", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--ca-file")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    tls.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--close-after", type=int, default=0)
    p.add_argument("--close-mode", choices=["421", "drop"], default="421")
    p.add_argument("--reject-first", type=int, default=0)
    p.add_argument("--clock-offset", type=float, default=0.0)
    p.add_argument("--leeway", type=float, default=1.0)
    p.add_argument("--stats")
    p.add_argument("--max-seconds", type=float, default=600)
    return p.parse_args(argv)


async def serve(args):
    loop = asyncio.get_running_loop()
    stats = Stats(args.stats)
    keys = Keys(args.jwks, args.ca_file)
    handler = Handler(args, stats, keys)
    connections = set()

    class Server(SMTP):
        # A bearer token is longer than aiosmtpd's 1001-octet line and 512-octet command.
        line_length_limit = 65536

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.command_size_limits = collections.defaultdict(lambda: 65536)
            self.messages = 0
            self.closing = False

        def close_421(self):
            loop.call_soon(self.transport.close)
            return "421 4.7.0 Too many messages on this connection, closing"

        def connection_made(self, transport):
            if self not in connections:
                connections.add(self)
                stats.bump("connections")
                stats.d["concurrent"] = len(connections)
                stats.d["max_concurrent"] = max(stats.d["max_concurrent"], len(connections))
                stats.write()
            super().connection_made(transport)

        def connection_lost(self, error):
            if self in connections:
                connections.discard(self)
                stats.d["concurrent"] = len(connections)
                stats.write()
            super().connection_lost(error)

    starttls = tls_context(*args.starttls) if args.starttls else None
    implicit = tls_context(*args.implicit_tls) if args.implicit_tls else None

    def factory():
        return Server(handler, hostname=HOSTNAME, enable_SMTPUTF8=True, decode_data=False,
                      tls_context=starttls, auth_require_tls=starttls is not None,
                      # only the handler's XOAUTH2 and OAUTHBEARER
                      auth_exclude_mechanism=["PLAIN", "LOGIN"])

    server = await loop.create_server(factory, args.host, args.port, ssl=implicit)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        print(f"oauth_smtp_server: --max-seconds {args.max_seconds:g} reached, exiting",
              file=sys.stderr)
    server.close()
    for conn in list(connections):
        if conn.transport is not None:
            conn.transport.close()
    await server.wait_closed()
    await asyncio.sleep(0)
    stats.write()


class QuietLogin(logging.Filter):
    """aiosmtpd warns 'Session.login_data is deprecated' on every successful AUTH."""

    def filter(self, record):
        return "login_data is deprecated" not in record.getMessage()


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="oauth_smtp_server: %(name)s: %(message)s")
    logging.getLogger("mail.log").addFilter(QuietLogin())
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""A real SMTP server for mailroom's integration tests: aiosmtpd (Debian's python3-aiosmtpd 1.4.3).

Usage:
  aiosmtpd_server.py [--host 127.0.0.1] [--port N]
                     [--starttls CERT KEY [--require-starttls] | --implicit-tls CERT KEY]
                     [--client-ca CAFILE] [--auth USER:PASSWORD] [--record DIR]
                     [--reject-rcpt ADDR]... [--size N] [--max-seconds N]

  --host 127.0.0.1     the only address accepted: tests never listen anywhere else
  --port N             default 0: an ephemeral port. The first line on stdout is always
                       `PORT <n>` (flushed), so a test reads it to learn where to connect
  --starttls CERT KEY  offer STARTTLS with this certificate chain and key (PEM)
  --require-starttls   refuse everything but EHLO/NOOP/STARTTLS/QUIT before TLS (530)
  --implicit-tls CERT KEY  TLS from the first byte, like port 465 (no STARTTLS offered)
  --client-ca CAFILE   ask TLS clients for a certificate (optional) and verify it against
                       CAFILE; the recorded .json then names its CN
  --auth USER:PASSWORD offer AUTH PLAIN and LOGIN, accept exactly these credentials, and
                       refuse MAIL before a successful AUTH (530 5.7.0). With --starttls, AUTH
                       is offered and accepted only after STARTTLS; with --implicit-tls or
                       no TLS at all, from the start (the latter so tests can check that a
                       client won't send credentials in the clear)
  --record DIR         write each accepted message as DIR/NNNN.eml (the DATA content exactly
                       as received, after dot-unstuffing: CRLFs kept, nothing added) and then
                       DIR/NNNN.json (written last, so its presence means both are whole):
                       {"mail_from", "rcpt_tos", "mail_options", "rcpt_options", "smtputf8",
                        "helo", "tls", "tls_version", "client_cert_cn", "auth_user", "size"}
                       NNNN counts from 0001 on, after any numbers already in DIR. The DATA
                       reply is then `250 2.0.0 OK NNNN`
  --reject-rcpt ADDR   (repeatable) RCPT TO:<ADDR> gets `550 5.1.1 no such user`
                       (compared case-insensitively); other recipients are accepted
  --size N             advertise SIZE N and refuse larger messages (552); 0 = no limit and
                       no SIZE. Default 33554432 (aiosmtpd's own)
  --max-seconds N      exit by itself after N seconds (default 600), in case a test never
                       stops it

Always advertised: 8BITMIME and SMTPUTF8. What aiosmtpd 1.4.3 itself decides: no PIPELINING,
CHUNKING/BDAT, DSN or BINARYMIME; MAIL takes only the BODY=7BIT|8BITMIME, SMTPUTF8 and SIZE
parameters and RCPT none (555 otherwise); UTF-8 addresses pass even without SMTPUTF8; a DATA
line may be up to 1001 octets with its CRLF (longer: 500 after the final dot); the AUTH LOGIN
challenges are base64 of "User Name\0" and "Password\0"; a failed STARTTLS handshake logs a
traceback on stderr and drops the connection.

SIGTERM or SIGINT closes the listener and every connection and exits with status 0; so does
--max-seconds. Errors go to stderr. Run with Debian's /usr/bin/python3.
"""

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult

HOSTNAME = "localhost"  # given explicitly: aiosmtpd's default, getfqdn(), may ask DNS


class Handler:
    """aiosmtpd hooks: who may send, which recipients exist, and recording what arrived."""

    def __init__(self, args):
        self.auth = args.auth  # (user bytes, password bytes) or None
        self.reject = {a.casefold() for a in args.reject_rcpt}
        self.record_dir = args.record
        self.count = 0
        if self.record_dir:
            os.makedirs(self.record_dir, exist_ok=True)
            numbers = [int(m.group(1)) for name in os.listdir(self.record_dir)
                       if (m := re.fullmatch(r"(\d+)\.(?:eml|json)", name))]
            self.count = max(numbers, default=0)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With a handle_EHLO hook, aiosmtpd leaves remembering the client's name to it;
        # without it MAIL would get "503 send HELO first".
        session.host_name = hostname
        if self.auth is None:
            # aiosmtpd always has its built-in PLAIN and LOGIN (failing every login when
            # there is no authenticator); a server without --auth should not offer AUTH at
            # all (AUTH then gets 504).
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Checked here rather than with aiosmtpd's auth_required, which also blocks NOOP-like
        # commands and warns when TLS is implicit (it only counts STARTTLS as TLS).
        if self.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        # A MAIL hook replaces aiosmtpd's default, which would have stored these.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.casefold() in self.reject:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if not self.record_dir:
            return "250 OK"
        self.count += 1
        stem = os.path.join(self.record_dir, f"{self.count:04d}")
        # With decode_data=False, original_content is the bytes between DATA's 354 and the
        # final ".", dot-unstuffed and otherwise untouched (no Received/X-Peer added).
        write_atomically(stem + ".eml", envelope.original_content)
        tls = server.transport.get_extra_info("ssl_object")
        peer_cert = tls.getpeercert() if tls else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,  # aiosmtpd upper-cases these
            "rcpt_options": envelope.rcpt_options,
            "smtputf8": envelope.smtp_utf8,
            "helo": session.host_name,
            "tls": tls is not None,
            "tls_version": tls.version() if tls else None,
            "client_cert_cn": common_name(peer_cert) if peer_cert else None,
            "auth_user": (session.auth_data.login.decode("utf-8", "surrogateescape")
                          if session.authenticated else None),
            "size": len(envelope.original_content),
        }
        # ensure_ascii (the default) keeps undecodable bytes (surrogates) valid JSON.
        write_atomically(stem + ".json", (json.dumps(meta, indent=1) + "\n").encode())
        return f"250 2.0.0 OK {self.count:04d}"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd authenticator, called for AUTH PLAIN and LOGIN with a LoginPassword."""
        user, password = self.auth
        ok = hmac.compare_digest(auth_data.login, user) and hmac.compare_digest(
            auth_data.password, password)
        # A failure with handled=False makes aiosmtpd answer 535 5.7.8.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def common_name(cert):
    return next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"),
                None)


def write_atomically(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def tls_context(cert, key, client_ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL  # aiosmtpd warns about CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


class QuietLogin(logging.Filter):
    """aiosmtpd warns 'Session.login_data is deprecated' on every successful AUTH."""

    def filter(self, record):
        return "login_data is deprecated" not in record.getMessage()


def parse_args(argv):
    p = argparse.ArgumentParser(description="aiosmtpd test server on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    p.add_argument("--port", type=int, default=0)
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    tls.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--client-ca", metavar="CAFILE")
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--record", metavar="DIR")
    p.add_argument("--reject-rcpt", metavar="ADDR", action="append", default=[])
    p.add_argument("--size", type=int, default=2**25)
    p.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args(argv)
    if args.require_starttls and not args.starttls:
        p.error("--require-starttls needs --starttls")
    if args.client_ca and not (args.starttls or args.implicit_tls):
        p.error("--client-ca needs --starttls or --implicit-tls")
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user:
            p.error("--auth wants USER:PASSWORD")
        args.auth = (user.encode(), password.encode())
    return args


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = Handler(args)
    connections = set()  # live protocols, closed on shutdown

    class Server(SMTP):
        def connection_made(self, transport):
            # Called again with the TLS transport after STARTTLS; a set ignores that.
            connections.add(self)
            super().connection_made(transport)

        def connection_lost(self, error):
            connections.discard(self)
            super().connection_lost(error)

    starttls = tls_context(*args.starttls, args.client_ca) if args.starttls else None
    implicit = tls_context(*args.implicit_tls, args.client_ca) if args.implicit_tls else None

    def factory():
        return Server(
            handler,
            hostname=HOSTNAME,
            data_size_limit=args.size or None,  # None: no SIZE advertised, no limit
            enable_SMTPUTF8=True,
            decode_data=False,  # bytes, and 8BITMIME advertised
            tls_context=starttls,
            require_starttls=args.require_starttls,
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS (or none, on purpose)
            # requiring it would hide AUTH for good.
            auth_require_tls=starttls is not None,
            authenticator=handler.authenticate if args.auth else None,
            # Without --auth, no mechanism at all: AUTH gets 504 (and is not advertised).
            auth_exclude_mechanism=None if args.auth else ["PLAIN", "LOGIN"],
        )

    # Implicit TLS: the listener itself wraps every connection, so the handshake is done
    # before aiosmtpd sends its 220 greeting.
    server = await loop.create_server(factory, args.host, args.port, ssl=implicit)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        print(f"aiosmtpd_server: --max-seconds {args.max_seconds:g} reached, exiting",
              file=sys.stderr)
    server.close()
    for conn in list(connections):
        if conn.transport is not None:
            conn.transport.close()
    await server.wait_closed()
    await asyncio.sleep(0)  # let connection_lost run before the loop goes away


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="aiosmtpd_server: %(name)s: %(message)s")
    logging.getLogger("mail.log").addFilter(QuietLogin())
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

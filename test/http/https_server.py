#!/usr/bin/python3
"""The http tests' HTTPS server: Python's http.server over ssl, on 127.0.0.1 only.

Usage: https_server.py PORTFILE [CERT KEY]

Listens on 127.0.0.1 and a port the kernel picks, writes the port to PORTFILE (by rename,
never half-written) and serves until killed. With CERT and KEY it speaks TLS (the handshake
in the request's own thread, so a slow one never holds up the others); without, plain HTTP.
What it answers depends on the path:

    /token     200 JSON: the form as decoded pairs, the raw body, the request's headers, the
               SNI name the client sent (null for none)
    /redirect  302 to https://elsewhere.example/token
    /big       200 with a 100 000-byte body
    /bighead   200 with a 100 000-byte header field
    /slow      sleeps 30 s before answering
    /garbage   a line that isn't HTTP, then closes
    /chunked   200 with a chunked body (three chunks)
    /close     promises 1000 bytes, sends 10, closes
    /eof       200 without Content-Length, the body runs to a clean TLS close (close_notify)
    /early     103 Early Hints, then 200
    /503       503 with Retry-After: 120
    /400       400 JSON error body
    anything else: 404
"""

import http.server
import json
import os
import socketserver
import ssl
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_simple(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            sni = getattr(self.connection, "mr_sni", None)
            out = {
                "form": urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True,
                                               strict_parsing=False),
                "raw": body.decode("ascii"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "request_line": self.requestline,
                "sni": sni,
            }
            self.send_simple(200, json.dumps(out).encode(), "application/json; charset=utf-8")
        elif path == "/redirect":
            self.send_simple(302, b"", "text/plain",
                             [("Location", "https://elsewhere.example/token")])
        elif path == "/big":
            self.send_simple(200, b"x" * 100000, "text/plain")
        elif path == "/bighead":
            self.send_simple(200, b"{}", extra=[("X-Padding", "p" * 100000)])
        elif path == "/slow":
            time.sleep(30)
            self.send_simple(200, b"{}")
        elif path == "/garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2 not http at all\r\n\r\n")
            self.close_connection = True
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for part in (b'{"access_', b'token":"abc",', b'"expires_in":3600}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
        elif path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
        elif path == "/eof":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.wfile.flush()
            self.close_connection = True
            self.clean_close = True
        elif path == "/early":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.send_simple(200, b'{"after":"hints"}')
        elif path == "/503":
            self.send_simple(503, b'{"error":"temporarily_unavailable"}',
                             extra=[("Retry-After", "120")])
        elif path == "/400":
            self.send_simple(400, b'{"error":"invalid_grant"}')
        else:
            self.send_simple(404, b"{}")

    def finish(self):
        super().finish()
        if getattr(self, "clean_close", False) and isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.unwrap()  # close_notify, then the client's (or its close)
            except (OSError, ssl.SSLError):
                pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ctx):
        self.ctx = ctx
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a test's deadline, close()) is no news

    def finish_request(self, request, client_address):
        request.settimeout(60)
        if self.ctx is not None:
            try:
                request = self.ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                request.close()
                return
        super().finish_request(request, client_address)


def main(argv):
    if len(argv) not in (1, 3):
        sys.stderr.write("usage: https_server.py PORTFILE [CERT KEY]\n")
        return 2
    ctx = None
    if len(argv) == 3:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[1], argv[2])

        def remember_sni(sslsock, name, _ctx):
            sslsock.mr_sni = name

        ctx.sni_callback = remember_sni
    server = Server(ctx)
    port = server.server_address[1]
    tmp = argv[0] + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, argv[0])
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

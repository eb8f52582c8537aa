#!/usr/bin/python3
"""mailroom sink against real clients: Python's smtplib (plain and STARTTLS) and a raw
pipelined batch. Checks what lands in the Maildir, byte for byte.

Usage: sink_test.py MAILROOM_BINARY
Starts the sink itself on 127.0.0.1 (port 0) and stops it by PID.
"""
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
results = []


def case(name, fn):
    try:
        fn()
        results.append((name, None))
        print("ok", name)
    except Exception as e:  # a failed check or anything unexpected fails the case
        results.append((name, e))
        print("FAIL %s: %s" % (name, e))


def check(cond, why):
    if not cond:
        raise AssertionError(why)


class Sink:
    def __init__(self, binary, maildir, cert=None, key=None):
        args = [binary, "sink", "--listen", "127.0.0.1:0", "--maildir", maildir,
                "--max-seconds", "120"]
        if cert:
            args += ["--tls-cert", cert, "--tls-key", key]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        check(first.startswith("listening on 127.0.0.1:"), "sink said %r" % first)
        self.port = int(first.rsplit(":", 1)[1])

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        return self.proc.returncode, out


def stored(maildir):
    new = os.path.join(maildir, "new")
    return [open(os.path.join(new, n), "rb").read() for n in sorted(os.listdir(new))]


MESSAGE = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"
           b".leading dot\r\n.\r\n..two\r\nGr\xc3\xbc\xc3\x9fe\r\n")


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="mailroom-sink-test-")
    try:
        pki = os.path.join(work, "pki")
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "peers", "make_test_pki.py"), pki],
                       check=True, stdout=subprocess.DEVNULL)
        maildir = os.path.join(work, "Maildir")
        sink = Sink(binary, maildir, os.path.join(pki, "localhost.pem"),
                    os.path.join(pki, "localhost.key"))
        try:
            def plain():
                with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="client.test") as s:
                    s.ehlo()
                    for ext in ("pipelining", "size", "8bitmime", "smtputf8", "starttls"):
                        check(s.has_extn(ext), "EHLO lacks " + ext)
                    s.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE)
                got = stored(maildir)
                check(len(got) == 1, "%d messages stored" % len(got))
                check(got[0] == MESSAGE, "stored bytes differ: %r" % got[0][:200])

            def starttls():
                ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
                with smtplib.SMTP("localhost", sink.port, local_hostname="client.test") as s:
                    s.starttls(context=ctx)
                    s.ehlo()
                    check(not s.has_extn("starttls"), "STARTTLS offered again under TLS")
                    s.sendmail("a@example.com", ["b@example.com"], MESSAGE)
                check(len(stored(maildir)) == 2, "the TLS message was not stored")

            def pipelined():
                # As a pipelining client sends (RFC 2920): the envelope in one write, then the
                # data, its final dot and the next envelope in one write. Every reply must come
                # back, in order.
                envelope = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
                bodies = [MESSAGE.replace(b"dots", b"batch %d" % i).replace(b"\r\n.", b"\r\n..")
                          + b".\r\n" for i in range(2)]
                with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as c:
                    f = c.makefile("rb")
                    check(f.readline().startswith(b"220"), "no greeting")
                    c.sendall(b"EHLO client.test\r\n")
                    while not f.readline().startswith(b"250 "):
                        pass
                    c.sendall(envelope)
                    codes = [f.readline()[:3] for _ in range(3)]
                    check(codes == [b"250", b"250", b"354"], "replies %r" % codes)
                    c.sendall(bodies[0] + envelope)
                    codes = [f.readline()[:3] for _ in range(4)]
                    check(codes == [b"250", b"250", b"250", b"354"], "replies %r" % codes)
                    c.sendall(bodies[1] + b"QUIT\r\n")
                    codes = [f.readline()[:3] for _ in range(2)]
                    check(codes == [b"250", b"221"], "replies %r" % codes)
                got = stored(maildir)
                check(len(got) == 4, "%d messages stored" % len(got))
                for i in range(2):
                    want = MESSAGE.replace(b"dots", b"batch %d" % i)
                    check(want in got, "pipelined message %d is missing or altered" % i)

            def refusals():
                with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="client.test") as s:
                    code, _ = s.docmd("RCPT TO:<b@example.com>")
                    check(code == 503, "RCPT before MAIL got %d" % code)
                    code, _ = s.docmd("DATA")
                    check(code == 554, "DATA without recipients got %d" % code)
                    code, _ = s.docmd("MAIL FROM:<a@example.com> SIZE=999999999999")
                    check(code == 552, "an over-size SIZE got %d" % code)
                    code, _ = s.docmd("X" * 5000)
                    check(code == 500, "an over-long line got %d" % code)

            case("sink-plain-smtplib", plain)
            case("sink-starttls-smtplib", starttls)
            case("sink-pipelined-batch", pipelined)
            case("sink-refusals", refusals)
        finally:
            rc, out = sink.stop()

        def stopped():
            check(rc == 0, "sink exited %s" % rc)
            check("received 4 messages" in out, "summary: %r" % out)

        case("sink-stops-on-sigterm", stopped)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    failed = sum(1 for _, e in results if e)
    print("sink: %d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

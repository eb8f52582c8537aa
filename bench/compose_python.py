#!/usr/bin/python3
"""Compose benchmark, Python side: workloads (a) and (b) of bench/compose_bench.cpp with the
standard library's email package (EmailMessage, policy.default), for bench/run_compose.sh.

Prints, like compose_bench:
    python small msgs_per_s=...
    python attach10m msgs_per_s=... mib_per_s=...

Run it with Debian's /usr/bin/python3. Usage: compose_python.py [--seconds S] [--only NAME]...
"""
import argparse
import email.utils
import random
import time
from email import policy
from email.message import EmailMessage

FROM = "Alice Example <alice@example.com>"
TO = "Bob Example <bob@example.org>"
SUBJECT = "Quarterly report: compose benchmark"


def text_body():
    """The same octets as compose_bench.cpp's text_body()."""
    s, i = "", 0
    while len(s) < 1024:
        s += "Line %02d: the quick brown fox jumps over the lazy dog.\n" % i
        i += 1
    return s


def html_body():
    """The same octets as compose_bench.cpp's html_body()."""
    s, end, i = "<!DOCTYPE html>\n<html><body>\n", "</body></html>\n", 0
    while len(s) + len(end) < 2048:
        s += "<p>Paragraph %02d: the quick brown fox jumps over the lazy dog.</p>\n" % i
        i += 1
    return s + end


def new_message():
    # mailroom's builder adds Date and Message-ID itself; here they are set by hand, the way an
    # application using the email package would.
    msg = EmailMessage(policy=policy.default)
    msg["From"] = FROM
    msg["To"] = TO
    msg["Subject"] = SUBJECT
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    return msg


def run_for(seconds, f):
    """Runs f untimed for a warm-up, then for at least `seconds`; returns calls per second."""
    warm = min(0.5, max(0.1, seconds / 4))
    start = time.perf_counter()
    while True:
        f()
        if time.perf_counter() - start >= warm:
            break
    n = 0
    start = time.perf_counter()
    while True:
        f()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def bench_small(seconds):
    text, html = text_body(), html_body()

    def once():
        msg = new_message()
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return bytes(msg)

    size = len(once())
    rate = run_for(seconds, once)
    print("python small msgs_per_s=%.0f bytes=%d" % (rate, size), flush=True)


def bench_attach(seconds):
    text = text_body()
    data = random.Random(1).randbytes(10 << 20)

    def once():
        msg = new_message()
        msg.set_content(text)
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename="data.bin")
        return bytes(msg)

    size = len(once())
    rate = run_for(seconds, once)
    print("python attach10m msgs_per_s=%.2f mib_per_s=%.1f bytes=%d"
          % (rate, rate * size / (1 << 20), size), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--only", action="append", choices=["small", "attach10m"])
    args = ap.parse_args()
    if args.seconds <= 0:
        ap.error("--seconds needs a positive number")
    only = set(args.only or ["small", "attach10m"])
    if "small" in only:
        bench_small(args.seconds)
    if "attach10m" in only:
        bench_attach(args.seconds)


if __name__ == "__main__":
    main()

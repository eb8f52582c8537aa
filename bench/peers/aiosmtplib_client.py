#!/usr/bin/python3
"""Load benchmark peer for bench/run_load.py: aiosmtplib (Debian's python3-aiosmtplib).

CONNECTIONS SMTP connections to HOST:PORT, one coroutine each, all on the default asyncio event
loop; each coroutine sends its share of COUNT messages one after another with sendmail(), the
same bytes every time (the file as it is, CRLF line ends expected) to the same envelope. EHLO
once per connection; aiosmtplib doesn't pipeline, so MAIL, RCPT, DATA and the data each wait
for their reply. Prints one line:

    aiosmtplib load msgs=N failed=F seconds=S conns=C

seconds: from before the first connect to the last connection's QUIT. A refused message
counts as failed; a connection that breaks fails the rest of its share. Exit status 0 only if
every message was accepted.

Run it with Debian's /usr/bin/python3 (the python3-aiosmtplib package is installed for it).
Usage: aiosmtplib_client.py --port PORT --file FILE --count N --connections K
                            [--host 127.0.0.1] [--from ADDR] [--to ADDR]
"""
import argparse
import asyncio
import sys
import time

import aiosmtplib


async def connection(args, data, share, failures):
    """Sends `share` messages over one connection; returns how many were accepted."""
    smtp = aiosmtplib.SMTP(hostname=args.host, port=args.port, local_hostname="client.example",
                           use_tls=False, start_tls=False, timeout=60)
    sent = 0
    try:
        await smtp.connect()
        for _ in range(share):
            refused, _reply = await smtp.sendmail(args.sender, [args.rcpt], data)
            if refused:
                failures.append("refused: %r" % (refused,))
            else:
                sent += 1
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError) as e:
        failures.append("%s: %s" % (type(e).__name__, e))
    return sent


async def run(args, data):
    k = min(args.connections, args.count)
    shares = [args.count // k + (1 if i < args.count % k else 0) for i in range(k)]
    failures = []
    t0 = time.perf_counter()
    sent = await asyncio.gather(*(connection(args, data, n, failures) for n in shares))
    seconds = time.perf_counter() - t0
    return sum(sent), seconds, k, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--connections", type=int, required=True)
    ap.add_argument("--from", dest="sender", default="sender@example.com")
    ap.add_argument("--to", dest="rcpt", default="rcpt@example.net")
    args = ap.parse_args()
    if args.count < 1 or args.connections < 1:
        ap.error("--count and --connections need positive numbers")
    with open(args.file, "rb") as f:
        data = f.read()

    sent, seconds, conns, failures = asyncio.run(run(args, data))
    for f in failures[:5]:
        print("aiosmtplib_client: %s" % f, file=sys.stderr)
    print("aiosmtplib load msgs=%d failed=%d seconds=%.3f conns=%d"
          % (sent, args.count - sent, seconds, conns), flush=True)
    return 0 if sent == args.count else 1


if __name__ == "__main__":
    sys.exit(main())

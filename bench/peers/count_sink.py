#!/usr/bin/python3
"""A tiny counting SMTP sink for bench/run_load.py --check: is every message delivered, over
reused connections, byte for byte?

Listens on 127.0.0.1 (an ephemeral port unless --port is given), accepts every envelope and
message, and counts. Plain asyncio, and slow: a correctness check, not a sink to measure
against (bench/run_load.py measures against Postfix's smtp-sink).

On start it prints `port=PORT` (one line, flushed). When it gets SIGTERM or SIGINT, or after
--limit-seconds, it prints one JSON object and exits 0:

    {"connections": C, "max_concurrent": M, "messages": N, "bytes": B,
     "senders": [...], "recipients": [...], "digests": {"<sha256>": count, ...},
     "sizes": {"<octets>": count, ...}, "errors": [...]}

"bytes" counts message content as delivered: after undoing dot-stuffing, without the final
".". "digests" are SHA-256 of each message's content, so a run that sends one file again and
again shows one digest with the file's own hash. The EHLO reply offers PIPELINING, SIZE,
8BITMIME and ENHANCEDSTATUSCODES (no STARTTLS, no AUTH, no CHUNKING), and pipelined commands
are answered in order.

Run it with Debian's /usr/bin/python3.
Usage: count_sink.py [--port PORT] [--limit-seconds S]
"""
import argparse
import asyncio
import hashlib
import json
import signal
import sys

MAX_LINE = 1 << 20


class Stats:
    def __init__(self):
        self.connections = 0
        self.active = 0
        self.max_concurrent = 0
        self.messages = 0
        self.bytes = 0
        self.senders = {}
        self.recipients = {}
        self.digests = {}
        self.sizes = {}
        self.errors = []

    def as_dict(self):
        return {
            "connections": self.connections,
            "max_concurrent": self.max_concurrent,
            "messages": self.messages,
            "bytes": self.bytes,
            "senders": sorted(self.senders),
            "recipients": sorted(self.recipients),
            "digests": self.digests,
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "errors": self.errors[:20],
        }


STATS = Stats()


def address(arg):
    """The address inside <...> of a MAIL FROM:/RCPT TO: argument (parameters dropped)."""
    start, end = arg.find("<"), arg.find(">")
    if start < 0 or end < start:
        return None
    return arg[start + 1:end]


async def read_data(reader):
    """The message after DATA/354, dot-stuffing undone; None if the peer went away."""
    h = hashlib.sha256()
    size = 0
    while True:
        line = await reader.readline()
        if not line:
            return None
        if line == b".\r\n":
            break
        if line.startswith(b"."):
            line = line[1:]
        h.update(line)
        size += len(line)
    return size, h.hexdigest()


async def session(reader, writer):
    STATS.connections += 1
    STATS.active += 1
    STATS.max_concurrent = max(STATS.max_concurrent, STATS.active)
    sender, rcpts = None, []

    def reply(text):
        writer.write(text.encode() + b"\r\n")

    try:
        reply("220 count-sink ESMTP")
        while True:
            line = await reader.readline()
            if not line:
                break
            if not line.endswith(b"\r\n"):
                STATS.errors.append("command line without CRLF: %r" % line[:80])
            cmd = line.decode("ascii", "replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            if verb == "EHLO":
                reply("250-count-sink\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
                      "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
            elif verb == "HELO":
                reply("250 count-sink")
            elif cmd.upper().startswith("MAIL FROM:"):
                sender, rcpts = address(cmd[10:]), []
                if sender is None:
                    reply("501 5.5.4 bad MAIL FROM")
                else:
                    reply("250 2.1.0 Ok")
            elif cmd.upper().startswith("RCPT TO:"):
                rcpt = address(cmd[8:])
                if sender is None:
                    reply("503 5.5.1 MAIL first")
                elif not rcpt:
                    reply("501 5.5.4 bad RCPT TO")
                else:
                    rcpts.append(rcpt)
                    reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if sender is None or not rcpts:
                    reply("503 5.5.1 MAIL and RCPT first")
                    continue
                reply("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                got = await read_data(reader)
                if got is None:
                    STATS.errors.append("connection closed inside DATA")
                    break
                size, digest = got
                STATS.messages += 1
                STATS.bytes += size
                STATS.sizes[size] = STATS.sizes.get(size, 0) + 1
                STATS.digests[digest] = STATS.digests.get(digest, 0) + 1
                STATS.senders[sender] = True
                for r in rcpts:
                    STATS.recipients[r] = True
                sender, rcpts = None, []
                reply("250 2.0.0 Ok: queued")
            elif verb == "RSET":
                sender, rcpts = None, []
                reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                reply("221 2.0.0 Bye")
                await writer.drain()
                break
            else:
                reply("502 5.5.2 command not recognized")
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
        STATS.errors.append("%s: %s" % (type(e).__name__, e))
    finally:
        STATS.active -= 1
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--limit-seconds", type=float, default=0,
                    help="exit after this long (0: only on SIGTERM/SIGINT)")
    args = ap.parse_args()

    server = await asyncio.start_server(session, "127.0.0.1", args.port, limit=MAX_LINE)
    port = server.sockets[0].getsockname()[1]
    print("port=%d" % port, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.limit_seconds > 0:
        loop.call_later(args.limit_seconds, stop.set)
    await stop.wait()
    server.close()
    print(json.dumps(STATS.as_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

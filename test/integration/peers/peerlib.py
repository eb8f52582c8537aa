"""What the integration tests share about their peers: starting aiosmtpd_server.py and stopping
it by PID, reading its recordings and smtp-sink's dump, and short descriptions of differences.
Standard library only; run with Debian's /usr/bin/python3.
"""

import json
import os
import selectors
import signal
import subprocess
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
AIOSMTPD = os.path.join(HERE, "aiosmtpd_server.py")
LOOPBACK = "127.0.0.1"


def describe(got, want):
    """The difference, short enough to read: long bytes show where they first differ."""
    if isinstance(got, bytes) and isinstance(want, bytes) and max(len(got), len(want)) > 80:
        i = next((n for n, (a, b) in enumerate(zip(got, want)) if a != b),
                 min(len(got), len(want)))
        return (f"{len(got)} octets, want {len(want)}; first difference at {i}: "
                f"got {got[max(0, i - 30):i + 30]!r}, want {want[max(0, i - 30):i + 30]!r}")
    return f"got {got!r}, want {want!r}"


def read_line(stream, timeout):
    """One line from a pipe, or whatever came before the deadline or EOF."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        byte = os.read(stream.fileno(), 1)
        if not byte:
            break
        data += byte
    sel.close()
    return data


def recorded(folder, n):
    """Message n of an aiosmtpd_server.py --record folder: (its bytes, its envelope JSON)."""
    stem = os.path.join(folder, f"{n:04d}")
    with open(stem + ".eml", "rb") as f:
        eml = f.read()
    with open(stem + ".json") as f:
        return eml, json.load(f)


def parse_sink_dump(data):
    """smtp-sink's dump file (see smtp_sink.sh) as [(smtp-sink's header lines, message bytes,
    whether smtp-sink's blank line followed the message)]."""
    out = []
    for chunk in data.split(b"=== smtp-sink message ===\n")[1:]:
        lines = chunk.split(b"\n")
        i = next(n for n, line in enumerate(lines) if line.startswith(b"Received: "))
        body = b"\n".join(lines[i + 3:])
        blank = body.endswith(b"\n\n")
        out.append((lines[:i], body[:-1] if blank else body, blank))
    return out


class Aiosmtpd:
    """aiosmtpd_server.py in a child process on 127.0.0.1 (an ephemeral port), stopped by its
    PID. `args` are the server's options; its stderr goes to TMP/NAME.stderr."""

    def __init__(self, tmp, name, *args, timeout=10):
        self.name = name
        self.err = open(os.path.join(tmp, f"{name}.stderr"), "w+")
        self.proc = subprocess.Popen(
            [PYTHON, AIOSMTPD, "--host", LOOPBACK, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL)
        line = read_line(self.proc.stdout, timeout)
        if not line.startswith(b"PORT "):
            self.stop()
            raise RuntimeError(f"aiosmtpd {name}: first line {line!r}, stderr: {self.stderr()}")
        self.port = int(line.split()[1])

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        """SIGTERM (SIGKILL after 5 s); True if it exited with status 0. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            clean = self.proc.wait(5) == 0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            clean = False
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        return clean


# ---- cases ------------------------------------------------------------------------------------

class CaseFailed(Exception):
    """Raised by Case.require: the rest of the case depends on what failed."""


class Case:
    """Collects what went wrong in one named case; every check adds to the list."""

    def __init__(self, name):
        self.name = name
        self.problems = []

    def check(self, ok, why):
        if not ok:
            self.problems.append(why)
        return ok

    def eq(self, what, got, want):
        return self.check(got == want, f"{what}: {describe(got, want)}")

    def require(self, ok, why):
        """A check the rest of the case depends on: stops the case when it fails."""
        if not ok:
            self.problems.append(why)
            raise CaseFailed()


class Tally:
    """Runs named cases, prints "ok NAME" or "FAIL NAME: problems" for each, and counts them."""

    def __init__(self):
        self.passed = self.failed = 0

    def run(self, name, fn):
        c = Case(name)
        try:
            fn(c)
        except CaseFailed:
            pass
        except Exception:
            c.problems.append("exception: " + " | ".join(
                line.strip() for line in traceback.format_exc().strip().splitlines()[-3:]))
        if c.problems:
            self.failed += 1
            print(f"FAIL {name}: " + "; ".join(p.replace("\n", "\\n") for p in c.problems),
                  flush=True)
        else:
            self.passed += 1
            print(f"ok {name}", flush=True)

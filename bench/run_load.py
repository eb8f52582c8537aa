#!/usr/bin/python3
# Load benchmark: how fast does mailroom's `bulk` command submit many messages over 1, 8 and 32
# connections, beside other SMTP clients, on this machine, in the same run, against the same
# server: Postfix's smtp-sink on 127.0.0.1 (a single-threaded sink that discards mail and offers
# PIPELINING). Every program sends the same messages, written by this script (about 2 KiB of
# plain text, and about 100 KiB with a base64 part; CRLF; one recipient; no line starts with
# '.'), with K connections each carrying message after message:
#
#   mailroom          BUILD/examples/mailroom bulk --server smtp://127.0.0.1:PORT --tls none
#                     --count N --connections K --concurrency C --eml FILE --json
#                     (C = 4 x K by default, --mailroom-factor); its JSON report must say that
#                     all N were sent, none failed and none is unknown
#   mailroom-compose  the same without --eml: --size 2048 or 102400 (and --from, --to), so the
#                     library composes every message itself (its size is "about" that: the
#                     octets on the wire differ a little from the files the others send)
#   smtp-source       /usr/sbin/smtp-source -4 -d -s K -m N ... -F FILE.lf (Postfix's load
#                     generator; it reads the LF twin of the message and sends CRLF, plus one
#                     empty line: 2 octets more per message than the others)
#   aiosmtplib        bench/peers/aiosmtplib_client.py (Debian's python3-aiosmtplib): K
#                     connections, one coroutine each, sendmail() of the raw message
#   nodemailer-pool   bench/peers/nodemailer_pool.cjs: Nodemailer with pool: true,
#                     maxConnections: K, maxMessages: Infinity, raw message + envelope; the
#                     script installs nodemailer with npm into a scratch folder if needed
#   libcurl-multi     bench/peers/curl_multi.c: K easy handles in one curl_multi, each re-added
#                     after its message (connections reused from the multi handle's cache); the
#                     script compiles it with gcc against libcurl (libcurl4-openssl-dev)
#
# A program that can't run here (no mailroom build, or one without `bulk`; no node/npm; no curl
# headers; ...) is skipped with a message saying why; the others still run.
#
# Every configuration (program x size x connections) first gets a pilot run (two when the first
# is short) that sizes its count so a run lasts about --target-seconds; then --rounds rounds run
# every configuration once, interleaved (forward order, then reverse order on even rounds), so
# load from elsewhere falls on all alike. The table shows medians over the rounds, with the
# min-max of the rate, then mailroom's ratios to every other program for each size x conns.
#
# Measurement, the same for every program: each run is one process, wrapped in
# `/usr/bin/time -v` for the client's user + system CPU and peak RSS (the whole process:
# start-up and connecting included, a few ms over thousands of messages; Node.js and Python pay
# more for start-up); the wall clock (monotonic) is taken around the process, and msgs/s =
# count / wall. The sink's CPU is read from /proc/PID/stat before and after each run ("sink
# cores" = sink CPU / wall: near 1.0 the single-threaded sink is the limit, not the client); box
# busy is 1 - idle share of /proc/stat over the run (all CPUs = 100%). On loopback the kernel's
# TCP work is partly charged to the sender, so client and sink CPU are not perfectly separable.
# A run that exceeds --run-timeout is killed (its whole process group) and counted as failed.
#
# --check is a correctness smoke test instead: every program sends 20 messages over 4
# connections to bench/peers/count_sink.py (a tiny asyncio sink on an ephemeral 127.0.0.1
# port), which counts connections, messages and octets; the check wants 20 messages, at most 4
# connections, the envelope given, and the message's octets delivered intact.
#
# Usage: /usr/bin/python3 bench/run_load.py [BUILD_DIR] [options]
#   BUILD_DIR  a build with examples/mailroom (default: build-bench); this script builds nothing
#              of mailroom's: `ninja -C BUILD_DIR examples/mailroom` first (a release build:
#              meson setup BUILD_DIR --buildtype=release)
#   --rounds R (3)  --target-seconds S (4)  --run-timeout S (120)
#   --sizes 2k,100k  --conns 1,8,32  --only REGEX  --skip REGEX  (on "PEER SIZE cK", e.g.
#              --only '^(mailroom|smtp-source) 2k c(8|32)$')
#   --mailroom-factor F (4: mailroom's --concurrency = F x K)
#   --mailroom-compose-args ARGS (default '--from sender@example.com --to rcpt@example.net':
#              added to the mailroom-compose row before --size)
#   --probe-source FILE.c (optional: a pipelined probe client, compiled and run as "probe",
#              the sink's ceiling; not part of this project)
#   --out FILE.json (every pilot and run, the medians and the ratios)  --check
# Exit status: 0 when every run succeeded (with --check: every check passed), 1 otherwise.
# Environment: MAILROOM_BENCH_DIR (scratch folder, default /tmp/mailroom-bench: the compiled
#   curl_multi), MAILROOM_BENCH_NODE_DIR (where nodemailer is installed with npm, default
#   $MAILROOM_BENCH_DIR/node), NODE (default: node on PATH). Run it with Debian's
#   /usr/bin/python3 (python3-aiosmtplib is installed for it), not another Python on PATH.
# Needs: postfix (smtp-sink, smtp-source; no mail daemon), time; optional: python3-aiosmtplib,
#   nodejs + npm, gcc + libcurl4-openssl-dev.
# Example: /usr/bin/python3 bench/run_load.py build-bench --rounds 3 --out /tmp/load.json
import argparse
import base64
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, "peers")
REPO = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"
SINK_BIN = "/usr/sbin/smtp-sink"
SOURCE_BIN = "/usr/sbin/smtp-source"
TIME_BIN = "/usr/bin/time"
SENDER, RCPT = "sender@example.com", "rcpt@example.net"
SIZES = {"2k": 2048, "100k": 102400}  # octets of the CRLF messages, exactly
PEER_ORDER = ["mailroom", "mailroom-compose", "smtp-source", "aiosmtplib", "nodemailer-pool",
              "libcurl-multi", "probe"]
CHECK_COUNT, CHECK_CONNS = 20, 4
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Fatal(Exception):
    pass


# ---- the messages -----------------------------------------------------------------------------
WORDS = ("mail queue relay envelope header body sender recipient message connection server "
         "client transfer octet line boundary part pipeline reply status domain address route "
         "deliver accept submit session greeting extension timeout retry").split()


def filler_lines(rnd, octets):
    """Text lines whose CRLF-terminated total is exactly `octets` (>= 3), none starting with '.'."""
    lines, left = [], octets
    while left > 0:
        if left <= 80:
            width = left - 2
        elif left < 80 + 40:  # leave a last line of at least 38 characters
            width = left - 2 - 40
        else:
            width = rnd.randint(58, 74)
        text = ""
        while len(text) < width:
            text += rnd.choice(WORDS) + " "
        text = text[:width]
        if text.endswith(" "):
            text = text[:-1] + "."
        lines.append(text[:1].upper() + text[1:])
        left -= width + 2
    assert all(line and not line.startswith(".") for line in lines)
    return lines


def headers(subject, extra):
    return ["From: Load Bench <%s>" % SENDER,
            "To: Load Rcpt <%s>" % RCPT,
            "Subject: %s" % subject,
            "Date: Thu, 01 Jan 2026 00:00:00 +0000",
            "Message-ID: <load-bench-%s@example.com>" % subject.split()[-1],
            "MIME-Version: 1.0"] + extra


def wire(lines):
    return sum(len(line) + 2 for line in lines)


def message_lines(size, octets, rnd):
    if size == "2k":
        head = headers("load benchmark 2k", ["Content-Type: text/plain; charset=us-ascii",
                                             "Content-Transfer-Encoding: 7bit", ""])
        return head + filler_lines(rnd, octets - wire(head))
    boundary = "load-bench-boundary-4d2e"
    head = headers("load benchmark 100k",
                   ['Content-Type: multipart/mixed; boundary="%s"' % boundary, ""])
    text_head = ["--" + boundary, "Content-Type: text/plain; charset=us-ascii",
                 "Content-Transfer-Encoding: 7bit", ""]
    blob = base64.b64encode(rnd.randbytes(72 * 1024)).decode("ascii")
    attachment = (["--" + boundary, "Content-Type: application/octet-stream",
                   'Content-Disposition: attachment; filename="load.bin"',
                   "Content-Transfer-Encoding: base64", ""]
                  + [blob[i:i + 76] for i in range(0, len(blob), 76)]
                  + ["--" + boundary + "--"])
    text = filler_lines(rnd, octets - wire(head) - wire(text_head) - wire(attachment))
    return head + text_head + text + attachment


def write_messages(folder, sizes):
    """msg-SIZE.eml (CRLF) and msg-SIZE.lf.eml (LF, for smtp-source -F) for each size."""
    msgs = {}
    for size in sizes:
        lines = message_lines(size, SIZES[size], random.Random("load-" + size))
        if any(line.startswith(".") for line in lines):
            raise Fatal("message %s has a line starting with '.'" % size)
        crlf = ("\r\n".join(lines) + "\r\n").encode("ascii")
        paths = {"crlf": os.path.join(folder, "msg-%s.eml" % size),
                 "lf": os.path.join(folder, "msg-%s.lf.eml" % size)}
        with open(paths["crlf"], "wb") as f:
            f.write(crlf)
        with open(paths["lf"], "wb") as f:
            f.write(crlf.replace(b"\r\n", b"\n"))
        msgs[size] = dict(paths, octets=len(crlf), sha256=hashlib.sha256(crlf).hexdigest(),
                          sha256_smtp_source=hashlib.sha256(crlf + b"\r\n").hexdigest())
    return msgs


# ---- helpers ---------------------------------------------------------------------------------
def tail(text, n=6):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-n:])


def run_quiet(argv, timeout=30, **kw):
    """(exit status, stdout + stderr) of a helper command; (None, why) if it can't run."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
        return p.returncode, p.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)


def kill_group(p):
    """SIGKILL to the process group a run started (its own session), if it is still there."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def proc_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]  # all (user..steal), idle + iowait


def parse_time_v(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().rpartition(": ")
            if key == "User time (seconds)":
                out["user_s"] = float(value)
            elif key == "System time (seconds)":
                out["sys_s"] = float(value)
            elif key == "Maximum resident set size (kbytes)":
                out["rss_kib"] = int(value)
            elif key == "Exit status":
                out["exit_status"] = int(value)
    if "user_s" not in out:
        raise ValueError("no CPU times in %s" % path)
    return out


def kv_line(stdout, prefix):
    """key=value fields of the peer's report line `PREFIX load k=v ...`."""
    for line in stdout.splitlines():
        if line.startswith(prefix + " load "):
            return dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)
    return None


def round2(n):
    """n to two significant digits."""
    p = 1
    while n >= 100 * p:
        p *= 10
    return int(n / p + 0.5) * p


# ---- the sinks --------------------------------------------------------------------------------
def free_port():
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # smtp-sink binds with SO_REUSEPORT: it would share a port another server holds.
        with socket.socket() as c:
            c.settimeout(0.5)
            if c.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise Fatal("found no free port on 127.0.0.1")


def greets(port, prefix):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.settimeout(2)
            return c.recv(512).startswith(prefix)
    except OSError:
        return False


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, started and stopped (by its PID) by this script."""

    def __init__(self, work):
        self.log_path = os.path.join(work, "smtp-sink.log")
        self.proc = None
        self.port = None
        self.argv = None

    def start(self):
        for _ in range(3):
            self.port = free_port()
            user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink insists, as root
            # No -c (a counter write per message), no -d/-D (nothing to disk).
            self.argv = [SINK_BIN, "-4", "-m", "1024"] + user + ["127.0.0.1:%d" % self.port,
                                                                 "1024"]
            with open(self.log_path, "ab") as logf:
                # Its own session: a Ctrl-C reaches only this script, which stops it in order.
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            for _ in range(50):
                if self.proc.poll() is not None:
                    break
                if greets(self.port, b"220 "):
                    return
                time.sleep(0.1)
            self.stop()
        with open(self.log_path, errors="replace") as f:
            raise Fatal("smtp-sink did not come up:\n" + tail(f.read()))

    def ticks(self):
        if self.proc.poll() is not None:
            with open(self.log_path, errors="replace") as f:
                raise Fatal("smtp-sink (PID %d) died:\n%s" % (self.proc.pid, tail(f.read())))
        return proc_ticks(self.proc.pid)

    def stop(self):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()  # by its PID: only the sink this script started
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class CountSink:
    """bench/peers/count_sink.py on an ephemeral 127.0.0.1 port, for --check."""

    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, os.path.join(PEERS_DIR, "count_sink.py")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        first = self.proc.stdout.readline()
        if not first.startswith("port="):
            self.stop()
            raise Fatal("count_sink.py did not start: %r" % first)
        self.port = int(first.strip().split("=", 1)[1])

    def stop(self):
        """Its counts, as a dict (None if it had none)."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.terminate()
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        log("count_sink.py said:\n" + tail(err))
        return None


# ---- the programs ----------------------------------------------------------------------------
class Peer:
    """One program under test. `skip` is None when it can run, else why it can't."""
    name = ""
    skip = None
    env = None
    content = "file"  # what --check expects delivered: "file", "file+crlf" or None
    strict_content = True  # a content mismatch fails --check (else: a warning)

    def argv(self, size, conns, count, port, msgs):
        raise NotImplementedError

    def validate(self, stdout, count):
        """(the program's own report as a dict, an error or None)."""
        kv = kv_line(stdout, self.name)
        if kv is None:
            return {}, "no '%s load ...' line in its output" % self.name
        own = {k: float(v) for k, v in kv.items()}
        if int(own.get("msgs", -1)) != count or int(own.get("failed", 0)) != 0:
            return own, "it sent %s of %d messages (%s failed)" % (
                kv.get("msgs"), count, kv.get("failed"))
        return own, None

    def version(self):
        return ""


class Mailroom(Peer):
    def __init__(self, name, binary, factor, compose_args):
        self.name = name
        self.binary = binary
        self.factor = factor
        self.compose = name == "mailroom-compose"
        self.compose_args = compose_args
        if self.compose:
            self.content, self.strict_content = None, False
        else:
            self.strict_content = False  # reported, but a rewritten header is not a failure

    def probe(self, build):
        if not os.path.exists(self.binary):
            return ("no %s; build it first: meson setup %s --buildtype=release && "
                    "ninja -C %s examples/mailroom" % (self.binary, build, build))
        rc, out = run_quiet([self.binary, "bulk", "--help"], timeout=20)
        if rc != 0:
            return ("'%s bulk --help' failed (%s): this mailroom has no working bulk command"
                    "\n%s" % (self.binary, "exit status %s" % rc if rc is not None else out,
                              tail(out, 3)))
        if self.compose and "--size" not in out:
            return "'%s bulk --help' does not mention --size" % self.binary
        return None

    def argv(self, size, conns, count, port, msgs):
        a = [self.binary, "bulk", "--server", "smtp://127.0.0.1:%d" % port, "--tls", "none",
             "--count", str(count), "--connections", str(conns),
             "--concurrency", str(self.factor * conns)]
        if self.compose:
            a += self.compose_args + ["--size", str(SIZES[size])]
        else:
            a += ["--eml", msgs[size]["crlf"]]
        return a + ["--json"]

    def validate(self, stdout, count):
        report = None
        text = stdout.strip()
        try:
            report = json.loads(text)
        except ValueError:
            for line in reversed(text.splitlines()):
                if line.lstrip().startswith("{"):
                    try:
                        report = json.loads(line)
                        break
                    except ValueError:
                        pass
        if not isinstance(report, dict):
            return {}, "no JSON object on its stdout"
        own = {k: report.get(k) for k in ("sent", "delivered", "partial", "failed", "unknown",
                                          "seconds", "messages_per_second", "latency_ms",
                                          "cpu_seconds", "peak_rss_kib", "connections_opened",
                                          "retries") if k in report}
        if (report.get("sent") != count or report.get("failed") or report.get("unknown")
                or report.get("partial")):
            return own, "its report says sent=%s failed=%s unknown=%s partial=%s of %d" % (
                report.get("sent"), report.get("failed"), report.get("unknown"),
                report.get("partial"), count)
        return own, None

    def version(self):
        rc, out = run_quiet(["git", "-C", REPO, "describe", "--always", "--dirty"], timeout=10)
        return "git " + out.strip() if rc == 0 else ""


class SmtpSource(Peer):
    name = "smtp-source"
    content = "file+crlf"  # it sends an empty line after the message

    def __init__(self):
        if not os.access(SOURCE_BIN, os.X_OK):
            self.skip = "no %s: apt-get install postfix (no mail daemon is needed)" % SOURCE_BIN

    def argv(self, size, conns, count, port, msgs):
        return [SOURCE_BIN, "-4", "-d", "-s", str(conns), "-m", str(count), "-M",
                "client.example", "-f", SENDER, "-t", RCPT, "-F", msgs[size]["lf"],
                "127.0.0.1:%d" % port]

    def validate(self, stdout, count):
        return {}, None  # it exits non-zero on a refusal or a broken connection

    def version(self):
        rc, out = run_quiet(["dpkg-query", "-W", "-f=${Version}", "postfix"])
        return "Postfix " + out.strip() if rc == 0 else ""


class Aiosmtplib(Peer):
    name = "aiosmtplib"

    def __init__(self):
        rc, out = run_quiet([PYTHON, "-c", "import aiosmtplib; print(aiosmtplib.__version__)"])
        if rc != 0:
            self.skip = ("%s can't import aiosmtplib: apt-get install python3-aiosmtplib"
                         % PYTHON)
        self._version = out.strip() if rc == 0 else ""

    def argv(self, size, conns, count, port, msgs):
        return [PYTHON, os.path.join(PEERS_DIR, "aiosmtplib_client.py"), "--port", str(port),
                "--file", msgs[size]["crlf"], "--count", str(count), "--connections", str(conns)]

    def version(self):
        return "aiosmtplib %s, %s" % (self._version, platform.python_version())


class Nodemailer(Peer):
    name = "nodemailer-pool"

    def __init__(self, node_dir):
        self.node = os.environ.get("NODE") or shutil.which("node")
        self.module = os.path.join(node_dir, "node_modules", "nodemailer")
        self._version = ""
        if not self.node:
            self.skip = "no node on PATH (set NODE, or apt-get install nodejs npm)"
            return
        if not os.path.exists(os.path.join(self.module, "package.json")):
            npm = shutil.which("npm")
            if not npm:
                self.skip = "nodemailer is not in %s and npm is unavailable" % node_dir
                return
            log("installing nodemailer with npm into %s ..." % node_dir)
            os.makedirs(node_dir, exist_ok=True)
            rc, out = run_quiet([npm, "install", "--prefix", node_dir, "--no-audit",
                                 "--no-fund", "--loglevel=error", "nodemailer"], timeout=300)
            if rc != 0 or not os.path.exists(os.path.join(self.module, "package.json")):
                self.skip = "npm install nodemailer failed:\n" + tail(out)
                return
        with open(os.path.join(self.module, "package.json")) as f:
            self._version = json.load(f).get("version", "")
        self.env = dict(os.environ, NODEMAILER=self.module)

    def argv(self, size, conns, count, port, msgs):
        return [self.node, os.path.join(PEERS_DIR, "nodemailer_pool.cjs"), "--port", str(port),
                "--file", msgs[size]["crlf"], "--count", str(count), "--connections", str(conns)]

    def version(self):
        rc, out = run_quiet([self.node, "--version"])
        return "Nodemailer %s, Node.js %s" % (self._version, out.strip() if rc == 0 else "?")


class CurlMulti(Peer):
    name = "libcurl-multi"

    def __init__(self, work_dir):
        src = os.path.join(PEERS_DIR, "curl_multi.c")
        self.binary = os.path.join(work_dir, "curl_multi")
        gcc = shutil.which("gcc")
        if not gcc:
            self.skip = "no gcc: apt-get install gcc libcurl4-openssl-dev"
            return
        if (os.path.exists(self.binary)
                and os.path.getmtime(self.binary) >= os.path.getmtime(src)):
            return
        os.makedirs(work_dir, exist_ok=True)
        rc, out = run_quiet([gcc, "-O2", "-Wall", "-o", self.binary, src, "-lcurl"],
                            timeout=120)
        if rc != 0:
            if "curl/curl.h" in out:
                self.skip = ("libcurl's headers are missing: "
                             "apt-get install libcurl4-openssl-dev")
            else:
                self.skip = "compiling curl_multi.c failed:\n" + tail(out)

    def argv(self, size, conns, count, port, msgs):
        return [self.binary, "--port", str(port), "--file", msgs[size]["crlf"],
                "--count", str(count), "--connections", str(conns)]

    def version(self):
        rc, out = run_quiet(["curl-config", "--version"])
        return out.strip() if rc == 0 else ""


class Probe(Peer):
    """Not a peer: a minimal pipelined epoll client given with --probe-source (for example
    ../shared/anchors/clients/probe_pipelined.c, which this project doesn't ship), run with one
    round trip per message, to mark the sink's ceiling in the same run."""
    name = "probe"

    def __init__(self, source, work_dir):
        self.binary = os.path.join(work_dir, "probe_pipelined")
        if not source or not os.path.exists(source):
            self.skip = "no --probe-source given (or it doesn't exist)"
            return
        gcc = shutil.which("gcc")
        if not gcc:
            self.skip = "no gcc"
            return
        os.makedirs(work_dir, exist_ok=True)
        rc, out = run_quiet([gcc, "-O2", "-o", self.binary, source], timeout=120)
        if rc != 0:
            self.skip = "compiling the probe failed:\n" + tail(out)

    def argv(self, size, conns, count, port, msgs):
        return [self.binary, "127.0.0.1", str(port), msgs[size]["crlf"], str(count), str(conns),
                "1"]

    def validate(self, stdout, count):
        # It prints "sent=N wall=S rate=R".
        m = re.search(r"sent=(\d+) wall=([0-9.]+) rate=([0-9.]+)", stdout)
        if not m:
            return {}, "no 'sent=N wall=S rate=R' line in its output"
        own = {"msgs": float(m.group(1)), "wall": float(m.group(2))}
        if int(own["msgs"]) != count:
            return own, "it sent %s of %d messages" % (m.group(1), count)
        return own, None

    def version(self):
        return "probe (1 round trip per message)"


def make_peers(args, wanted):
    """The programs that are wanted (by name), each with .skip set when it can't run."""
    peers = {}
    binary = os.path.join(args.build, "examples", "mailroom")
    compose_args = shlex.split(args.mailroom_compose_args)
    for name in ("mailroom", "mailroom-compose"):
        if name in wanted:
            peers[name] = Mailroom(name, binary, args.mailroom_factor, compose_args)
            peers[name].skip = peers[name].probe(args.build)
    makers = {"smtp-source": SmtpSource, "aiosmtplib": Aiosmtplib,
              "nodemailer-pool": lambda: Nodemailer(args.node_dir),
              "libcurl-multi": lambda: CurlMulti(args.work_dir),
              "probe": lambda: Probe(args.probe_source, args.work_dir)}
    for name, make in makers.items():
        if name in wanted:
            peers[name] = make()
    return {n: peers[n] for n in PEER_ORDER if n in peers}


# ---- one run ----------------------------------------------------------------------------------
def run_one(peer, size, conns, count, sink, msgs, work, run_timeout):
    """One measured run: a dict; "error" is set when it failed."""
    time_out = os.path.join(work, "time.out")
    if os.path.exists(time_out):
        os.unlink(time_out)
    argv = [TIME_BIN, "-v", "-o", time_out] + peer.argv(size, conns, count, sink.port, msgs)
    rec = {"peer": peer.name, "size": size, "conns": conns, "count": count}
    s0, (m0, i0) = sink.ticks(), machine_ticks()
    t0 = time.monotonic()
    # Its own process group, so a run that hangs is killed with all its children.
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=peer.env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=run_timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.communicate()
        rec["error"] = "timed out after %g s (process group killed)" % run_timeout
        return rec
    except BaseException:
        kill_group(p)
        p.wait()
        raise
    wall = time.monotonic() - t0
    s1, (m1, i1) = sink.ticks(), machine_ticks()
    rec.update(wall_s=wall, msgs_per_s=count / wall,
               sink_cpu_s=(s1 - s0) / CLK_TCK,
               box_busy=1 - (i1 - i0) / max(1, m1 - m0))
    rec["sink_cores"] = rec["sink_cpu_s"] / wall
    if p.returncode != 0:
        rec["error"] = "exit status %d\n%s" % (p.returncode, tail(err or out))
        return rec
    try:
        t = parse_time_v(time_out)
    except (OSError, ValueError) as e:
        rec["error"] = "no /usr/bin/time report: %s" % e
        return rec
    rec.update(client_cpu_s=t["user_s"] + t["sys_s"], client_user_s=t["user_s"],
               client_sys_s=t["sys_s"], rss_kib=t.get("rss_kib", 0))
    own, problem = peer.validate(out, count)
    rec["own"] = own
    if problem:
        rec["error"] = problem + ("\n" + tail(err) if err.strip() else "")
    return rec


def show_run(r):
    if "error" in r:
        return "%s %s c%d: FAILED (count %d): %s" % (r["peer"], r["size"], r["conns"],
                                                     r["count"], r["error"])
    return ("%s %s c%d: %d msgs in %.2f s = %.0f msgs/s, client CPU %.3f s, RSS %.1f MiB, "
            "sink %.2f cores" % (r["peer"], r["size"], r["conns"], r["count"], r["wall_s"],
                                 r["msgs_per_s"], r["client_cpu_s"], r["rss_kib"] / 1024,
                                 r["sink_cores"]))


# ---- the table --------------------------------------------------------------------------------
def summarize(runs):
    groups = {}
    for r in runs:
        if "error" not in r:
            groups.setdefault((r["peer"], r["size"], r["conns"]), []).append(r)
    rows = []
    for (peer, size, conns), rs in groups.items():
        rates = [r["msgs_per_s"] for r in rs]
        row = {"peer": peer, "size": size, "conns": conns, "runs": len(rs),
               "count": int(statistics.median(r["count"] for r in rs)),
               "msgs_per_s": statistics.median(rates), "msgs_per_s_min": min(rates),
               "msgs_per_s_max": max(rates),
               "client_cpu_s_per_1000": statistics.median(
                   r["client_cpu_s"] / r["count"] * 1000 for r in rs),
               "client_cores": statistics.median(r["client_cpu_s"] / r["wall_s"] for r in rs),
               "rss_mib": statistics.median(r["rss_kib"] / 1024 for r in rs),
               "sink_cores": statistics.median(r["sink_cores"] for r in rs),
               "sink_cpu_s_per_1000": statistics.median(
                   r["sink_cpu_s"] / r["count"] * 1000 for r in rs),
               "box_busy": statistics.median(r["box_busy"] for r in rs)}
        if peer.startswith("mailroom"):
            lat = [r["own"].get("latency_ms") or {} for r in rs]
            for k in ("p50", "p99", "max"):
                vals = [x[k] for x in lat if isinstance(x.get(k), (int, float))]
                if vals:
                    row["latency_ms_" + k] = statistics.median(vals)
        rows.append(row)
    order = {p: i for i, p in enumerate(PEER_ORDER)}
    rows.sort(key=lambda r: (list(SIZES).index(r["size"]), r["conns"], order[r["peer"]]))
    return rows


def paired_rate(runs, base, other, size, conns):
    """Median over rounds of base's rate / other's rate in the same round. Their runs are next
    to each other in a round, so a slow spell on the machine falls on both: steadier than the
    ratio of the medians when the box's speed drifts between rounds."""
    by_round = {}
    for r in runs:
        if "error" not in r and r["size"] == size and r["conns"] == conns and "round" in r:
            by_round.setdefault(r["round"], {})[r["peer"]] = r["msgs_per_s"]
    pairs = [rs[base] / rs[other] for rs in by_round.values()
             if rs.get(base) and rs.get(other)]
    return statistics.median(pairs) if pairs else None


def ratios(rows, runs):
    out = []
    by = {(r["peer"], r["size"], r["conns"]): r for r in rows}
    for base in ("mailroom", "mailroom-compose"):
        for r in rows:
            if r["peer"] != base:
                continue
            for other in PEER_ORDER:
                o = by.get((other, r["size"], r["conns"]))
                if o is None or other == base or (base == "mailroom-compose"
                                                  and other == "mailroom"):
                    continue
                out.append({"base": base, "vs": other, "size": r["size"], "conns": r["conns"],
                            "rate": r["msgs_per_s"] / o["msgs_per_s"],
                            "rate_paired": paired_rate(runs, base, other, r["size"], r["conns"]),
                            "cpu": (r["client_cpu_s_per_1000"] / o["client_cpu_s_per_1000"]
                                    if o["client_cpu_s_per_1000"] > 0 else None)})
    order = {p: i for i, p in enumerate(PEER_ORDER)}
    out.sort(key=lambda x: (list(SIZES).index(x["size"]), x["conns"], order[x["base"]],
                            order[x["vs"]]))
    return out


def print_table(rows, rats, meta, skipped):
    print()
    print("load benchmark: K connections per program, 1 recipient, sink = smtp-sink on "
          "127.0.0.1 (not pinned);")
    print("%d interleaved rounds of about %g s per run; medians [min-max of the rate]"
          % (meta["rounds"], meta["target_seconds"]))
    for k in ("cpu", "kernel", "load", "messages", "mailroom", "versions"):
        print("%-9s %s" % (k + ":", meta[k]))
    print()
    if not rows:
        for name, why in skipped.items():
            print("skipped %s: %s" % (name, why.splitlines()[0]))
        return
    print("| peer             | size | conns | msgs/s median [min-max] | client CPU s/1000 msgs "
          "| peak RSS MiB | sink cores | sink CPU s/1000 | box busy | runs x msgs |")
    print("|------------------|------|-------|-------------------------|-----------------------"
          "-|--------------|------------|-----------------|----------|-------------|")
    for r in rows:
        print("| %-16s | %-4s | %5d | %7.0f [%6.0f-%6.0f] | %22.3f | %12.1f | %10.2f | %15.3f "
              "| %7.0f%% | %2d x %-6d |"
              % (r["peer"], r["size"], r["conns"], r["msgs_per_s"], r["msgs_per_s_min"],
                 r["msgs_per_s_max"], r["client_cpu_s_per_1000"], r["rss_mib"],
                 r["sink_cores"], r["sink_cpu_s_per_1000"], 100 * r["box_busy"], r["runs"],
                 r["count"]))
    lat = [r for r in rows if "latency_ms_p50" in r]
    if lat:
        print("\nmailroom's own report (medians): per-message latency")
        print("| peer             | size | conns | p50 ms  | p99 ms  | max ms  |")
        print("|------------------|------|-------|---------|---------|---------|")
        for r in lat:
            print("| %-16s | %-4s | %5d | %7.2f | %7.2f | %7.2f |"
                  % (r["peer"], r["size"], r["conns"], r.get("latency_ms_p50", float("nan")),
                     r.get("latency_ms_p99", float("nan")),
                     r.get("latency_ms_max", float("nan"))))
    print()
    if rats:
        print("mailroom compared (rate: its msgs/s / the other's, higher is better for mailroom;")
        print("CPU: its client CPU per message / the other's, lower is better for mailroom):")
        print()
        print("(rate: of the medians; paired: the median of each round's ratio, runs side by side)")
        print()
        print("| size | conns | mailroom row     | vs               | rate   | paired | CPU    |")
        print("|------|-------|------------------|------------------|--------|--------|--------|")
        for x in rats:
            print("| %-4s | %5d | %-16s | %-16s | %5.2fx | %s | %s |"
                  % (x["size"], x["conns"], x["base"], x["vs"], x["rate"],
                     "%5.2fx" % x["rate_paired"] if x.get("rate_paired") else "    - ",
                     "%5.2fx" % x["cpu"] if x["cpu"] is not None else "    - "))
    else:
        print("no ratios: no mailroom row in this run (skipped, or left out by --only/--skip).")
    if skipped:
        print()
        for name, why in skipped.items():
            print("skipped %s: %s" % (name, why.splitlines()[0]))
    print()
    print("sink cores near 1.00: the single-threaded smtp-sink is the limit, not the client. "
          "Client CPU and RSS come from /usr/bin/time -v over the whole process (start-up "
          "included).")


# ---- --check ----------------------------------------------------------------------------------
def check(peers, args, msgs, work):
    """Every program: 20 messages over 4 connections to count_sink.py. True if all pass."""
    results = []
    for size in args.sizes:
        for peer in peers.values():
            key = "%s %s c%d" % (peer.name, size, CHECK_CONNS)
            if not wanted_key(key, args):
                continue
            sink = CountSink()
            argv = peer.argv(size, CHECK_CONNS, CHECK_COUNT, sink.port, msgs)
            try:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=peer.env,
                                     start_new_session=True)
                try:
                    out, err = p.communicate(timeout=args.run_timeout)
                except subprocess.TimeoutExpired:
                    kill_group(p)
                    out, err = p.communicate()
                    err = "timed out after %g s\n%s" % (args.run_timeout, err)
                except BaseException:
                    kill_group(p)
                    p.wait()
                    raise
            finally:
                stats = sink.stop()
            problems, notes = [], []
            if p.returncode != 0:
                problems.append("exit status %s: %s" % (p.returncode, tail(err or out, 3)))
            else:
                _own, problem = peer.validate(out, CHECK_COUNT)
                if problem:
                    problems.append(problem)
            if stats is None:
                problems.append("no counts from count_sink.py")
                stats = {}
            else:
                if stats["messages"] != CHECK_COUNT:
                    problems.append("sink got %d messages, not %d" % (stats["messages"],
                                                                      CHECK_COUNT))
                if not 1 <= stats["connections"] <= CHECK_CONNS:
                    problems.append("%d connections (want 1-%d)" % (stats["connections"],
                                                                    CHECK_CONNS))
                if stats["senders"] != [SENDER] or stats["recipients"] != [RCPT]:
                    problems.append("envelope %s -> %s" % (stats["senders"],
                                                           stats["recipients"]))
                if stats["errors"]:
                    problems.append("sink: " + "; ".join(stats["errors"][:3]))
                want = {"file": msgs[size]["sha256"],
                        "file+crlf": msgs[size]["sha256_smtp_source"]}.get(peer.content)
                if want and stats["messages"]:
                    if list(stats["digests"]) != [want]:
                        what = ("content differs from the file (%s octets per message, file "
                                "%d)" % ("/".join(stats["sizes"]), msgs[size]["octets"]))
                        (problems if peer.strict_content else notes).append(what)
                    else:
                        notes.append("content intact" + (" (the file + the empty line "
                                                         "smtp-source adds)"
                                                         if peer.content == "file+crlf" else ""))
                elif stats["messages"]:
                    notes.append("%s octets per message" % "/".join(stats["sizes"]))
            verdict = "FAIL" if problems else ("WARN" if any("differs" in n for n in notes)
                                               else "ok")
            results.append((peer.name, size, stats, verdict, problems + notes))
            log("check %s: %s%s" % (key, verdict, "" if not (problems or notes)
                                    else " (" + "; ".join(problems + notes) + ")"))
    print()
    print("correctness check: %d messages over %d connections each, to bench/peers/count_sink.py"
          % (CHECK_COUNT, CHECK_CONNS))
    print()
    print("| peer             | size | msgs | conns (max at once) | octets  | verdict | notes |")
    print("|------------------|------|------|---------------------|---------|---------|-------|")
    for name, size, st, verdict, notes in results:
        conns = "%s (%s)" % (st.get("connections", "-"), st.get("max_concurrent", "-"))
        print("| %-16s | %-4s | %4s | %-19s | %7s | %-7s | %s |"
              % (name, size, st.get("messages", "-"), conns, st.get("bytes", "-"), verdict,
                 "; ".join(notes)))
    if not results:
        print("nothing was checked (every program skipped, or --only/--skip left nothing)")
        return False
    return all(v != "FAIL" for _n, _s, _st, v, _no in results)


# ---- main ---------------------------------------------------------------------------------------
def wanted_key(key, args):
    if args.only and not re.search(args.only, key):
        return False
    if args.skip and re.search(args.skip, key):
        return False
    return True


def parse_args():
    ap = argparse.ArgumentParser(
        description="mailroom bulk vs smtp-source, aiosmtplib, Nodemailer and libcurl over "
                    "1/8/32 connections to smtp-sink on 127.0.0.1 (see the comment at the top)")
    ap.add_argument("build", nargs="?", default="build-bench",
                    help="build folder with examples/mailroom (default: build-bench)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--target-seconds", type=float, default=4.0,
                    help="the pilot sizes each run to about this long (default 4)")
    ap.add_argument("--run-timeout", type=float, default=120.0,
                    help="seconds per run; its process group is killed after (default 120)")
    ap.add_argument("--sizes", default="2k,100k", help="comma list of 2k, 100k")
    ap.add_argument("--conns", default="1,8,32", help="comma list of connection counts")
    ap.add_argument("--only", help="regex on 'PEER SIZE cK': run only matching configurations")
    ap.add_argument("--skip", help="regex on 'PEER SIZE cK': leave matching ones out")
    ap.add_argument("--mailroom-factor", type=int, default=4,
                    help="mailroom's --concurrency = this x connections (default 4)")
    ap.add_argument("--mailroom-compose-args", default="--from %s --to %s" % (SENDER, RCPT),
                    help="extra arguments for the mailroom-compose row (default: the envelope)")
    ap.add_argument("--probe-source",
                    help="C source of a pipelined probe client (e.g. ../shared/anchors/clients/"
                         "probe_pipelined.c): compiled and run as the 'probe' row, the sink's "
                         "ceiling; left out when not given")
    ap.add_argument("--out", help="also write the runs and the summary as JSON to this file")
    ap.add_argument("--check", action="store_true",
                    help="correctness smoke test against count_sink.py instead of measuring")
    args = ap.parse_args()
    args.sizes = [s for s in args.sizes.split(",") if s]
    for s in args.sizes:
        if s not in SIZES:
            ap.error("--sizes: unknown size %r (have: %s)" % (s, ", ".join(SIZES)))
    try:
        args.conns = [int(c) for c in args.conns.split(",") if c]
    except ValueError:
        ap.error("--conns: a comma list of whole numbers")
    if not args.conns or min(args.conns) < 1:
        ap.error("--conns: positive numbers")
    if args.rounds < 1 or args.target_seconds <= 0 or args.run_timeout <= 0:
        ap.error("--rounds, --target-seconds and --run-timeout must be positive")
    if args.mailroom_factor < 1:
        ap.error("--mailroom-factor must be positive")
    for r in (args.only, args.skip):
        if r:
            try:
                re.compile(r)
            except re.error as e:
                ap.error("bad regex %r: %s" % (r, e))
    # A relative BUILD_DIR is taken from the current folder, else from the repository's top.
    if (not os.path.isabs(args.build) and not os.path.exists(args.build)
            and os.path.exists(os.path.join(REPO, args.build))):
        args.build = os.path.join(REPO, args.build)
    args.work_dir = os.environ.get("MAILROOM_BENCH_DIR", "/tmp/mailroom-bench")
    args.node_dir = os.environ.get("MAILROOM_BENCH_NODE_DIR",
                                   os.path.join(args.work_dir, "node"))
    return args


def machine_meta(args, msgs, peers):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if re.match(r"(model name|Hardware|cpu model)\s*:", line):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": "%s (%d CPUs available)" % (cpu, os.cpu_count()),
        "kernel": " ".join(platform.uname()[i] for i in (0, 2, 4)),
        "messages": ", ".join("%s = %d octets (%s)" % (s, m["octets"], "text" if s == "2k" else
                                                        "multipart, base64 part")
                              for s, m in msgs.items()),
        "mailroom": "bulk --concurrency %d x K; mailroom-compose: --size %s"
                    % (args.mailroom_factor, "/".join(str(SIZES[s]) for s in args.sizes)),
        "versions": "; ".join("%s: %s" % (n, p.version()) for n, p in peers.items()
                              if p.skip is None and p.version() and not (
                                  n == "mailroom-compose" and "mailroom" in peers
                                  and peers["mailroom"].skip is None)),
        "rounds": args.rounds,
        "target_seconds": args.target_seconds,
        "python": sys.version.split()[0],
    }


def measure(peers, args, msgs, work):
    configs = []
    for size in args.sizes:
        for conns in args.conns:
            for peer in peers.values():
                if peer.skip is None and wanted_key("%s %s c%d" % (peer.name, size, conns), args):
                    configs.append({"peer": peer, "size": size, "conns": conns})
    if not configs:
        raise Fatal("nothing to run (every program skipped, or --only/--skip left nothing)")
    sink = SmtpSink(work)
    sink.start()
    runs, pilots = [], []
    load_start = open("/proc/loadavg").read().split()[:3]
    try:
        log("sink: %s (PID %d); %d configurations; pilot runs..."
            % (" ".join(sink.argv), sink.proc.pid, len(configs)))
        for c in list(configs):
            peer, size, conns = c["peer"], c["size"], c["conns"]
            count = max(1000 if size == "2k" else 200, 4 * conns)
            r = run_one(peer, size, conns, count, sink, msgs, work, args.run_timeout)
            if "error" not in r and r["wall_s"] < 0.3 * args.target_seconds:
                # Too short to size from (start-up weighs too much): one more, of about 1 s.
                pilots.append(r)
                count = max(count, int(r["msgs_per_s"] * min(1.0, args.target_seconds / 2)))
                r = run_one(peer, size, conns, count, sink, msgs, work, args.run_timeout)
            pilots.append(r)
            if "error" in r:
                log("pilot " + show_run(r) + "\n  -> left out of the rounds")
                configs.remove(c)
                continue
            c["count"] = max(round2(r["msgs_per_s"] * args.target_seconds), 100, 2 * conns)
            log("pilot %s %s c%d: %d msgs at %.0f msgs/s -> %d msgs per run"
                % (peer.name, size, conns, count, r["msgs_per_s"], c["count"]))
        for rnd in range(1, args.rounds + 1):
            order = configs if rnd % 2 else list(reversed(configs))
            for c in order:
                r = run_one(c["peer"], c["size"], c["conns"], c["count"], sink, msgs, work,
                            args.run_timeout)
                r["round"] = rnd
                runs.append(r)
                log("round %d/%d: %s" % (rnd, args.rounds, show_run(r)))
    finally:
        sink_argv = " ".join(sink.argv or [])
        sink.stop()
    load_end = open("/proc/loadavg").read().split()[:3]
    return runs, pilots, sink_argv, "%s at the start, %s at the end (1/5/15-min averages)" % (
        " ".join(load_start), " ".join(load_end))


def main():
    args = parse_args()
    for path, pkg in ((SINK_BIN, "postfix (no mail daemon is needed)"), (TIME_BIN, "time")):
        if not os.access(path, os.X_OK):
            raise Fatal("no %s: apt-get install %s" % (path, pkg))
    if not os.access(PYTHON, os.X_OK):
        raise Fatal("no %s (Debian's Python)" % PYTHON)

    candidates = set()
    for name in PEER_ORDER:
        if name == "probe" and (args.check or not args.probe_source):
            continue
        for size in args.sizes:
            for conns in ([CHECK_CONNS] if args.check else args.conns):
                if wanted_key("%s %s c%d" % (name, size, conns), args):
                    candidates.add(name)
    peers = make_peers(args, candidates)
    skipped = {n: p.skip for n, p in peers.items() if p.skip}
    for name, why in skipped.items():
        log("skipping %s: %s" % (name, why))

    work = tempfile.mkdtemp(prefix="mailroom-load-bench.")
    try:
        msgs = write_messages(work, args.sizes)
        runnable = {n: p for n, p in peers.items() if p.skip is None}
        if args.check:
            ok = check(runnable, args, msgs, work)
            for name, why in skipped.items():
                print("skipped %s: %s" % (name, why.splitlines()[0]))
            return 0 if ok else 1
        meta = machine_meta(args, msgs, peers)
        runs, pilots, sink_argv, load = measure(runnable, args, msgs, work)
        meta["load"] = load
        meta["sink"] = sink_argv
        rows = summarize(runs)
        rats = ratios(rows, runs)
        print_table(rows, rats, meta, skipped)
        failed = [r for r in runs if "error" in r]
        if failed:
            print("\n%d run(s) failed (left out of the medians):" % len(failed))
            for r in failed:
                print("  " + show_run(r).splitlines()[0])
        dropped = [r for r in pilots if "error" in r]
        if dropped:
            print("\n%d configuration(s) left out after a failed pilot run:" % len(dropped))
            for r in dropped:
                print("  " + show_run(r).splitlines()[0])
        if not rows:
            print("\nno configuration completed a run")
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump({"meta": meta, "skipped": skipped,
                           "messages": {s: {k: v for k, v in m.items() if k not in ("crlf", "lf")}
                                        for s, m in msgs.items()},
                           "pilots": pilots, "runs": runs, "summary": rows, "ratios": rats},
                          f, indent=1)
            log("wrote %s" % args.out)
        return 1 if failed or dropped or not rows else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started in the background (where a shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except Fatal as e:
        log("run_load.py: %s" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        log("run_load.py: interrupted; the sink and the running client were stopped")
        sys.exit(130)

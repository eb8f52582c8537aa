#!/usr/bin/python3
"""The mailroom tool when things go wrong around it (issue 12): signals during `bulk`, a whole-run
`--deadline` against a server that never greets, input files that are not regular files or
too big, and `send --json` after a timeout.

Usage: cli_reliability_test.py MAILROOM   (run with Debian's /usr/bin/python3; standard
                                           library only)

Servers, all on 127.0.0.1 and stopped here by PID (or closed) also when a check fails:
Postfix's /usr/sbin/smtp-sink with a delayed reply to the final dot (-W .:N) and a dump file
written when the final dot arrives, `mailroom sink`, a listener that accepts and never speaks,
and a scripted SMTP peer in this process for the timeouts real servers won't produce.
Each mailroom run has a time limit (and an address-space limit), so a hang or a runaway read
fails its case instead of the machine. Prints "ok NAME" or "FAIL NAME: WHY" per case, then
"cli-reliability: N passed, M failed"; exits 1 if any case failed.
"""

import json
import os
import re
import resource
import shutil
import signal
import smtplib
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
SMTP_SINK = "/usr/sbin/smtp-sink"
MARK = b"=== smtp-sink message ==="
RUN_TIMEOUT = 60
MEMORY_LIMIT = 2 << 30  # address space for each mailroom run: a runaway read fails, fast

EX_OK, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL = 0, 65, 66, 75

MAILROOM = None
TMP = None
STOPPERS = []


CaseFailed = peerlib.CaseFailed
Case = peerlib.Case
TALLY = peerlib.Tally()
run_case = TALLY.run


SANITIZED = False  # a sanitizer's shadow memory needs terabytes of address space


def limit_memory():
    if not SANITIZED:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def sanitized(binary):
    """Whether the tool was built with ASan or TSan (their runtimes can't start under a
    2 GiB address-space limit; the tool's own --max-size cap still holds there)."""
    with open(binary, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


class Run:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def why(self):
        return f"exit {self.rc}, stdout {self.out[:300]!r}, stderr {self.err[-400:]!r}"

    def json(self, c):
        lines = self.out.splitlines()
        c.require(len(lines) == 1, f"--json: want one line on stdout; {self.why()}")
        try:
            return json.loads(lines[0])
        except ValueError as e:
            c.require(False, f"--json: not JSON ({e}): {self.out!r}")


def mailroom(*args, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT):
    try:
        p = subprocess.run([MAILROOM, *args], capture_output=True, timeout=timeout, stdin=stdin,
                           preexec_fn=limit_memory)
        return Run(p.returncode, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as e:
        return Run(None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]")


def start_mailroom(*args):
    return subprocess.Popen([MAILROOM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=limit_memory)


def finish(proc, timeout=RUN_TIMEOUT):
    """Waits for a started mailroom; kills it (and says so) past `timeout`."""
    try:
        out, err = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Run(None, out, err + b"[killed: timed out]")


def one_line(r):
    return r.err.endswith(b"\n") and r.err.count(b"\n") == 1


# ---- servers ----------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, its reply to each final dot held back `dot_delay`
    seconds (-W .:N; 0: not at all); each message goes to the dump file as its final dot
    arrives, before that reply. Stopped by PID."""

    def __init__(self, name, dot_delay):
        self.dump = os.path.join(TMP, f"{name}.dump")
        user = ["-u", "root"] if os.getuid() == 0 else []
        for _ in range(5):  # a free port may be taken before smtp-sink binds it
            self.port = free_port()
            self.log = open(os.path.join(TMP, f"{name}.log"), "w")
            delay = ["-W", f".:{dot_delay}"] if dot_delay else []
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-4", "-c", *user, *delay, "-S",
                 MARK.decode() + "\\n", "-D", self.dump.replace("%", "%%"),
                 f"{LOOPBACK}:{self.port}", "256"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
            STOPPERS.append(self.stop)
            if self.wait_greeting():
                return
            self.stop()
        raise RuntimeError("smtp-sink did not come up")

    def wait_greeting(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"220 "):
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    def messages(self):
        try:
            with open(self.dump, "rb") as f:
                return f.read().count(MARK + b"\n")
        except FileNotFoundError:
            return 0

    def wait_messages(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.messages() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages() >= n

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Listener:
    """A TCP listener on 127.0.0.1 running `serve(conn)` in a thread per connection."""

    def __init__(self, serve):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        self.done = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()
        STOPPERS.append(self.stop)

    def accept(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            if self.serve:
                threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.done.set()
        self.thread.join(2)
        for s in self.conns + [self.sock]:
            try:
                s.close()
            except OSError:
                pass


def scripted(replies):
    """A peer that greets, then answers each command line by the first matching (prefix,
    reply) in `replies` (reply None: say nothing more, ever); DATA content is read to its dot."""

    def serve(conn):
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 scripted ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("ascii", "replace").upper()
                reply = next((r for p, r in replies if cmd.startswith(p)), b"250 ok\r\n")
                if reply is None:
                    conn.recv(1)  # silent until the client goes
                    return
                conn.sendall(reply)
                if cmd.startswith("DATA") and reply.startswith(b"354"):
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    conn.sendall(b"250 2.0.0 queued\r\n")
                if cmd.startswith("QUIT"):
                    return
        except OSError:
            return

    return serve


EHLO_PLAIN = b"250-scripted\r\n250 8BITMIME\r\n"


# ---- bulk and signals -------------------------------------------------------------------------

def bulk_args(port, count, *extra):
    # One transaction per connection at a time: smtp-sink answers pipelined commands ahead of
    # a final dot whose reply -W holds back, out of step. 16 sends for 4 connections, so some
    # always wait for one.
    return ["bulk", "--server", f"smtp://{LOOPBACK}:{port}", "--tls", "none", "--count",
            str(count), "--timeout", "60", "--progress", "never", "--json",
            "--pipeline-depth", "1", "--concurrency", "16", *extra]


def check_accounted(c, rep, count):
    keys = ("delivered", "partial", "failed", "unknown", "not_attempted")
    c.require(all(isinstance(rep.get(k), int) for k in keys), f"report lacks counts: {rep}")
    c.eq("delivered + partial + failed + unknown + not_attempted", sum(rep[k] for k in keys),
         count)


def bulk_signalled(c, sig, status, name):
    # Each final dot's reply comes a second late, so sends are under way when the signal comes;
    # the grace period is long enough for all of them to finish.
    sink = SmtpSink(name, 1)
    count = 400
    p = start_mailroom(*bulk_args(sink.port, count, "--grace", "30"))
    try:
        c.require(sink.wait_messages(3), "no message reached smtp-sink")
        p.send_signal(sig)
    finally:
        r = finish(p)
    sink.stop()
    c.require(r.rc == status, f"want exit {status}: {r.why()}")
    rep = r.json(c)
    check_accounted(c, rep, count)
    c.eq("stopped_by", rep.get("stopped_by"), signal.Signals(sig).name)
    c.eq("delivered, against smtp-sink's dump", rep["delivered"], sink.messages())
    c.eq("failed", rep["failed"], 0)
    c.eq("unknown", rep["unknown"], 0)
    c.check(rep["not_attempted"] > 0, f"nothing left unattempted: {rep}")
    c.eq("sent", rep.get("sent"), rep["delivered"])


def case_bulk_sigint(c):
    bulk_signalled(c, signal.SIGINT, 130, "sigint")


def case_bulk_sigterm(c):
    bulk_signalled(c, signal.SIGTERM, 143, "sigterm")


def case_bulk_sigint_text(c):
    # Without --json: the summary, and one more line with every count.
    sink = SmtpSink("sigint-text", 1)
    args = [a for a in bulk_args(sink.port, 100, "--grace", "30") if a != "--json"]
    p = start_mailroom(*args)
    try:
        c.require(sink.wait_messages(1), "no message reached smtp-sink")
        p.send_signal(signal.SIGINT)
    finally:
        r = finish(p)
    sink.stop()
    c.require(r.rc == 130, f"want exit 130: {r.why()}")
    text = r.out.decode()
    c.check(re.search(r"^sent \d+, failed 0, unknown 0 of 100 in ", text, re.M),
            f"summary line: {text!r}")
    m = re.search(r"^stopped by SIGINT: delivered (\d+), partial 0, failed 0, unknown 0, "
                  r"not attempted (\d+)$", text, re.M)
    c.require(m, f"stopped line: {text!r}")
    c.eq("delivered + not attempted", int(m.group(1)) + int(m.group(2)), 100)
    c.eq("delivered, against smtp-sink's dump", int(m.group(1)), sink.messages())


def case_bulk_double_signal(c):
    # The final dot's reply would take 30 s and the grace is 60 s: only the second signal can
    # end the run before the test's limit. What was under way is unknown (its final dot was
    # written: smtp-sink has it) or failed.
    sink = SmtpSink("double", 30)
    count = 200
    p = start_mailroom(*bulk_args(sink.port, count, "--grace", "60"))
    try:
        c.require(sink.wait_messages(1), "no message reached smtp-sink")
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
    finally:
        r = finish(p, timeout=20)
    dumped = sink.messages()
    sink.stop()
    c.require(r.rc == 130, f"want exit 130: {r.why()}")
    rep = r.json(c)
    check_accounted(c, rep, count)
    c.check(rep["unknown"] >= 1, f"no send reported unknown: {rep}")
    c.check(rep["delivered"] <= dumped <= rep["delivered"] + rep["unknown"],
            f"smtp-sink has {dumped} messages; report {rep}")


def case_bulk_deadline_silent(c):
    # A server that accepts and never greets: without --deadline the greeting timeout (here
    # 60 s) would hold every send; with it the run ends, every message counted, exit 75.
    silent = Listener(None)
    r = mailroom(*bulk_args(silent.port, 50, "--deadline", "2", "--grace", "1"), timeout=40)
    silent.stop()
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    check_accounted(c, rep, 50)
    c.eq("delivered", rep["delivered"], 0)
    c.eq("stopped_by", rep.get("stopped_by"), "deadline")


def case_bulk_dead_port(c):
    # 5 000 messages to a port nobody listens on (bound, never listening: refused at once).
    # The pool's circuit breaker fails the waiting sends fast: the run ends long before the
    # test's limit, every message failed, exit 75.
    with socket.socket() as held:
        held.bind((LOOPBACK, 0))
        r = mailroom(*bulk_args(held.getsockname()[1], 5000, "--timeout", "5"), timeout=60)
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    check_accounted(c, rep, 5000)
    c.eq("failed", rep["failed"], 5000)
    c.check(rep.get("breaker_trips", 0) >= 1, f"the breaker never opened: {rep}")


def case_bulk_silent_server(c):
    # The same against a server that accepts and never greets (greeting timeout 2 s): no
    # --deadline, yet the run ends within the test's limit, every message failed, exit 75.
    silent = Listener(None)
    r = mailroom(*bulk_args(silent.port, 5000, "--timeout", "2"), timeout=120)
    silent.stop()
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    check_accounted(c, rep, 5000)
    c.eq("failed", rep["failed"], 5000)


def case_bulk_deadline_met(c):
    # A deadline the run meets changes nothing: exit 0, nothing left unattempted.
    sink = SmtpSink("deadline-met", 0)
    r = mailroom(*bulk_args(sink.port, 20, "--deadline", "60"))
    sink.stop()
    c.require(r.rc == EX_OK, r.why())
    rep = r.json(c)
    c.eq("delivered", rep["delivered"], 20)
    c.eq("not_attempted", rep.get("not_attempted"), 0)
    c.eq("stopped_by", rep.get("stopped_by"), None)
    c.eq("smtp-sink's dump", sink.messages(), 20)


def case_bulk_help(c):
    r = mailroom("bulk", "--help")
    c.require(r.rc == EX_OK, r.why())
    for flag in (b"--deadline SECONDS", b"--grace SECONDS", b"--max-size BYTES",
                 b"not_attempted"):
        c.check(flag in r.out, f"bulk --help lacks {flag!r}")
    for cmd in ("compose", "send"):
        r = mailroom(cmd, "--help")
        c.check(b"--max-size BYTES" in r.out, f"{cmd} --help lacks --max-size")


# ---- mailroom sink and signals ----------------------------------------------------------------

def sink_signalled(c, sig):
    p = start_mailroom("sink", "--listen", f"{LOOPBACK}:0", "--max-seconds", "60")
    line = peerlib.read_line(p.stdout, 10)
    try:
        c.require(line.startswith(b"listening on 127.0.0.1:"), f"sink said {line!r}")
        port = int(line.rsplit(b":", 1)[1])
        with smtplib.SMTP(LOOPBACK, port, local_hostname="client.test") as s:
            for n in range(3):
                s.sendmail("a@example.com", ["b@example.com"], b"Subject: %d\r\n\r\nx\r\n" % n)
    finally:
        p.send_signal(sig)  # once: a second one may come after the sink stopped catching them
        r = finish(p, timeout=10)
    c.eq("exit status", r.rc, 0)
    c.check(b"received 3 messages" in r.out, f"summary: {r.out!r}")


def case_sink_sigint(c):
    sink_signalled(c, signal.SIGINT)


def case_sink_sigterm(c):
    sink_signalled(c, signal.SIGTERM)


def case_sink_signal_at_once(c):
    # A signal sent the moment the "listening" line is read still ends with the count.
    for _ in range(5):
        p = start_mailroom("sink", "--listen", f"{LOOPBACK}:0", "--max-seconds", "60")
        line = peerlib.read_line(p.stdout, 10)
        p.send_signal(signal.SIGINT)
        r = finish(p, timeout=10)
        c.require(line.startswith(b"listening on "), f"sink said {line!r}")
        c.require(r.rc == 0 and b"received 0 messages" in r.out, r.why())


# ---- input files ------------------------------------------------------------------------------

COMPOSE = ["compose", "--from", "a@example.com", "--to", "b@example.com", "--subject", "x"]


def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def expect_refused(c, what, args, status, reason, stdin=subprocess.DEVNULL):
    r = mailroom(*args, stdin=stdin, timeout=15)
    if not c.check(r.rc == status, f"{what}: want exit {status}: {r.why()}"):
        return
    c.check(one_line(r), f"{what}: want one line on stderr, got {r.err!r}")
    c.check(reason in r.err, f"{what}: stderr {r.err!r} lacks {reason!r}")


def case_input_not_regular(c):
    fifo = os.path.join(TMP, "fifo")
    os.mkfifo(fifo)
    folder = os.path.join(TMP, "folder")
    os.mkdir(folder)
    kinds = [("/dev/zero", b"a character device"), (fifo, b"a FIFO"), (folder, b"a directory")]
    for path, kind in kinds:
        for flag in ("--text-file", "--html-file", "--attach"):
            expect_refused(c, f"{flag} {path}", [*COMPOSE, "--text", "t", flag, path]
                           if flag != "--text-file" else [*COMPOSE, flag, path],
                           EX_NOINPUT, kind + b", not a regular file")
        expect_refused(c, f"--inline {path}", [*COMPOSE, "--html", "<img src=cid:x>",
                                               "--inline", "x=" + path],
                       EX_NOINPUT, kind)
        # --eml is read by send and bulk; the server is never reached.
        expect_refused(c, f"send --eml {path}",
                       ["send", "--server", "smtp://127.0.0.1:9", "--tls", "none", "--eml",
                        path], EX_NOINPUT, kind)
        expect_refused(c, f"bulk --eml {path}",
                       ["bulk", "--server", "smtp://127.0.0.1:9", "--tls", "none", "--count",
                        "1", "--eml", path], EX_NOINPUT, kind)


def case_input_proc_file(c):
    # /proc says its files are 0 octets long; they are read to their end all the same.
    r = mailroom(*COMPOSE, "--text-file", "/proc/self/status")
    c.require(r.rc == EX_OK, r.why())
    c.check(b"Name:" in r.out and b"VmPeak" in r.out, f"body: {r.out[-300:]!r}")
    r = mailroom(*COMPOSE, "--text", "t", "--attach", "/proc/self/status")
    c.require(r.rc == EX_OK, r.why())
    c.check(b'filename="status"' in r.out or b"filename=status" in r.out,
            f"no attachment named status: {r.out[-600:]!r}")
    c.check(b"Content-Transfer-Encoding" in r.out.split(b"status", 1)[-1],
            "the attachment has no body")


def case_input_proc_eml(c):
    # --eml from /proc, whose files stat calls empty: a child names itself "From: a@x.io"
    # (/proc/PID/comm holds at most 15 octets, so no To fits). Read to its end, the message
    # has a From and lacks a To; taken as empty, it would lack the From.
    child = subprocess.Popen(
        [peerlib.PYTHON, "-c", "open('/proc/self/comm', 'w').write('From: a@x.io')\n"
         "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    STOPPERS.append(child.kill)
    comm = f"/proc/{child.pid}/comm"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and open(comm, "rb").read() != b"From: a@x.io\n":
        time.sleep(0.05)
    c.require(os.stat(comm).st_size == 0, "/proc's comm has a size")
    r = mailroom("send", "--server", "smtp://127.0.0.1:9", "--tls", "none", "--eml", comm)
    child.kill()
    child.wait()
    c.eq("exit status", r.rc, EX_DATAERR)
    c.check(b"no To, Cc or Bcc" in r.err, f"stderr {r.err!r}")


def case_input_max_size(c):
    big = write("big.txt", b"x" * 3000 + b"\n")
    small = write("small.txt", b"y" * 100 + b"\n")
    for flag in ("--text-file", "--html-file", "--attach"):
        args = [*COMPOSE, flag, big] if flag == "--text-file" else [*COMPOSE, "--text", "t",
                                                                     flag, big]
        expect_refused(c, f"{flag} over --max-size 2K", [*args, "--max-size", "2K"],
                       EX_DATAERR, b"larger than 2048 octets (--max-size)")
        r = mailroom(*args, "--max-size", "4K")
        c.check(r.rc == EX_OK, f"{flag} under --max-size 4K: {r.why()}")
    # --max-size before or after the file, and standard input too.
    expect_refused(c, "--max-size first", [*COMPOSE, "--max-size", "1000", "--text-file", big],
                   EX_DATAERR, b"(--max-size)")
    with open(big, "rb") as f:
        expect_refused(c, "standard input", [*COMPOSE, "--text-file", "-", "--max-size", "1K"],
                       EX_DATAERR, b"standard input is larger than 1024 octets", stdin=f)
    with open("/dev/zero", "rb") as f:
        expect_refused(c, "standard input from /dev/zero", [*COMPOSE, "--text-file", "-"],
                       EX_DATAERR, b"larger than 67108864 octets", stdin=f)
    eml = write("m.eml", b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\n" +
                b"z" * 5000 + b"\r\n")
    expect_refused(c, "--eml over --max-size",
                   ["send", "--server", "smtp://127.0.0.1:9", "--tls", "none", "--eml", eml,
                    "--max-size", "4K"], EX_DATAERR, b"(--max-size)")
    r = mailroom(*COMPOSE, "--text-file", small, "--max-size", "1K")
    c.check(r.rc == EX_OK, f"a small file: {r.why()}")
    r = mailroom(*COMPOSE, "--text", "t", "--max-size", "12X")
    c.eq("--max-size 12X: exit", r.rc, 64)


# ---- send --json after a timeout ---------------------------------------------------------------

def send_json(c, port, *rcpts):
    args = ["send", "--server", f"smtp://{LOOPBACK}:{port}", "--tls", "none", "--timeout", "1",
            "--json", "--from", "a@example.com", "--subject", "s", "--text", "t"]
    for r in rcpts:
        args += ["--to", r]
    return mailroom(*args, timeout=30)


def case_json_timeout_at_rcpt(c):
    # RCPT for the first recipient is answered, then the server says nothing: the second
    # recipient was refused by nobody.
    peer = Listener(scripted([("EHLO", EHLO_PLAIN), ("RCPT TO:<SECOND", None)]))
    r = send_json(c, peer.port, "first@example.com", "second@example.com")
    peer.stop()
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    c.eq("rejected", rep.get("rejected"), [])
    c.eq("unanswered", rep.get("unanswered"), ["second@example.com"])
    c.eq("accepted", rep.get("accepted"), ["first@example.com"])
    c.check(rep.get("error"), f"no error: {rep}")


def case_json_timeout_at_data(c):
    # One recipient refused by a reply, then DATA goes unanswered: the refusal stays under
    # rejected, with its code; nothing else is.
    peer = Listener(scripted([("EHLO", EHLO_PLAIN),
                              ("RCPT TO:<SECOND", b"550 5.1.1 no such user\r\n"),
                              ("DATA", None)]))
    r = send_json(c, peer.port, "first@example.com", "second@example.com")
    peer.stop()
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    c.eq("rejected addresses", [x.get("address") for x in rep.get("rejected", [])],
         ["second@example.com"])
    c.eq("rejected code", [x.get("code") for x in rep.get("rejected", [])], [550])
    c.eq("unanswered", rep.get("unanswered"), [])


def case_json_timeout_at_mail(c):
    peer = Listener(scripted([("EHLO", EHLO_PLAIN), ("MAIL", None)]))
    r = send_json(c, peer.port, "first@example.com", "second@example.com")
    peer.stop()
    c.require(r.rc == EX_TEMPFAIL, f"want exit 75: {r.why()}")
    rep = r.json(c)
    c.eq("rejected", rep.get("rejected"), [])
    c.eq("accepted", rep.get("accepted"), [])
    c.eq("unanswered", sorted(rep.get("unanswered", [])),
         ["first@example.com", "second@example.com"])


CASES = [
    ("bulk-sigint", case_bulk_sigint),
    ("bulk-sigterm", case_bulk_sigterm),
    ("bulk-sigint-text", case_bulk_sigint_text),
    ("bulk-double-signal", case_bulk_double_signal),
    ("bulk-deadline-silent-server", case_bulk_deadline_silent),
    ("bulk-deadline-met", case_bulk_deadline_met),
    ("bulk-dead-port", case_bulk_dead_port),
    ("bulk-silent-server", case_bulk_silent_server),
    ("bulk-help", case_bulk_help),
    ("sink-sigint", case_sink_sigint),
    ("sink-sigterm", case_sink_sigterm),
    ("sink-signal-at-once", case_sink_signal_at_once),
    ("input-not-regular", case_input_not_regular),
    ("input-proc-file", case_input_proc_file),
    ("input-proc-eml", case_input_proc_eml),
    ("input-max-size", case_input_max_size),
    ("json-timeout-at-rcpt", case_json_timeout_at_rcpt),
    ("json-timeout-at-data", case_json_timeout_at_data),
    ("json-timeout-at-mail", case_json_timeout_at_mail),
]


def main(argv):
    global MAILROOM, TMP, SANITIZED
    MAILROOM = os.path.abspath(argv[1])
    SANITIZED = sanitized(MAILROOM)
    only = set(argv[2:])
    TMP = tempfile.mkdtemp(prefix="mailroom-cli-reliability-")
    try:
        for name, fn in CASES:
            if not only or name in only:
                run_case(name, fn)
    finally:
        for stop in reversed(STOPPERS):
            try:
                stop()
            except Exception:
                pass
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"cli-reliability: {TALLY.passed} passed, {TALLY.failed} failed", flush=True)
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
# Rate-limiter store benchmark (issue 9): what keeping the --rate buckets in Redis costs and how
# exact the shared rate stays under load. Prints figures; asserts nothing (goals are printed
# beside them). Everything runs on 127.0.0.1, started and stopped (by PID) by this script:
# its own redis-server (a free port, --save '' --appendonly no, a scratch --dir) and sinks.
#
#  1. overhead   `mailroom bulk --count N --connections 8 --size 2048 --rate 10000000/s` (a
#                rate far above what the sink takes) against Postfix's smtp-sink, with the
#                buckets local and with --limit-store redis://..., alternating (local, redis,
#                redis, local, ...), --runs each: msgs/s (the tool's own JSON figure) of
#                every run, the ratio of the medians (goal >= 0.9) and the Redis commands per
#                message from the tool's report (goal <= 0.1).
#  2. accuracy   --procs processes x 4 connections sharing --rate 5000/s --burst 500 via one
#                --limit-key, started together, --per-proc messages each, against
#                `mailroom sink --maildir DIR` (one file per message; its mtime_ns is the
#                arrival): the fleet's busiest 1-s window (sliding over arrivals; bound
#                rate + burst) and the span first to last arrival against the ideal
#                (total - burst) / rate. The sink's own ceiling is measured first (one
#                unlimited bulk run into it), so a slow sink shows as such.
#  3. grants     BUILD_DIR/bench/grants_bench (permits per second one process takes with no
#                SMTP at all: from the local Redis, and from its own buckets), if it is built;
#                the mailroom tool has no SMTP-free way to measure this.
#
# Usage: /usr/bin/python3 bench/run_limit_store.py [BUILD_DIR] [--runs 3] [--count 40000]
#            [--procs 8] [--per-proc 4000] [--rate 5000] [--burst 500] [--skip overhead,...]
#   BUILD_DIR  a build with examples/mailroom (default: build-bench; this script builds
#              nothing: `ninja -C BUILD_DIR examples/mailroom bench/grants_bench` first)
# Needs: redis-server (Debian's redis-server package), postfix (smtp-sink; no mail daemon).
# Run with Debian's /usr/bin/python3.
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

LOOPBACK = "127.0.0.1"
REDIS_SERVER = "/usr/bin/redis-server"
SINK_BIN = "/usr/sbin/smtp-sink"
RUN_TIMEOUT = 300


class Fatal(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def free_port():
    for _ in range(20):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        # smtp-sink binds with SO_REUSEPORT: it would share a port another server holds.
        with socket.socket() as c:
            c.settimeout(0.5)
            if c.connect_ex((LOOPBACK, port)) != 0:
                return port
    raise Fatal("found no free port on 127.0.0.1")


def greets(port, prefix):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as c:
            c.settimeout(2)
            if prefix is None:  # Redis: says nothing first
                c.sendall(b"PING\r\n")
                return c.recv(64).startswith(b"+PONG")
            return c.recv(512).startswith(prefix)
    except OSError:
        return False


class Server:
    """A child process started in its own session and stopped by its PID."""

    def __init__(self, name, work):
        self.name, self.work = name, work
        self.proc = None
        self.port = None

    def spawn(self, argv, ready, stdout=None):
        logf = open(os.path.join(self.work, self.name + ".log"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or logf,
                                     stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if ready():
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Redis(Server):
    def start(self):
        d = os.path.join(self.work, "redis")
        os.makedirs(d, exist_ok=True)
        for _ in range(3):
            self.port = free_port()
            if self.spawn([REDIS_SERVER, "--bind", LOOPBACK, "--port", str(self.port),
                           "--save", "", "--appendonly", "no", "--dir", d,
                           "--daemonize", "no"], lambda: greets(self.port, None)):
                return self
        raise Fatal("redis-server did not come up")

    def url(self):
        return f"redis://{LOOPBACK}:{self.port}"

    def info_commands(self):
        """total_commands_processed, from INFO stats."""
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as c:
            c.sendall(b"INFO stats\r\n")
            data = b""
            while b"total_commands_processed" not in data or not data.endswith(b"\r\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        for line in data.decode().splitlines():
            if line.startswith("total_commands_processed:"):
                return int(line.split(":")[1])
        return None


class SmtpSink(Server):
    def start(self):
        for _ in range(3):
            self.port = free_port()
            user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink insists, as root
            if self.spawn([SINK_BIN, "-4", "-m", "1024", *user, f"{LOOPBACK}:{self.port}",
                           "1024"], lambda: greets(self.port, b"220 ")):
                return self
        raise Fatal("smtp-sink did not come up")


class MaildirSink(Server):
    """`mailroom sink --maildir DIR` on a port it picks (its first line names it)."""

    def __init__(self, name, work, tool):
        super().__init__(name, work)
        self.tool = tool
        # On tmpfs when there is one: a disk's journal should not set the arrival times.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
            else work
        self.maildir = os.path.join(shm, f"{os.path.basename(work)}-{name}-maildir")

    def start(self):
        shutil.rmtree(self.maildir, ignore_errors=True)
        out = os.path.join(self.work, self.name + ".out")
        with open(out, "wb") as f:
            def ready():
                with open(out) as g:
                    line = g.readline()
                if line.startswith("listening on ") and line.endswith("\n"):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                    return greets(self.port, b"220 ")
                return False
            if not self.spawn([self.tool, "sink", "--listen", f"{LOOPBACK}:0", "--maildir",
                               self.maildir, "--max-seconds", "3600"], ready, stdout=f):
                raise Fatal("mailroom sink did not come up")
        return self

    def arrivals(self):
        new = os.path.join(self.maildir, "new")
        return sorted(os.stat(os.path.join(new, n)).st_mtime_ns / 1e9 for n in os.listdir(new))


def bulk(tool, port, count, conns, *extra, proc=False):
    argv = [tool, "bulk", "--server", f"smtp://{LOOPBACK}:{port}", "--tls", "none",
            "--count", str(count), "--connections", str(conns), "--size", "2048",
            "--progress", "never", "--json", "--timeout", "60", *extra]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p if proc else result(p)


def result(p):
    try:
        out, err = p.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    try:
        rep = json.loads(out)
    except ValueError:
        raise Fatal(f"bulk: exit {p.returncode}, no JSON: {out[-300:]!r} {err[-300:]!r}")
    if p.returncode != 0 or rep.get("delivered") != rep.get("sent"):
        raise Fatal(f"bulk: exit {p.returncode}: {out[-300:]!r} {err[-300:]!r}")
    return rep


# ---- 1. overhead ------------------------------------------------------------------------------

def overhead(args, tool, work):
    sink = SmtpSink("smtp-sink", work).start()
    redis = Redis("redis-overhead", work).start()
    try:
        rate = ["--rate", "10000000/s"]
        bulk(tool, sink.port, 2000, 8, *rate)  # warm-up
        runs = {"local": [], "redis": []}
        order = []
        for i in range(args.runs):
            order += ["local", "redis"] if i % 2 == 0 else ["redis", "local"]
        for n, kind in enumerate(order):
            extra = list(rate)
            if kind == "redis":
                extra += ["--limit-store", redis.url(), "--limit-key", f"overhead-{n}"]
            c0 = redis.info_commands()
            rep = bulk(tool, sink.port, args.count, 8, *extra)
            c1 = redis.info_commands()
            st = rep.get("limit_store") or {}
            runs[kind].append(rep)
            log(f"overhead run {n + 1} {kind:5}: {rep['messages_per_second']:8.0f} msgs/s, "
                f"{rep['seconds']:.2f} s, cpu {rep['cpu_seconds']:.2f} s"
                + (f", {st.get('commands')} Redis commands ({st.get('commands_per_message')}"
                   f" per message; INFO total_commands_processed +{c1 - c0}, which counts the calls"
                   f" inside Redis functions too), {st.get('leases')} leases, mean "
                   f"lease {st.get('mean_lease')}, redis_wait_ms {st.get('redis_wait_ms')}"
                   if kind == "redis" else ""))
        med = {k: statistics.median(r["messages_per_second"] for r in v)
               for k, v in runs.items()}
        cpm = statistics.median((r.get("limit_store") or {}).get("commands_per_message", 0)
                                for r in runs["redis"])
        log(f"overhead: 2 KiB x 8 connections, {args.count} messages per run, smtp-sink: "
            f"local {med['local']:.0f} msgs/s, redis {med['redis']:.0f} msgs/s (medians of "
            f"{args.runs}); ratio {med['redis'] / med['local']:.3f} (goal >= 0.9); Redis "
            f"commands per message {cpm:.4f} (goal <= 0.1)")
    finally:
        redis.stop()
        sink.stop()


# ---- 2. accuracy under load -------------------------------------------------------------------

def busiest(ts, width):
    best, j = 0, 0
    for i in range(len(ts)):
        while j < len(ts) and ts[j] < ts[i] + width:
            j += 1
        best = max(best, j - i)
    return best


def accuracy(args, tool, work):
    sink = MaildirSink("maildir-sink", work, tool).start()
    redis = Redis("redis-accuracy", work).start()
    try:
        total = args.procs * args.per_proc
        rep = bulk(tool, sink.port, total, args.procs * 4, "--rate", "10000000/s")
        ceiling = rep["messages_per_second"]
        log(f"accuracy: the maildir sink's ceiling: {ceiling:.0f} msgs/s (one unlimited "
            f"bulk, {args.procs * 4} connections, {total} messages)")
        sink.stop()
        sink.start()  # an empty maildir
        procs = [bulk(tool, sink.port, args.per_proc, 4, "--rate", f"{args.rate}/s",
                      "--burst", str(args.burst), "--limit-store", redis.url(),
                      "--limit-key", "accuracy", proc=True) for _ in range(args.procs)]
        reps = [result(p) for p in procs]
        ts = sink.arrivals()
        ideal = (total - args.burst) / args.rate
        span = ts[-1] - ts[0] if ts else 0
        cpm = [(r.get("limit_store") or {}).get("commands_per_message") for r in reps]
        leases = [(r.get("limit_store") or {}).get("mean_lease") for r in reps]
        refunded = sum((r.get("limit_store") or {}).get("refunded_tokens", 0) for r in reps)
        log(f"accuracy: {args.procs} processes x 4 connections x {args.per_proc} messages "
            f"sharing {args.rate}/s burst {args.burst}: {len(ts)} arrived of {total}; "
            f"busiest 1-s window {busiest(ts, 1.0)} (bound {args.rate + args.burst}); span "
            f"{span:.3f} s, ideal {ideal:.3f} s ({(span / ideal - 1) * 100:+.1f} %); Redis "
            f"commands per message per process {cpm}, mean lease {leases}, refunded tokens "
            f"{refunded}")
        worst = max(range(len(ts)), key=lambda i: sum(1 for t in ts[i:i + 2 * args.rate]
                                                      if t < ts[i] + 1.0))
        log(f"accuracy: the busiest window starts {ts[worst] - ts[0]:.3f} s in; arrivals per "
            "100 ms from 0.5 s before it: " + " ".join(
                str(sum(1 for t in ts if ts[worst] - 0.5 + k / 10 <= t < ts[worst] - 0.4
                        + k / 10)) for k in range(16)))
    finally:
        redis.stop()
        sink.stop()
        shutil.rmtree(sink.maildir, ignore_errors=True)


# ---- 3. grants --------------------------------------------------------------------------------

def grants(args, build, work):
    exe = os.path.join(build, "bench", "grants_bench")
    if not os.access(exe, os.X_OK):
        log(f"grants: no {exe} (ninja -C {build} bench/grants_bench); the mailroom tool has no "
            "way to take grants without SMTP")
        return
    redis = Redis("redis-grants", work).start()
    try:
        for extra in (["--redis", redis.url()], ["--redis", redis.url(), "--workers", "1"],
                      []):
            p = subprocess.run([exe, "--seconds", "3", *extra], capture_output=True,
                               timeout=RUN_TIMEOUT)
            log("grants: " + (p.stdout.decode().strip() or
                              f"exit {p.returncode}: {p.stderr.decode()[-300:]}"))
    finally:
        redis.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=40000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--per-proc", type=int, default=4000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--burst", type=int, default=500)
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    tool = os.path.join(args.build, "examples", "mailroom")
    if not os.access(tool, os.X_OK):
        sys.exit(f"run_limit_store.py: no {tool}: ninja -C {args.build} examples/mailroom")
    for exe in (REDIS_SERVER, SINK_BIN):
        if not os.access(exe, os.X_OK):
            sys.exit(f"run_limit_store.py: no {exe}")
    skip = set(filter(None, args.skip.split(",")))
    work = tempfile.mkdtemp(prefix="mailroom-limit-store-bench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log(f"mailroom limit-store bench: {tool}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")
    try:
        if "overhead" not in skip:
            overhead(args, tool, work)
        if "accuracy" not in skip:
            accuracy(args, tool, work)
        if "grants" not in skip:
            grants(args, args.build, work)
    except Fatal as e:
        sys.exit(f"run_limit_store.py: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

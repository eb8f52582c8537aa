#!/usr/bin/python3
# DKIM benchmark: what signing costs, on this machine, in one run.
#
# 1. Per message (bench/dkim_bench, bench/dkim_python.py): mailroom builds the same message from
#    a template builder without a signature and with one (rsa-sha256 with a 2048-bit key,
#    ed25519-sha256, or both), at 2 KiB (text) and 100 KiB (text and a 72 KiB attachment,
#    base64), and signs its unsigned wire form read once with message::from_wire (dkim_sign,
#    what `--eml` does); Python's dkimpy (Debian's python3-dkim, python3-nacl) signs the same
#    unsigned wire forms with the same keys, canonicalization (relaxed/relaxed) and header fields,
#    in one Python process (start-up not counted). The two programs take turns for --rounds
#    rounds; the table shows medians and the ratio dkimpy / mailroom. dkim_python.py first checks
#    that dkimpy verifies mailroom's signatures (and refuses a tampered copy).
# 2. Throughput (`mailroom bulk`): the tool composes and sends messages of about 2 KiB and
#    100 KiB over --conns connections (8) to Postfix's smtp-sink on 127.0.0.1 without a
#    signature, with --dkim-key for rsa-2048, for ed25519 and for both; interleaved rounds, msgs/s
#    and client CPU per message, medians, and the signed rates over the unsigned one.
#
# Usage: /usr/bin/python3 bench/run_dkim.py [BUILD_DIR] [options]
#   BUILD_DIR  a release build with bench/dkim_bench and examples/mailroom (default build-bench);
#              this script builds nothing: meson setup BUILD_DIR --buildtype=release &&
#              ninja -C BUILD_DIR bench/dkim_bench examples/mailroom
#   --rounds R (3)  --seconds S (1: per workload per program and round)
#   --bulk-seconds S (4: about how long each bulk run lasts)  --conns K (8)
#   --no-sign | --no-bulk (skip a part)  --out FILE.json (every run and the medians)
# Exit status: 1 when a run failed or a signature did not verify.
# Needs: python3-dkim, python3-nacl (part 1); postfix's smtp-sink and time (part 2; no mail
# daemon); openssl when the keys are not made by part 1.
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_load  # noqa: E402  (the sink, one timed run, the mailroom peer)

PYTHON = "/usr/bin/python3"
ALGS = ["rsa", "ed25519", "both"]
SIZES = {"2k": 2048, "100k": 102400}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def parse_lines(text, into):
    """`IMPL SIZE-ALG k=v ...` lines into into[(impl, label, key)] lists; verify lines kept."""
    checks = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 3:
            continue
        if f[0] == "verify":
            checks.append(line)
            continue
        for kv in f[2:]:
            k, _, v = kv.partition("=")
            into.setdefault((f[0], f[1], k), []).append(float(v))
    return checks


def run(argv, timeout=600):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.stderr.strip():
        log(run_load.tail(p.stderr))
    return p.returncode, p.stdout


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sign_part(args, bench, work):
    vals, ok, checks = {}, True, []
    for r in range(1, args.rounds + 1):
        steps = [("mailroom", [bench, "--dir", work, "--seconds", str(args.seconds)]),
                 ("dkimpy", [PYTHON, os.path.join(HERE, "dkim_python.py"), "--dir", work,
                             "--seconds", str(args.seconds)])]
        if r % 2 == 0:
            steps.reverse()
        if r == 1 and steps[0][0] == "dkimpy":
            steps.reverse()  # dkim_bench writes the messages and keys dkim_python.py reads
        for name, argv in steps:
            log("round %d/%d: %s (load %s)" % (r, args.rounds, name, load_avg()))
            rc, out = run(argv)
            for line in out.splitlines():
                log("  " + line)
            checks += parse_lines(out, vals)
            if rc != 0:
                log("%s exited with status %d" % (name, rc))
                ok = False
    if any("FAILED" in c or "VERIFIES" in c for c in checks):
        ok = False
    med = {k: median(v) for k, v in vals.items()}
    print("\nPer message, microseconds (medians of %d rounds, %g s each):" % (args.rounds,
                                                                          args.seconds))
    print("%-5s %-8s %9s %11s %9s %11s %11s %10s %10s" % (
        "size", "alg", "build", "build+sign", "overhead", "sign --eml", "dkimpy",
        "dkimpy/eml", "dkimpy/ovh"))
    rows = []
    for size in SIZES:
        build = med.get(("mailroom", size + "-none", "build_us"))
        for alg in ALGS:
            label = "%s-%s" % (size, alg)
            bs = med.get(("mailroom", label, "build_sign_us"))
            eml = med.get(("mailroom", label, "sign_us"))
            py = med.get(("dkimpy", label, "sign_us"))
            ovh = bs - build if bs is not None and build is not None else None
            row = dict(size=size, alg=alg, build_us=build, build_sign_us=bs, overhead_us=ovh,
                       sign_eml_us=eml, dkimpy_us=py,
                       ratio_eml=py / eml if py and eml else None,
                       ratio_overhead=py / ovh if py and ovh and ovh > 0 else None)
            rows.append(row)

            def num(x, fmt="%.1f"):
                return "-" if x is None else fmt % x
            print("%-5s %-8s %9s %11s %9s %11s %11s %10s %10s" % (
                size, alg, num(build), num(bs), num(ovh), num(eml), num(py),
                num(row["ratio_eml"], "%.1fx"), num(row["ratio_overhead"], "%.1fx")))
    print("(build: build() + serialize() from a template builder, no signature; overhead:"
          " build+sign - build;\n sign --eml: dkim_sign of a message read once with from_wire;"
          " ratios: dkimpy's dkim.sign per message\n over mailroom's sign --eml and over its"
          " overhead)")
    for c in sorted(set(checks)):
        print("  " + c)
    return ok, rows, {"%s %s %s" % k: v for k, v in vals.items()}


def ensure_keys(work):
    for name, argv in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ed25519", ["-algorithm", "ED25519"])):
        path = os.path.join(work, "key-%s.pem" % name)
        if not os.path.exists(path):
            subprocess.run(["openssl", "genpkey"] + argv + ["-out", path], check=True,
                           stdout=subprocess.DEVNULL)


def bulk_part(args, binary, work):
    ensure_keys(work)
    peers = []
    for alg in ["none"] + ALGS:
        extra = ["--from", run_load.SENDER, "--to", run_load.RCPT]
        for sel in {"none": [], "both": ["rsa", "ed25519"]}.get(alg, [alg]):
            extra += ["--dkim-key", os.path.join(work, "key-%s.pem" % sel), "--dkim-domain",
                      "example.com", "--dkim-selector", sel]
        p = run_load.Mailroom("mailroom-compose", binary, 4, extra)
        p.name = "bulk-" + alg
        peers.append(p)
    why = peers[0].probe(args.build)
    if why:
        raise run_load.Fatal(why)
    rc, out = run_load.run_quiet([binary, "bulk", "--help"], timeout=20)
    if "--dkim-key" not in out:
        raise run_load.Fatal("'%s bulk --help' has no --dkim-key" % binary)

    sink = run_load.SmtpSink(work)
    sink.start()
    runs, ok = [], True
    try:
        counts = {}
        for size in SIZES:
            for p in peers:
                n = 200
                for _ in range(2):  # pilots: size the count to about --bulk-seconds a run
                    rec = run_load.run_one(p, size, args.conns, n, sink, {}, work, 300)
                    if "error" in rec:
                        raise run_load.Fatal("%s %s: %s" % (p.name, size, rec["error"]))
                    if rec["wall_s"] >= 1:
                        break
                    n = max(n, int(rec["msgs_per_s"] * 1.2))
                counts[p.name, size] = max(200, int(rec["msgs_per_s"] * args.bulk_seconds))
        order = [(p, size) for size in SIZES for p in peers]
        for r in range(1, args.rounds + 1):
            for p, size in (order if r % 2 else list(reversed(order))):
                rec = run_load.run_one(p, size, args.conns, counts[p.name, size], sink, {}, work,
                                       300)
                rec["round"] = r
                runs.append(rec)
                if "error" in rec:
                    ok = False
                    log("round %d %s %s: FAILED: %s" % (r, p.name, size, rec["error"]))
                else:
                    log("round %d %s %s: %d msgs, %.0f msgs/s, client CPU %.3f ms/msg, sink "
                        "%.2f cores, box busy %.0f%%" % (
                            r, p.name, size, rec["count"], rec["msgs_per_s"],
                            rec["client_cpu_s"] * 1e3 / rec["count"], rec["sink_cores"],
                            rec["box_busy"] * 100))
    finally:
        sink.stop()

    print("\n`mailroom bulk`, %d connections, composing each message, to smtp-sink on "
          "127.0.0.1 (medians of %d rounds):" % (args.conns, args.rounds))
    print("%-5s %-8s %9s %9s %13s %10s %10s" % ("size", "dkim", "msgs/s", "min-max",
                                                 "CPU ms/msg", "sink cores", "vs none"))
    rows = []
    for size in SIZES:
        base = None
        for p in peers:
            good = [x for x in runs if x["peer"] == p.name and x["size"] == size
                    and "error" not in x]
            if not good:
                continue
            rate = median([x["msgs_per_s"] for x in good])
            cpu = median([x["client_cpu_s"] / x["count"] * 1e3 for x in good])
            sinkc = median([x["sink_cores"] for x in good])
            # Paired ratio: each round's signed rate over that round's unsigned one.
            paired = []
            for x in good:
                b = [y for y in runs if y["peer"] == "bulk-none" and y["size"] == size
                     and y.get("round") == x.get("round") and "error" not in y]
                if b:
                    paired.append(x["msgs_per_s"] / b[0]["msgs_per_s"])
            if p.name == "bulk-none":
                base = rate
            rows.append(dict(size=size, dkim=p.name[5:], msgs_per_s=rate, cpu_ms_per_msg=cpu,
                             sink_cores=sinkc, ratio=median(paired)))
            lo = min(x["msgs_per_s"] for x in good)
            hi = max(x["msgs_per_s"] for x in good)
            print("%-5s %-8s %9.0f %9s %13.3f %10.2f %10s" % (
                size, p.name[5:], rate, "%.0f-%.0f" % (lo, hi), cpu, sinkc,
                "-" if base is None or p.name == "bulk-none" else "%.2fx" % median(paired)))
    print("(vs none: the median of each round's rate over that round's unsigned rate)")
    return ok, rows, runs


def main():
    ap = argparse.ArgumentParser(description="DKIM signing cost: mailroom beside dkimpy, and "
                                 "mailroom bulk with and without signatures")
    ap.add_argument("build", nargs="?", default="build-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--bulk-seconds", type=float, default=4.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--no-sign", action="store_true")
    ap.add_argument("--no-bulk", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "dkim_bench")
    binary = os.path.join(args.build, "examples", "mailroom")
    if not args.no_sign and not os.access(bench, os.X_OK):
        raise run_load.Fatal("no %s: ninja -C %s bench/dkim_bench" % (bench, args.build))

    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rc, dkimpy = run_load.run_quiet(["dpkg-query", "-W", "-f=${Version}", "python3-dkim"])
    print("DKIM benchmark: %s (%d CPUs), %s, Python %s, dkimpy %s, load at start %s" % (
        cpu, os.cpu_count(), " ".join(platform.uname()[2:3]), platform.python_version(),
        dkimpy.strip() if rc == 0 else "?", load_avg()))
    work = tempfile.mkdtemp(prefix="mailroom-dkim-bench-")
    result, ok = {"cpu": cpu, "load_at_start": load_avg()}, True
    try:
        if not args.no_sign:
            good, result["sign"], result["sign_samples"] = sign_part(args, bench, work)
            ok = ok and good
        if not args.no_bulk:
            good, result["bulk"], result["bulk_runs"] = bulk_part(args, binary, work)
            ok = ok and good
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_at_end"] = load_avg()
    print("load at end %s" % result["load_at_end"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except run_load.Fatal as e:
        log("run_dkim.py: %s" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        log("run_dkim.py: interrupted")
        sys.exit(130)

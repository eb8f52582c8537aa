#!/usr/bin/python3
"""DKIM benchmark, Python side: Python's dkimpy (Debian's python3-dkim, python3-nacl for
ed25519) signing the messages bench/dkim_bench.cpp wrote with --dir DIR, with the same keys,
canonicalization (relaxed/relaxed) and header fields (h= of mailroom's signature), for
bench/run_dkim.py. One process times every workload, so interpreter start-up is not counted;
each dkim.sign() call is what an application calls per message (it parses the key too, as the
API takes the key's bytes each time).

Before timing it checks the signatures mailroom made (DIR/signed-SIZE-ALG.eml) with
dkim.verify, the public keys from DIR/dns-ALG.txt (no DNS), and that a tampered copy fails;
and that a signature of its own verifies. Prints, like dkim_bench:
    dkimpy SIZE-ALG sign_us=...
    verify SIZE-ALG mailroom=ok|FAILED tampered=fails|VERIFIES dkimpy=ok|FAILED

Run it with Debian's /usr/bin/python3. Usage: dkim_python.py --dir DIR [--seconds S]
[--only SIZE-ALG]... Exit status 1 when a check failed.
"""
import argparse
import base64
import re
import sys
import time

import dkim

SIZES = ("2k", "100k")
ALGS = {"rsa": [b"rsa"], "ed25519": [b"ed25519"], "both": [b"rsa", b"ed25519"]}
ALGORITHM = {b"rsa": b"rsa-sha256", b"ed25519": b"ed25519-sha256"}
DOMAIN = b"example.com"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def ed25519_seed(pem):
    """dkimpy wants the Ed25519 private key as the base64 of its 32-octet seed: the last 32
    octets of the PKCS#8 DER (RFC 8410) that `openssl genpkey` and dkim_bench write."""
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    der = base64.b64decode(body)
    if len(der) != 48:
        raise SystemExit("dkim_python.py: unexpected Ed25519 key (%d octets of DER)" % len(der))
    return base64.b64encode(der[-32:])


def signed_headers(signed):
    """The h= list of the first DKIM-Signature in `signed`, lowercase, as bytes."""
    m = re.search(rb"DKIM-Signature:(.*?)\r\n(?![ \t])", signed, re.S)
    h = re.search(rb"\bh=([^;]*)", m.group(1))
    return [re.sub(rb"\s", b"", x).lower() for x in h.group(1).split(b":")]


def run_for(seconds, f):
    """f untimed for a warm-up, then for at least `seconds`; returns microseconds per call."""
    warm = min(0.5, max(0.1, seconds / 4))
    start = time.perf_counter()
    while time.perf_counter() - start < warm:
        f()
    n = 0
    start = time.perf_counter()
    while True:
        f()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed * 1e6 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--only", action="append", default=[])
    args = ap.parse_args()
    d = args.dir.rstrip("/") + "/"
    keys = {b"rsa": read(d + "key-rsa.pem"), b"ed25519": ed25519_seed(read(d + "key-ed25519.pem"))}
    records = {s + b"._domainkey." + DOMAIN + b".": read(d + "dns-%s.txt" % s.decode()).strip()
               for s in keys}

    def dnsfunc(name, timeout=5):
        return records.get(name if name.endswith(b".") else name + b".")

    def sign(msg, selectors, headers):
        sigs = b""
        for s in selectors:
            sigs += dkim.sign(msg, s, DOMAIN, keys[s], canonicalize=(b"relaxed", b"relaxed"),
                              signature_algorithm=ALGORITHM[s], include_headers=headers)
        return sigs

    def verifies(msg, count):
        """Whether the first `count` signatures all verify (a body hash mismatch raises)."""
        v = dkim.DKIM(msg)
        try:
            return all(v.verify(idx=i, dnsfunc=dnsfunc) for i in range(count))
        except dkim.DKIMException:
            return False

    ok = True
    for size in SIZES:
        msg = read(d + "msg-%s.eml" % size)
        for alg, selectors in ALGS.items():
            label = "%s-%s" % (size, alg)
            if args.only and label not in args.only:
                continue
            signed = read(d + "signed-%s.eml" % label)
            headers = signed_headers(signed)
            # The checks: mailroom's signatures verify, a changed body breaks them, and
            # dkimpy's own signature of the unsigned form verifies.
            theirs = verifies(signed, len(selectors))
            tampered = signed.replace(b"quick brown fox", b"quick brown cat", 1)
            if tampered == signed:
                raise SystemExit("dkim_python.py: nothing to tamper with in " + label)
            tampered_ok = verifies(tampered, len(selectors))
            own = verifies(sign(msg, selectors, headers) + msg, len(selectors))
            print("verify %s mailroom=%s tampered=%s dkimpy=%s" % (
                label, "ok" if theirs else "FAILED", "VERIFIES" if tampered_ok else "fails",
                "ok" if own else "FAILED"), flush=True)
            ok = ok and theirs and own and not tampered_ok
            us = run_for(args.seconds, lambda: sign(msg, selectors, headers))
            print("dkimpy %s sign_us=%.3f bytes=%d" % (label, us, len(msg)), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Make a throwaway test PKI for the integration tests' TLS servers.

Usage: make_test_pki.py [--force] OUTDIR

Writes, in OUTDIR (created if missing), PEM files only, every key EC P-256 (PKCS#8, no
passphrase):

    ca.pem, ca.key                   test CA (CN=mailroom test CA), the trust anchor
    localhost.pem, localhost.key     server cert signed by the CA: CN=localhost,
                                     SAN DNS:localhost, IP:127.0.0.1
    wrong-name.pem, wrong-name.key   server cert signed by the CA for the wrong name:
                                     CN=wrong.example, SAN DNS:wrong.example
    expired.pem, expired.key         like localhost.pem, but valid only 2020-01-01 to 2020-02-01
    self-signed.pem, self-signed.key like localhost.pem, but self-signed (not from the CA)
    client.pem, client.key           client cert signed by the CA: CN=mailroom-test-client,
                                     extendedKeyUsage clientAuth
    complete                         written last: the set is whole

Certificates other than expired.pem are valid from an hour ago for 30 days. A directory that
already holds a whole set with at least a day left is kept as it is (so running this again, or
from parallel tests, is harmless); --force makes a new set. New files replace old ones by
rename, never half-written.

Needs only the standard library and the `openssl` command (Debian's openssl package, OpenSSL
3.0): `openssl req` makes each key and request, `openssl ca` signs, because it is the 3.0 tool
that takes explicit -startdate/-enddate (needed for the expired certificate; `x509 -req` has
only -days). Run with Debian's /usr/bin/python3. Exit status 0 on success, 1 if openssl failed,
2 on bad usage.
"""

import datetime
import os
import shutil
import subprocess
import sys
import tempfile

VALID_DAYS = 30

# openssl configuration: a minimal `openssl ca` (no serial file, no subject rules) and one
# extension section per kind of certificate.
CONFIG = """\
[ ca ]
default_ca = test_ca

[ test_ca ]
database = {work}/index.txt
new_certs_dir = {work}
default_md = sha256
policy = policy_any
unique_subject = no
rand_serial = yes
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ ext_ca ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ ext_localhost ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ ext_wrong_name ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ ext_self_signed ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash

[ ext_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# (file stem, subject CN, extension section, signed by the CA?, validity or None for default)
CERTS = [
    ("localhost", "localhost", "ext_localhost", True, None),
    ("wrong-name", "wrong.example", "ext_wrong_name", True, None),
    ("expired", "localhost", "ext_localhost", True, ("200101000000Z", "200201000000Z")),
    ("self-signed", "localhost", "ext_self_signed", False, None),
    ("client", "mailroom-test-client", "ext_client", True, None),
]
STEMS = ["ca"] + [c[0] for c in CERTS]


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"make_test_pki: openssl {args[0]} failed:\n{r.stderr}")
        sys.exit(1)


def make_cert(work, cfg, stem, cn, ext, start, end, ca=True):
    """Key and request with `req`, then sign with `ca` (self-signed when ca is False)."""
    openssl("req", "-config", cfg, "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-noenc", "-subj", f"/CN={cn}",
            "-keyout", f"{stem}.key", "-out", f"{stem}.csr", cwd=work)
    signer = ["-cert", "ca.pem", "-keyfile", "ca.key"] if ca else ["-selfsign", "-keyfile",
                                                                    f"{stem}.key"]
    openssl("ca", "-config", cfg, "-batch", "-notext", *signer, "-extensions", ext,
            "-startdate", start, "-enddate", end, "-in", f"{stem}.csr",
            "-out", f"{stem}.pem", cwd=work)


def still_good(outdir):
    """A whole set from an earlier run, with more than a day of validity left."""
    if not all(os.path.exists(os.path.join(outdir, f"{s}.{e}")) for s in STEMS
               for e in ("pem", "key")) or not os.path.exists(os.path.join(outdir, "complete")):
        return False
    r = subprocess.run(["openssl", "x509", "-noout", "-checkend", "86400", "-in",
                        os.path.join(outdir, "ca.pem")], capture_output=True)
    return r.returncode == 0


def main(argv):
    force = "--force" in argv
    rest = [a for a in argv if a != "--force"]
    if len(rest) != 1 or rest[0].startswith("-"):
        sys.stderr.write("usage: make_test_pki.py [--force] OUTDIR\n")
        return 2
    outdir = os.path.abspath(rest[0])
    os.makedirs(outdir, exist_ok=True)
    if not force and still_good(outdir):
        return 0

    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = "%y%m%d%H%M%SZ"  # UTCTime, what `openssl ca` 3.0 documents for -startdate/-enddate
    start = (now - datetime.timedelta(hours=1)).strftime(fmt)
    end = (now + datetime.timedelta(days=VALID_DAYS)).strftime(fmt)

    # Work in a private directory inside OUTDIR, so the final renames stay on one filesystem.
    work = tempfile.mkdtemp(prefix=".pki-", dir=outdir)
    try:
        cfg = os.path.join(work, "openssl.cnf")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(work=work))
        open(os.path.join(work, "index.txt"), "w").close()
        make_cert(work, cfg, "ca", "mailroom test CA", "ext_ca", start, end, ca=False)
        for stem, cn, ext, by_ca, dates in CERTS:
            make_cert(work, cfg, stem, cn, ext, *(dates or (start, end)), ca=by_ca)
        try:
            os.remove(os.path.join(outdir, "complete"))
        except FileNotFoundError:
            pass
        for stem in STEMS:
            for ext in ("key", "pem"):
                os.replace(os.path.join(work, f"{stem}.{ext}"),
                           os.path.join(outdir, f"{stem}.{ext}"))
        with open(os.path.join(outdir, "complete"), "w") as f:
            f.write(f"made {now.isoformat(timespec='seconds')}, valid until {end}\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

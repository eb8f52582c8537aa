#!/usr/bin/python3
"""DKIM signatures made by `mailroom compose`, `send` and `bulk` (issue 11), checked by two
verifiers nobody here wrote, offline, with the public keys handed to them (never DNS):

- dkimpy (Debian's python3-dkim, with python3-nacl for ed25519): dkim.DKIM(...).verify(idx,
  dnsfunc=...) for each signature in turn, the dnsfunc answering with the key's TXT record;
- OpenDKIM (libopendkim 2.11 from opendkim-tools' dependencies, peers/opendkim_verify.py):
  its verifier with its DKIM_QUERY_FILE key file, every signature on the message.

Usage: dkim_test.py MAILROOM   (the built `mailroom` tool; Debian's /usr/bin/python3)

The keys are made here with `openssl genpkey` (RSA 2048, RSA 1024, Ed25519) in a temporary
directory, and the TXT records derived from them with `openssl pkey` (so `mailroom dkim
record` is checked against them, not trusted). Each awkward message is composed and signed by
`mailroom compose` under each canonicalization and must verify with both verifiers; tampered
copies (a header value, a body octet, an added From, an added body line) must fail with both.
The signature's own form is checked too: lines of at most 78 columns, t= present, l= absent,
From oversigned, no absent header in h=. Then `mailroom send` and `mailroom bulk` deliver
signed messages to aiosmtpd (peers/aiosmtpd_server.py) and what it recorded must verify, with
SIZE= equal to the octets received, and through Exim 4.96 (unpacked by peers/exim_peer.sh,
run with a configuration of this test's own, delivering into a Maildir) what Exim stored must
verify too ("skip exim-received" when Exim can't be had); and keys that can't be used are
refused with the exit status the CLI's contract gives bad input, saying so on one line and
printing nothing of the key.

Prints "ok NAME" or "FAIL NAME: WHY" per case, then the verifications per verifier, and finally
"dkim: N passed, M failed"; exits 1 if any case failed, 77 (skipped) without the verifiers.
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402

try:
    import dkim  # noqa: E402  (python3-dkim)
    import nacl.signing  # noqa: E402,F401  (python3-nacl: dkimpy's ed25519)
    import opendkim_verify  # noqa: E402
    opendkim_verify._load()
except (ImportError, OSError) as e:
    print(f"dkim: skipped: a verifier is missing ({e}); install python3-dkim python3-nacl "
          "opendkim-tools", flush=True)
    sys.exit(77)

LOOPBACK = "127.0.0.1"
RUN_TIMEOUT = 60
EX_USAGE, EX_DATAERR, EX_NOINPUT = 64, 65, 66

MAILROOM = None
TMP = None
TALLY = peerlib.Tally()
# Verifications per verifier: signatures that verified, tampered copies refused.
COUNTS = {"dkimpy": [0, 0], "opendkim": [0, 0]}

DOMAIN = "example.org"
# name -> (key file stem, selector, algorithm)
KEYS = {
    "rsa": ("rsa2048", "rsa2048", "rsa-sha256"),
    "rsa1024": ("rsa1024", "rsa1024", "rsa-sha256"),
    "ed": ("ed25519", "ed25519", "ed25519-sha256"),
}
RECORDS = {}  # "<selector>._domainkey.<domain>" -> TXT record (bytes)
KEYS_FILE = None  # the same, for OpenDKIM

CANONS = {  # the --dkim-canon value (None: not given) -> the c= tag expected
    None: "relaxed/relaxed",
    "simple": "simple/simple",
    "relaxed/simple": "relaxed/simple",
    "simple/relaxed": "simple/relaxed",
}


# ---- running mailroom -------------------------------------------------------------------------

class Run:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def why(self):
        return f"exit {self.rc}, stdout {self.out[:300]!r}, stderr {self.err[-600:]!r}"


def mailroom(*args, timeout=RUN_TIMEOUT, stdin=None):
    argv = [MAILROOM, *args]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=stdin if stdin is not None else subprocess.DEVNULL)
        return Run(argv, p.returncode, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as e:
        return Run(argv, None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]")


def key_args(*names, domain=DOMAIN):
    out = []
    for n in names:
        stem, selector, _ = KEYS[n]
        out += ["--dkim-key", os.path.join(TMP, stem + ".pem"), "--dkim-domain", domain,
                "--dkim-selector", selector]
    return out


def canon_args(canon):
    return [] if canon is None else ["--dkim-canon", canon]


def tmpfile(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


# ---- keys -------------------------------------------------------------------------------------

def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], capture_output=True, input=stdin, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def make_keys():
    global KEYS_FILE
    gen = {
        "rsa2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "rsa1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "ed25519": ["-algorithm", "ED25519"],
        # Keys mailroom must refuse.
        "rsa512": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
        "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "encrypted": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes-256-cbc",
                      "-pass", "pass:mailroom-test"],
    }
    for stem, args in gen.items():
        openssl("genpkey", *args, "-out", os.path.join(TMP, stem + ".pem"))
    # The same RSA key in the traditional form (RSA PRIVATE KEY).
    openssl("pkey", "-in", os.path.join(TMP, "rsa2048.pem"), "-traditional", "-out",
            os.path.join(TMP, "rsa2048-traditional.pem"))
    lines = []
    for name, (stem, selector, alg) in KEYS.items():
        der = openssl("pkey", "-in", os.path.join(TMP, stem + ".pem"), "-pubout", "-outform",
                      "DER")
        if alg == "ed25519-sha256":
            # RFC 8463 §4.2: the raw 32-octet public key, not the SubjectPublicKeyInfo.
            record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
        else:
            record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        qname = f"{selector}._domainkey.{DOMAIN}"
        RECORDS[qname] = record.encode()
        lines.append(f"{qname} {record}\n")
    KEYS_FILE = tmpfile("opendkim-keys", "".join(lines))


def key_fragments(stem):
    """Pieces of the private key's PEM text that no output may contain."""
    with open(os.path.join(TMP, stem + ".pem")) as f:
        body = [line.strip() for line in f if line.strip() and not line.startswith("-----")]
    return [line[i:i + 16] for line in body for i in range(0, len(line) - 15, 16)]


def leaks_key(output, stems=("rsa2048", "rsa1024", "ed25519", "rsa512", "p256", "encrypted")):
    text = output.decode("latin-1") if isinstance(output, bytes) else output
    if "-----BEGIN" in text:
        return "a PEM line"
    for stem in stems:
        for piece in key_fragments(stem):
            if piece in text:
                return f"a piece of {stem}.pem: {piece}"
    return None


# ---- verifying --------------------------------------------------------------------------------

def dnsfunc(name, timeout=5):
    key = name.decode() if isinstance(name, bytes) else name
    return RECORDS.get(key.rstrip("."))


def head_of(msg):
    return msg.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in msg else msg.split(b"\n\n", 1)[0]


def fields(msg):
    """The header fields as [(name, raw field with its folding, without the final CRLF)]."""
    out = []
    for line in re.split(rb"\r?\n", head_of(msg)):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\r\n" + line)
        elif line:
            out.append((line.split(b":", 1)[0].decode(), line))
    return out


def signatures(msg):
    """Each DKIM-Signature field: {"raw": bytes, "tags": {tag: value without white space}}."""
    out = []
    for name, raw in fields(msg):
        if name.lower() != "dkim-signature":
            continue
        value = raw.split(b":", 1)[1].decode()
        tags = {}
        for part in value.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                tags[k.strip()] = re.sub(r"\s+", "", v)
        out.append({"raw": raw, "tags": tags})
    return out


def dkimpy_results(msg):
    """[(passed, why)] per DKIM-Signature, in order."""
    out = []
    for i in range(len(signatures(msg))):
        try:
            ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
            out.append((bool(ok), "" if ok else "verify() returned False"))
        except Exception as e:  # dkimpy raises for a body-hash mismatch, a bad tag, ...
            out.append((False, f"{type(e).__name__}: {e}"))
    return out


def opendkim_results(msg):
    r = opendkim_verify.verify(msg, KEYS_FILE)
    return [(s["passed"], f"{s['selector']}: body hash {s['body_hash']}, {s['error']}")
            for s in r["signatures"]], r["status"]


def check_verifies(c, what, msg, count):
    """Both verifiers pass each of the `count` signatures on `msg`."""
    c.check(len(signatures(msg)) == count,
            f"{what}: {len(signatures(msg))} DKIM-Signature fields, want {count}")
    for i, (ok, why) in enumerate(dkimpy_results(msg)):
        if c.check(ok, f"{what}: dkimpy: signature {i + 1} fails: {why}"):
            COUNTS["dkimpy"][0] += 1
    got, status = opendkim_results(msg)
    c.check(len(got) == count, f"{what}: OpenDKIM saw {len(got)} signatures ({status})")
    for i, (ok, why) in enumerate(got):
        if c.check(ok, f"{what}: OpenDKIM: signature {i + 1} fails: {why}"):
            COUNTS["opendkim"][0] += 1


def check_fails(c, what, msg):
    """Every signature on `msg` fails with both verifiers."""
    for i, (ok, why) in enumerate(dkimpy_results(msg)):
        if c.check(not ok, f"{what}: dkimpy still verifies signature {i + 1}"):
            COUNTS["dkimpy"][1] += 1
    got, status = opendkim_results(msg)
    c.check(bool(got), f"{what}: OpenDKIM found no signature ({status})")
    for i, (ok, why) in enumerate(got):
        if c.check(not ok, f"{what}: OpenDKIM still verifies signature {i + 1}"):
            COUNTS["opendkim"][1] += 1


def field_names(msg):
    return [n.lower() for n, _ in fields(msg) if n.lower() != "dkim-signature"]


def check_form(c, what, msg, alg, canon, expire=None, now=None):
    """The DKIM-Signature fields' own form."""
    now = now or time.time()
    present = field_names(msg)
    for sig in signatures(msg):
        t = sig["tags"]
        for line in sig["raw"].split(b"\r\n"):
            c.check(len(line) <= 78, f"{what}: a DKIM-Signature line of {len(line)} columns: "
                                     f"{line[:90]!r}")
        c.check(b"\n" not in sig["raw"].replace(b"\r\n", b""), f"{what}: a bare LF in the field")
        c.eq(f"{what}: v=", t.get("v"), "1")
        if alg is not None:
            c.check(t.get("a") in (alg if isinstance(alg, tuple) else (alg,)),
                    f"{what}: a={t.get('a')}, want {alg}")
        c.eq(f"{what}: c=", t.get("c", "simple/simple"), canon)
        c.eq(f"{what}: d=", t.get("d"), DOMAIN)
        c.check("l" not in t, f"{what}: l= is used")
        c.check("bh" in t and "b" in t and t.get("b"), f"{what}: bh= or b= missing")
        c.check(re.fullmatch(r"\d+", t.get("t", "")) is not None
                and abs(int(t["t"]) - now) < 600, f"{what}: t= {t.get('t')!r}, want about now")
        if expire is None:
            c.check("x" not in t, f"{what}: x= without --dkim-expire")
        else:
            c.check(t.get("x", "").isdigit() and "t" in t and int(t["x"]) == int(t["t"]) + expire,
                    f"{what}: x={t.get('x')!r}, want t + {expire}")
        h = [n.strip().lower() for n in t.get("h", "").split(":") if n.strip()]
        c.eq(f"{what}: From signed (once more than present)", h.count("from"),
             present.count("from") + 1)
        for name in set(h):
            if name != "from":
                c.check(h.count(name) <= present.count(name),
                        f"{what}: h= lists {name} {h.count(name)} times, the message has "
                        f"{present.count(name)}")


# ---- tampering --------------------------------------------------------------------------------

def split_message(msg):
    i = msg.index(b"\r\n\r\n")
    return msg[:i + 2], msg[i + 4:]  # header lines with their CRLFs, body


def change_header(msg, name):
    head, body = split_message(msg)
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(\S)", head)
    assert m, f"no {name} field to change"
    i = m.start(1)
    new = b"Y" if head[i:i + 1] != b"Y" else b"Z"
    return head[:i] + new + head[i + 1:] + b"\r\n" + body


def change_body_octet(msg):
    head, body = split_message(msg)
    letters = [i for i, ch in enumerate(body) if chr(ch).isalnum()]
    assert letters, "no body octet to change"
    i = letters[len(letters) // 2]
    new = b"Q" if body[i:i + 1] != b"Q" else b"R"
    return head + b"\r\n" + body[:i] + new + body[i + 1:]


def add_from_at_end(msg):
    head, body = split_message(msg)
    return head + b"From: Mallory <mallory@example.com>\r\n\r\n" + body


def add_from_at_top(msg):
    return b"From: Mallory <mallory@example.com>\r\n" + msg


def add_body_line(msg):
    return msg + b"one more line\r\n"


def check_tampered(c, what, msg, signed_header):
    tampered = [("header", change_header(msg, signed_header)),
                ("From added at the end", add_from_at_end(msg)),
                ("From added at the top", add_from_at_top(msg)),
                ("body line added", add_body_line(msg))]
    if any(chr(ch).isalnum() for ch in split_message(msg)[1]):
        tampered.append(("body octet", change_body_octet(msg)))
    for how, t in tampered:
        check_fails(c, f"{what} ({how} changed)", t)


# ---- signing through compose ------------------------------------------------------------------

def compose_signed(c, what, args, keys=("rsa",), canon=None, extra=()):
    r = mailroom("compose", *args, *key_args(*keys), *canon_args(canon), *extra)
    c.require(r.rc == 0 and r.out, f"{what}: compose: {r.why()}")
    c.require(b"\n" not in r.out.replace(b"\r\n", b""), f"{what}: compose output not CRLF-only")
    c.check(r.err == b"", f"{what}: compose wrote to stderr: {r.err[:300]!r}")
    return r.out


def signing_case(name, args, keys=("rsa",), canons=tuple(CANONS), extra=(), expire=None,
                 signed_header="Subject", check=None):
    """Compose `args` signed with `keys` under each canonicalization; both verifiers pass each
    signature; the form is right; each tampered copy fails; `check(c, msg)` for more."""
    def run(c):
        for canon in canons:
            what = f"{name} c={CANONS[canon]}"
            now = time.time()
            msg = compose_signed(c, what, args, keys, canon, extra)
            algs = tuple(KEYS[k][2] for k in keys)
            check_form(c, what, msg, algs, CANONS[canon], expire, now)
            check_verifies(c, what, msg, len(keys))
            check_tampered(c, what, msg, signed_header)
            if check:
                check(c, msg)
    TALLY.run(name, run)


def signed_names(msg, index=0):
    return [n.strip().lower() for n in signatures(msg)[index]["tags"]["h"].split(":")]


def write_file(name, data):
    return tmpfile(name, data)


def signing_cases():
    base = ["--from", "Sender <sender@example.org>", "--to", "rcpt@example.net"]
    body = "Hello,\n\nthe report.\n"

    signing_case("non-ascii", [
        "--from", "Jörg Müller <joerg@example.org>", "--to", "Zoë Ünal <zoe@example.net>",
        "--cc", "Ça Va <cava@example.net>", "--subject",
        "Grüße — Bericht über Q3 (ünd mehr), Ærøskøbing, 東京 and 🎉 in one subject line",
        "--text", "Grüße, Zoë!\nÜmlaut-Zeile mit Ümlauten.\n"])

    long_subject = " ".join(f"word{i:03d}" for i in range(60))
    rcpts = [a for i in range(12) for a in ("--to", f"Recipient Number {i} <r{i}@example.net>")]
    signing_case("long-folded-headers", [
        "--from", "sender@example.org", *rcpts, "--subject", long_subject,
        "--header", "X-Long: " + " ".join(f"v{i}" for i in range(150)),
        "--header", "X-Unbroken: " + "x" * 200, "--text", body],
        check=lambda c, m: c.check(any(raw.count(b"\r\n") >= 2 for n, raw in fields(m)
                                       if n == "Subject"), "the Subject is not folded"))

    signing_case("tabs-and-trailing-space", base + [
        "--subject", "tabs", "--text", "a\tb\t\tc\ntrailing spaces   \ntrailing tab\t\n"
        "  leading spaces\n\tleading tab\nmixed \t \t runs\n"])

    signing_case("trailing-blank-lines", base + [
        "--subject", "blank lines", "--text", "text\n\n\n\n\n"])

    signing_case("leading-dots", base + [
        "--subject", "dots", "--text", ".leading dot\n.\n..two dots\n. space\nend\n."],
        check=lambda c, m: c.check(b"\r\n.leading dot\r\n" in m and b"\r\n.\r\n" in m,
                                   "compose output lacks the lines starting with '.'"))

    signing_case("empty-text-body", base + ["--subject", "empty", "--text", ""])
    signing_case("no-body", base + ["--subject", "no body at all"])

    blob = write_file("blob.bin", bytes(range(256)) * 9 + b"\x00\r\n.\r\n")
    signing_case("base64-parts", base + [
        "--subject", "parts", "--text", body, "--html", "<p>Grüße</p>\n",
        "--attach", blob, "--inline", f"logo={blob}"],
        check=lambda c, m: c.check(b"base64" in m, "no base64 part"))

    qp = ("Zeile mit Ümlauten, die länger ist als sechsundsiebzig Zeichen, damit sie weich "
          "umbrochen wird = und ein Gleichheitszeichen.\n") * 5
    signing_case("quoted-printable", base + ["--subject", "qp", "--text", qp],
                 check=lambda c, m: c.check(b"quoted-printable" in m and b"=\r\n" in m,
                                            "no quoted-printable soft line break"))

    big = write_file("big.bin", os.urandom(5 << 20))
    signing_case("big-attachment", base + ["--subject", "5 MiB", "--text", body,
                                           "--attach", big],
                 canons=(None, "simple"),
                 check=lambda c, m: c.check(len(m) > 5 << 20, "the attachment is missing"))

    signing_case("8bit", base + ["--subject", "8bit", "--8bit",
                                 "--text", "Grüße, Zoë! Straße, 東京.\n.dot\n"],
                 check=lambda c, m: c.check(b"Content-Transfer-Encoding: 8bit" in m and
                                            "Straße".encode() in m, "the body is not 8bit"))

    def unsubscribe_signed(c, m):
        names = signed_names(m)
        c.check("list-unsubscribe" in names and "list-unsubscribe-post" in names,
                f"h= lacks List-Unsubscribe or List-Unsubscribe-Post: {names}")
    signing_case("list-unsubscribe-one-click", base + [
        "--subject", "news", "--text", body,
        "--list-unsubscribe", "https://example.org/u/42?x=1",
        "--list-unsubscribe", "mailto:unsubscribe@example.org?subject=42",
        "--list-unsubscribe-one-click"], check=unsubscribe_signed)

    def default_headers(c, m):
        names = signed_names(m)
        for want in ("to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
                     "content-type"):
            c.check(want in names, f"h= lacks {want}: {names}")
        for never in ("bcc", "x-campaign", "sender", "in-reply-to", "references"):
            c.check(never not in names, f"h= lists {never}, which the message lacks or "
                                        f"which is not signed by default: {names}")
        c.check(b"bcc" not in head_of(m).lower(), "a Bcc field")
    signing_case("default-headers", base + [
        "--cc", "cc@example.net", "--bcc", "hidden@example.net", "--reply-to",
        "replies@example.org", "--subject", "defaults", "--header", "X-Campaign: q3",
        "--text", body], check=default_headers)

    def custom_headers(c, m):
        names = signed_names(m)
        c.eq("h= names", sorted(set(names)), ["from", "subject", "x-campaign"])
        # An unsigned field may change: the signatures still hold.
        check_verifies(c, "custom-headers with To changed", change_header(m, "To"), 1)
    signing_case("custom-headers", base + [
        "--subject", "custom", "--header", "X-Campaign: q3", "--text", body],
        extra=["--dkim-headers", "From:Subject, X-Campaign"], check=custom_headers)

    signing_case("expiry", base + ["--subject", "expires", "--text", body],
                 extra=["--dkim-expire", "86400"], expire=86400)

    signing_case("two-signatures-rsa-ed25519", base + [
        "--subject", "two", "--text", body], keys=("rsa", "ed"),
        check=lambda c, m: c.eq("selectors in order", [s["tags"]["s"] for s in signatures(m)],
                                ["rsa2048", "ed25519"]))
    signing_case("ed25519-alone", base + ["--subject", "ed", "--text", body], keys=("ed",))
    signing_case("rsa-1024", base + ["--subject", "1024", "--text", body], keys=("rsa1024",))

    # Prepared messages (--eml), one with LF line ends, tabs in its fields and folded ones.
    lf = ("From: Sender <sender@example.org>\n"
          "To: rcpt@example.net,\n\tother@example.net\n"
          "Subject: prepared\twith a tab\n"
          "  and a folded continuation\n"
          "X-Tabbed:\tvalue\t\twith tabs \t\n"
          "Date: Tue, 08 Dec 2026 03:00:00 +0000\n"
          "Message-ID: <prepared-1@example.org>\n"
          "MIME-Version: 1.0\n"
          "Content-Type: text/plain; charset=utf-8\n"
          "Content-Transfer-Encoding: 8bit\n"
          "\n"
          "Grüße aus einer Datei.\n.dot line\n\ttab line  \n\n\n").encode()
    lf_path = write_file("prepared-lf.eml", lf)
    crlf_path = write_file("prepared-crlf.eml", lf.replace(b"\n", b"\r\n"))

    def same_as_prepared(c, m):
        # The message is the file's, in CRLF, with the signatures on top.
        rest = re.sub(rb"(?s)^(DKIM-Signature:.*?\r\n(?![ \t]))+", b"", m)
        c.eq("the prepared message under the signatures", rest, lf.replace(b"\n", b"\r\n"))
    for name, path in (("eml-lf", lf_path), ("eml-crlf", crlf_path)):
        signing_case(name, ["--eml", path], keys=("rsa", "ed"), check=same_as_prepared)

    # More awkward prepared messages: each must come out as it went in, under the signatures.
    head = ("From: sender@example.org\r\nTo: rcpt@example.net\r\n"
            "Date: Tue, 08 Dec 2026 03:00:00 +0000\r\n")
    awkward = {
        # Field names in odd case, repeated fields, white space runs inside values.
        "eml-odd-case-and-repeats": head.replace("To:", "TO:") +
        "SUBJECT:   spaced    out   \r\nReceived: from a by b; x\r\nReceived: from c by d; y"
        "\r\nX-Dup: one\r\nX-Dup: two\r\n\r\nbody\r\n",
        # A body with no final line break (one is added: a message on the wire ends in CRLF).
        "eml-no-final-crlf": head + "Subject: no final CRLF\r\n\r\nlast line, no CRLF",
        # A body of empty lines only.
        "eml-only-blank-lines": head + "Subject: blank\r\n\r\n\r\n\r\n\r\n",
        # No body at all: the header section ends the message.
        "eml-headers-only": head + "Subject: headers only\r\n\r\n",
        # Raw UTF-8 in a header (SMTPUTF8-style) and an 8bit body.
        "eml-utf8-header": head + "Subject: Grüße ohne Kodierung\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Grüße\r\n",
    }
    for name, text in awkward.items():
        path = write_file(name + ".eml", text.encode())

        def same(c, m, want=text.encode() + b"\r\n" * (not text.endswith("\r\n"))):
            rest = re.sub(rb"(?s)^(DKIM-Signature:.*?\r\n(?![ \t]))+", b"", m)
            c.eq("the prepared message under the signatures", rest, want)
        signing_case(name, ["--eml", path], keys=("rsa", "ed"), check=same,
                     signed_header="From")

    # Repeated fields signed once per instance; names the message lacks left out of h=.
    def repeats(c, m):
        names = signed_names(m)
        c.eq("x-dup signed once per instance", names.count("x-dup"), 2)
        c.eq("received signed once per instance", names.count("received"), 2)
        c.check("x-absent" not in names and "reply-to" not in names,
                f"h= lists a field the message lacks: {names}")
    signing_case("eml-headers-signed-per-instance",
                 ["--eml", os.path.join(TMP, "eml-odd-case-and-repeats.eml")],
                 extra=["--dkim-headers", "Subject,X-Dup,Received,X-Absent,Reply-To"],
                 signed_header="From", check=repeats)
    # From is signed (and oversigned) even when --dkim-headers doesn't name it.
    signing_case("custom-headers-without-from", base + ["--subject", "s", "--text", body],
                 extra=["--dkim-headers", "Subject"],
                 check=lambda c, m: c.eq("h=", sorted(signed_names(m)),
                                         ["from", "from", "subject"]))


# ---- dkim record ------------------------------------------------------------------------------

def case_dkim_record(c):
    for name, (stem, selector, alg) in KEYS.items():
        qname = f"{selector}._domainkey.{DOMAIN}"
        r = mailroom("dkim", "record", *key_args(name), "--json")
        c.require(r.rc == 0, f"{name}: dkim record --json: {r.why()}")
        got = json.loads(r.out)["records"]
        c.eq(f"{name}: records", [(x["name"], x["type"], x["value"], x["algorithm"])
                                  for x in got],
             [(qname, "TXT", RECORDS[qname].decode(), alg)])
        r = mailroom("dkim", "record", *key_args(name))
        c.require(r.rc == 0, f"{name}: dkim record: {r.why()}")
        line = r.out.decode()
        m = re.fullmatch(r"(\S+)\. IN TXT((?: \"[^\"]*\")+)\n", line)
        c.require(m, f"{name}: not a zone-file line: {line!r}")
        strings = re.findall(r'"([^"]*)"', m.group(2))
        c.eq(f"{name}: name", m.group(1), qname)
        c.eq(f"{name}: the strings joined", "".join(strings), RECORDS[qname].decode())
        c.check(all(len(s) <= 255 for s in strings), f"{name}: a string over 255 octets")
        c.check(leaks_key(r.out) is None, f"{name}: {leaks_key(r.out)}")
    # Two groups: two records, in order; the traditional RSA form gives the same record.
    r = mailroom("dkim", "record", *key_args("rsa", "ed"), "--json")
    c.require(r.rc == 0, f"two keys: {r.why()}")
    c.eq("two keys", [x["name"] for x in json.loads(r.out)["records"]],
         [f"rsa2048._domainkey.{DOMAIN}", f"ed25519._domainkey.{DOMAIN}"])
    r = mailroom("dkim", "record", "--dkim-key", os.path.join(TMP, "rsa2048-traditional.pem"),
                 "--dkim-domain", DOMAIN, "--dkim-selector", "rsa2048", "--json")
    c.require(r.rc == 0, f"RSA PRIVATE KEY: {r.why()}")
    c.eq("RSA PRIVATE KEY form", json.loads(r.out)["records"][0]["value"],
         RECORDS[f"rsa2048._domainkey.{DOMAIN}"].decode())


# ---- bad input --------------------------------------------------------------------------------

def bad_input_cases():
    base = ["--from", "sender@example.org", "--to", "rcpt@example.net", "--text", "x"]
    good = os.path.join(TMP, "rsa2048.pem")
    notkey = write_file("not-a-key.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                         "-----END CERTIFICATE-----\nhello\n")
    os.makedirs(os.path.join(TMP, "a-directory"), exist_ok=True)

    def group(key=good, domain=DOMAIN, selector="rsa2048"):
        return ["--dkim-key", key, "--dkim-domain", domain, "--dkim-selector", selector]

    cases = [
        # name, options, status, words the one error line must hold
        ("missing-key-file", group(os.path.join(TMP, "no-such.pem")), EX_NOINPUT,
         ["--dkim-key", "no-such.pem"]),
        ("key-is-a-directory", group(os.path.join(TMP, "a-directory")), EX_NOINPUT,
         ["--dkim-key", "a-directory"]),
        ("not-a-key", group(notkey), EX_DATAERR, ["--dkim-key", "not-a-key.pem"]),
        ("encrypted-key", group(os.path.join(TMP, "encrypted.pem")), EX_DATAERR,
         ["--dkim-key", "encrypted.pem", "encrypted"]),
        ("rsa-512", group(os.path.join(TMP, "rsa512.pem")), EX_DATAERR,
         ["--dkim-key", "rsa512.pem", "512"]),
        ("ec-p256", group(os.path.join(TMP, "p256.pem")), EX_DATAERR,
         ["--dkim-key", "p256.pem", "Ed25519"]),
        ("bad-domain", group(domain="exa mple..org"), EX_DATAERR, ["--dkim-domain", "exa mple"]),
        ("bad-selector", group(selector="sel/ector"), EX_DATAERR, ["--dkim-selector"]),
        ("bad-header-name", group() + ["--dkim-headers", "From:Sub ject"], EX_DATAERR,
         ["--dkim-headers"]),
        ("group-without-selector", ["--dkim-key", good, "--dkim-domain", DOMAIN], EX_USAGE,
         ["--dkim-selector"]),
        ("second-group-incomplete", group() + ["--dkim-key", good, "--dkim-selector", "s2"],
         EX_USAGE, ["--dkim-domain"]),
        ("canon-without-key", ["--dkim-canon", "simple"], EX_USAGE, ["--dkim-canon"]),
        ("bad-canon", group() + ["--dkim-canon", "loose"], EX_USAGE, ["--dkim-canon", "loose"]),
        ("bad-canon-pair", group() + ["--dkim-canon", "relaxed/"], EX_USAGE, ["--dkim-canon"]),
        ("empty-header-name", group() + ["--dkim-headers", "From::Subject"], EX_USAGE,
         ["--dkim-headers"]),
        ("bad-expire", group() + ["--dkim-expire", "0"], EX_USAGE, ["--dkim-expire"]),
    ]
    for name, opts, status, words in cases:
        def run(c, opts=opts, status=status, words=words):
            r = mailroom("compose", *base, *opts)
            c.eq("exit status", r.rc, status)
            c.eq("stdout", r.out, b"")
            err = r.err.decode(errors="replace")
            c.check(err.startswith("mailroom: ") and err.count("\n") == 1,
                    f"want one 'mailroom: ' line on stderr, got {err!r}")
            for w in words:
                c.check(w in err, f"the error doesn't say {w!r}: {err!r}")
            c.check(leaks_key(r.err) is None, f"stderr holds {leaks_key(r.err)}")
        TALLY.run(f"bad-input-{name}", run)


# ---- send and bulk ----------------------------------------------------------------------------

SERVER = None


def server():
    """aiosmtpd on 127.0.0.1 (no TLS, no AUTH), recording what it accepts; one for the run."""
    global SERVER
    if SERVER is None:
        SERVER = peerlib.Aiosmtpd(TMP, "aiosmtpd", "--max-seconds", "600", "--record",
                                  os.path.join(TMP, "received"))
    return SERVER


def received():
    folder = os.path.join(TMP, "received")
    if not os.path.isdir(folder):
        return []
    return sorted(int(m.group(1)) for n in os.listdir(folder)
                  if (m := re.fullmatch(r"(\d+)\.json", n)))


def new_messages(before):
    return [peerlib.recorded(os.path.join(TMP, "received"), n)
            for n in received() if n not in before]


def server_args():
    return ["--server", f"smtp://{LOOPBACK}:{server().port}", "--tls", "none",
            "--timeout", "20"]


def check_received(c, what, eml, meta, count, canon="relaxed/relaxed", expire=None):
    c.check(f"SIZE={len(eml)}" in meta["mail_options"],
            f"{what}: MAIL's SIZE= is not the {len(eml)} octets received: "
            f"{meta['mail_options']}")
    check_form(c, what, eml, None, canon, expire)
    check_verifies(c, what, eml, count)
    check_fails(c, f"{what} (body line added)", add_body_line(eml))


PREPARED = ("From: Sender <sender@example.org>\n"
            "To: rcpt@example.net\n"
            "Subject: prepared\twith a tab\n"
            "  and a folded continuation\n"
            "Date: Tue, 08 Dec 2026 03:00:00 +0000\n"
            "Message-ID: <prepared-send@example.org>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            "Grüße aus einer Datei.\n.dot line\n\ttab line  \n\n").encode()


def case_send_builder(c):
    before = received()
    r = mailroom("send", *server_args(), "--json", "--from", "Jörg <joerg@example.org>",
                 "--to", "rcpt@example.net", "--subject", "Grüße, signed and sent",
                 "--text", "Hello,\n.dot\n\ttab\n\n\n", "--attach",
                 os.path.join(TMP, "blob.bin"), *key_args("rsa", "ed"))
    c.require(r.rc == 0, f"send: {r.why()}")
    got = new_messages(before)
    c.require(len(got) == 1, f"want one message received, got {len(got)}")
    eml, meta = got[0]
    c.eq("Message-ID", json.loads(r.out)["message_id"].strip("<>"),
         re.search(rb"(?im)^Message-ID:\s*<([^>]*)>", eml).group(1).decode())
    check_received(c, "received", eml, meta, 2)


def case_send_8bit_simple(c):
    before = received()
    r = mailroom("send", *server_args(), "--from", "sender@example.org", "--to",
                 "rcpt@example.net", "--subject", "8bit", "--8bit", "--text",
                 "Straße und Grüße\n", *key_args("rsa"), "--dkim-canon", "simple")
    c.require(r.rc == 0, f"send: {r.why()}")
    got = new_messages(before)
    c.require(len(got) == 1, f"want one message received, got {len(got)}")
    eml, meta = got[0]
    c.check("BODY=8BITMIME" in meta["mail_options"], f"no BODY=8BITMIME: {meta['mail_options']}")
    check_received(c, "received", eml, meta, 1, "simple/simple")


def case_send_eml(c):
    path = tmpfile("send-prepared.eml", PREPARED)
    before = received()
    r = mailroom("send", *server_args(), "--eml", path, *key_args("rsa", "ed"),
                 "--dkim-canon", "relaxed/simple")
    c.require(r.rc == 0, f"send --eml: {r.why()}")
    got = new_messages(before)
    c.require(len(got) == 1, f"want one message received, got {len(got)}")
    eml, meta = got[0]
    check_received(c, "received", eml, meta, 2, "relaxed/simple")
    rest = re.sub(rb"(?s)^(DKIM-Signature:.*?\r\n(?![ \t]))+", b"", eml)
    c.eq("the prepared message under the signatures", rest, PREPARED.replace(b"\n", b"\r\n"))


def case_bulk(c):
    before = received()
    r = mailroom("bulk", *server_args(), "--count", "6", "--connections", "2", "--size",
                 "4096", "--progress", "never", "--json", *key_args("rsa", "ed"),
                 timeout=120)
    c.require(r.rc == 0, f"bulk: {r.why()}")
    c.eq("delivered", json.loads(r.out)["delivered"], 6)
    got = new_messages(before)
    c.require(len(got) == 6, f"want 6 messages received, got {len(got)}")
    sigs = set()
    for i, (eml, meta) in enumerate(got):
        check_received(c, f"message {i + 1}", eml, meta, 2)
        sigs.update(s["tags"]["b"] for s in signatures(eml))
    c.eq("distinct signatures (one per message and key)", len(sigs), 12)


def case_bulk_eml(c):
    path = tmpfile("bulk-prepared.eml", PREPARED.replace(b"<prepared-send@", b"<bulk@"))
    before = received()
    r = mailroom("bulk", *server_args(), "--count", "3", "--eml", path, "--progress", "never",
                 "--json", *key_args("ed", "rsa1024"), "--dkim-expire", "3600", timeout=120)
    c.require(r.rc == 0, f"bulk --eml: {r.why()}")
    got = new_messages(before)
    c.require(len(got) == 3, f"want 3 messages received, got {len(got)}")
    for i, (eml, meta) in enumerate(got):
        check_received(c, f"copy {i + 1}", eml, meta, 2, expire=3600)
    c.check(got[0][0] == got[1][0] == got[2][0], "the copies differ (signed once, sent 3 times)")


def case_send_bad_key_sends_nothing(c):
    for stem, status in (("rsa512", EX_DATAERR), ("no-such", EX_NOINPUT)):
        before = received()
        r = mailroom("send", *server_args(), "--from", "sender@example.org", "--to",
                     "rcpt@example.net", "--text", "x", "--dkim-key",
                     os.path.join(TMP, stem + ".pem"), "--dkim-domain", DOMAIN,
                     "--dkim-selector", "s")
        c.eq(f"{stem}: exit status", r.rc, status)
        c.eq(f"{stem}: stdout", r.out, b"")
        c.eq(f"{stem}: messages received", new_messages(before), [])
        c.check(leaks_key(r.err) is None, f"{stem}: stderr holds {leaks_key(r.err)}")
    before = received()
    r = mailroom("bulk", *server_args(), "--count", "2", "--progress", "never",
                 "--dkim-key", os.path.join(TMP, "p256.pem"), "--dkim-domain", DOMAIN,
                 "--dkim-selector", "s")
    c.eq("bulk: exit status", r.rc, EX_DATAERR)
    c.eq("bulk: stdout", r.out, b"")
    c.eq("bulk: messages received", new_messages(before), [])


EXIM_PEER = os.path.join(PEERS, "exim_peer.sh")
EXIM_CONF = """keep_environment =
exim_path = {exim}
primary_hostname = mailroom.test
exim_user = {user}
exim_group = {group}
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = {port}
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
pid_file_path = {dir}/exim.pid
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
dkim_verify_signers =
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
begin routers
everyone:
  driver = accept
  transport = to_maildir
begin transports
to_maildir:
  driver = appendfile
  directory = {dir}/mail
  maildir_format
  user = {user}
  group = {group}
  mode = 0644
begin retry
* * F,1m,1m
"""


class Exim:
    """Debian's Exim 4.96 (unpacked by peers/exim_peer.sh, not installed) as a receiving
    server on 127.0.0.1 with a configuration of our own: every recipient accepted and delivered
    into one Maildir. Stopped by its PID."""

    def __init__(self):
        import grp
        import pwd
        import socket
        exim_dir = os.environ.get("MAILROOM_EXIM_DIR", "/tmp/mailroom-exim")
        r = subprocess.run(["sh", EXIM_PEER], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"exim_peer.sh: status {r.returncode}: {r.stderr[-300:]}")
        self.exim = os.path.join(exim_dir, "usr/sbin/exim4")
        # Exim's own processes run as exim_user: the directory must be theirs to use.
        self.dir = tempfile.mkdtemp(prefix="mailroom-dkim-exim-")
        os.chmod(self.dir, 0o755)
        for sub in ("spool", "log", "mail"):
            os.mkdir(os.path.join(self.dir, sub), 0o777)
            os.chmod(os.path.join(self.dir, sub), 0o777)
        if os.geteuid() == 0:
            user, group = "nobody", "nogroup"
        else:
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            self.port = probe.getsockname()[1]
        conf = os.path.join(self.dir, "exim.conf")
        with open(conf, "w") as f:
            f.write(EXIM_CONF.format(exim=self.exim, user=user, group=group, port=self.port,
                                     dir=self.dir))
        os.chmod(conf, 0o644)
        self.err = open(os.path.join(TMP, "exim.stderr"), "w+")
        self.proc = subprocess.Popen([self.exim, "-C", conf, "-bdf"], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("exim didn't start: " + self.log())
                time.sleep(0.1)

    def log(self):
        self.err.seek(0)
        out = self.err.read()
        for name in ("mainlog", "paniclog", "rejectlog"):
            try:
                with open(os.path.join(self.dir, "log", name)) as f:
                    out += f"\n{name}: " + f.read()[-600:]
            except FileNotFoundError:
                pass
        return out

    def delivered(self):
        folder = os.path.join(self.dir, "mail", "new")
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    def wait_for(self, before, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [n for n in self.delivered() if n not in before]
            if new:
                with open(os.path.join(self.dir, "mail", "new", new[0]), "rb") as f:
                    return f.read()
            time.sleep(0.1)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        subprocess.run(["rm", "-rf", self.dir], timeout=30)


def case_exim(c, exim):
    """A signed message through Exim 4.96, verified as Exim stored it."""
    try:
        for canon in ("relaxed", "simple"):
            before = exim.delivered()
            r = mailroom("send", "--server", f"smtp://{LOOPBACK}:{exim.port}", "--tls", "none",
                         "--timeout", "20", "--from", "Jörg Müller <joerg@example.org>", "--to",
                         "rcpt@example.net", "--subject", "Grüße through Exim, " + canon,
                         "--text", "Hello,\n.dot\n\ttab  \n\n\n", "--attach",
                         os.path.join(TMP, "blob.bin"), *key_args("rsa", "ed"),
                         "--dkim-canon", canon)
            c.require(r.rc == 0, f"{canon}: send to Exim: {r.why()}")
            got = exim.wait_for(before)
            c.require(got is not None, f"{canon}: Exim stored nothing: {exim.log()}")
            # A Maildir holds LF line ends; the message travels with CRLF.
            eml = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            c.check(eml.startswith(b"Received: ") and b"(Exim 4.96)" in head_of(eml),
                    f"{canon}: no Received field from Exim on top: {eml[:200]!r}")
            check_verifies(c, f"{canon}: stored by Exim", eml, 2)
            check_fails(c, f"{canon}: stored by Exim (body line added)", add_body_line(eml))
            check_fails(c, f"{canon}: stored by Exim (Subject changed)",
                        change_header(eml, "Subject"))
    finally:
        exim.stop()


def send_cases():
    for name, fn in (("send-signed", case_send_builder),
                     ("send-8bit-simple", case_send_8bit_simple),
                     ("send-eml-signed", case_send_eml),
                     ("bulk-signed", case_bulk),
                     ("bulk-eml-signed", case_bulk_eml),
                     ("send-bad-key-sends-nothing", case_send_bad_key_sends_nothing)):
        TALLY.run(name, fn)
    try:
        exim = Exim()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        # Not counted as passed: the line says what was not checked.
        print(f"skip exim-received: Exim 4.96 can't be had here: {e}", flush=True)
        return
    TALLY.run("exim-received", lambda c: case_exim(c, exim))


# ---- main -------------------------------------------------------------------------------------

def main(argv):
    global MAILROOM, TMP
    if len(argv) != 1:
        sys.stderr.write("usage: dkim_test.py MAILROOM\n")
        return 2
    MAILROOM = os.path.abspath(argv[0])
    with tempfile.TemporaryDirectory(prefix="mailroom-dkim-test-") as tmp:
        TMP = tmp
        make_keys()
        TALLY.run("dkim-record", case_dkim_record)
        signing_cases()
        bad_input_cases()
        try:
            send_cases()
        finally:
            if SERVER is not None:
                SERVER.stop()
    for name, (ok, refused) in COUNTS.items():
        print(f"{name}: {ok} signatures verified, {refused} tampered signatures refused")
    print(f"dkim: {TALLY.passed} passed, {TALLY.failed} failed", flush=True)
    return 1 if TALLY.failed else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""`mailroom bounce` on bounces that real MTAs wrote, and on the RFC 3464 example.

Usage: bounce_test.py MAILROOM   (the built `mailroom` tool; Debian's /usr/bin/python3, standard
                                  library only)

Each MTA is started here, on 127.0.0.1 only, with a configuration of its own in a temporary
directory, and stopped here (on failure too); mail for other domains is never sent anywhere.
`mailroom send` submits a message over SMTP to a local recipient that doesn't exist; the MTA
bounces it to the sender, whose mailbox is a file in the temporary directory, and
`mailroom bounce --json` must read that bounce: action failed, a 5.x.x status, the recipient,
the reporting MTA's name and the Message-ID mailroom gave the message.

- Exim 4.96 (Debian's exim4-daemon-light): `exim4 -C CONFIG -bdf`, the binary unpacked by
  peers/exim_peer.sh into $MAILROOM_EXIM_DIR (installed, the package would remove Postfix), or
  an installed exim4. Also a delay warning: delayed.test routed to a port on 127.0.0.1 where
  nothing listens, delay_warning 2s, a queue run every second.
- Postfix (Debian's; installed for smtp-sink): a private instance, `postfix -c DIR start` with
  its own main.cf, master.cf and queue; also a delayed DSN (a relay that refuses connections,
  delay_warning_time 1s). Needs root, as Postfix's master does.

Prints "ok NAME", "FAIL NAME: WHY" or "skip NAME: WHY" per case and finally
"bounce: N passed, M failed"; exits 1 if any case failed, 77 (meson's "skipped") when neither
MTA is there and the rest passed.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import peerlib  # noqa: E402

LOOPBACK = "127.0.0.1"
EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT = 0, 64, 65, 66
DOMAIN = "mailroom.test"
SENDER = "sender@" + DOMAIN

MAILROOM = None
TMP = None
TALLY = peerlib.Tally()

# RFC 3464 Appendix, "Multi-Recipient DSN" (the status part and the parts around it as the RFC
# gives them).
RFC3464_MULTI = """\
Date: Fri, 8 Jul 1994 09:21:47 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>
Subject: Returned mail: User unknown
To: <owner-ups-mib@CS.UTK.EDU>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
     boundary="JAA13167.773673707/CS.UTK.EDU"

--JAA13167.773673707/CS.UTK.EDU
content-type: text/plain; charset=us-ascii

      ----- The following addresses had delivery problems -----
<arathib@vnet.IBM.COM>  (unrecoverable error)
<wsnell@sdcc13.ucsd.edu>  (unrecoverable error)

--JAA13167.773673707/CS.UTK.EDU
content-type: message/delivery-status

Reporting-MTA: dns; cs.utk.edu

Original-Recipient: rfc822;arathib@vnet.IBM.COM
Final-Recipient: rfc822;arathib@vnet.ibm.com
Action: failed
Status: 5.0.0 (permanent failure)
Diagnostic-Code: smtp; 550 'arathib@vnet.IBM.COM' is not a
    registered gateway user
Remote-MTA: dns; vnet.ibm.com

Original-Recipient: rfc822;johnh@hpnjld.njd.hp.com
Final-Recipient: rfc822;johnh@hpnjld.njd.hp.com
Action: delayed
Status: 4.0.0 (hpnjld.njd.jp.com: host name lookup failure)

Original-Recipient: rfc822;wsnell@sdcc13.ucsd.edu
Final-Recipient: rfc822;wsnell@sdcc13.ucsd.edu
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 user unknown
Remote-MTA: dns; sdcc13.ucsd.edu

--JAA13167.773673707/CS.UTK.EDU
content-type: message/rfc822

[original message goes here]

--JAA13167.773673707/CS.UTK.EDU--
"""


class Run:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def why(self):
        return f"exit {self.rc}, stdout {self.out[:400]!r}, stderr {self.err[-400:]!r}"

    def json(self, c):
        lines = self.out.splitlines()
        c.require(len(lines) == 1, f"want one line of JSON; {self.why()}")
        try:
            return json.loads(lines[0])
        except ValueError as e:
            c.require(False, f"not JSON ({e}): {self.out[:300]!r}")


def mailroom(*args, stdin=None, timeout=60):
    try:
        p = subprocess.run([MAILROOM, *args], capture_output=True, timeout=timeout,
                           input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or b"", (e.stderr or b"") + b"[killed: timed out]"
    return Run(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_bounce(path, timeout=30):
    """The mailbox's text once it holds a whole multipart/report (its closing boundary)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        text = data.decode("utf-8", "replace")
        if "report-type=delivery-status" in text and text.rstrip().endswith("--"):
            time.sleep(0.2)  # the writer's last octets
            with open(path, "rb") as f:
                return f.read()
        time.sleep(0.2)
    return None


def send(c, port, rcpt, subject):
    """Submits a message with `mailroom send`; returns its send report (JSON)."""
    r = mailroom("send", "--server", f"smtp://{LOOPBACK}:{port}", "--tls", "none", "--json",
                 "--from", SENDER, "--to", rcpt, "--subject", subject, "--text",
                 "This message is meant to bounce.")
    c.require(r.rc == EX_OK, f"mailroom send: {r.why()}")
    rep = r.json(c)
    c.require(rep.get("accepted") == [rcpt], f"send report: {rep}")
    return rep


def bounce_json(c, path, want_rc=EX_OK):
    r = mailroom("bounce", "--json", path)
    c.require(r.rc == want_rc, f"mailroom bounce --json: want exit {want_rc}: {r.why()}")
    return r.json(c)


def check_failed(c, b, mta, rcpt, rep, subject):
    c.eq("complete", b["complete"], True)
    c.eq("error", b["error"], None)
    c.eq("reporting MTA", b["reporting_mta"], {"type": "dns", "value": mta})
    c.require(len(b["recipients"]) == 1, f"recipients: {b['recipients']}")
    r = b["recipients"][0]
    c.eq("final recipient", r["final_recipient"], {"type": "rfc822", "value": rcpt})
    c.eq("action", r["action"], "failed")
    c.check(r["status"] and r["status"]["class"] == 5, f"status: want 5.x.x: {r['status']}")
    c.check(b["original"] is not None, "no returned message")
    if b["original"]:
        c.eq("original Message-ID", b["original"]["message_id"], rep["message_id"])
        c.eq("original Subject", b["original"]["subject"], subject)
        c.eq("original From", b["original"]["from"], SENDER)
    return r


# ---- the RFC example and the tool's contract ----------------------------------------------


def case_rfc3464(c):
    path = os.path.join(TMP, "rfc3464.eml")
    with open(path, "w") as f:
        f.write(RFC3464_MULTI)
    b = bounce_json(c, path)
    c.eq("complete", b["complete"], True)
    c.eq("reporting MTA", b["reporting_mta"], {"type": "dns", "value": "cs.utk.edu"})
    c.eq("actions", [r["action"] for r in b["recipients"]], ["failed", "delayed", "failed"])
    c.eq("statuses", [r["status"]["code"] for r in b["recipients"]], ["5.0.0", "4.0.0", "5.0.0"])
    first = b["recipients"][0]
    c.eq("status text", first["status"]["text"], "permanent failure")
    c.eq("diagnostic", first["diagnostic_code"],
         {"type": "smtp", "value": "550 'arathib@vnet.IBM.COM' is not a registered gateway user"})
    c.eq("remote MTA", first["remote_mta"], {"type": "dns", "value": "vnet.ibm.com"})
    c.eq("original recipient", first["original_recipient"]["value"], "arathib@vnet.IBM.COM")

    # The same from standard input, as text.
    t = mailroom("bounce", "-", stdin=RFC3464_MULTI.encode())
    c.require(t.rc == EX_OK, f"bounce -: {t.why()}")
    c.check(re.search(r"^reporting MTA +dns; cs\.utk\.edu$", t.out, re.M), f"text: {t.out!r}")
    c.check(re.search(r"^recipient rfc822; johnh@hpnjld\.njd\.hp\.com\n  action +delayed$",
                      t.out, re.M), f"text output: {t.out!r}")
    c.check(re.search(r"^  status +5\.0\.0 \(permanent failure\)$", t.out, re.M),
            f"text output: {t.out!r}")


def case_truncated(c):
    """A report cut in its second recipient group: 65, with the first recipient whole."""
    path = os.path.join(TMP, "truncated.eml")
    with open(path, "w") as f:
        f.write(RFC3464_MULTI[:RFC3464_MULTI.index("Action: delayed")])
    b = bounce_json(c, path, EX_DATAERR)
    c.eq("complete", b["complete"], False)
    c.eq("error code", b["error"]["code"], "not_a_delivery_status")
    c.check("closing boundary" in b["error"]["detail"], f"error: {b['error']}")
    c.eq("recipients read", len(b["recipients"]), 2)
    c.eq("first action", b["recipients"][0]["action"], "failed")
    c.eq("second action", b["recipients"][1]["action"], None)
    t = mailroom("bounce", path)
    c.eq("text exit status", t.rc, EX_DATAERR)
    c.check(re.search(r"^reporting MTA +dns; cs\.utk\.edu$", t.out, re.M),
            f"partial output: {t.out!r}")
    c.check("without its closing boundary" in t.err and "what could be read is shown" in t.err,
            f"stderr: {t.err!r}")


def case_contract(c):
    """Not a report (65), too large (65), no file (66), usage (64)."""
    plain = os.path.join(TMP, "plain.eml")
    with open(plain, "w") as f:
        f.write("From: a@example.com\nSubject: hi\n\nnot a bounce\n")
    b = bounce_json(c, plain, EX_DATAERR)
    c.eq("not a report", b["error"]["code"], "not_a_delivery_status")
    c.eq("nothing read", (b["reporting_mta"], b["recipients"]), (None, []))

    path = os.path.join(TMP, "rfc3464.eml")
    r = mailroom("bounce", "--json", "--max-size", "1K", path)
    c.eq("--max-size 1K exit", r.rc, EX_DATAERR)
    b = r.json(c)
    c.eq("too large", b["error"]["code"], "delivery_status_too_large")
    c.eq("read within the bound", b["reporting_mta"], {"type": "dns", "value": "cs.utk.edu"})

    r = mailroom("bounce", os.path.join(TMP, "no-such-file"))
    c.eq("missing file", r.rc, EX_NOINPUT)
    r = mailroom("bounce")
    c.eq("no file", r.rc, EX_USAGE)
    r = mailroom("bounce", "--frobnicate", path)
    c.eq("unknown option", r.rc, EX_USAGE)
    r = mailroom("--help")
    c.check(r.rc == EX_OK and "bounce" in r.out, f"--help lists bounce: {r.why()}")


# ---- Exim ---------------------------------------------------------------------------------


def exim_binary():
    d = os.environ.get("MAILROOM_EXIM_DIR", "/tmp/mailroom-exim")
    for p in (os.environ.get("MAILROOM_EXIM"), os.path.join(d, "usr/sbin/exim4"),
              "/usr/sbin/exim4", shutil.which("exim4"), shutil.which("exim")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def exim_config(d, port, exe, dead_port):
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    # Exim never delivers as root (FIXED_NEVER_USERS): the mailbox is written as nobody.
    deliver_as = "nobody" if os.geteuid() == 0 else user
    return f"""\
keep_environment =
# Exim runs itself again to send the bounce: this binary, wherever it was unpacked.
exim_path = {exe}
primary_hostname = exim.{DOMAIN}
qualify_domain = {DOMAIN}
domainlist local_domains = {DOMAIN}
exim_user = {user}
exim_group = {"root" if os.geteuid() == 0 else user}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = {LOOPBACK}
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
acl_smtp_rcpt = acl_rcpt
# A message deferred for 2 s gets a delay warning (a DSN with action delayed) to its sender.
delay_warning = 2s

begin acl
acl_rcpt:
  accept

begin routers
# delayed.test goes to a port on 127.0.0.1 where nothing listens: deferred, never delivered.
delayed:
  driver = manualroute
  domains = delayed.test
  route_list = * {LOOPBACK} byname
  self = send
  transport = dead_end
# Only the sender has a mailbox; every other local part is unrouteable, and Exim bounces it.
mailbox:
  driver = accept
  domains = +local_domains
  local_parts = sender
  transport = to_file

begin transports
dead_end:
  driver = smtp
  port = {dead_port}
  hosts_override
  allow_localhost
  user = {deliver_as}
to_file:
  driver = appendfile
  file = {d}/mail/sender
  user = {deliver_as}
  delivery_date_add
  envelope_to_add
  return_path_add

begin retry
* * F,1m,1m
"""


def case_exim(c):
    exe = exim_binary()
    d = tempfile.mkdtemp(prefix="exim-", dir=TMP)
    os.chmod(d, 0o755)
    for sub in ("spool", "log"):
        os.mkdir(os.path.join(d, sub))
    os.mkdir(os.path.join(d, "mail"))
    os.chmod(os.path.join(d, "mail"), 0o1777)
    port = free_port()
    conf = os.path.join(d, "exim.conf")
    with open(conf, "w") as f:
        f.write(exim_config(d, port, exe, free_port()))
    log = open(os.path.join(d, "stderr"), "wb")
    # -q1s: a queue run every second, which sends the delay warning once it is due.
    p = subprocess.Popen([exe, "-C", conf, "-bdf", "-q1s", "-oX", str(port)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        c.require(wait_port(port), f"exim didn't listen on {port}: {read(d, 'stderr')}"
                                   f"{read(d, 'log/paniclog')}")
        rcpt = "nosuch@" + DOMAIN
        subject = "exim bounce " + os.urandom(4).hex()
        rep = send(c, port, rcpt, subject)
        raw = wait_bounce(os.path.join(d, "mail/sender"))
        c.require(raw is not None, f"no bounce from exim: {read(d, 'log/mainlog')[-1500:]}")
        path = os.path.join(TMP, "exim-bounce.eml")
        with open(path, "wb") as f:
            f.write(raw)
        b = bounce_json(c, path)
        check_failed(c, b, "exim." + DOMAIN, rcpt, rep, subject)
        c.check(b"Exim 4.96" in raw, "the bounce doesn't say Exim 4.96 made it")
        print(f"  exim: {exe}: status {b['recipients'][0]['status']['code']}, "
              f"Message-ID {b['original']['message_id']}", flush=True)

        # A delay warning: the relay for delayed.test refuses connections.
        os.truncate(os.path.join(d, "mail/sender"), 0)
        rcpt = "later@delayed.test"
        rep = send(c, port, rcpt, subject + " delayed")
        raw = wait_bounce(os.path.join(d, "mail/sender"))
        c.require(raw is not None, f"no delay warning: {read(d, 'log/mainlog')[-1500:]}")
        path = os.path.join(TMP, "exim-delayed.eml")
        with open(path, "wb") as f:
            f.write(raw)
        b = bounce_json(c, path)
        c.eq("complete", b["complete"], True)
        c.eq("reporting MTA", b["reporting_mta"], {"type": "dns", "value": "exim." + DOMAIN})
        r = b["recipients"][0]
        c.eq("final recipient", r["final_recipient"], {"type": "rfc822", "value": rcpt})
        c.eq("action", r["action"], "delayed")
        c.eq("status class", r["status"]["class"], 4)
        c.eq("original Message-ID", b["original"]["message_id"], rep["message_id"])
        # Deferred for the reason meant: the connection refused, not a configuration error.
        c.check("Connection refused" in read(d, "log/mainlog"), "mainlog: " +
                read(d, "log/mainlog")[-800:])
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def read(d, name):
    try:
        with open(os.path.join(d, name), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ---- Postfix ------------------------------------------------------------------------------

POSTFIX_MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_main_cf(d, dead_port):
    return f"""\
compatibility_level = 3.6
config_directory = {d}/conf
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.{DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination = {DOMAIN}
inet_interfaces = {LOOPBACK}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Every local part is taken at RCPT time; local(8) bounces those with no account.
local_recipient_maps =
# The sender's mailbox: a file, written as default_privs (nobody).
alias_maps = inline:{{ sender={d}/mail/sender }}
alias_database =
allow_mail_to_files = alias
biff = no
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtputf8_enable = no
# Nothing leaves this host: other domains bounce, and delayed.test goes to a port on
# 127.0.0.1 where nothing listens, so it is deferred and a delay warning follows at once.
default_transport = error:no remote delivery in this test
transport_maps = inline:{{ delayed.test=smtp:[{LOOPBACK}]:{dead_port} }}
delay_warning_time = 1s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


class Postfix:
    def __init__(self):
        self.d = tempfile.mkdtemp(prefix="postfix-", dir=TMP)
        os.chmod(self.d, 0o755)
        for sub in ("conf", "queue", "data", "mail"):
            os.mkdir(os.path.join(self.d, sub))
        os.chmod(os.path.join(self.d, "mail"), 0o1777)
        shutil.chown(os.path.join(self.d, "data"), "postfix")
        self.port = free_port()
        with open(os.path.join(self.d, "conf/main.cf"), "w") as f:
            f.write(postfix_main_cf(self.d, free_port()))
        with open(os.path.join(self.d, "conf/master.cf"), "w") as f:
            f.write(POSTFIX_MASTER.format(listen=f"{LOOPBACK}:{self.port}"))
        self.started = False

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", os.path.join(self.d, "conf"), *args],
                              capture_output=True, timeout=60)

    def start(self, c):
        # `postfix check` makes the queue's folders with their owners.
        self.postfix("check")
        r = self.postfix("start")
        self.started = True
        c.require(r.returncode == 0 and wait_port(self.port),
                  f"postfix start: exit {r.returncode}, {r.stderr[-500:]!r}, "
                  f"{read(self.d, 'maillog')[-800:]}")

    def stop(self):
        if self.started:
            self.postfix("stop")
            self.started = False


def postfix_missing():
    if not shutil.which("postfix", path=os.environ.get("PATH", "") + ":/usr/sbin"):
        return "no postfix"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master process)"
    return None


def case_postfix(c):
    pf = Postfix()
    try:
        pf.start(c)
        rcpt = "nosuch@" + DOMAIN
        subject = "postfix bounce " + os.urandom(4).hex()
        rep = send(c, pf.port, rcpt, subject)
        raw = wait_bounce(os.path.join(pf.d, "mail/sender"))
        c.require(raw is not None, f"no bounce from postfix: {read(pf.d, 'maillog')[-1500:]}")
        path = os.path.join(TMP, "postfix-bounce.eml")
        with open(path, "wb") as f:
            f.write(raw)
        b = bounce_json(c, path)
        r = check_failed(c, b, "postfix." + DOMAIN, rcpt, rep, subject)
        c.eq("status", r["status"]["code"], "5.1.1")
        c.eq("diagnostic type", (r["diagnostic_code"] or {}).get("type"), "x-postfix")
        c.check("unknown user" in (r["diagnostic_code"] or {}).get("value", ""),
                f"diagnostic: {r['diagnostic_code']}")
        c.eq("original recipient", r["original_recipient"], {"type": "rfc822", "value": rcpt})
        c.check(b["arrival_date"], "no Arrival-Date")
        # Postfix's queue id, as its 250 reply gave it to `mailroom send`, is in the report.
        fields = {f["name"]: f["value"] for f in b["other_fields"]}
        c.eq("X-Postfix-Queue-ID", fields.get("X-Postfix-Queue-ID"), rep["queue_id"])
        print(f"  postfix: status {r['status']['code']}, queue id {rep['queue_id']}, "
              f"Message-ID {b['original']['message_id']}", flush=True)

        # A delayed DSN: the relay for delayed.test refuses connections.
        os.truncate(os.path.join(pf.d, "mail/sender"), 0)
        rcpt = "later@delayed.test"
        subject = "postfix delay " + os.urandom(4).hex()
        rep = send(c, pf.port, rcpt, subject)
        raw = wait_bounce(os.path.join(pf.d, "mail/sender"), timeout=60)
        c.require(raw is not None, f"no delay warning: {read(pf.d, 'maillog')[-1500:]}")
        path = os.path.join(TMP, "postfix-delayed.eml")
        with open(path, "wb") as f:
            f.write(raw)
        b = bounce_json(c, path)
        c.eq("complete", b["complete"], True)
        r = b["recipients"][0]
        c.eq("action", r["action"], "delayed")
        c.eq("status class", r["status"]["class"], 4)
        c.check(r["will_retry_until"], "no Will-Retry-Until")
        c.eq("final recipient", r["final_recipient"]["value"], rcpt)
        c.eq("headers only", b["original"]["headers_only"], True)
        c.eq("original Message-ID", b["original"]["message_id"], rep["message_id"])
    finally:
        pf.stop()


def main():
    global MAILROOM, TMP
    MAILROOM = os.path.abspath(sys.argv[1])
    TMP = tempfile.mkdtemp(prefix="mailroom-bounce-")
    os.chmod(TMP, 0o755)
    mta_ran = False
    try:
        TALLY.run("rfc3464-example", case_rfc3464)
        TALLY.run("truncated-report", case_truncated)
        TALLY.run("exit-statuses", case_contract)
        cases = (("exim-bounce-and-delay", case_exim, lambda: None if exim_binary() else
                  "no exim4 (test/integration/peers/exim_peer.sh unpacks Debian's)"),
                 ("postfix-bounce-and-delay", case_postfix, postfix_missing))
        for name, fn, missing in cases:
            why = missing()
            if why:
                print(f"skip {name}: {why}", flush=True)
                continue
            mta_ran = True
            TALLY.run(name, fn)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"bounce: {TALLY.passed} passed, {TALLY.failed} failed", flush=True)
    if TALLY.failed:
        return 1
    return 0 if mta_ran else 77


if __name__ == "__main__":
    sys.exit(main())

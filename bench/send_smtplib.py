#!/usr/bin/python3
"""Send benchmark, Python side: bench/send_bench.cpp's workload with the standard library's
smtplib, for bench/run_send.sh.

One connection to 127.0.0.1:PORT, then COUNT sequential sendmail() calls of the same bytes (the
message file as it is, CRLF line ends expected) to the same envelope. smtplib doesn't pipeline:
MAIL, RCPT, DATA and the data each wait for their reply. Prints, like send_bench:

    smtplib send msgs=N seconds=S msgs_per_s=R cpu_s=C cpu_ms_per_msg=X

The clock and the CPU count (getrusage of the process: user + system) start once the connection
is up (greeting and EHLO done) and stop after the last message; QUIT is not counted. Every
message must be accepted: a refusal stops the run with exit status 1.

Run it with Debian's /usr/bin/python3.
Usage: send_smtplib.py --port PORT --file FILE [--count N] [--from ADDR] [--to ADDR]
"""
import argparse
import resource
import smtplib
import sys
import time


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--count", type=int, default=10000)
    # The envelope send_bench takes from the headers of the files run_send.sh writes.
    ap.add_argument("--from", dest="sender", default="sender@example.com")
    ap.add_argument("--to", dest="rcpt", default="rcpt@example.net")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count needs a positive number")
    with open(args.file, "rb") as f:
        data = f.read()

    smtp = smtplib.SMTP("127.0.0.1", args.port, local_hostname="client.example")
    smtp.ehlo()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    for i in range(args.count):
        refused = smtp.sendmail(args.sender, [args.rcpt], data)
        if refused:
            print("send_smtplib: message %d refused: %r" % (i + 1, refused), file=sys.stderr)
            return 1
    t1, cpu1 = time.perf_counter(), cpu_seconds()
    smtp.quit()

    seconds, cpu = t1 - t0, cpu1 - cpu0
    print("smtplib send msgs=%d seconds=%.3f msgs_per_s=%.0f cpu_s=%.3f cpu_ms_per_msg=%.4f"
          % (args.count, seconds, args.count / seconds, cpu, cpu * 1000 / args.count),
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, smtplib.SMTPException) as e:
        # sendmail raises (SMTPRecipientsRefused, SMTPDataError, ...) where nothing was taken.
        print("send_smtplib: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)

#!/usr/bin/python3
"""OpenDKIM's verifier, offline: libopendkim 2.11 (Debian's libopendkim11, installed with
opendkim-tools) called through ctypes, its public keys read from a file with the library's
DKIM_QUERY_FILE query method (what the opendkim filter's TestPublicKeys option sets), never
from DNS. opendkim-testmsg verifies only against DNS, and the opendkim filter's test mode
(`opendkim -t`) is in the opendkim package, a daemon; the library is the same code.

Usage: opendkim_verify.py KEYS MESSAGE   (Debian's /usr/bin/python3)
  KEYS     lines "<selector>._domainkey.<domain> <TXT record>", e.g.
           "s1._domainkey.example.com v=DKIM1; k=rsa; p=MIIBIjAN..."
  MESSAGE  the message as received (CRLF line ends, as on the wire)
Prints one JSON object: {"status": dkim_eom's result, "signatures": [{"domain", "selector",
"passed", "body_hash", "error"}]}; exits 0 when there is at least one signature and every
one passed, 1 otherwise, 2 when the library can't be used.

As a module: verify(message_bytes, keys_path) returns that object.
"""

import ctypes
import json
import sys

# libopendkim 2.11's dkim.h (libopendkim-dev 2.11.0~beta2-8+deb12u1).
DKIM_STAT_OK = 0
DKIM_OP_SETOPT = 1
DKIM_OPTS_FLAGS = 0
DKIM_OPTS_QUERYMETHOD = 6
DKIM_OPTS_QUERYINFO = 7
DKIM_QUERY_FILE = 1
DKIM_LIBFLAGS_BADSIGHANDLES = 0x400  # keep a handle for a signature that fails to parse
DKIM_SIGFLAG_PASSED = 0x04
DKIM_SIGBH_UNTESTED, DKIM_SIGBH_MATCH, DKIM_SIGBH_MISMATCH = -1, 0, 1

_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL("libopendkim.so.11")
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.dkim_init.restype = vp
    lib.dkim_init.argtypes = [vp, vp]
    lib.dkim_close.argtypes = [vp]
    lib.dkim_options.restype = ctypes.c_int
    lib.dkim_options.argtypes = [vp, ctypes.c_int, ctypes.c_int, vp, ctypes.c_size_t]
    lib.dkim_verify.restype = vp
    lib.dkim_verify.argtypes = [vp, cp, vp, ctypes.POINTER(ctypes.c_int)]
    lib.dkim_chunk.restype = ctypes.c_int
    lib.dkim_chunk.argtypes = [vp, cp, ctypes.c_size_t]
    lib.dkim_eom.restype = ctypes.c_int
    lib.dkim_eom.argtypes = [vp, ctypes.POINTER(ctypes.c_bool)]
    lib.dkim_getsiglist.restype = ctypes.c_int
    lib.dkim_getsiglist.argtypes = [vp, ctypes.POINTER(ctypes.POINTER(vp)),
                                    ctypes.POINTER(ctypes.c_int)]
    lib.dkim_sig_getflags.restype = ctypes.c_uint
    lib.dkim_sig_getflags.argtypes = [vp]
    lib.dkim_sig_getbh.restype = ctypes.c_int
    lib.dkim_sig_getbh.argtypes = [vp]
    lib.dkim_sig_geterror.restype = ctypes.c_int
    lib.dkim_sig_geterror.argtypes = [vp]
    lib.dkim_sig_geterrorstr.restype = cp
    lib.dkim_sig_geterrorstr.argtypes = [ctypes.c_int]
    lib.dkim_sig_getdomain.restype = cp
    lib.dkim_sig_getdomain.argtypes = [vp]
    lib.dkim_sig_getselector.restype = cp
    lib.dkim_sig_getselector.argtypes = [vp]
    lib.dkim_getresultstr.restype = cp
    lib.dkim_getresultstr.argtypes = [ctypes.c_int]
    lib.dkim_free.restype = ctypes.c_int
    lib.dkim_free.argtypes = [vp]
    _lib = lib
    return lib


def verify(message, keys_path):
    lib = _load()
    handle = lib.dkim_init(None, None)
    if not handle:
        raise RuntimeError("dkim_init failed")
    try:
        qm = ctypes.c_int(DKIM_QUERY_FILE)
        path = ctypes.create_string_buffer(keys_path.encode())
        flags = ctypes.c_uint(DKIM_LIBFLAGS_BADSIGHANDLES)
        for opt, ptr, size in ((DKIM_OPTS_QUERYMETHOD, ctypes.byref(qm), ctypes.sizeof(qm)),
                               (DKIM_OPTS_QUERYINFO, ctypes.cast(path, ctypes.c_void_p),
                                len(path.value)),
                               (DKIM_OPTS_FLAGS, ctypes.byref(flags), ctypes.sizeof(flags))):
            if lib.dkim_options(handle, DKIM_OP_SETOPT, opt, ptr, size) != DKIM_STAT_OK:
                raise RuntimeError(f"dkim_options({opt}) failed")
        stat = ctypes.c_int(0)
        d = lib.dkim_verify(handle, b"mailroom-test", None, ctypes.byref(stat))
        if not d:
            raise RuntimeError("dkim_verify failed: " + lib.dkim_getresultstr(stat.value).decode())
        try:
            status = lib.dkim_chunk(d, message, len(message))
            if status == DKIM_STAT_OK:
                status = lib.dkim_chunk(d, None, 0)
            if status == DKIM_STAT_OK:
                testkey = ctypes.c_bool(False)
                status = lib.dkim_eom(d, ctypes.byref(testkey))
            out = {"status": lib.dkim_getresultstr(status).decode(), "signatures": []}
            sigs = ctypes.POINTER(ctypes.c_void_p)()
            n = ctypes.c_int(0)
            if lib.dkim_getsiglist(d, ctypes.byref(sigs), ctypes.byref(n)) == DKIM_STAT_OK:
                for i in range(n.value):
                    s = sigs[i]
                    bh = lib.dkim_sig_getbh(s)
                    err = lib.dkim_sig_geterror(s)
                    errstr = lib.dkim_sig_geterrorstr(err)
                    out["signatures"].append({
                        "domain": (lib.dkim_sig_getdomain(s) or b"").decode(),
                        "selector": (lib.dkim_sig_getselector(s) or b"").decode(),
                        "passed": bool(lib.dkim_sig_getflags(s) & DKIM_SIGFLAG_PASSED)
                        and bh == DKIM_SIGBH_MATCH,
                        "body_hash": {DKIM_SIGBH_MATCH: "match", DKIM_SIGBH_MISMATCH: "mismatch"}
                        .get(bh, "untested"),
                        "error": errstr.decode() if errstr else str(err),
                    })
            return out
        finally:
            lib.dkim_free(d)
    finally:
        lib.dkim_close(handle)


def passed(result):
    sigs = result["signatures"]
    return bool(sigs) and all(s["passed"] for s in sigs)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    with open(argv[2], "rb") as f:
        message = f.read()
    try:
        r = verify(message, argv[1])
    except (OSError, RuntimeError) as e:
        print(f"opendkim_verify: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r))
    return 0 if passed(r) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

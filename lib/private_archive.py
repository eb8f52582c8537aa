#!/usr/bin/env python3
"""Makes the installed static library: every object of the library linked into one
relocatable object in which only mailroom's API stays global, in an archive of its own.

A program linking it then meets none of the library's code but its API: its own Asio,
header-only or compiled from boost/asio/impl/src.hpp, never clashes with the library's
(no multiple definitions, no copy picked from the other side), as with the shared library.

- Section groups (COMDAT) are dissolved first, or the linker would drop the library's copy of
  an inline function the program has too while the library's now-local references still
  point at it.
- Hidden symbols (the library's private code, most of Asio's and Beast's inline code) become
  local; so do the functions Asio's headers give default visibility (member templates such as
  epoll_reactor::schedule_timer<>), unless they are mailroom's.
- Data with vague linkage that Asio means to be one per program (service ids, the per-thread
  call stacks, function-local statics; GNU "unique" symbols) stays global, made weak: it merges
  with the program's, so one io_context keeps one set of services and one per-thread context.
- Undefined references (OpenSSL's, libidn2's) stay strong: a missing library is a link error.

usage: private_archive.py LD OBJCOPY NM CXXFILT AR INPUT.a OUTPUT.a
"""
import os
import subprocess
import sys


def main(ld, objcopy, nm, cxxfilt, ar, archive, output):
    obj = output + ".o"
    subprocess.run([ld, "-r", "--whole-archive", archive, "-o", obj], check=True)
    subprocess.run([objcopy, "--localize-hidden", "--remove-section=.group", obj], check=True)

    listing = subprocess.run([nm, "--defined-only", "-g", "--format=posix", obj], check=True,
                             capture_output=True, text=True).stdout
    symbols = [line.split()[:2] for line in listing.splitlines() if len(line.split()) >= 2]
    demangled = subprocess.run([cxxfilt], input="\n".join(name for name, _ in symbols),
                               check=True, capture_output=True, text=True).stdout.splitlines()
    localize, weaken = [], []
    for (name, kind), readable in zip(symbols, demangled):
        if kind == "u":
            weaken.append(name)
        elif kind in ("T", "W") and not readable.startswith("mailroom::"):
            localize.append(name)

    lists = []
    for option, names in (("--localize-symbols=", localize), ("--weaken-symbols=", weaken)):
        path = obj + "." + option.strip("-=").split("-")[0]
        with open(path, "w") as f:
            f.write("\n".join(names) + "\n")
        lists.append(option + path)
    subprocess.run([objcopy] + lists + [obj], check=True)
    for option in lists:
        os.remove(option.split("=", 1)[1])

    if os.path.exists(output):
        os.remove(output)
    subprocess.run([ar, "rcs", output, obj], check=True)
    os.remove(obj)


if __name__ == "__main__":
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    main(*sys.argv[1:])

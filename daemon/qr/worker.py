"""One decoder worker process, in a box: image bytes in on a pipe, a JSON reply out.

The daemon's pool (daemon/qr/pool.py) starts it as ``python -m
tokenstation.daemon.qr.worker --memory-mb M --cpu-s C`` with a pipe on stdin and one on
stdout, stderr on /dev/null, no other descriptor (``close_fds``) and an environment
without the daemon's credentials. Before it reads an image it:

- makes itself undumpable and without core files (``PR_SET_DUMPABLE`` 0,
  ``RLIMIT_CORE`` 0): the decoded text of an enrolment QR is a seed;
- closes any descriptor above its pipes and points stdout at /dev/null, so a C library
  that prints cannot corrupt the replies (they go to a copy of the pipe);
- loads every module and image plugin it could need, then lowers ``RLIMIT_NOFILE`` to
  the descriptors it already holds: it can open no file and no socket at all, so no
  queue, registry, key file, bus or database, whatever an image makes it do;
- bounds its address space (``RLIMIT_AS``, ``--memory-mb``: an allocation past it is
  a MemoryError, answered as "needs more memory", or a crash the pool words the same)
  and its CPU time (``RLIMIT_CPU``: a hard limit of ``--cpu-s`` over its life, after
  which the kernel kills it; the pool replaces it before that; and per image a soft
  limit of the budget plus the grace, at which the kernel's SIGXCPU ends it).

Requests are ``>Qd`` (length, budget in seconds) and the image bytes; replies are a
``>I`` length and UTF-8 JSON (never pickle: the daemon must not run what a subverted
decoder sends it). The first reply, before any request, is ``{"ready": decoders, "dumpable": 0}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import struct
import sys
from typing import Any, BinaryIO

from tokenstation.daemon.hardening import dumpable, no_core_dumps
from tokenstation.daemon.qr.symbols import DecodeResult, Symbol

REQUEST = struct.Struct(">Qd")
REPLY = struct.Struct(">I")
#: The largest reply the pool reads (a few codes' texts; anything bigger is a fault).
MAX_REPLY = 4 * 2**20


# -- the wire ------------------------------------------------------------------------


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes from ``stream``; EOFError when it ends first."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send_json(stream: BinaryIO, value: object) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    stream.write(REPLY.pack(len(body)) + body)
    stream.flush()


def result_to_wire(result: DecodeResult) -> dict[str, Any]:
    return {
        "symbols": [[s.kind, s.text, s.raw.hex()] for s in result.symbols],
        "pass": result.pass_name,
        "size": list(result.size),
        "frames": result.frames,
        "timed_out": result.timed_out,
    }


def result_from_wire(value: Any) -> DecodeResult:
    """A worker's "ok" reply -> DecodeResult; ValueError when it is not one."""
    try:
        symbols = tuple(
            Symbol(str(kind), str(text), bytes.fromhex(raw)) for kind, text, raw in value["symbols"]
        )
        width, height = (int(v) for v in value["size"])
        return DecodeResult(
            symbols,
            str(value["pass"]),
            (width, height),
            int(value["frames"]),
            bool(value["timed_out"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a decode result ({exc})") from None


# -- the worker ----------------------------------------------------------------------


def _preload() -> str:
    """Import everything a decode may reach for, while files can still be opened."""
    from PIL import Image, ImageFilter, ImageOps  # noqa: F401  (the passes use them)

    from tokenstation.daemon.qr import decode, zbar  # noqa: F401

    Image.init()  # every plugin: a file its magic bytes misname is tried by all of them
    return decode.decoders()


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_reason(memory_mb: int) -> str:
    """The refusal of an image that needs more memory than a worker may have."""
    return (
        f"the image needs more memory than a decoder may use ({memory_mb} MB); "
        "crop it to the code or scale it down"
    )


def serve(stdin: BinaryIO, stdout: BinaryIO, cpu_hard: int, memory_mb: int) -> None:
    from tokenstation.daemon.qr import decode
    from tokenstation.daemon.qr.image import ImageError

    while True:
        try:
            length, budget_s = REQUEST.unpack(read_exact(stdin, REQUEST.size))
            data = read_exact(stdin, length)
        except EOFError:
            return
        # This image's CPU time: the budget and a grace; the kernel ends us past it.
        soft = min(cpu_hard, math.ceil(_cpu_used() + budget_s) + 2)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))
        reply: dict[str, Any]
        try:
            reply = {"ok": result_to_wire(decode.decode_bytes(data, budget_s=budget_s))}
        except ImageError as exc:
            reply = {"error": str(exc)}
        except MemoryError:
            reply = {"error": memory_reason(memory_mb)}
        except OSError as exc:  # something tried to open a file it may not
            reply = {"error": f"the decoder could not read this image ({exc.strerror})"}
        del data
        send_json(stdout, reply)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tokenstation-decoder")
    ap.add_argument("--memory-mb", type=int, required=True)
    ap.add_argument("--cpu-s", type=int, required=True)
    args = ap.parse_args(argv)
    no_core_dumps()
    os.chdir("/")
    # Replies go to a copy of the pipe; fd 1 (and 2) to /dev/null for chatty C code.
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    os.closerange(max(out_fd, 0) + 1, 1 << 16)
    os.closerange(3, out_fd)
    stdin = os.fdopen(0, "rb", buffering=0)
    stdout = os.fdopen(out_fd, "wb")
    decoders = _preload()
    # From here on: no new descriptor (file, socket, pipe) can be made.
    resource.setrlimit(resource.RLIMIT_NOFILE, (out_fd + 1, out_fd + 1))
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_s, args.cpu_s))
    send_json(stdout, {"ready": decoders, "dumpable": dumpable()})
    serve(stdin, stdout, args.cpu_s, args.memory_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())

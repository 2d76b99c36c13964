"""Read one dropped or scanned file safely and say what it is.

Only regular files are read: symlinks, FIFOs, devices, sockets and directories are
refused without being followed or opened for reading (O_NOFOLLOW | O_NONBLOCK, then
fstat), and files over the size limit are refused. The bytes are read once, so what
is judged is what was read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from . import decode
from .imagefile import IMAGE_SUFFIXES, ImageError
from .payload import (
    CSV_SUFFIXES,
    TEXT_SUFFIXES,
    Kind,
    Verdict,
    judge_symbols,
    read_csv_file,
    read_text_file,
    serial_binding,
)
from .symbols import DecodeResult
from .token.models import ModelTable

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SUPPORTED = IMAGE_SUFFIXES | TEXT_SUFFIXES | CSV_SUFFIXES


class NotAFile(Exception):
    """The path is not a regular file we may read; the message says what it is."""


def _kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, or NotAFile / OSError. Never follows a link, never blocks."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"{_kind_of(st.st_mode)}; only regular files are read")
    if st.st_size > max_bytes:
        raise NotAFile(f"{st.st_size} bytes, over the {max_bytes} byte limit")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise NotAFile(f"{_kind_of(fst.st_mode)}; only regular files are read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise NotAFile(f"over the {max_bytes} byte limit")
    return data


#: Image bytes -> codes (raises ImageError); the daemon passes its worker pool's.
Decoder = Callable[[bytes], DecodeResult]


def judge_bytes(
    name: str,
    data: bytes,
    models: ModelTable | None = None,
    decoder: Decoder = decode.decode_bytes,
) -> Verdict:
    """What the file ``name`` holding ``data`` is, by its suffix."""
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_text_file(path, data, models)
    if suffix in CSV_SUFFIXES:
        return read_csv_file(path, data)
    if suffix in IMAGE_SUFFIXES:
        try:
            result = decoder(data)
        except ImageError as exc:
            return Verdict(name, Kind.UNREADABLE.value, "error", f"image: {exc}")
        if result.timed_out and not result.symbols:
            return Verdict(name, Kind.NO_QR.value, "rejected", decode.timed_out_reason())
        return judge_symbols(name, [s.text for s in result.symbols], serial_binding(path), models)
    return Verdict(
        name,
        Kind.UNSUPPORTED.value,
        "rejected",
        f"{suffix or 'no suffix'}: not a supported file type (QR images "
        f"{', '.join(sorted(IMAGE_SUFFIXES))}; otpauth text .txt/.uri; .csv batches)",
    )


def scan_path(
    path: Path, models: ModelTable | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Verdict:
    """Read and judge one file; every failure becomes an "error" verdict."""
    try:
        data = read_bytes(path, max_bytes)
    except NotAFile as exc:
        return Verdict(path.name, Kind.UNSUPPORTED.value, "error", str(exc))
    except FileNotFoundError:
        return Verdict(path.name, Kind.UNREADABLE.value, "error", "no such file")
    except OSError as exc:
        return Verdict(
            path.name, Kind.UNREADABLE.value, "error", f"cannot be read ({exc.strerror})"
        )
    return judge_bytes(path.name, data, models)

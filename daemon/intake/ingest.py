"""Read one dropped or scanned file safely and say what it is.

Only regular files are read: symlinks, FIFOs, devices, sockets and directories are
refused without being followed or opened for reading (O_NOFOLLOW | O_NONBLOCK, then
fstat), and files over the size limit are refused. The drop folder's files are read
relative to the descriptor of the folder they were claimed into, and only when they
have one name (no hard link) and belong to a trusted owner: anything else is refused
before it is opened. The bytes are read once, so what is judged is what was read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tokenstation.daemon.intake.payload import (
    CSV_SUFFIXES,
    DEFAULT_LIMITS,
    TEXT_SUFFIXES,
    Kind,
    Limits,
    Verdict,
    judge_symbols,
    read_csv_file,
    read_text_file,
    serial_binding,
)
from tokenstation.daemon.qr import decode
from tokenstation.daemon.qr.image import IMAGE_SUFFIXES, ImageError
from tokenstation.daemon.qr.symbols import DecodeResult
from tokenstation.daemon.records import Record
from tokenstation.daemon.safetext import shown_name

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from tokenstation.daemon.token.models import ModelTable

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_CHUNK = 1 << 20
SUPPORTED = IMAGE_SUFFIXES | TEXT_SUFFIXES | CSV_SUFFIXES


class NotAFile(Exception):
    """The path is not a regular file we may read; the message says what it is."""


class NotTrusted(NotAFile):
    """A regular file the drop folder does not read: a second name of an inode (a hard
    link), or a file of an owner it does not trust; the message says which."""


def owner_name(uid: int) -> str:
    """The user name of ``uid`` (the number when it has none)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"user {uid}"


def check_trusted(st: os.stat_result, owners: frozenset[int]) -> None:
    """Raise :class:`NotTrusted` unless ``st`` has one name and an owner in ``owners``."""
    if st.st_nlink > 1:
        raise NotTrusted(
            f"it is one of {st.st_nlink} names of the same file (a hard link); the "
            "drop folder takes only files with one name, and this one was neither read, "
            "zeroed nor changed"
        )
    if st.st_uid not in owners:
        raise NotTrusted(
            f"it belongs to {owner_name(st.st_uid)}, who is neither the daemon's user nor "
            "named in [drop] owners; it was neither read, zeroed nor changed"
        )


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
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


class Opened(Record):
    """A claimed file read once: its bytes and the descriptor of the inode they came from."""

    _hidden = frozenset({"data"})
    path: Path
    data: bytes
    fd: int
    writable: bool
    ident: tuple[int, int]

    def __init__(
        self, path: Path, data: bytes, fd: int, writable: bool, ident: tuple[int, int]
    ) -> None:
        self._set(path=path, data=data, fd=fd, writable=writable, ident=ident)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def open_and_read(
    path: Path,
    max_bytes: int,
    *,
    for_erasing: bool = False,
    dir_fd: int | None = None,
    owners: frozenset[int] | None = None,
) -> Opened:
    """Read a regular file once, never following a link or blocking on a FIFO.

    With ``dir_fd`` the file is ``path.name`` in that folder's descriptor (the path is
    only its name in messages); nothing is resolved again. With ``owners`` a file with
    more than one name or another owner is refused (:class:`NotTrusted`) before it is
    opened. With ``for_erasing`` the descriptor is opened for writing too where the mode
    allows, so the inode read can later be overwritten through it. Raises
    :class:`NotAFile` (with what it is) or OSError.
    """
    where: str | Path = path.name if dir_fd is not None else path
    st = os.stat(where, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"{kind_of(st.st_mode)}; only regular files are read")
    if owners is not None:
        check_trusted(st, owners)
    if st.st_size > max_bytes:
        raise NotAFile(f"{st.st_size} bytes, over the {max_bytes} byte limit")
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    writable = for_erasing
    try:
        fd = os.open(where, (os.O_RDWR if for_erasing else os.O_RDONLY) | flags, dir_fd=dir_fd)
    except PermissionError:
        if not for_erasing:
            raise
        writable = False
        fd = os.open(where, os.O_RDONLY | flags, dir_fd=dir_fd)
    try:
        fst = _regular_file(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise NotAFile("it was replaced while it was being opened")
        if owners is not None:
            check_trusted(fst, owners)
        data = read_limited(fd, max_bytes)
    except BaseException:
        os.close(fd)
        raise
    return Opened(path, data, fd, writable, (fst.st_dev, fst.st_ino))


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, or NotAFile / OSError. Never follows a link, never blocks."""
    opened = open_and_read(path, max_bytes)
    opened.close()
    return opened.data


def _regular_file(fd: int) -> os.stat_result:
    """``fd``'s status; NotAFile (saying what it is) unless it is a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"{kind_of(st.st_mode)}; only regular files are read")
    return st


def read_limited(fd: int, max_bytes: int) -> bytes:
    """Everything in ``fd`` (a regular file) from its start; NotAFile when over ``max_bytes``.

    It reads with pread: the descriptor's file offset is neither used nor moved.
    """
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = os.pread(fd, min(_CHUNK, max_bytes + 1 - total), total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise NotAFile(f"over the {max_bytes} byte limit")
    return b"".join(chunks)


def read_fd(fd: int, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a file a caller opened and handed over (IngestFile): regular files only."""
    st = _regular_file(fd)
    if st.st_size > max_bytes:
        raise NotAFile(f"{st.st_size} bytes, over the {max_bytes} byte limit")
    return read_limited(fd, max_bytes)


#: Image bytes -> codes (raises ImageError); the daemon passes its worker pool's.
Decoder = Callable[[bytes], DecodeResult]


def judge_bytes(
    name: str,
    data: bytes,
    models: ModelTable | None = None,
    limits: Limits = DEFAULT_LIMITS,
    decoder: Decoder = decode.decode_bytes,
) -> Verdict:
    """What the file ``name`` holding ``data`` is, by its suffix; a file with more jobs
    than ``limits.max_jobs`` is refused whole."""
    verdict = _judge(name, data, models, limits, decoder)
    if verdict.verdict == "ok" and len(verdict.candidates) > limits.max_jobs:
        verdict.verdict = "rejected"
        verdict.reason = limits.too_many(f"{len(verdict.candidates)} accounts")
        verdict.candidates = []
    return verdict


def _judge(
    name: str, data: bytes, models: ModelTable | None, limits: Limits, decoder: Decoder
) -> Verdict:
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_text_file(path, data, models, limits)
    if suffix in CSV_SUFFIXES:
        return read_csv_file(path, data, limits)
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
    path: Path,
    models: ModelTable | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: Limits = DEFAULT_LIMITS,
) -> Verdict:
    """Read and judge one file; every failure becomes an "error" verdict."""
    try:
        data = read_bytes(path, max_bytes)
    except NotAFile as exc:
        return Verdict(shown_name(path.name), Kind.UNSUPPORTED.value, "error", str(exc))
    except FileNotFoundError:
        return Verdict(shown_name(path.name), Kind.UNREADABLE.value, "error", "no such file")
    except OSError as exc:
        return Verdict(
            shown_name(path.name),
            Kind.UNREADABLE.value,
            "error",
            f"cannot be read ({exc.strerror})",
        )
    return judge_bytes(shown_name(path.name), data, models, limits)

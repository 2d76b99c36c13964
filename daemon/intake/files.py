"""The file mechanics of the drop folder: claim, read, erase or archive, refuse.

A stable file is first *claimed*: renamed into ``.taking/claim`` (a private 0700 folder
inside the drop folder, so on the same file system). Nobody else can replace it there
while it is judged, and a crash leaves it somewhere known. It is read once, through one
descriptor. Once its jobs are committed it is renamed into ``.taking/erase``; there the
inode that was read is overwritten with zeros through that descriptor, and the name is
unlinked only if it still names that inode. At start, whatever is in ``erase/`` is
finished (zeroed, unlinked) without being judged again, and whatever is in ``claim/`` is
judged again: a file whose bytes were already recorded is recognised ("seen before")
and erased, never refused. So a crash at any step neither loses a file nor turns a
taken file into a refusal.

A refused file moves to ``failed/`` under a name of at most 244 bytes, so that its
``NAME.reason.txt`` fits the 255-byte limit of file names; each step of a refusal
(move, permissions, reason file) is tried on its own, and the caller always announces it.
Files kept in ``failed/`` and ``archive/`` are made 0600.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon import xdg
from tokenstation.daemon.intake.ingest import NotAFile, Opened, kind_of, open_and_read
from tokenstation.daemon.safetext import shown_name

log = logging.getLogger(__name__)

FAILED = "failed"
ARCHIVE = "archive"
WORK = ".taking"
NAME_MAX = 255
REASON_SUFFIX = ".reason.txt"
#: A refused file's name leaves room for its reason file's suffix.
FAILED_NAME_MAX = NAME_MAX - len(REASON_SUFFIX)
_CHUNK = 1 << 20


def fit_name(name: str, max_bytes: int = NAME_MAX) -> str:
    """``name`` shortened (with a hash of the whole name) to at most ``max_bytes`` bytes."""
    raw = os.fsencode(name)
    if len(raw) <= max_bytes:
        return name
    stem, dot, suffix = raw.rpartition(b".")
    if not dot or not stem or len(suffix) > 16:
        stem, suffix = raw, b""
    else:
        suffix = b"." + suffix
    tag = b"~" + hashlib.sha256(raw).hexdigest()[:8].encode()
    cut = max(0, max_bytes - len(tag) - len(suffix))
    while 0 < cut < len(stem) and (stem[cut] & 0xC0) == 0x80:
        cut -= 1  # never cut a UTF-8 character in two
    return os.fsdecode(stem[:cut] + tag + suffix)


def unique_name(folder: Path, name: str, max_bytes: int = NAME_MAX) -> Path:
    """A free path in ``folder`` for ``name`` (a counter when taken; never over the limit)."""
    first = folder / fit_name(name, max_bytes)
    if not os.path.lexists(first):
        return first
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    for n in range(1, 100000):
        candidate = folder / fit_name(f"{stem}.{n}{suffix}", max_bytes)
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(first))


def same_inode(path: Path, ident: tuple[int, int]) -> bool:
    """True when ``path`` (not followed) still names the inode ``ident``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == ident


def zero_through(opened: Opened) -> bool:
    """Overwrite the inode that was read with zeros, through its descriptor; True when done."""
    fd = opened.fd
    own = -1
    try:
        if not opened.writable:
            os.fchmod(fd, 0o600)  # ours to change: we may write it now
            own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
            if (os.fstat(own).st_dev, os.fstat(own).st_ino) != opened.ident:
                return False
            fd = own
        size = os.fstat(fd).st_size
        zeros = b"\0" * min(size, _CHUNK)
        written = 0
        while written < size:
            written += os.pwrite(fd, zeros[: size - written], written)
        os.fsync(fd)
        return True
    except OSError as exc:
        log.warning("could not zero %s before deleting it (%s)", opened.path.name, exc.strerror)
        return False
    finally:
        if own >= 0:
            os.close(own)


class UnsafeFolder(Exception):
    """A subfolder of the drop folder that must not be used; the message says why."""


class IntakeFiles:
    """The drop folder's private subfolders and the file moves between them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.failed = folder / FAILED
        self.archive = folder / ARCHIVE
        self.work = folder / WORK
        self.claims = self.work / "claim"
        self.erasing = self.work / "erase"

    def prepare(self) -> None:
        """Create the folder and its subfolders, 0700.

        Raises :class:`UnsafeFolder` when a subfolder is a link, not a folder, or not this
        user's: someone who may drop files must not be able to redirect where they go.
        """
        try:
            xdg.private_dir(self.folder)
        except xdg.SharedFolder as exc:
            raise UnsafeFolder(str(exc)) from None
        for p in (self.failed, self.archive, self.work, self.claims, self.erasing):
            p.mkdir(exist_ok=True, mode=0o700)
            st = os.lstat(p)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                if stat.S_ISDIR(st.st_mode):
                    why = "a folder of another user"
                elif stat.S_ISREG(st.st_mode):
                    why = "a file, not a folder"
                else:
                    why = f"{kind_of(st.st_mode)}, not a folder"
                raise UnsafeFolder(
                    f"{shown_name(str(p))} is {why}: remove it and restart the daemon"
                )
            os.chmod(p, 0o700)

    def is_claimed(self, path: Path) -> bool:
        """True for a path inside the claim folder."""
        return path.parent == self.claims

    def claim(self, path: Path) -> Path | None:
        """Move ``path`` into the claim folder; None when it is gone. Raises OSError."""
        if self.is_claimed(path):
            return path if os.path.lexists(path) else None
        target = unique_name(self.claims, path.name)
        try:
            os.rename(path, target)  # a link or FIFO is moved as it is, never followed
        except FileNotFoundError:
            return None
        return target

    def recover(self) -> list[Path]:
        """At start: finish erasing what was taken; return the claims to judge again."""
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(self.erasing)):
                self._finish_erase(self.erasing / entry)
        try:
            names = sorted(os.listdir(self.claims))
        except FileNotFoundError:
            return []
        if names:
            log.info("%d file(s) were being judged when the daemon stopped: again", len(names))
        return [self.claims / n for n in names]

    def _finish_erase(self, path: Path) -> None:
        try:
            opened = open_and_read(path, 1 << 62, for_erasing=True)
        except (NotAFile, OSError):
            with contextlib.suppress(OSError):
                path.unlink()
            return
        try:
            zero_through(opened)
            if same_inode(path, opened.ident):
                path.unlink()
        finally:
            opened.close()
        log.info("finished erasing a taken file left by a stop (%s)", path.name)

    def erase(self, opened: Opened) -> None:
        """A taken file: into ``erase/``, zeroed through its descriptor, then unlinked."""
        path = opened.path
        target = unique_name(self.erasing, path.name)
        os.rename(path, target)
        zero_through(opened)  # the inode that was read, wherever its name went
        if same_inode(target, opened.ident):
            target.unlink()
            return
        # Replaced between the read and the rename (only our own user can): what is at
        # ``target`` now was never judged; it goes back to be judged as a new file.
        log.warning(
            "%s was replaced while it was judged; it is judged at the next start",
            shown_name(path.name),
        )
        os.rename(target, unique_name(self.claims, path.name))

    def keep(self, opened: Opened) -> Path:
        """A taken file kept (``after = "archive"``): moved to ``archive/``, 0600."""
        target = unique_name(self.archive, opened.path.name)
        os.rename(opened.path, target)
        with contextlib.suppress(OSError):
            os.fchmod(opened.fd, 0o600)
        return target

    def refuse(self, path: Path, refusal: Refusal, opened: Opened | None = None) -> Path | None:
        """Move a refused file to ``failed/`` (0600) with its reason file; the path it got.

        The reason file is written first, then the file is moved beside it, so a stop in
        between leaves the file claimed (it is judged again at the next start and lands
        on the same reason file), never in ``failed/`` without its reason. Every step is
        tried on its own: a failing step is logged, the others still run. None when the
        file could not be moved.
        """
        try:
            target = unique_name(self.failed, path.name, FAILED_NAME_MAX)
        except OSError as exc:
            log.error("no name in failed/ for %s (%s)", refusal.shown, exc)
            return None
        try:
            reason = self.failed / (target.name + REASON_SUFFIX)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(reason, flags, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write(refusal.text(shown_name(target.name)))
        except OSError as exc:
            log.error("could not write the reason file for %s (%s)", refusal.shown, exc)
        try:
            os.rename(path, target)  # a link or FIFO is moved as it is, never followed
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("could not move refused file %s to failed/ (%s)", refusal.shown, exc)
            return None
        self._private(target, opened)
        return target

    @staticmethod
    def _private(target: Path, opened: Opened | None) -> None:
        try:
            if opened is not None and same_inode(target, opened.ident):
                os.fchmod(opened.fd, 0o600)
                return
            st = os.lstat(target)
            if stat.S_ISLNK(st.st_mode):
                return  # a link's own mode means nothing on Linux
            os.chmod(target, 0o700 if stat.S_ISDIR(st.st_mode) else 0o600)
        except OSError as exc:
            log.warning("could not make %s private (%s)", target.name, exc.strerror)


@dataclass(frozen=True)
class Refusal:
    """Why a file was refused, as its reason file says it."""

    shown: str  # the name as dropped, escaped
    kind: str
    verdict: str
    reason: str
    advice: str

    def text(self, kept_as: str = "") -> str:
        """The text of ``NAME.reason.txt``."""
        return (
            f"File:        {self.shown}\n"
            + (f"Kept as:     {kept_as}\n" if kept_as and kept_as != self.shown else "")
            + f"Refused at:  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n"
            f"What it is:  {self.kind}\n"
            f"Verdict:     {self.verdict}\n"
            f"Why:         {self.reason}\n"
            f"What to do:  {self.advice} This file may hold a secret: delete it once you have "
            "looked at it.\n"
        )

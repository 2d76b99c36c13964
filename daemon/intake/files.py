"""The file mechanics of the drop folder: claim, read, erase or archive, refuse.

Everything works relative to descriptors, never by resolving a path again: the drop
folder is opened once (``O_DIRECTORY|O_NOFOLLOW``), and each of its subfolders
(``failed/``, ``archive/``, ``.taking/claim``, ``.taking/erase``) is opened relative to
its parent's descriptor at every use, with ``O_NOFOLLOW``, and used only when it is a
real folder of the daemon's user that no one else may write in. A subfolder replaced by
a link, by another user's folder or by a file is refused with a sentence (logged, and
kept for ``status``: :attr:`IntakeFiles.trouble`), and nothing is moved there; a missing
one is made again, 0700. A drop folder others may write in is used only when it is
sticky or the daemon's user owns it (:meth:`IntakeFiles.prepare`).

A stable file is first *claimed*: renamed into ``.taking/claim`` (a private 0700 folder
inside the drop folder, so on the same file system). Nobody else can replace it there
while it is judged, and a crash leaves it somewhere known. It is read only when it has
one name (no hard link) and its owner is the daemon's user or named in ``[drop] owners``;
otherwise it is refused unread, never zeroed nor re-moded. It is read once, through one
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
Files kept in ``failed/`` and ``archive/`` are made 0600 (only the daemon's own files
with one name: a hard link or another user's file keeps its mode).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon import xdg
from tokenstation.daemon.intake.ingest import (
    NotAFile,
    Opened,
    kind_of,
    open_and_read,
    owner_name,
)
from tokenstation.daemon.safetext import shown_name
from tokenstation.daemon.token.problem import Problem, ProblemKind

log = logging.getLogger(__name__)

FAILED = "failed"
ARCHIVE = "archive"
WORK = ".taking"
NAME_MAX = 255
REASON_SUFFIX = ".reason.txt"
#: A refused file's name leaves room for its reason file's suffix.
FAILED_NAME_MAX = NAME_MAX - len(REASON_SUFFIX)
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CLAIM = (WORK, "claim")
ERASE = (WORK, "erase")


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
    return folder / free_name(name, max_bytes, lambda n: os.path.lexists(folder / n))


def free_name_at(dir_fd: int, name: str, max_bytes: int = NAME_MAX) -> str:
    """A free name for ``name`` in the folder open as ``dir_fd``."""
    return free_name(name, max_bytes, lambda n: _lexists_at(dir_fd, n))


def free_name(name: str, max_bytes: int, exists: Callable[[str], bool]) -> str:
    """``name`` fitted to ``max_bytes``, with a counter when ``exists`` says it is taken."""
    first = fit_name(name, max_bytes)
    if not exists(first):
        return first
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    for n in range(1, 100000):
        candidate = fit_name(f"{stem}.{n}{suffix}", max_bytes)
        if not exists(candidate):
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name", first)


def _lexists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def same_inode(path: Path, ident: tuple[int, int], dir_fd: int | None = None) -> bool:
    """True when ``path`` (its name in ``dir_fd`` when given; not followed) still names
    the inode ``ident``."""
    try:
        st = os.stat(
            path.name if dir_fd is not None else path, dir_fd=dir_fd, follow_symlinks=False
        )
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


class UnsafeFolder(Problem):
    """The drop folder or one of its subfolders must not be used; the message says why."""

    kind = ProblemKind.REFUSED


def writers(st: os.stat_result) -> str:
    """Who besides the owner may write in a folder of status ``st``: "" (no one), "the
    group NAME" or "everyone"."""
    if st.st_mode & stat.S_IWOTH:
        return "everyone"
    if st.st_mode & stat.S_IWGRP:
        try:
            return f"the group {grp.getgrgid(st.st_gid).gr_name}"
        except KeyError:
            return f"the group {st.st_gid}"
    return ""


def _open_dir(parent: int, name: str, shown: str) -> int:
    """``name`` in ``parent`` as a descriptor: a real folder of ours that only we may write
    in, made 0700 when missing. Raises :class:`UnsafeFolder` (saying why) otherwise."""
    for _attempt in range(3):
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
            continue
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                continue
            why = "a file, not a folder" if stat.S_ISREG(st.st_mode) else kind_of(st.st_mode)
            if not stat.S_ISREG(st.st_mode):
                why += ", not a folder"
            raise _unsafe(shown, why) from None
        st = os.fstat(fd)
        why = ""
        if st.st_uid != os.geteuid():
            why = f"a folder of another user ({owner_name(st.st_uid)})"
        elif writers(st):
            why = f"a folder {writers(st)} may write in (mode {stat.S_IMODE(st.st_mode):o})"
        if why:
            os.close(fd)
            raise _unsafe(shown, why)
        return fd
    raise _unsafe(shown, "a folder that keeps disappearing")


def _unsafe(shown: str, why: str) -> UnsafeFolder:
    return UnsafeFolder(
        f"{shown} is {why}: nothing is moved there; remove it (the daemon makes its own again)"
    )


class IntakeFiles:
    """The drop folder's private subfolders and the file moves between them.

    ``owners`` are the users (besides the daemon's own) whose files are read.
    """

    def __init__(self, folder: Path, owners: Iterable[int] = ()) -> None:
        self.folder = folder
        self.failed = folder / FAILED
        self.archive = folder / ARCHIVE
        self.work = folder / WORK
        self.claims = self.work / "claim"
        self.erasing = self.work / "erase"
        self.owners = frozenset({os.geteuid(), *owners})
        #: Who besides the daemon's user may write in the drop folder ("" for no one).
        self.writers = ""
        self._fd = -1
        self._trouble: dict[tuple[str, ...], str] = {}

    @property
    def trouble(self) -> str:
        """Why a subfolder is not used now ("" when all are fine), for ``status``."""
        return "; ".join(self._trouble.values())

    def prepare(self) -> None:
        """Open the drop folder (made 0700 when missing) and its subfolders (made 0700).

        Raises :class:`UnsafeFolder` when the folder is a link, or others may write in it
        and it is neither sticky nor the daemon user's, or a subfolder is a link, not a
        folder, another user's or writable by others: someone who may drop files must
        not be able to redirect where they go.
        """
        self._open_folder()
        for parts in ((FAILED,), (ARCHIVE,), CLAIM, ERASE):
            os.close(self._sub(parts))

    def _open_folder(self) -> int:
        if self._fd >= 0:
            return self._fd
        shown = shown_name(str(self.folder))
        if not os.path.lexists(self.folder):
            xdg.private_dir(self.folder)  # made 0700, with its parents
        try:
            fd = os.open(self.folder, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if os.path.islink(self.folder):
                raise UnsafeFolder(
                    f"{shown} is a symbolic link: name the folder it points to as [drop] folder"
                ) from None
            raise UnsafeFolder(f"{shown} is not a folder: name a folder") from None
        st = os.fstat(fd)
        who = writers(st)
        sticky = bool(st.st_mode & stat.S_ISVTX)
        ours = st.st_uid == os.geteuid()
        if who and not sticky and not ours:
            os.close(fd)
            raise UnsafeFolder(
                f"{shown} may be written by {who} and belongs to {owner_name(st.st_uid)}, "
                "so anyone who may drop files could replace the folders the daemon moves "
                f"them into: make it sticky (chmod +t) or owned by {owner_name(os.geteuid())}"
            )
        others = [] if ours else [owner_name(st.st_uid)]
        if who:
            others = [who] if who == "everyone" else [*others, who]
        self.writers = " and ".join(others) + (" (sticky)" if others and sticky else "")
        self._fd = fd
        return fd

    def close(self) -> None:
        """Close the drop folder's descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _sub(self, parts: tuple[str, ...]) -> int:
        """The subfolder ``parts`` opened now, each step relative to its parent's
        descriptor; raises :class:`UnsafeFolder` (kept as :attr:`trouble` until that
        folder is found usable again)."""
        fd = self._open_folder()
        opened: list[int] = []
        try:
            for i, name in enumerate(parts):
                where = parts[: i + 1]
                try:
                    fd = _open_dir(fd, name, shown_name(str(self.folder.joinpath(*where))))
                except UnsafeFolder as exc:
                    if self._trouble.get(where) != str(exc):
                        log.error("drop folder: %s", exc)
                    self._trouble[where] = str(exc)
                    raise
                opened.append(fd)
        except BaseException:
            for each in opened:
                os.close(each)
            raise
        for each in opened[:-1]:
            os.close(each)
        for i in range(1, len(parts) + 1):
            if self._trouble.pop(parts[:i], None) is not None:
                shown = shown_name(str(self.folder.joinpath(*parts[:i])))
                log.info("drop folder: %s is usable again", shown)
        return opened[-1]

    @contextlib.contextmanager
    def _at(self, parts: tuple[str, ...]) -> Iterator[int]:
        fd = self._sub(parts)
        try:
            yield fd
        finally:
            os.close(fd)

    def is_claimed(self, path: Path) -> bool:
        """True for a path inside the claim folder."""
        return path.parent == self.claims

    def signature(self, path: Path) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of a file in the drop or claim folder, without following
        links or resolving a path; None when the name is gone (or the folder unusable)."""
        try:
            if self.is_claimed(path):
                with self._at(CLAIM) as fd:
                    st = os.stat(path.name, dir_fd=fd, follow_symlinks=False)
            else:
                st = os.stat(path.name, dir_fd=self._open_folder(), follow_symlinks=False)
        except (FileNotFoundError, UnsafeFolder):
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def names(self) -> list[str]:
        """The names in the drop folder, read through its descriptor."""
        with os.scandir(self._open_folder()) as entries:
            return [e.name for e in entries]

    def claim(self, path: Path) -> Path | None:
        """Move ``path`` (a name in the drop folder) into the claim folder; None when it is
        gone. Raises OSError, or UnsafeFolder when the claim folder must not be used."""
        with self._at(CLAIM) as claims:
            if self.is_claimed(path):
                return path if _lexists_at(claims, path.name) else None
            target = free_name_at(claims, path.name)
            try:
                # A link or FIFO is moved as it is, never followed.
                os.rename(path.name, target, src_dir_fd=self._open_folder(), dst_dir_fd=claims)
            except FileNotFoundError:
                return None
        return self.claims / target

    def open_claimed(self, path: Path, max_bytes: int) -> Opened:
        """Read a claimed file through the claim folder's descriptor, for erasing later:
        a regular file with one name of a trusted owner (else NotAFile, unread)."""
        with self._at(CLAIM) as claims:
            return open_and_read(
                path, max_bytes, for_erasing=True, dir_fd=claims, owners=self.owners
            )

    def recover(self) -> list[Path]:
        """At start: finish erasing what was taken; return the claims to judge again."""
        with self._at(ERASE) as erasing:
            for entry in sorted(os.listdir(erasing)):
                self._finish_erase(erasing, entry)
        with self._at(CLAIM) as claims:
            names = sorted(os.listdir(claims))
        if names:
            log.info("%d file(s) were being judged when the daemon stopped: again", len(names))
        return [self.claims / n for n in names]

    def _finish_erase(self, erasing: int, name: str) -> None:
        # Only the daemon's user can put a name in its erase folder (opened and checked as
        # its own): what is there was judged and read as a trusted file with one name.
        path = self.erasing / name
        try:
            opened = open_and_read(path, 1 << 62, for_erasing=True, dir_fd=erasing)
        except (NotAFile, OSError):  # never zeroed: only its name goes
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=erasing)
            return
        try:
            zero_through(opened)
            if same_inode(path, opened.ident, erasing):
                os.unlink(name, dir_fd=erasing)
        finally:
            opened.close()
        log.info("finished erasing a taken file left by a stop (%s)", shown_name(name))

    def erase(self, opened: Opened) -> None:
        """A taken file: into ``erase/``, zeroed through its descriptor, then unlinked.

        Raises UnsafeFolder (the file stays claimed: at the next start it is recognised
        as seen before and erased) when a folder on the way must not be used."""
        path = opened.path
        with self._at(CLAIM) as claims, self._at(ERASE) as erasing:
            target = free_name_at(erasing, path.name)
            os.rename(path.name, target, src_dir_fd=claims, dst_dir_fd=erasing)
            zero_through(opened)  # the inode that was read, wherever its name went
            if same_inode(Path(target), opened.ident, erasing):
                os.unlink(target, dir_fd=erasing)
                return
            # Replaced between the read and the rename (only our own user can): what is
            # at ``target`` now was never judged; it goes back to be judged as a new file.
            log.warning(
                "%s was replaced while it was judged; it is judged at the next start",
                shown_name(path.name),
            )
            again = free_name_at(claims, path.name)
            os.rename(target, again, src_dir_fd=erasing, dst_dir_fd=claims)

    def keep(self, opened: Opened) -> Path:
        """A taken file kept (``after = "archive"``): moved to ``archive/``, 0600.

        Raises UnsafeFolder (the file stays claimed) when ``archive/`` must not be used."""
        with self._at(CLAIM) as claims, self._at((ARCHIVE,)) as archive:
            target = free_name_at(archive, opened.path.name)
            os.rename(opened.path.name, target, src_dir_fd=claims, dst_dir_fd=archive)
        with contextlib.suppress(OSError):
            os.fchmod(opened.fd, 0o600)
        return self.archive / target

    def refuse(self, path: Path, refusal: Refusal, opened: Opened | None = None) -> Path | None:
        """Move a refused (claimed) file to ``failed/`` (0600) with its reason file; the
        path it got.

        The reason file is written first, then the file is moved beside it, so a stop in
        between leaves the file claimed (it is judged again at the next start and lands
        on the same reason file), never in ``failed/`` without its reason. Every step is
        tried on its own: a failing step is logged, the others still run. None when the
        file could not be moved (it stays claimed; a ``failed/`` that must not be used is
        logged and kept as :attr:`trouble`).
        """
        try:
            failed = self._sub((FAILED,))
        except UnsafeFolder:
            log.error("refused file %s stays in %s", refusal.shown, shown_name(str(self.claims)))
            return None
        except OSError as exc:
            log.error("no folder for refused file %s (%s)", refusal.shown, exc.strerror)
            return None
        try:
            return self._refuse_into(failed, path, refusal, opened)
        finally:
            os.close(failed)

    def _refuse_into(
        self, failed: int, path: Path, refusal: Refusal, opened: Opened | None
    ) -> Path | None:
        try:
            target = free_name_at(failed, path.name, FAILED_NAME_MAX)
        except OSError as exc:
            log.error("no name in failed/ for %s (%s)", refusal.shown, exc)
            return None
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(target + REASON_SUFFIX, flags, 0o600, dir_fd=failed)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write(refusal.text(shown_name(target)))
        except OSError as exc:
            log.error("could not write the reason file for %s (%s)", refusal.shown, exc)
        try:
            with self._at(CLAIM) as claims:
                # A link or FIFO is moved as it is, never followed.
                os.rename(path.name, target, src_dir_fd=claims, dst_dir_fd=failed)
        except FileNotFoundError:
            return None
        except (OSError, UnsafeFolder) as exc:
            log.error("could not move refused file %s to failed/ (%s)", refusal.shown, exc)
            return None
        self._private(failed, target, opened)
        return self.failed / target

    def _private(self, failed: int, name: str, opened: Opened | None) -> None:
        """Make a refused file 0600 (a folder 0700): only the daemon's own, with one name."""
        try:
            if opened is not None and same_inode(Path(name), opened.ident, failed):
                os.fchmod(opened.fd, 0o600)
                return
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=failed)
            try:
                st = os.fstat(fd)
                is_dir = stat.S_ISDIR(st.st_mode)
                if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                    return  # a link's mode means nothing; another user's file is theirs
                if not is_dir and st.st_nlink > 1:
                    return  # its other names are not ours to lock
                os.chmod(f"/proc/self/fd/{fd}", 0o700 if is_dir else 0o600)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not make %s private (%s)", shown_name(name), exc.strerror)


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

"""One daemon per state directory: an exclusive flock on ``daemon.lock``.

Taken before anything reads or changes the daemon's state (registry, queue, drop
folder), and released by the kernel when the process ends, however it ends. The file
names the holder (pid, bus) so a second daemon can say which one runs; it is never
deleted, so there is no window in which two processes lock two different files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from tokenstation.daemon.token.problem import Problem, ProblemKind

LOCK_NAME = "daemon.lock"


class AlreadyRunning(Problem):
    """Another daemon holds the state directory or the bus name."""

    kind = ProblemKind.REFUSED


class InstanceLock:
    """Exclusive locks on ``daemon.lock`` in each directory given, held until release."""

    def __init__(self, fds: list[int], paths: list[Path]) -> None:
        self._fds = fds
        self.paths = paths

    @classmethod
    def acquire(cls, dirs: list[Path], bus: str) -> InstanceLock:
        """Lock every directory (or raise AlreadyRunning, holding none) and sign the files."""
        fds: list[int] = []
        paths: list[Path] = []
        try:
            for d in dict.fromkeys(dirs):  # each once, in order
                path = d / LOCK_NAME
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    raise AlreadyRunning(
                        f"another tokenstation daemon ({holder or 'pid unknown'}) is running on {d}"
                    ) from None
                fds.append(fd)
                paths.append(path)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in fds:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {bus} bus\n".encode(), 0)
        return cls(fds, paths)

    def release(self) -> None:
        """Unlock (closing the files)."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

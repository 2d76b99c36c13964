"""The watched drop folder: the only module that imports watchdog.

A file is handed over only once it is complete: its size and mtime unchanged for
``stability_s``, however many events fire meanwhile (each event restarts its wait).
Temporary and hidden names are ignored until renamed. Files present at start are
picked up. Native events (inotify) by default; a polling observer for network shares
(SMB/NFS send no inotify events), and the mode in use is reported.

A complete file is claimed (moved into the private ``.taking/claim``, see
intake_files.py) before ``ready`` gets it, so the daemon never reads in the watched
folder and its own reads raise no events there; opens and closes without a write are
not changes anyway and are ignored. When ``ready`` fails for a file, that file is tried
again after a delay that doubles each time (up to five minutes), never in a loop. At
start, what a stop left half-done is finished first (intake_files.IntakeFiles.recover).

The folder itself is created 0700, with ``failed/`` and ``archive/`` inside it. It is
opened once as a descriptor; every name in it is looked at and moved through that
descriptor (intake_files), never by its path. A subfolder found unusable while running
(replaced by a link or another user's folder) holds the files that need it where they
are, says why in the log and in ``status``, and the daemon runs on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from tokenstation.daemon.intake.files import ARCHIVE, FAILED, WORK, IntakeFiles, UnsafeFolder
from tokenstation.daemon.safetext import shown_name

log = logging.getLogger(__name__)

RESERVED = frozenset({FAILED, ARCHIVE, WORK})
#: Events that are no change to a file: the daemon's own (or anyone's) reads.
_NOT_CHANGES = frozenset({"opened", "closed_no_write"})
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 300.0
_RETRY_GIVE_UP = 12

#: Names that are not finished files: partial downloads, editor backups, OS droppings.
_IGNORED = re.compile(
    r"""^(\..*                      # dotfiles, including .name.part temporaries
        |.*\.(part|partial|crdownload|download|tmp|temp|swp|filepart)
        |.*~
        |~\$.*
        |Thumbs\.db|desktop\.ini|\.DS_Store
        )$""",
    re.IGNORECASE | re.VERBOSE,
)


def ignored_name(name: str) -> bool:
    """True for names that are never taken (until renamed)."""
    return bool(_IGNORED.match(name)) or name in RESERVED


Ready = Callable[[Path], None]


class _Handler(FileSystemEventHandler):
    def __init__(self, folder: DropFolder) -> None:
        self.folder = folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _NOT_CHANGES:
            return
        for attr in ("src_path", "dest_path"):
            raw = getattr(event, attr, "")
            if raw:
                path = Path(os.fsdecode(raw))
                if path.parent == self.folder.path:
                    self.folder.touch(path)


class DropFolder:
    """Watches ``path`` and calls ``ready(file)`` (on its own thread) for complete files."""

    def __init__(
        self,
        path: Path,
        ready: Ready,
        *,
        stability_s: float = 1.0,
        polling: bool = False,
        poll_interval_s: float = 2.0,
        files: IntakeFiles | None = None,
    ) -> None:
        self.path = path
        self.ready = ready
        self.stability_s = stability_s
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.files = files if files is not None else IntakeFiles(path)
        self._pending: dict[Path, tuple[float, _Sig]] = {}
        self._failures: dict[Path, int] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._observer: object | None = None
        self._thread: threading.Thread | None = None
        self.mode = "not started"

    def prepare(self) -> None:
        """Create the folder and its subfolders, 0700."""
        self.files.prepare()

    def start(self) -> None:
        """Start watching; files already in the folder are queued for a stability check.

        A drop folder that must not be used (see IntakeFiles.prepare) is not watched: the
        reason is logged and shown as the mode; the daemon runs on without it.
        """
        try:
            self.prepare()
        except (UnsafeFolder, OSError) as exc:
            why = f"it cannot be opened ({exc.strerror})" if isinstance(exc, OSError) else str(exc)
            self.mode = f"not watching: {why}; then restart the daemon"
            log.error("drop folder %s: %s", self.path, self.mode)
            return
        observer = PollingObserver(timeout=self.poll_interval_s) if self.polling else Observer()
        observer.schedule(_Handler(self), str(self.path), recursive=False)
        observer.start()
        self._observer = observer
        self.mode = f"polling every {self.poll_interval_s:g} s" if self.polling else "native events"
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)
        self._thread.start()
        log.info("drop folder %s: %s", self.path, self.mode)

    def rescan(self) -> None:
        """Look at every entry (at start, and when asked)."""
        try:
            names = self.files.names()
        except (OSError, UnsafeFolder) as exc:
            log.error("could not list the drop folder %s (%s)", self.path, exc)
            return
        for name in names:
            self.touch(self.path / name)

    def stop(self) -> None:
        """Stop the observer and the stability thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        observer = self._observer
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(5)  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(5)

    def touch(self, path: Path) -> None:
        """Something happened to ``path``: (re)start its stability wait."""
        if ignored_name(path.name):
            return
        with self._cond:
            deadline = time.monotonic() + self.stability_s
            if path in self._failures and path in self._pending:  # keep its back-off
                deadline = max(deadline, self._pending[path][0])
            self._pending[path] = (deadline, self.files.signature(path))
            self._cond.notify()

    @property
    def pending(self) -> int:
        """Files waiting to become stable."""
        with self._cond:
            return len(self._pending)

    def _recover(self) -> None:
        """On the folder's thread, before anything new: finish what a stop left half-done."""
        try:
            leftovers = self.files.recover()
        except (OSError, UnsafeFolder) as exc:
            log.error("could not look at %s (%s)", self.files.work, exc)
            leftovers = []
        now = time.monotonic()
        with self._cond:
            for path in leftovers:
                self._pending[path] = (now, self.files.signature(path))
        self.rescan()

    def _run(self) -> None:
        self._recover()
        while True:
            due: list[Path] = []
            with self._cond:
                while not self._stop:
                    if not self._pending:
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    soonest = min(deadline for deadline, _sig in self._pending.values())
                    if soonest > now:
                        self._cond.wait(soonest - now)
                        continue
                    break
                if self._stop:
                    return
                now = time.monotonic()
                for path, (deadline, sig) in list(self._pending.items()):
                    if deadline > now:
                        continue
                    current = self.files.signature(path)
                    if current is None:
                        del self._pending[path]  # gone (renamed away or deleted)
                    elif current != sig:
                        self._pending[path] = (now + self.stability_s, current)
                    else:
                        del self._pending[path]
                        due.append(path)
            for path in due:
                self._hand_over(path)

    def _hand_over(self, path: Path) -> None:
        claimed: Path | None = path
        try:
            claimed = self.files.claim(path)
            if claimed is None:
                return  # gone meanwhile
            self.ready(claimed)
        except Exception as exc:
            self._failed(claimed or path, exc)
        else:
            self._failures.pop(path, None)

    def _failed(self, path: Path, exc: Exception) -> None:
        """``ready`` (or the claim) failed: try again later, with a growing delay."""
        n = self._failures.get(path, 0) + 1
        shown = shown_name(path.name)
        if n >= _RETRY_GIVE_UP:
            self._failures.pop(path, None)
            log.error(
                "gave up on %s after %d attempts (%s); it is tried again at the next start",
                shown,
                n,
                exc,
            )
            return
        self._failures[path] = n
        delay = min(_RETRY_FIRST_S * 2 ** (n - 1), _RETRY_MAX_S)
        if isinstance(exc, UnsafeFolder):
            log.error("%s waits (next try in %g s): %s", shown, delay, exc)
        elif n == 1:
            log.exception("processing %s failed; trying again in %g s", shown, delay)
        else:
            log.warning("processing %s failed again (%s); next try in %g s", shown, exc, delay)
        with self._cond:
            self._pending[path] = (time.monotonic() + delay, self.files.signature(path))
            self._cond.notify()


_Sig = tuple[int, int, int] | None

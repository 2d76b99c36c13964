"""Files in, jobs out: the drop folder's claimed files and IngestFile's descriptors are
judged on the decoder pool's threads (images in its processes), their jobs queued, the
files cleared away; refusals go to ``failed/`` with a reason beside them.

A taken file is recorded and its jobs queued in one transaction before the file is
deleted (or archived); a refused file moves to ``failed/`` with a ``.reason.txt``
beside it. A file that finds the shared database away stays claimed and is taken when
it is back (:meth:`FileIntake.catch_up`). The burner (:mod:`provisioner`) hears of new
jobs through ``queued``; this part never writes a card.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenstation.daemon.config import Config
from tokenstation.daemon.events import ErrorKind, Event, FileTaken, FileVerdict
from tokenstation.daemon.intake.files import IntakeFiles, Refusal, UnsafeFolder
from tokenstation.daemon.intake.ingest import NotAFile, NotTrusted, Opened, judge_bytes, read_fd
from tokenstation.daemon.intake.payload import Verdict, advice
from tokenstation.daemon.provisioning.queue import Intake, JobQueue, NewJob
from tokenstation.daemon.provisioning.steps import job_view
from tokenstation.daemon.qr.pool import DecodePool
from tokenstation.daemon.safetext import shown_name
from tokenstation.daemon.station import Station, StationError
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.storage.secretbox import KeyProblem

log = logging.getLogger(__name__)


class FileIntake:
    """The drop folder's consumer and IngestFile's judge.

    Owns: the intake files (claim, erase, archive, refuse), the decoder pool, the files
    waiting for the shared database and the drop folder's watch mode. Reads the
    station's model table; publishes FileTaken through the station and calls ``queued()``
    (on the file thread) when a file's jobs are queued.
    """

    def __init__(
        self,
        queue: JobQueue,
        cfg: Config,
        station: Station,
        folder: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        queued: Callable[[], None],
        lost: Callable[[StoreUnavailable], None],
    ) -> None:
        self.queue = queue
        self.cfg = cfg
        self.station = station
        self.folder = folder
        self.loop = loop
        self._queued = queued
        self._lost = lost
        self.files = IntakeFiles(folder, cfg.drop.owner_uids())
        # Files (dropped or added) are judged on its threads, images in its processes
        # (started with the first image, stopped when idle).
        self.decoder = DecodePool()
        self._held: list[Path] = []  # claimed files waiting for the shared database
        self._watch_mode = "not watching"

    def watching(self, mode: str) -> None:
        """The drop folder's watch mode, for GetStatus."""
        self._watch_mode = mode

    def status(self) -> dict[str, object]:
        """The drop folder's part of GetStatus."""
        trouble = self.files.trouble
        out: dict[str, object] = {
            "drop_folder": str(self.folder),
            "drop_folder_watch": self._watch_mode
            + (f"; NOT TAKING FILES THAT NEED IT: {trouble}" if trouble else ""),
            "drop_folder_writers": self.files.writers,
            "qr_decoders": self.decoder.describe(),
        }
        if self._held:
            out["files_waiting_for_store"] = len(self._held)
        return out

    def catch_up(self) -> None:
        """The shared database is back (loop thread): take the files that waited."""
        held, self._held = self._held, []
        for path in held:
            self.take(path)

    def close(self) -> None:
        """Stop the file threads and the decoder processes."""
        self.decoder.close()

    def take(self, path: Path) -> None:
        """DropFolder callback: the file is judged on a decoder thread, in arrival order."""
        self.decoder.submit(self.take_file, path)

    def take_file(self, path: Path) -> Verdict:
        """A claimed file (drop-folder thread): judge, queue, clear away; see intake_files."""
        name = shown_name(path.name)
        try:
            opened = self.files.open_claimed(path, self.cfg.drop.max_file_bytes)
        except FileNotFoundError:
            return Verdict(name, "gone", "ignored", "the file went away before it was read")
        except UnsafeFolder as exc:  # it stays claimed, judged again at the next start
            log.error("%s waits: %s", name, exc)
            return Verdict(name, "waiting", "ignored", str(exc))
        except NotTrusted as exc:
            return self._refuse(path, Verdict(name, "untrusted-file", "error", str(exc)))
        except NotAFile as exc:
            return self._refuse(path, Verdict(name, "unsupported-file", "error", str(exc)))
        except OSError as exc:
            verdict = Verdict(name, "unreadable", "error", f"cannot be read ({exc.strerror})")
            return self._refuse(path, verdict)
        try:
            try:
                verdict, intake = self._take(name, opened.data)
            except StoreUnavailable as exc:  # it waits (claimed) until the database is back
                log.warning("%s waits: %s", name, exc)
                self._held.append(path)
                self.loop.call_soon_threadsafe(self._lost, exc)
                return Verdict(name, "waiting", "ignored", str(exc))
            except Exception as exc:  # a bug or a broken queue: refuse, never loop
                log.exception("judging %s failed", name)
                verdict = Verdict(
                    name,
                    "unreadable",
                    "error",
                    f"not queued: {exc}"
                    if isinstance(exc, KeyProblem)
                    else "not queued because of an internal error (the daemon's log has it)",
                )
                return self._refuse(path, verdict, opened)
            if verdict.verdict != "ok":
                return self._refuse(path, verdict, opened)
            try:
                self._clear_away(opened)
            except UnsafeFolder as exc:  # queued; erased as seen before at the next start
                log.error("%s stays claimed: %s", name, exc)
        finally:
            opened.close()
        self._announce(verdict, intake)
        return verdict

    def _take(self, name: str, data: bytes) -> tuple[Verdict, Intake]:
        """Judge a file's bytes and record it, queuing its jobs when it is ok."""
        verdict = judge_bytes(
            name, data, self.station.models, self.cfg.drop.limits(), self.decoder.decode
        )
        jobs = [NewJob(c.account, c.serial, f"{name} ({c.origin})") for c in verdict.candidates]
        sha = self.queue.file_digest(data)
        ok = verdict.verdict == "ok"
        return verdict, self.queue.take(sha, name, verdict.verdict, jobs if ok else [])

    async def ingest(self, fd: int, name: str) -> FileTaken:
        """IngestFile: read the descriptor a caller passed (closed here) and judge the bytes
        as a file named ``name``, off the event loop on the same file threads as dropped
        files. Refusals raise :class:`StationError`."""
        work = _Ingest(fd, name)
        future = self.decoder.submit(self._ingest_blocking, work)
        assert future is not None  # each request is its own item
        await asyncio.wrap_future(future)
        if work.error is not None:
            raise work.error
        assert work.taken is not None
        return work.taken

    def _ingest_blocking(self, work: _Ingest) -> None:
        try:
            try:
                data = read_fd(work.fd, self.cfg.drop.max_file_bytes)
            except (NotAFile, OSError) as exc:
                raise StationError(
                    ErrorKind.INVALID,
                    f"{work.name}: {exc}",
                    "Open a regular file for reading and pass that descriptor.",
                ) from None
            finally:
                with contextlib.suppress(OSError):
                    os.close(work.fd)
            work.taken = self.ingest_data(work.name, data)
        except StoreUnavailable as exc:
            work.error = StationError(
                ErrorKind.FAILED,
                f"{work.name}: not queued: {exc.brief}",
                "Add it again when the shared database is back (`tokenstation status` says), "
                "or drop it in the drop folder: dropped files wait and are taken then.",
            )
        except StationError as exc:  # the caller's answer, not a failure of the thread
            work.error = exc

    def ingest_data(self, name: str, data: bytes) -> FileTaken:
        """Judge and queue the bytes of a file named ``name`` (blocking); refusals raise."""
        verdict, intake = self._take(name, data)
        if verdict.verdict != "ok":
            raise StationError(
                ErrorKind.INVALID,
                f"{name}: {verdict.verdict} ({verdict.kind}): {verdict.reason}",
                advice(verdict.kind, verdict.reason),
            )
        return self._announce(verdict, intake)

    def _clear_away(self, opened: Opened) -> None:
        if self.cfg.drop.after == "archive":
            self.files.keep(opened)
        else:
            self.files.erase(opened)

    def _refuse(self, path: Path, verdict: Verdict, opened: Opened | None = None) -> Verdict:
        """To failed/ with the reason; announced whatever step of that fails."""
        next_step = advice(verdict.kind, verdict.reason)
        refusal = Refusal(verdict.file, verdict.kind, verdict.verdict, verdict.reason, next_step)
        target: Path | None = None
        try:
            target = self.files.refuse(path, refusal, opened)
        except Exception:
            log.exception("moving %s to failed/ failed", verdict.file)
        log.warning("refused %s: %s", verdict.file, verdict.reason)
        self._emit(
            _file_taken(
                verdict,
                moved_to=shown_name(str(target)) if target is not None else "",
                next_step=next_step,
            )
        )
        return verdict

    def _announce(self, verdict: Verdict, intake: Intake) -> FileTaken:
        queued, duplicates = intake.queued, intake.duplicates
        reason = verdict.reason
        if intake.seen_before:
            reason = "the same file was taken before; nothing queued again"
        elif duplicates and not queued:
            reason = "not queued again: the same secret is already held by " + ", ".join(duplicates)
        if intake.seen_before:
            log.info(
                "took %s: %s, taken before (same bytes): nothing queued", verdict.file, verdict.kind
            )
        else:
            log.info(
                "took %s: %s, %d job(s) queued, %d not queued (secret already queued or burned)",
                verdict.file,
                verdict.kind,
                len(queued),
                len(duplicates),
            )
        event = _file_taken(
            verdict,
            reason=reason,
            queued=tuple(job_view(j) for j in queued),
            duplicates=tuple(duplicates),
            seen_before=intake.seen_before,
        )
        self._emit(event)
        if queued:
            self._queued()
        return event

    def _emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.station.publish, event)


@dataclass(eq=False)
class _Ingest:
    """One IngestFile request on a file thread: the descriptor in, the event or error out."""

    fd: int
    name: str
    taken: FileTaken | None = None
    error: StationError | None = None


def _file_taken(verdict: Verdict, **extra: Any) -> FileTaken:
    fields: dict[str, Any] = {
        **verdict.as_dict(),
        "verdict": FileVerdict(verdict.verdict),
        **extra,
    }
    fields["warnings"] = tuple(fields["warnings"])
    fields["accounts"] = tuple(fields["accounts"])
    return FileTaken(**fields)

"""Drop-a-QR provisioning: files in, burn jobs queued, jobs burned onto presented tokens.

Subscribes to the station's events (it never reaches into the station's state beyond
its public calls). A taken file is recorded and its jobs queued in one transaction
before the file is deleted (or archived); a refused file moves to ``failed/`` with a
``.reason.txt`` beside it. When a token is measured and a job waits, attended mode
offers the burn (BurnOffered); station mode burns at once, but only onto the token a
job is bound to or onto a token this station never provisioned.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .csvsafe import SafeWriter
from .decodepool import DecodePool
from .ingest import NotAFile, Opened, judge_bytes, open_and_read, read_bytes
from .intake_files import IntakeFiles, Refusal
from .jobqueue import Intake, Job, JobQueue, NewJob
from .otpcode import expected_code
from .payload import Verdict, advice
from .safetext import shown_name
from .station import EventKind, Presence, Station, StationError, StationEvent
from .store import Operation
from .token.errors import CardLost, RefusedByPolicy, TokenError, TransportError
from .token.models import Model
from .token.session import WriteResult
from .xdg import private_dir

log = logging.getLogger(__name__)

_SEE_QUEUE = "See the jobs and their states with `tokenstation queue list --all`."

LOG_FIELDS = (
    "time_utc",
    "station",
    "serial",
    "model",
    "issuer",
    "account",
    "secret_fingerprint",
    "algorithm",
    "period",
    "job_id",
    "source",
)


@dataclass(frozen=True)
class BurnChoice:
    """Which job (if any) a token should get, and whether without asking."""

    job: Job | None
    automatic: bool
    reason: str  # why nothing, or a warning for the offer


def choose_job(
    model: Model, serial: str, provisioned: bool, waiting: list[Job], mode: str
) -> BurnChoice:
    """Pure policy: bound jobs first; station mode never burns over a provisioned token."""
    if not model.programmable:
        return BurnChoice(None, False, "read-only model")
    usable = [
        j
        for j in waiting
        if j.algorithm in {a.name for a in model.algorithms} and j.period in model.periods
    ]
    bound = [j for j in usable if j.serial == serial]
    if bound:
        return BurnChoice(bound[0], mode == "station", "")
    free = [j for j in usable if not j.serial]
    if not free:
        return BurnChoice(None, False, "no job for this token")
    if mode == "station":
        if provisioned:
            return BurnChoice(
                None,
                False,
                f"token {serial} was provisioned by this station before; station mode "
                "never burns over it (bind a job to it by naming the file <serial>.png)",
            )
        return BurnChoice(free[0], True, "")
    warning = (
        f"token {serial} was provisioned by this station before; burning replaces its seed"
        if provisioned
        else ""
    )
    return BurnChoice(free[0], False, warning)


class Provisioner:
    """The drop folder's consumer and the burn queue's driver."""

    def __init__(
        self,
        station: Station,
        queue: JobQueue,
        cfg: Config,
        *,
        drop_folder: Path,
        log_path: Path,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.station = station
        self.queue = queue
        self.cfg = cfg
        self.folder = drop_folder
        self.files = IntakeFiles(drop_folder)
        self.log_path = log_path
        self.loop = loop
        self.mode_text = "not watching"
        self._skipped: set[tuple[int, str, int]] = set()  # (job, reader, generation)
        self._tasks: set[asyncio.Task[None]] = set()
        self.decoder = DecodePool()  # images are decoded in its worker processes
        self.decoder.start()
        station.queue_size = queue.waiting
        station.extra_status = self.status
        station.subscribe(self._on_event)
        for job in queue.recover():
            log.warning("job %d (%s) was burning when the daemon stopped", job.id, job.label())
            if job.burned_serial:
                station.store.record_operation(
                    Operation(
                        job.burned_serial,
                        time.time(),
                        "burn",
                        "failed",
                        f"interrupted: the daemon stopped during the burn of {job.label()}",
                        secret_fingerprint=job.fingerprint,
                    )
                )

    def status(self) -> dict[str, object]:
        """Drop folder and mode, for GetStatus."""
        return {
            "mode": self.cfg.mode,
            "drop_folder": str(self.folder),
            "drop_folder_watch": self.mode_text,
            "jobs_failed": self.queue.count("failed"),
            "qr_decoders": self.decoder.describe(),
        }

    # -- files -------------------------------------------------------------------------

    def take(self, path: Path) -> None:
        """DropFolder callback: the file is judged on a decoder thread, in arrival order."""
        self.decoder.submit(self.take_file, path)

    def take_file(self, path: Path) -> Verdict:
        """A claimed file (drop-folder thread): judge, queue, clear away; see intake_files."""
        name = shown_name(path.name)
        try:
            opened = open_and_read(path, self.cfg.drop.max_file_bytes, for_erasing=True)
        except FileNotFoundError:
            return Verdict(name, "gone", "ignored", "the file went away before it was read")
        except NotAFile as exc:
            return self._refuse(path, Verdict(name, "unsupported-file", "error", str(exc)))
        except OSError as exc:
            verdict = Verdict(name, "unreadable", "error", f"cannot be read ({exc.strerror})")
            return self._refuse(path, verdict)
        try:
            try:
                verdict, intake = self._take(name, opened.data)
            except Exception as exc:  # a bug or a broken queue: refuse, never loop
                log.exception("judging %s failed", name)
                verdict = Verdict(
                    name, "unreadable", "error", f"internal error ({type(exc).__name__})"
                )
                return self._refuse(path, verdict, opened)
            if verdict.verdict != "ok":
                return self._refuse(path, verdict, opened)
            self._clear_away(opened)
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
        sha = hashlib.sha256(data).hexdigest()
        ok = verdict.verdict == "ok"
        return verdict, self.queue.take(sha, name, verdict.verdict, jobs if ok else [])

    def ingest_path(self, path: Path) -> dict[str, object]:
        """`queue add FILE`: judge and queue a file outside the drop folder; leave it there."""
        try:
            data = read_bytes(path, self.cfg.drop.max_file_bytes)
        except (NotAFile, OSError) as exc:
            raise StationError(
                "invalid",
                f"{shown_name(path.name)}: {exc}",
                "Give a regular file the daemon's user can read.",
            ) from None
        return self.ingest_data(shown_name(path.name), data)

    def ingest_data(self, name: str, data: bytes) -> dict[str, object]:
        """Judge and queue the bytes of a file named ``name`` (IngestFile); refusals raise."""
        verdict, intake = self._take(name, data)
        if verdict.verdict != "ok":
            raise StationError(
                "invalid",
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
            EventKind.FILE_TAKEN,
            {
                **verdict.as_dict(),
                "moved_to": shown_name(str(target)) if target is not None else "",
                "next_step": next_step,
                "queued": [],
                "duplicates": [],
            },
        )
        return verdict

    def _announce(self, verdict: Verdict, intake: Intake) -> dict[str, object]:
        queued, duplicates = intake.queued, intake.duplicates
        payload: dict[str, object] = {
            **verdict.as_dict(),
            "queued": [j.as_dict() for j in queued],
            "duplicates": duplicates,
            "seen_before": intake.seen_before,
        }
        if intake.seen_before:
            payload["reason"] = "the same file was taken before; nothing queued again"
        elif duplicates and not queued:
            payload["reason"] = "already queued or burned: " + ", ".join(duplicates)
        log.info(
            "took %s: %s, %d job(s) queued, %d duplicate(s)",
            verdict.file,
            verdict.kind,
            len(queued),
            len(duplicates),
        )
        self._emit(EventKind.FILE_TAKEN, payload)
        if queued:
            self.loop.call_soon_threadsafe(self._queue_changed)
        return payload

    def _emit(self, kind: EventKind, payload: dict[str, object]) -> None:
        self.loop.call_soon_threadsafe(self.station.publish, kind, payload)

    def _queue_changed(self, *, offer: bool = True) -> None:
        """Publish the queue's state (loop thread); with ``offer``, offer jobs to tokens."""
        payload: dict[str, object] = {"paused": self.station.paused, "length": self.queue.waiting()}
        self.station.publish(EventKind.QUEUE_STATE, payload)
        if offer:
            self.offer_all()

    # -- tokens ------------------------------------------------------------------------

    def _on_event(self, event: StationEvent) -> None:
        if event.kind == EventKind.TOKEN_MEASURED:
            self._spawn(self._consider(str(event.payload["reader"])))

    def offer_all(self) -> None:
        """Consider every measured token (after a resume, or when jobs arrive)."""
        for reader, p in self.station.readers.items():
            if p is not None and p.precise and p.state == "token":
                self._spawn(self._consider(reader))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consider(self, reader: str) -> None:
        p = self.station.readers.get(reader)
        if p is None or p.model is None or self.station.paused:
            return
        record = self.station.store.token(p.serial)
        # A token this station burned, or tried to, is not "fresh" any more.
        touched = bool(record and record.provisioned) or any(
            op.kind == "burn" for op in self.station.store.operations(p.serial)
        )
        waiting = [
            j
            for j in self.queue.jobs(["queued"])
            if (j.id, p.reader, p.generation) not in self._skipped
        ]
        choice = choose_job(p.model, p.serial, touched, waiting, self.cfg.mode)
        if choice.job is None:
            if waiting and choice.reason:
                log.info("no burn for %s: %s", p.serial, choice.reason)
            return
        if choice.automatic:
            try:
                await self.burn(choice.job.id, p.serial, origin="station")
            except StationError as exc:
                log.warning("station-mode burn of job %d: %s", choice.job.id, exc.message)
            return
        self.station.publish(
            EventKind.BURN_OFFERED,
            {
                **_token_fields(p),
                "job": choice.job.as_dict(),
                "warning": choice.reason,
                "question": f"Burn {choice.job.label()} onto token {p.serial}?",
            },
        )

    def skip(self, job_id: int, serial: str) -> None:
        """Do not offer this job to this token again while it stays on the reader."""
        p = self.station.find(serial)
        self._skipped.add((job_id, p.reader, p.generation))
        self._spawn(self._consider(p.reader))

    async def burn(self, job_id: int, serial: str, origin: str = "manual") -> dict[str, object]:
        """Burn job ``job_id`` onto the presented token ``serial``."""
        p = self.station.find(serial)
        assert p.model is not None
        job = self.queue.get(job_id)
        if job is None:
            raise StationError("invalid", f"no job {job_id}", _SEE_QUEUE)
        if job.serial and job.serial != p.serial:
            raise StationError(
                "refused",
                f"job {job_id} is bound to token {job.serial}, not {p.serial}",
                f"Place token {job.serial}, or remove the job and queue its file again unbound.",
            )
        try:
            job = self.queue.start_burn(job_id, p.serial)
        except ValueError as exc:
            raise StationError("refused", str(exc), _SEE_QUEUE) from None
        seed = self.queue.secret(job_id)
        settings = job.settings(self.cfg.token_defaults.display_timeout)
        base = {**_token_fields(p), "job": job.as_dict(), "origin": origin}
        p.state = "burning"
        try:
            result: WriteResult = await self.station.card_operation(
                p, lambda s: s.burn(seed, settings, expect_serial=p.serial)
            )
        except (StationError, TokenError) as exc:
            p.state = "token"
            message = exc.message
            next_step = getattr(exc, "next_step", "")
            nothing_written = isinstance(exc, StationError | RefusedByPolicy)
            gone = isinstance(exc, CardLost | TransportError)
            if nothing_written or gone:
                self.queue.back_to_queue(job_id, message)
                outcome = "requeued"
            else:
                self.queue.failed(job_id, message)
                outcome = "failed"
            self.station.store.record_operation(
                Operation(
                    p.serial,
                    time.time(),
                    "burn",
                    "failed",
                    message,
                    secret_fingerprint=job.fingerprint,
                )
            )
            self.station.publish(
                EventKind.BURN_FAILED,
                {**base, "outcome": outcome, "message": message, "next_step": next_step},
            )
            self._queue_changed(offer=False)
            raise StationError("failed", message, next_step) from None
        p.state = "token"
        done = self.queue.burned(job_id, p.serial)
        at = result.host_time_after
        self.station.store.record_write(p.serial, settings, at, provisioned=True)
        self.station.store.record_operation(
            Operation(
                p.serial,
                at,
                "burn",
                "ok",
                f"{origin}; {job.label()}",
                secret_fingerprint=job.fingerprint,
            )
        )
        self._log_provisioning(done, p)
        payload: dict[str, object] = {
            **base,
            "job": done.as_dict(),
            "settings": settings.as_dict(),
            "power_cycle_required": True,
            "token_time": result.token_time_after,
        }
        try:
            code, valid_until = expected_code(seed, settings, at)
            payload["expected_code"] = code
            payload["expected_code_valid_until"] = valid_until
        except Exception:  # the burn stands; only the hint is missing
            log.exception("could not compute the expected code for job %d", job_id)
        log.info("burned job %d (%s) onto %s", job_id, job.label(), p.serial)
        self.station.publish(EventKind.BURN_DONE, payload)
        self._queue_changed(offer=False)
        return payload

    def _log_provisioning(self, job: Job, p: Presence) -> None:
        new = not self.log_path.exists()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", newline="", encoding="utf-8", errors="backslashreplace") as f:
            w = SafeWriter(f)
            if new:
                w.writerow(LOG_FIELDS)
            w.writerow(
                [
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.burned_at or time.time())),
                    socket.gethostname(),
                    p.serial,
                    p.model.name if p.model else "",
                    job.issuer,
                    job.account,
                    job.fingerprint,
                    job.algorithm,
                    job.period,
                    job.id,
                    job.source,
                ]
            )

    # -- queue management --------------------------------------------------------------

    def remove(self, job_id: int) -> Job:
        """Remove a queued or failed job (its secret is erased)."""
        try:
            job = self.queue.remove(job_id)
        except ValueError as exc:
            raise StationError("refused", str(exc), _SEE_QUEUE) from None
        self._queue_changed()
        return job

    def retry(self, job_id: int) -> Job:
        """Put a failed job back in the queue."""
        try:
            job = self.queue.retry(job_id)
        except ValueError as exc:
            raise StationError("refused", str(exc), _SEE_QUEUE) from None
        self._queue_changed()
        return job


def _token_fields(p: Presence) -> dict[str, object]:
    return {
        "reader": p.reader,
        "serial": p.serial,
        "model": p.model.name if p.model else "",
    }


def default_paths(cfg: Config) -> tuple[Path, Path, Path]:
    """(drop folder, queue database, provisioning log)."""
    from . import xdg

    data = private_dir(xdg.data_dir())
    folder = cfg.drop.folder if cfg.drop.folder is not None else data / "drop"
    return folder, data / "queue.sqlite3", data / "provisioning-log.csv"
